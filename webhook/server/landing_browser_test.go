package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"saasengine/internal/browser"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows"
)

// The buyer's journey in a real browser: buy on the emulator's storefront, land on the publisher's page,
// check what was bought, confirm, and watch the status page turn to Subscribed by itself; then an
// expired link shows the help page.
func TestLandingInBrowser(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	ctx := browser.New(t)

	if err := browser.Do(ctx, chromedp.Navigate(s.Emu.Server.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#purchase"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, ctx, "1-storefront")
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
	browser.Screenshot(t, ctx, "2-landing")
	details, err := browser.Text(ctx, "dl")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Fabrikam", "contoso-analytics", "team", "15", "PendingFulfillmentStart"} {
		if !strings.Contains(details, want) {
			t.Errorf("landing page lacks %q:\n%s", want, details)
		}
	}
	if h1, _ := browser.Text(ctx, "h1"); h1 != "Set up your subscription" {
		t.Errorf("landing heading %q", h1)
	}

	if err := browser.Do(ctx, chromedp.Click(chromedp.CSS("#confirm")), chromedp.WaitVisible(chromedp.CSS("#stage"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, ctx, "3-status")
	// The page polls its JSON and reloads itself once the subscription is done; no reload by the test.
	deadline := time.Now().Add(45 * time.Second)
	for {
		msg, _ := browser.Text(ctx, "#message")
		status, _ := browser.Text(ctx, "#status")
		if strings.Contains(msg, "Your account is ready") && status == "Subscribed" {
			break
		}
		if time.Now().After(deadline) {
			browser.Screenshot(t, ctx, "3-status-stuck")
			t.Fatalf("status page shows %q / %q", status, msg)
		}
		time.Sleep(300 * time.Millisecond)
	}
	browser.Screenshot(t, ctx, "4-status-subscribed")
	if stage, _ := browser.Text(ctx, "#stage"); stage != string(workflows.PhaseIdle) {
		t.Errorf("stage %q", stage)
	}
	subs := s.Emu.Emulator.State().Subscriptions
	if len(subs) != 1 || subs[0].Status != marketplace.StatusSubscribed || subs[0].Quantity != 15 {
		t.Fatalf("Microsoft's view: %+v", subs)
	}
	s.WaitState(t, subs[0].ID, "provisioned", func(st workflows.State) bool { return st.Provisioned && st.Confirmed })

	// An expired link.
	p := s.Emu.Purchase(t, "basic", 0)
	s.Emu.Emulator.AdvanceClock(25 * time.Hour)
	if err := browser.Do(ctx, chromedp.Navigate(p.LandingURL), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, ctx, "5-expired-link")
	if h1, _ := browser.Text(ctx, "h1"); !strings.Contains(h1, "expired") {
		t.Fatalf("expired link page: %q", h1)
	}
	if body, _ := browser.Text(ctx, "#main"); !strings.Contains(body, "Configure account") {
		t.Fatalf("the help page does not say how to get a fresh link:\n%s", body)
	}
	noWorkflow(t, s, p.SubscriptionID)
}
