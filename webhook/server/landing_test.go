package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"saasengine/internal/browser"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows"
)

var formField = regexp.MustCompile(`name="(subscription|token|csrf)" value="([^"]*)"`)

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func fields(page string) url.Values {
	v := url.Values{}
	for _, m := range formField.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], strings.ReplaceAll(m[2], "&#43;", "+"))
	}
	return v
}

func TestLandingPage(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	jar, _ := cookiejar.New(nil)
	buyer := &http.Client{Jar: jar, Timeout: 30 * time.Second}

	p := s.Emu.Purchase(t, "team", 12)
	code, page := get(t, buyer, p.LandingURL)
	if code != 200 || !strings.Contains(page, "team") || !strings.Contains(page, "12") || !strings.Contains(page, p.Subscription.Beneficiary.EmailID) {
		t.Fatalf("landing page: %d", code)
	}
	form := fields(page)
	if form.Get("token") != p.Token || form.Get("csrf") == "" {
		t.Fatalf("form fields %v", form)
	}

	// A forged confirmation: right token, no CSRF proof.
	forged := url.Values{"subscription": {p.SubscriptionID}, "token": {p.Token}, "csrf": {"forged"}}
	resp, err := buyer.PostForm(s.HTTP.URL+"/landing/confirm", forged)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged confirmation: %d", resp.StatusCode)
	}
	if st, _ := s.Subs.State(context.Background(), p.SubscriptionID); st.Confirmed {
		t.Fatal("forged confirmation confirmed")
	}

	resp, err = buyer.PostForm(s.HTTP.URL+"/landing/confirm", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Request.URL.Path, "/landing/status/") {
		t.Fatalf("confirm led to %s", resp.Request.URL)
	}
	statusJSON := resp.Request.URL.String() + "&format=json"
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := get(t, buyer, statusJSON)
		if strings.Contains(body, `"status":"Subscribed"`) && strings.Contains(body, `"done":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never Subscribed: %s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A status link with a forged signature shows nothing.
	if code, _ := get(t, buyer, s.HTTP.URL+"/landing/status/"+p.SubscriptionID+"?sig=forged"); code != http.StatusNotFound {
		t.Fatalf("forged status link: %d", code)
	}

	// "Manage account" later: a fresh token of the active subscription shows its current state.
	if _, err := s.Subs.ChangeQuantity(context.Background(), p.SubscriptionID, 20); err != nil {
		t.Fatal(err)
	}
	again, err := s.Emu.Emulator.NewToken(p.SubscriptionID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if code, page := get(t, buyer, again.LandingURL); code != 200 || !strings.Contains(page, "Subscribed") || !strings.Contains(page, "20") {
		t.Fatalf("manage account visit: %d", code)
	}
}

func TestLandingWithBadTokensCreatesNothing(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	p := s.Emu.Purchase(t, "basic", 0)
	for name, link := range map[string]string{
		"no token":      s.HTTP.URL + "/landing",
		"garbled token": s.HTTP.URL + "/landing?token=" + url.QueryEscape(p.Token[:len(p.Token)-6]),
		"unknown token": s.HTTP.URL + "/landing?token=bm90LWEtdG9rZW4%3D",
	} {
		code, page := get(t, http.DefaultClient, link)
		if code != http.StatusBadRequest || !strings.Contains(page, "Configure account") {
			t.Errorf("%s: %d", name, code)
		}
	}
	// A '+' that query decoding turned into a space is restored: the same token still resolves.
	spaced := s.HTTP.URL + "/landing?token=" + strings.ReplaceAll(url.QueryEscape(p.Token), "%2B", "+")
	if code, _ := get(t, http.DefaultClient, spaced); code != http.StatusOK {
		t.Fatalf("token with '+' sent raw: %d", code)
	}
	expiring := s.Emu.Purchase(t, "basic", 0)
	s.Emu.Emulator.AdvanceClock(25 * time.Hour)
	code, page := get(t, http.DefaultClient, expiring.LandingURL)
	if code != http.StatusBadRequest || !strings.Contains(page, "expired") || !strings.Contains(page, "Configure account") {
		t.Fatalf("expired token: %d", code)
	}
	noWorkflow(t, s, expiring.SubscriptionID)
}

// The buyer's journey in a real browser: buy in the emulator, land, confirm, watch the status page turn
// to Subscribed; and an expired link.
func TestLandingInBrowser(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	ctx := browser.New(t)

	if err := browser.Do(ctx, chromedp.Navigate(s.Emu.Server.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#purchase"))); err != nil {
		t.Fatal(err)
	}
	err := browser.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#plan"), "contoso-analytics/team"),
		chromedp.SetValue(chromedp.CSS("#quantity"), "15"),
		chromedp.SetValue(chromedp.CSS("#name"), "Fabrikam"),
		chromedp.Click(chromedp.CSS("#purchase")),
		chromedp.WaitVisible(chromedp.CSS("#confirm")),
	)
	if err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, ctx, "1-landing")
	if status, err := browser.Text(ctx, "#status"); err != nil || !strings.Contains(status, "PendingFulfillmentStart") {
		t.Fatalf("landing status %q %v", status, err)
	}
	if err := browser.Do(ctx, chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#stage"))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		status, _ := browser.Text(ctx, "#status")
		if status == "Subscribed" {
			break
		}
		if time.Now().After(deadline) {
			browser.Screenshot(t, ctx, "2-status-stuck")
			t.Fatalf("status page shows %q", status)
		}
		time.Sleep(300 * time.Millisecond)
	}
	browser.Screenshot(t, ctx, "2-status-subscribed")
	subs := s.Emu.Emulator.State().Subscriptions
	if len(subs) != 1 || subs[0].Status != marketplace.StatusSubscribed || subs[0].Quantity != 15 {
		t.Fatalf("Microsoft's view: %+v", subs)
	}
	s.WaitState(t, subs[0].ID, "provisioned", func(st workflows.State) bool { return st.Provisioned })

	// An expired link.
	p := s.Emu.Purchase(t, "basic", 0)
	s.Emu.Emulator.AdvanceClock(25 * time.Hour)
	if err := browser.Do(ctx, chromedp.Navigate(p.LandingURL), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, ctx, "3-expired-link")
	if h1, _ := browser.Text(ctx, "h1"); !strings.Contains(h1, "expired") {
		t.Fatalf("expired link page: %q", h1)
	}
	noWorkflow(t, s, p.SubscriptionID)
}
