package browser_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"saasengine/internal/browser"
)

// The measurements find what they are for: a page with faint text, a button that disappears in dark mode,
// a field without a boundary, a word too long for a phone, an unnamed control; and nothing on a page
// without them.
func TestMeasurementsFindProblems(t *testing.T) {
	pages := map[string]string{
		"/bad": `<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1"><style>
			:root{color-scheme:light dark} body{background:#fff;color:#111;margin:0}
			.faint{color:#aaa} .btn{background:#0b5cad;color:#fff;border:0} input{border:1px solid #eee;background:#fff}
			@media (prefers-color-scheme: dark){ body{background:#1f2026;color:#eee} .btn{background:#7cb4ff;color:#fff} }
			.long{overflow-wrap:anywhere;width:200px}
			</style></head><body>
			<p class="faint">Faint text</p><button class="btn">Confirm</button><input aria-label="Seats">
			<p class="long">PendingFulfillmentStartPendingFulfillmentStart</p><button></button>
			<div style="width:600px">too wide</div></body></html>`,
		"/good": `<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1"><style>
			:root{color-scheme:light dark} body{background:#fff;color:#111;margin:0}
			@media (prefers-color-scheme: dark){ body{background:#1f2026;color:#eee} }
			button{background:#0b5cad;color:#fff;border:0} input{border:1px solid #666;background:#fff;color:#111}
			</style></head><body><p>Plain text</p><button>Confirm</button><label>Seats <input value="5"></label></body></html>`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(pages[r.URL.Path]))
	}))
	defer srv.Close()
	ctx := browser.New(t)

	if err := browser.Do(ctx, browser.Viewport(browser.PhoneWidth), chromedp.Navigate(srv.URL+"/bad")); err != nil {
		t.Fatal(err)
	}
	light, err := browser.Contrast(ctx, "light")
	if err != nil {
		t.Fatal(err)
	}
	dark, err := browser.Contrast(ctx, "dark")
	if err != nil {
		t.Fatal(err)
	}
	found := func(rep browser.ContrastReport, text string) bool {
		for _, p := range rep.Problems {
			if strings.Contains(p.Text, text) {
				return true
			}
		}
		return false
	}
	if !found(light, "Faint text") || !found(light, "(boundary)") || found(light, "Confirm") {
		t.Errorf("light scheme: %+v", light.Problems)
	}
	if !found(dark, "Confirm") {
		t.Errorf("dark scheme: the pale button was not found: %+v", dark.Problems)
	}
	layout, err := browser.Layout(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if layout.Width != browser.PhoneWidth || layout.ScrollWidth <= layout.Width || len(layout.Broken) == 0 || len(layout.Unlabelled) != 1 {
		t.Errorf("layout at %d px: %+v", browser.PhoneWidth, layout)
	}

	if err := browser.Do(ctx, chromedp.Navigate(srv.URL+"/good")); err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{"light", "dark"} {
		rep, err := browser.Contrast(ctx, scheme)
		if err != nil || len(rep.Problems) != 0 || rep.Checked < 3 {
			t.Errorf("good page, %s: %+v %v", scheme, rep, err)
		}
	}
	if layout, err := browser.Layout(ctx); err != nil || layout.ScrollWidth > layout.Width || len(layout.Broken)+len(layout.Overflowing)+len(layout.Unlabelled) != 0 {
		t.Errorf("good page layout: %+v %v", layout, err)
	}
}
