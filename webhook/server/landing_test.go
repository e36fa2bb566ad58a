package server_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// buyer is a browser-like client: cookies, redirects.
func buyer() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// postForm submits a form and returns the status and the final URL.
func postForm(t *testing.T, c *http.Client, u string, form url.Values) (int, string, *url.URL) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), resp.Request.URL
}

func confirmed(t *testing.T, s *stacktest.Stack, id string) bool {
	t.Helper()
	st, err := s.Subs.State(context.Background(), id)
	return err == nil && st.Confirmed
}

// The buyer's journey over plain HTTP, with forged confirmations refused on the way, and a later
// "Manage account" visit.
func TestLandingPage(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	b := buyer()
	confirmURL := s.HTTP.URL + "/landing/confirm"

	p := s.Emu.PurchaseAs(t, "team", 12, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	code, page := signInAs(t, b, p.LandingURL, emulator.BuyerPurchaser)
	for _, want := range []string{"Signed in as <strong>Ada Lovelace (ada@fabrikam.example)", "Set up your subscription", "<dd>Team</dd>", "<dd>12</dd>", "Waiting for your confirmation", p.Subscription.Beneficiary.EmailID, `id="confirm"`} {
		if !strings.Contains(page, want) {
			t.Errorf("landing page lacks %q", want)
		}
	}
	if code != 200 {
		t.Fatalf("landing page: %d", code)
	}
	form := fields(page)
	if form.Get("token") != p.Token || form.Get("subscription") != p.SubscriptionID || form.Get("csrf") == "" {
		t.Fatalf("form fields %v", form)
	}
	// Landing made the subscription known, unconfirmed.
	s.WaitState(t, p.SubscriptionID, "awaiting confirmation", func(st subscription.State) bool { return st.Phase == subscription.PhaseAwaitingConfirmation })

	// Forged confirmations: each 403 with the help page, and nothing confirmed.
	other := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	_, otherPage := get(t, b, other.LandingURL)
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key := range form {
			f.Set(key, form.Get(key))
		}
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	for name, c := range map[string]struct {
		client *http.Client
		form   url.Values
	}{
		"no CSRF cookie":                  {without(b, s.HTTP.URL, "saasengine_csrf"), form},
		"no CSRF field":                   {b, with("csrf", "")},
		"wrong CSRF field":                {b, with("csrf", "forged")},
		"CSRF of another subscription":    {b, with("csrf", fields(otherPage).Get("csrf"))},
		"another subscription, this CSRF": {b, with("subscription", other.SubscriptionID)},
	} {
		code, page, _ := postForm(t, c.client, confirmURL, c.form)
		if code != http.StatusForbidden || !strings.Contains(page, "This confirmation has expired") {
			t.Errorf("%s: %d", name, code)
		}
	}
	// The right CSRF proof, but a token of another purchase: refused, since the token is resolved again.
	if code, _, _ := postForm(t, b, confirmURL, with("token", other.Token)); code != http.StatusBadRequest {
		t.Errorf("mismatched token: %d", code)
	}
	if confirmed(t, s, p.SubscriptionID) || confirmed(t, s, other.SubscriptionID) {
		t.Fatal("a forged confirmation confirmed")
	}

	code, _, final := postForm(t, b, confirmURL, form)
	if code != 200 || !strings.HasPrefix(final.Path, "/landing/status/") || final.Query().Get("sig") == "" {
		t.Fatalf("confirm led to %d %s", code, final)
	}
	statusJSON := final.String() + "&format=json"
	eventually(t, 30*time.Second, "status Subscribed", func() (bool, string) {
		_, body := get(t, b, statusJSON)
		return strings.Contains(body, `"status":"Subscribed"`) && strings.Contains(body, `"done":true`), body
	})
	if code, page := get(t, b, final.String()); code != 200 || !strings.Contains(page, "Your account is ready") {
		t.Fatalf("status page: %d", code)
	}
	// Status links are signed: a forged signature, or another subscription's, shows nothing.
	for _, link := range []string{
		"/landing/status/" + p.SubscriptionID + "?sig=forged",
		"/landing/status/" + p.SubscriptionID,
		"/landing/status/" + other.SubscriptionID + "?sig=" + final.Query().Get("sig"),
	} {
		if code, page := get(t, b, s.HTTP.URL+link); code != http.StatusNotFound || strings.Contains(page, p.Subscription.Name) || strings.Contains(page, `id="status"`) {
			t.Errorf("%s: %d", link, code)
		}
	}

	// "Manage account" later: a fresh token of the active subscription shows its current state, with no
	// button to set it up again.
	if _, err := s.Subs.ChangeQuantity(context.Background(), p.SubscriptionID, 20); err != nil {
		t.Fatal(err)
	}
	again, err := s.Emu.Emulator.NewToken(p.SubscriptionID, 0)
	if err != nil {
		t.Fatal(err)
	}
	code, page = signInAs(t, buyer(), again.LandingURL, emulator.BuyerPurchaser)
	if code != 200 || !strings.Contains(page, `id="status">Ready<`) || !strings.Contains(page, "<dd>20</dd>") || strings.Contains(page, `id="confirm"`) || !strings.Contains(page, "Renews on") {
		t.Fatalf("manage account visit: %d\n%s", code, page)
	}
}

// Tokens that do not resolve show the help page (400, how to get a fresh link) and create nothing.
func TestLandingWithBadTokensCreatesNothing(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	b := signedIn(t, s, emulator.BuyerPurchaser)
	p := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	for name, link := range map[string]string{
		"no token":      s.HTTP.URL + "/landing",
		"empty token":   s.HTTP.URL + "/landing?token=",
		"garbled token": s.HTTP.URL + "/landing?token=" + url.QueryEscape(p.Token[:len(p.Token)-6]+"AAAAAA"),
		"cut token":     s.HTTP.URL + "/landing?token=" + url.QueryEscape(p.Token[:len(p.Token)/2]),
		"unknown token": s.HTTP.URL + "/landing?token=bm90LWEtdG9rZW4%3D",
	} {
		code, page := get(t, b, link)
		if code != http.StatusBadRequest || !strings.Contains(page, "This link is not valid") || !strings.Contains(page, "Configure account") || strings.Contains(page, `id="confirm"`) {
			t.Errorf("%s: %d", name, code)
		}
	}
	noWorkflow(t, s, p.SubscriptionID)

	// A '+' that query decoding would turn into a space is kept: the same token still resolves. Tokens
	// are base64, so about one in four lacks a '+'; ask for fresh ones until one has it.
	plus := p
	for i := 0; !strings.Contains(plus.Token, "+"); i++ {
		if i == 100 {
			t.Fatal("100 purchase tokens without a '+'")
		}
		var err error
		if plus, err = s.Emu.Emulator.NewToken(p.SubscriptionID, 0); err != nil {
			t.Fatal(err)
		}
	}
	raw := s.HTTP.URL + "/landing?token=" + strings.ReplaceAll(url.QueryEscape(plus.Token), "%2B", "+")
	if code, _ := get(t, b, raw); code != http.StatusOK {
		t.Fatalf("token with '+' sent raw: %d", code)
	}

	// Expired: the purchase link is older than its 24 hours.
	expiring := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	s.Emu.Emulator.AdvanceClock(25 * time.Hour)
	code, page := get(t, b, expiring.LandingURL)
	if code != http.StatusBadRequest || !strings.Contains(page, "This link has expired") || !strings.Contains(page, "Configure account") {
		t.Fatalf("expired token: %d\n%s", code, page)
	}
	noWorkflow(t, s, expiring.SubscriptionID)
}

// The confirmation resolves the token again: a page left open past the token's expiry cannot confirm.
func TestConfirmWithATokenExpiredSinceLanding(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	b := buyer()
	p := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	code, page := signInAs(t, b, p.LandingURL, emulator.BuyerPurchaser)
	if code != 200 {
		t.Fatalf("landing: %d", code)
	}
	s.Emu.Emulator.AdvanceClock(25 * time.Hour)
	code, page, _ = postForm(t, b, s.HTTP.URL+"/landing/confirm", fields(page))
	if code != http.StatusBadRequest || !strings.Contains(page, "Configure account") {
		t.Fatalf("confirm with an expired token: %d", code)
	}
	if confirmed(t, s, p.SubscriptionID) {
		t.Fatal("confirmed with an expired token")
	}
	if st, _ := s.Subs.State(context.Background(), p.SubscriptionID); st == nil || st.Status != marketplace.StatusPendingFulfillmentStart {
		t.Fatalf("state %+v", st)
	}
}

// A suspended subscription is as far as the status page can follow it: it says so, and stops polling.
func TestStatusPageSettlesOnSuspended(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	b := buyer()
	p := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	_, page := signInAs(t, b, p.LandingURL, emulator.BuyerPurchaser)
	code, _, final := postForm(t, b, s.HTTP.URL+"/landing/confirm", fields(page))
	if code != 200 || !strings.HasPrefix(final.Path, "/landing/status/") {
		t.Fatalf("confirm led to %d %s", code, final)
	}
	s.WaitState(t, p.SubscriptionID, "Subscribed", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed && st.Phase == subscription.PhaseIdle
	})
	if _, err := s.Emu.Emulator.Suspend(p.SubscriptionID); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "Suspended", func(st subscription.State) bool { return st.Status == marketplace.StatusSuspended })

	if _, body := get(t, b, final.String()+"&format=json"); !strings.Contains(body, `"status":"Suspended"`) || !strings.Contains(body, `"done":true`) {
		t.Fatalf("status JSON of a suspended subscription: %s", body)
	}
	code, page = get(t, b, final.String())
	if code != 200 || !strings.Contains(page, "Suspended: check your payment method") || strings.Contains(page, "setTimeout(poll, 1000)") || strings.Contains(page, "Reload this page to see progress") {
		t.Fatalf("status page of a suspended subscription: %d\n%s", code, page)
	}
}

// The CSRF cookie is Secure when the buyer's connection is HTTPS, also behind a load balancer that ends
// TLS and says so in X-Forwarded-Proto.
func TestCSRFCookieIsSecureBehindATLSProxy(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	b := signedIn(t, s, emulator.BuyerPurchaser)
	for proto, secure := range map[string]bool{"https": true, "": false} {
		p := s.Emu.PurchaseAs(t, "team", 5, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
		req, _ := http.NewRequest(http.MethodGet, p.LandingURL, nil)
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		resp, err := without(b, s.HTTP.URL, "saasengine_csrf").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "saasengine_csrf" {
				cookie = c
			}
		}
		if cookie == nil || cookie.Secure != secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
			t.Errorf("X-Forwarded-Proto %q: cookie %+v", proto, cookie)
		}
	}
}
