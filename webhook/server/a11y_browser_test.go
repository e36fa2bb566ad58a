package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"saasengine/emulator"
	"saasengine/internal/browser"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// checkPage measures a page as every buyer meets it: photographed at 1280 and 390 px in both colour
// schemes, WCAG AA contrast of every text and control in both schemes, and at both widths a layout that
// does not scroll sideways or break words, with every control named.
func checkPage(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	browser.Screenshots(t, ctx, name)
	for _, w := range []int64{browser.PhoneWidth, browser.DesktopWidth} {
		if err := browser.Do(ctx, browser.Viewport(w)); err != nil {
			t.Fatal(err)
		}
		browser.CheckLayout(t, ctx, name)
	}
	if n := browser.CheckContrast(t, ctx, name); n < 4 {
		t.Errorf("%s: only %d texts measured", name, n)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := browser.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// Every page a buyer can meet, measured in a real browser (see checkPage); and on the status page a
// visible progress bar and a live region that tells screen readers each change.
func TestBuyerPagesAreAccessible(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{ConfigureServer: withLogo(t)})
	ctx := browser.New(t)
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := browser.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	// goTo navigates to u. A page that reloads itself (the status page follows the workflow) can abort a
	// navigation that races it: that one is tried again.
	goTo := func(u string) {
		t.Helper()
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if err = browser.Do(ctx, chromedp.Navigate(u)); err == nil || !strings.Contains(err.Error(), "ERR_ABORTED") {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	click := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }

	// Entra's sign-in page (the emulator's), then an invalid link.
	goTo(s.HTTP.URL + "/landing?token=not-a-token")
	do(visible("#user-purchaser"))
	checkPage(t, ctx, "01-entra-sign-in")
	// Wait for the heading's text, not for any h1: the page being left has one too.
	do(click("#user-purchaser"))
	waitText(t, ctx, "h1", "This link is not valid", "02-invalid-link")
	checkPage(t, ctx, "02-invalid-link")

	// The landing page, then the status page while setting up (activation held back a few seconds).
	p := s.Emu.PurchaseAs(t, "team", 12, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	goTo(p.LandingURL)
	do(visible("#confirm"))
	checkPage(t, ctx, "03-landing")
	if err := s.Emu.Emulator.AddFault(emulator.Fault{Endpoint: emulator.EndpointActivate, Latency: emulator.Duration(4 * time.Second), Count: 1}); err != nil {
		t.Fatal(err)
	}
	do(click("#confirm"), visible("#label"))
	// Every text the live region takes is kept across the page's own reload, as a screen reader would
	// have announced it.
	eval[bool](t, ctx, `(function () {
		var live = document.getElementById("message");
		sessionStorage.setItem("announced", "");
		new MutationObserver(function () { sessionStorage.setItem("announced", sessionStorage.getItem("announced") + "|" + live.textContent); })
			.observe(live, {childList: true, characterData: true, subtree: true});
		return true;
	})()`)
	role := eval[string](t, ctx, `document.getElementById("message").getAttribute("role") + " " + document.getElementById("message").getAttribute("aria-live")`)
	step := eval[string](t, ctx, `document.getElementById("progress").value + "/" + document.getElementById("progress").max + " " + document.getElementById("progress-label").textContent`)
	if role != "status polite" || step != "2/3 Step 2 of 3: Setting up" {
		t.Errorf("status page while setting up: live region %q, progress %q", role, step)
	}
	checkPage(t, ctx, "04-status-setting-up")
	waitText(t, ctx, "#status", "Ready", "04-status")
	do(visible("#open"))
	if announced := eval[string](t, ctx, `sessionStorage.getItem("announced")`); !strings.Contains(announced, "Ready. Your account is ready.") {
		t.Errorf("the live region never said the account is ready: %q", announced)
	}
	checkPage(t, ctx, "05-status-ready")

	// The manage page, once Temporal's listing has the subscription.
	deadline := time.Now().Add(30 * time.Second)
	for {
		goTo(s.HTTP.URL + "/landing/manage")
		do(visible("h1"))
		if n := eval[int](t, ctx, `document.querySelectorAll("#subscriptions > li").length`); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the manage page never listed the subscription")
		}
		time.Sleep(300 * time.Millisecond)
	}
	checkPage(t, ctx, "06-manage")

	// A failed activation.
	if err := s.Emu.Emulator.AddFault(emulator.Fault{Endpoint: emulator.EndpointActivate, Status: http.StatusBadRequest, Count: 1}); err != nil {
		t.Fatal(err)
	}
	failed := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	goTo(failed.LandingURL)
	do(click("#confirm"), visible("#message"))
	s.WaitState(t, failed.SubscriptionID, "activation failed", func(st subscription.State) bool { return st.Phase == subscription.PhaseActivationFailed })
	waitText(t, ctx, "#status", "Setup needs our attention", "07-status-failed")
	checkPage(t, ctx, "07-status-failed")

	// Suspended.
	if _, err := s.Emu.Emulator.Suspend(p.SubscriptionID); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "Suspended", func(st subscription.State) bool { return st.Status == marketplace.StatusSuspended })
	goTo(s.HTTP.URL + "/landing/manage")
	do(visible("h1"))
	goTo(p.LandingURL)
	do(visible("#status"))
	checkPage(t, ctx, "08-suspended")

	// Signed out; someone else's subscription; an empty manage page; a cancelled sign-in; an expired link.
	do(click("#signout"), visible("#action"))
	checkPage(t, ctx, "09-signed-out")
	other := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	goTo(other.LandingURL)
	do(click("#user-stranger"), visible("#switch-account"))
	checkPage(t, ctx, "10-not-yours")
	goTo(s.HTTP.URL + "/landing/manage")
	do(visible("#none"))
	checkPage(t, ctx, "11-manage-empty")
	do(click("#signout"), visible("#action"))
	goTo(other.LandingURL)
	do(click("#cancel"))
	waitText(t, ctx, "h1", "Sign-in was cancelled", "12-sign-in-cancelled")
	checkPage(t, ctx, "12-sign-in-cancelled")
	s.Emu.Emulator.AdvanceClock(25 * time.Hour)
	do(click("#action"), click("#user-purchaser"))
	waitText(t, ctx, "h1", "This link has expired", "13-expired-link")
	checkPage(t, ctx, "13-expired-link")
}
