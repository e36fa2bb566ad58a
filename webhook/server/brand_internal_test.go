package server

import (
	"fmt"
	"testing"
)

// Whatever accent a vendor picks, the shades the pages use meet WCAG AA: links and the focus ring 4.5:1 on
// the card and the page background, button text 4.5:1 on the button, in both colour schemes.
func TestThemesKeepContrastForAnyAccent(t *testing.T) {
	var accents []string
	for r := 0; r < 256; r += 51 {
		for g := 0; g < 256; g += 51 {
			for b := 0; b < 256; b += 51 {
				accents = append(accents, fmt.Sprintf("#%02x%02x%02x", r, g, b))
			}
		}
	}
	accents = append(accents, "#ffb900", "#7cb4ff", "#777777", "#0b5cad", "#ff0000", "")
	must := func(c string) rgb {
		x, err := parseHex(c)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	for _, a := range accents {
		light, dark := themes(a)
		for _, c := range []struct {
			scheme     string
			th         theme
			card, page string
		}{{"light", light, lightCard, lightBG}, {"dark", dark, darkCard, darkBG}} {
			for _, bg := range []string{c.card, c.page} {
				if r := contrast(must(c.th.Accent), must(bg)); r < 4.5 {
					t.Errorf("accent %s, %s: links %s on %s are %.2f:1", a, c.scheme, c.th.Accent, bg, r)
				}
			}
			if r := contrast(must(c.th.OnButton), must(c.th.Button)); r < 4.5 {
				t.Errorf("accent %s, %s: button text %s on %s is %.2f:1", a, c.scheme, c.th.OnButton, c.th.Button, r)
			}
		}
	}
}

func TestCheckBrandRefusesWhatThePagesCannotShow(t *testing.T) {
	for name, b := range map[string]Brand{
		"a colour name":         {AccentColor: "purple"},
		"a script as app":       {AppURL: "javascript:alert(1)"},
		"a relative app URL":    {AppURL: "app"},
		"a data logo":           {LogoURL: "data:image/png;base64,AAAA"},
		"an offer's script app": {Offers: map[string]OfferBrand{"o": {AppURL: "javascript:x"}}},
	} {
		if err := checkBrand(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := checkBrand(Brand{AccentColor: "#abc", LogoURL: "/static/logo.png", SupportURL: "mailto:help@contoso.example", AppURL: "https://app.contoso.example"}); err != nil {
		t.Errorf("a good brand: %v", err)
	}
}
