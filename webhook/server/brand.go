package server

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strconv"
	"strings"
)

// Brand makes the buyer's pages look like the vendor's product: its name and logo, an accent colour, links to
// support and the legal pages, and where the product opens once an account is ready. Per offer, a name and an
// application URL override the product's.
type Brand struct {
	ProductName string
	// LogoURL is an https URL, or a path on this server's host; it is shown next to the product's name.
	LogoURL string
	// AccentColor is "#rrggbb". The pages derive from it the shades that keep WCAG AA contrast in the light
	// and the dark colour scheme, so any colour can be given.
	AccentColor string
	SupportURL  string // https: or mailto:
	PrivacyURL  string
	TermsURL    string
	// AppURL is where "Open <product>" leads once an account is ready.
	AppURL string
	// Offers by offer ID.
	Offers map[string]OfferBrand
}

// OfferBrand names one offer and says where its application is.
type OfferBrand struct {
	Name   string
	AppURL string
}

// defaultAccent is the pages' accent when the vendor gives none.
const defaultAccent = "#0b5cad"

// checkBrand refuses a brand the pages could not show safely.
func checkBrand(b Brand) error {
	if b.AccentColor != "" {
		if _, err := parseHex(b.AccentColor); err != nil {
			return fmt.Errorf("server: brand accent colour: %w", err)
		}
	}
	links := map[string]string{"logo": b.LogoURL, "support": b.SupportURL, "privacy": b.PrivacyURL, "terms": b.TermsURL, "application": b.AppURL}
	for id, o := range b.Offers {
		links["application of offer "+id] = o.AppURL
	}
	for what, u := range links {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		ok := err == nil && ((p.Scheme == "https" || p.Scheme == "http") && p.Host != "" || what == "support" && p.Scheme == "mailto" || what == "logo" && p.Scheme == "" && p.Host == "" && strings.HasPrefix(u, "/"))
		if !ok {
			return fmt.Errorf("server: brand %s URL %q: want an http(s) URL", what, u)
		}
	}
	return nil
}

// offerName is what the buyer calls the product of an offer.
func (b Brand) offerName(offerID string) string {
	if o, ok := b.Offers[offerID]; ok && o.Name != "" {
		return o.Name
	}
	return b.ProductName
}

// appURL is where the product of an offer opens; empty when the vendor gave none.
func (b Brand) appURL(offerID string) string {
	if o, ok := b.Offers[offerID]; ok && o.AppURL != "" {
		return o.AppURL
	}
	return b.AppURL
}

// logoOrigin is the origin images may come from besides this server (Content-Security-Policy img-src).
func (b Brand) logoOrigin() string {
	p, err := url.Parse(b.LogoURL)
	if err != nil || p.Host == "" {
		return ""
	}
	return p.Scheme + "://" + p.Host
}

// theme is the CSS colours of one colour scheme.
type theme struct {
	Accent   string // links, focus ring
	Button   string // filled buttons
	OnButton string // text on them
}

// Page colours (text, muted text, backgrounds) of both schemes; the accent is fitted to them.
const (
	lightCard, lightBG = "#ffffff", "#f6f7fb"
	darkCard, darkBG   = "#1f2026", "#15161a"
)

// themes derives from the accent the shades that meet WCAG AA (4.5:1) on the pages' backgrounds: in the
// light scheme a shade dark enough for links on white, in the dark scheme one light enough on near-black, and
// for each a button text colour, white or near-black, whichever reads.
func themes(accent string) (light, dark theme) {
	if accent == "" {
		accent = defaultAccent
	}
	c, err := parseHex(accent)
	if err != nil {
		c, _ = parseHex(defaultAccent)
	}
	black, white := rgb{0x11, 0x11, 0x11}, rgb{0xff, 0xff, 0xff}
	lc, _ := parseHex(lightCard)
	lb, _ := parseHex(lightBG)
	dc, _ := parseHex(darkCard)
	db, _ := parseHex(darkBG)

	lAccent := fit(c, black, func(x rgb) bool { return contrast(x, lc) >= 4.5 && contrast(x, lb) >= 4.5 })
	dAccent := fit(c, white, func(x rgb) bool { return contrast(x, dc) >= 4.5 && contrast(x, db) >= 4.5 })
	return buttonTheme(lAccent, c), buttonTheme(dAccent, c)
}

// buttonTheme fills buttons with the vendor's own colour when white or near-black text reads on it (a
// button is found by its label); else with the fitted accent.
func buttonTheme(accent, vendor rgb) theme {
	black, white := rgb{0x11, 0x11, 0x11}, rgb{0xff, 0xff, 0xff}
	t := theme{Accent: accent.hex(), Button: accent.hex()}
	fill := accent
	if contrast(white, vendor) >= 4.5 || contrast(black, vendor) >= 4.5 {
		fill = vendor
	}
	t.Button = fill.hex()
	if contrast(white, fill) >= contrast(black, fill) {
		t.OnButton = white.hex()
	} else {
		t.OnButton = black.hex()
	}
	return t
}

// fit mixes c towards target, in small steps, until ok holds (at worst target itself).
func fit(c, target rgb, ok func(rgb) bool) rgb {
	for i := 0; i <= 50; i++ {
		x := mix(c, target, float64(i)/50)
		if ok(x) {
			return x
		}
	}
	return target
}

// themeCSS is the pages' custom properties for the vendor's accent, in both schemes.
func themeCSS(accent string) template.CSS {
	l, d := themes(accent)
	return template.CSS(fmt.Sprintf(":root{--accent:%s;--button:%s;--on-button:%s}@media (prefers-color-scheme: dark){:root{--accent:%s;--button:%s;--on-button:%s}}",
		l.Accent, l.Button, l.OnButton, d.Accent, d.Button, d.OnButton))
}

type rgb struct{ r, g, b uint8 }

func parseHex(s string) (rgb, error) {
	h := strings.TrimPrefix(strings.TrimSpace(s), "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	if len(h) != 6 {
		return rgb{}, fmt.Errorf("%q is not a #rrggbb colour", s)
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return rgb{}, fmt.Errorf("%q is not a #rrggbb colour", s)
	}
	return rgb{uint8(v >> 16), uint8(v >> 8), uint8(v)}, nil
}

func (c rgb) hex() string { return fmt.Sprintf("#%02x%02x%02x", c.r, c.g, c.b) }

func mix(a, b rgb, t float64) rgb {
	m := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + (float64(y)-float64(x))*t)) }
	return rgb{m(a.r, b.r), m(a.g, b.g), m(a.b, b.b)}
}

// luminance is WCAG 2's relative luminance.
func luminance(c rgb) float64 {
	f := func(v uint8) float64 {
		x := float64(v) / 255
		if x <= 0.03928 {
			return x / 12.92
		}
		return math.Pow((x+0.055)/1.055, 2.4)
	}
	return 0.2126*f(c.r) + 0.7152*f(c.g) + 0.0722*f(c.b)
}

// contrast is WCAG 2's contrast ratio.
func contrast(a, b rgb) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}
