package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"saasengine/emulator"
	"saasengine/internal/browser"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/webhook/server"
	"saasengine/workflows/subscription"
)

// withLogo brands the pages as demoBrand does, with a logo the browser can load from this machine.
func withLogo(t *testing.T) func(*server.Config) {
	logo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = w.Write([]byte(`<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="32" height="32" rx="6" fill="#ffb900"/><path d="M8 16h16M16 8v16" stroke="#1b1b1f" stroke-width="4"/></svg>`))
	}))
	t.Cleanup(logo.Close)
	return func(c *server.Config) {
		c.Brand = demoBrand
		c.Brand.LogoURL = logo.URL + "/logo.svg"
	}
}

// waitText polls sel until its text holds want (the page changes by itself), failing after 45 s.
func waitText(t *testing.T, ctx context.Context, sel, want, shot string) string {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		got, _ := browser.Text(ctx, sel)
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			browser.Screenshot(t, ctx, shot+"-stuck")
			t.Fatalf("%s shows %q, never %q", sel, got, want)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// The buyer's journey in a real browser: buy on the emulator's storefront, sign in as the purchaser on the
// emulator's Entra, land on the publisher's page, check what was bought, confirm, and watch the status page
// turn to ready by itself; sign out; then an expired link shows the help page.
func TestLandingInBrowser(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{ConfigureServer: withLogo(t)})
	ctx := browser.New(t)

	if err := browser.Do(ctx, chromedp.Navigate(s.Emu.Server.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#purchase"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, ctx, "1-storefront")
	err := browser.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#plan"), "contoso-analytics/team"),
		chromedp.SetValue(chromedp.CSS("#quantity"), "15"),
		chromedp.SetValue(chromedp.CSS("#name"), "Fabrikam"),
		chromedp.SetValue(chromedp.CSS("#buyer"), "purchaser"),
		chromedp.Click(chromedp.CSS("#purchase")),
		// The landing page sends the browser to sign in before it shows anything.
		chromedp.WaitVisible(chromedp.CSS("#user-purchaser")),
	)
	if err != nil {
		t.Fatal(err)
	}
	browser.Screenshots(t, ctx, "2-sign-in")
	if err := browser.Do(ctx, chromedp.Click(chromedp.CSS("#user-purchaser")), chromedp.WaitVisible(chromedp.CSS("#confirm"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshots(t, ctx, "3-landing")
	if who, _ := browser.Text(ctx, "#signed-in"); !strings.Contains(who, "Ada Lovelace") {
		t.Errorf("the page does not say who is signed in: %q", who)
	}
	details, err := browser.Text(ctx, "dl")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Fabrikam", "Contoso Analytics", "Team", "15", "Waiting for your confirmation"} {
		if !strings.Contains(details, want) {
			t.Errorf("landing page lacks %q:\n%s", want, details)
		}
	}
	if h1, _ := browser.Text(ctx, "h1"); h1 != "Set up your subscription" {
		t.Errorf("landing heading %q", h1)
	}

	if err := browser.Do(ctx, chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#message"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, ctx, "4-status")
	// The page polls its JSON and reloads itself once the subscription is done; no reload by the test.
	waitText(t, ctx, "#message", "Your account is ready", "4-status")
	browser.Screenshots(t, ctx, "5-status-ready")
	open, err := browser.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#open"), "href"))
	if label, _ := browser.Text(ctx, "#open"); label != "Open Contoso Analytics" || open.Value != "https://analytics.contoso.example/start" {
		t.Errorf("the product's button: %q to %q (%v)", label, open.Value, err)
	}
	subs := s.Emu.Emulator.State().Subscriptions
	if len(subs) != 1 || subs[0].Status != marketplace.StatusSubscribed || subs[0].Quantity != 15 {
		t.Fatalf("Microsoft's view: %+v", subs)
	}
	s.WaitState(t, subs[0].ID, "provisioned", func(st subscription.State) bool { return st.Provisioned && st.Confirmed })

	// Sign out: here and at Entra, back to a page that says so.
	if err := browser.Do(ctx, chromedp.Click(chromedp.CSS("#signout"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "h1", "You are signed out", "6-signed-out")
	browser.Screenshot(t, ctx, "6-signed-out")

	// An expired link, opened by the purchaser signing in again.
	p := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	s.Emu.Emulator.AdvanceClock(25 * time.Hour)
	if err := browser.Do(ctx, chromedp.Navigate(p.LandingURL), chromedp.Click(chromedp.CSS("#user-purchaser"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "h1", "expired", "7-expired-link")
	browser.Screenshot(t, ctx, "7-expired-link")
	if body, _ := browser.Text(ctx, "#main"); !strings.Contains(body, "Configure account") {
		t.Fatalf("the help page does not say how to get a fresh link:\n%s", body)
	}
	noWorkflow(t, s, p.SubscriptionID)
}

// Who may confirm, in a real browser: a colleague of the purchaser signs in and is told the subscription is
// not theirs, with no button to confirm; they switch to the account a CSP partner bought for, who can.
func TestWhoMayConfirmInBrowser(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{ConfigureServer: withLogo(t)})
	ctx := browser.New(t)
	p := s.Emu.PurchaseAs(t, "team", 8, emulator.BuyerCSPPartner, emulator.BuyerCSPBeneficiary)

	if err := browser.Do(ctx, chromedp.Navigate(p.LandingURL), chromedp.Click(chromedp.CSS("#user-stranger")), chromedp.WaitVisible(chromedp.CSS("#switch-account"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshots(t, ctx, "1-not-yours")
	msg, _ := browser.Text(ctx, "#not-yours")
	if !strings.Contains(msg, "Sam Colleague") {
		t.Errorf("the page does not name who is signed in: %q", msg)
	}
	body, _ := browser.Text(ctx, "#main")
	if strings.Contains(body, "Confirm") || strings.Contains(body, "kim@northwind.example") || !strings.Contains(body, "k…@northwind.example") {
		t.Fatalf("the stranger's page:\n%s", body)
	}
	noWorkflow(t, s, p.SubscriptionID)

	// Sign in with another account: Entra's account picker, then back to the same link.
	if err := browser.Do(ctx, chromedp.Click(chromedp.CSS("#switch-account")), chromedp.Click(chromedp.CSS("#user-csp-beneficiary")), chromedp.WaitVisible(chromedp.CSS("#confirm"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, ctx, "2-beneficiary")
	if who, _ := browser.Text(ctx, "#signed-in"); !strings.Contains(who, "Kim Northwind") {
		t.Errorf("signed in as %q", who)
	}
	if err := browser.Do(ctx, chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#message"))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#message", "Your account is ready", "3-status")
	browser.Screenshot(t, ctx, "3-ready")
}
