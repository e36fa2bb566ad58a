package emulator_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"saasengine/emulator/emulatortest"
	"saasengine/internal/browser"
	"saasengine/marketplace"
)

// A buyer purchases on the storefront in a real browser and lands on the publisher's landing page with
// a token that resolves, '+' and all.
func TestStorefrontPurchaseInBrowser(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	landed := make(chan string, 1)
	landing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		landed <- marketplace.PurchaseTokenFromQuery(r.URL.RawQuery)
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<!doctype html><title>landing</title><h1 id=landing>Landing page</h1>"))
	}))
	defer landing.Close()
	env.Emulator.SetLandingURL("", landing.URL+"/landing")

	ctx := browser.New(t)
	if err := browser.Do(ctx, chromedp.Navigate(env.Server.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#purchase"))); err != nil {
		t.Fatal(err)
	}
	browser.Screenshot(t, ctx, "storefront")
	err := browser.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#plan"), "contoso-analytics/team"),
		chromedp.SetValue(chromedp.CSS("#quantity"), "25"),
		chromedp.SetValue(chromedp.CSS("#name"), "Fabrikam production"),
		chromedp.Click(chromedp.CSS("#purchase")),
		// The storefront has an h1 too: wait for the landing page's own, or the next navigation could
		// cut the purchase's short (net::ERR_ABORTED).
		chromedp.WaitVisible(chromedp.CSS("#landing")),
	)
	if err != nil {
		t.Fatal(err)
	}
	token := <-landed
	res, err := env.Client.Resolve(context.Background(), token)
	if err != nil {
		t.Fatalf("token from the browser does not resolve: %v", err)
	}
	if res.PlanID != "team" || res.Quantity != 25 || res.SubscriptionName != "Fabrikam production" {
		t.Fatalf("resolved %+v", res)
	}
	if err := browser.Do(ctx, chromedp.Navigate(env.Server.URL+"/")); err != nil {
		t.Fatal(err)
	}
	page, err := browser.Text(ctx, "#subs + table")
	if err != nil || !strings.Contains(page, res.ID) {
		t.Fatalf("storefront does not list the purchase: %v", err)
	}
	browser.Screenshot(t, ctx, "storefront-after-purchase")
}
