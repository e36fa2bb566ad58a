package browser

import (
	"context"
	_ "embed"
	"fmt"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// Widths at which pages are checked and photographed: a laptop, and a phone (390 CSS pixels, an iPhone 12
// to 15).
const (
	DesktopWidth = 1280
	PhoneWidth   = 390
)

// Viewport makes the tab width CSS pixels wide, as a phone (mobile, touch) below 600.
func Viewport(width int64) chromedp.Action[chromedp.Void] {
	if width < 600 {
		return chromedp.EmulateViewport(width, 844, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulateScale(2))
	}
	return chromedp.EmulateViewport(width, 900)
}

// ColorScheme makes the page see prefers-color-scheme: scheme ("light" or "dark").
func ColorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}

// Screenshots keeps the page at the desktop and the phone width, in the light and the dark colour scheme,
// as <name>-<width>-<scheme>.png, and leaves the tab at the desktop width in the light scheme.
func Screenshots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	for _, width := range []int64{DesktopWidth, PhoneWidth} {
		for _, scheme := range []string{"light", "dark"} {
			if err := Do(ctx, Viewport(width), ColorScheme(scheme)); err != nil {
				t.Errorf("screenshot %s at %d px, %s: %v", name, width, scheme, err)
				continue
			}
			Screenshot(t, ctx, fmt.Sprintf("%s-%d-%s", name, width, scheme))
		}
	}
	if err := Do(ctx, Viewport(DesktopWidth), ColorScheme("light")); err != nil {
		t.Errorf("restoring the viewport: %v", err)
	}
}

//go:embed a11y.js
var a11yJS string

// ContrastProblem is a text or control whose colours fail WCAG 2 AA: 4.5:1 for text, 3:1 for large text
// (24 px, or 18.66 px bold) and for the boundary of a control without text.
type ContrastProblem struct {
	What     string  `json:"what"`
	Text     string  `json:"text"`
	FG       string  `json:"fg"`
	BG       string  `json:"bg"`
	Ratio    float64 `json:"ratio"`
	Required float64 `json:"required"`
}

// ContrastReport is what Contrast measured in one colour scheme.
type ContrastReport struct {
	Checked  int               `json:"checked"`
	Problems []ContrastProblem `json:"problems"`
}

// Contrast measures, from computed styles, the contrast of every visible text and control of the page in
// the colour scheme ("light" or "dark") against the background it is drawn on (ancestors' backgrounds
// blended), and reports those below WCAG AA.
func Contrast(ctx context.Context, scheme string) (ContrastReport, error) {
	if err := Do(ctx, ColorScheme(scheme)); err != nil {
		return ContrastReport{}, fmt.Errorf("colour scheme %s: %w", scheme, err)
	}
	return Run(ctx, chromedp.Evaluate[ContrastReport](a11yJS+"; saasContrast()"))
}

// CheckContrast runs Contrast in the light and the dark colour scheme and fails the test for each text or
// control below WCAG AA; it leaves the light scheme on. It returns how many were checked, so that a test
// can tell a page it really measured from an empty one.
func CheckContrast(t *testing.T, ctx context.Context, page string) int {
	t.Helper()
	checked := 0
	for _, scheme := range []string{"light", "dark"} {
		rep, err := Contrast(ctx, scheme)
		if err != nil {
			t.Fatalf("%s: measuring contrast (%s): %v", page, scheme, err)
		}
		if rep.Checked == 0 {
			t.Errorf("%s (%s): no text measured", page, scheme)
		}
		for _, p := range rep.Problems {
			t.Errorf("%s (%s): %s %q: %s on %s is %.2f:1, needs %.1f:1", page, scheme, p.What, p.Text, p.FG, p.BG, p.Ratio, p.Required)
		}
		checked += rep.Checked
	}
	if err := Do(ctx, ColorScheme("light")); err != nil {
		t.Fatalf("restoring the colour scheme: %v", err)
	}
	return checked
}

// LayoutReport is what Layout measured at the tab's current width.
type LayoutReport struct {
	ScrollWidth int      `json:"scrollWidth"`
	Width       int      `json:"width"`
	Broken      []string `json:"broken"`
	Overflowing []string `json:"overflowing"`
	Unlabelled  []string `json:"unlabelled"`
}

// Layout measures the page at the tab's current width: how wide it is, the words broken across lines, the
// elements wider than their box, and the controls without an accessible name.
func Layout(ctx context.Context) (LayoutReport, error) {
	return Run(ctx, chromedp.Evaluate[LayoutReport](a11yJS+"; saasLayout()"))
}

// CheckLayout fails the test when the page, at the tab's current width, scrolls sideways, has an element
// wider than its box, breaks a word across lines, or has a control without an accessible name.
func CheckLayout(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	rep, err := Layout(ctx)
	if err != nil {
		t.Fatalf("%s: measuring the layout: %v", page, err)
	}
	if rep.ScrollWidth > rep.Width {
		t.Errorf("%s at %d px: the page is %d px wide and scrolls sideways", page, rep.Width, rep.ScrollWidth)
	}
	for _, w := range rep.Broken {
		t.Errorf("%s at %d px: %q is broken across lines", page, rep.Width, w)
	}
	for _, o := range rep.Overflowing {
		t.Errorf("%s at %d px: %s overflows its box", page, rep.Width, o)
	}
	for _, u := range rep.Unlabelled {
		t.Errorf("%s: %s has no accessible name", page, u)
	}
}
