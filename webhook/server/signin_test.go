package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"html"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/webhook/server"
	"saasengine/workflows/subscription"
)

// stopAt is a browser that does not follow redirects to path: the test sees where it was sent.
func stopAt(c *http.Client, path string) *http.Client {
	out := *c
	out.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == path {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return &out
}

func cookieOf(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Nothing is shown before signing in: the landing page sends the browser to Entra with the authorization
// code flow's parameters, PKCE (S256), state and nonce, and keeps them in a sealed cookie; back with a code,
// the session is an encrypted HttpOnly SameSite cookie, and the page says who is signed in.
func TestSignInBeforeAnythingIsShown(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	p := s.Emu.PurchaseAs(t, "team", 10, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	ada := emulator.DemoBuyer(emulator.BuyerPurchaser)

	b := buyer()
	resp, err := stopAt(b, "/organizations/oauth2/v2.0/authorize").Get(p.LandingURL)
	if err != nil {
		t.Fatal(err)
	}
	page := read(t, resp)
	to, _ := url.Parse(resp.Header.Get("Location"))
	q := to.Query()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(to.String(), s.Emu.Server.URL+"/organizations/oauth2/v2.0/authorize") {
		t.Fatalf("landing without a session: %d to %s", resp.StatusCode, to)
	}
	for k, want := range map[string]string{"client_id": emulator.DemoSignInClientID, "response_type": "code", "code_challenge_method": "S256", "redirect_uri": s.HTTP.URL + "/landing/signin", "response_mode": "query"} {
		if q.Get(k) != want {
			t.Errorf("authorize %s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 32 {
			t.Errorf("authorize %s = %q: missing or short", k, q.Get(k))
		}
	}
	if !strings.Contains(q.Get("scope"), "openid") {
		t.Errorf("scope %q", q.Get("scope"))
	}
	if strings.Contains(page, p.Subscription.Name) || strings.Contains(page, ada.Email) {
		t.Fatal("the redirect to sign in shows the purchase")
	}
	pending := cookieOf(resp, "saasengine_signin_"+q.Get("state")[:16])
	if pending == nil || !pending.HttpOnly || pending.SameSite != http.SameSiteLaxMode || strings.Contains(pending.Value, q.Get("nonce")) {
		t.Fatalf("pending sign-in cookie %+v", pending)
	}
	noWorkflow(t, s, p.SubscriptionID)

	// Pick Ada on Entra's page; the callback sets the session and returns to the landing page.
	resp, err = b.Get(to.String())
	if err != nil {
		t.Fatal(err)
	}
	resp = choose(t, stopAt(b, "/landing"), resp, read(t, resp), emulator.BuyerPurchaser)
	read(t, resp)
	session := cookieOf(resp, "saasengine_session")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != strings.TrimPrefix(p.LandingURL, s.HTTP.URL) {
		t.Fatalf("callback: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.MaxAge != 0 {
		t.Fatalf("session cookie %+v", session)
	}
	// Encrypted, not only signed: the cookie does not carry the buyer's IDs or address in the clear.
	raw, _ := base64.URLEncoding.DecodeString(session.Value)
	for _, clear := range []string{ada.ObjectID, ada.TenantID, ada.Email, "Ada"} {
		if strings.Contains(session.Value, clear) || strings.Contains(string(raw), clear) {
			t.Fatalf("the session cookie shows %q", clear)
		}
	}
	code, page := get(t, b, p.LandingURL)
	if code != 200 || !strings.Contains(page, "Signed in as <strong>Ada Lovelace (ada@fabrikam.example)</strong>") || !strings.Contains(page, `id="confirm"`) {
		t.Fatalf("landing after sign-in: %d\n%s", code, page)
	}

	// A session cookie altered by one character is no session: back to sign in.
	pu, _ := url.Parse(s.HTTP.URL)
	tampered := buyer()
	v := []byte(session.Value)
	v[len(v)/2] ^= 1
	tampered.Jar.SetCookies(pu, []*http.Cookie{{Name: "saasengine_session", Value: string(v)}})
	resp, err = stopAt(tampered, "/organizations/oauth2/v2.0/authorize").Get(p.LandingURL)
	if err != nil {
		t.Fatal(err)
	}
	read(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("tampered session: %d", resp.StatusCode)
	}
}

// Whoever is signed in must be the purchaser or the beneficiary: a colleague of the purchaser and a user of
// another organisation are told so, see nothing of the subscription and start nothing, and cannot confirm
// with the purchaser's form either; the user a CSP partner bought for, and the partner, can.
func TestOnlyThePurchaserOrTheBeneficiaryMayConfirm(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	direct := s.Emu.PurchaseAs(t, "team", 10, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	others := map[string]*http.Client{}
	for _, who := range []string{emulator.BuyerStranger, emulator.BuyerOtherTenant} {
		c := buyer()
		others[who] = c
		code, page := signInAs(t, c, direct.LandingURL, who)
		u := emulator.DemoBuyer(who)
		if code != http.StatusForbidden || !strings.Contains(page, "Signed in as <strong>"+u.Name) || !strings.Contains(page, `id="switch-account"`) || !strings.Contains(page, "a…@fabrikam.example") {
			t.Errorf("%s on the purchaser's link: %d\n%s", who, code, page)
		}
		if strings.Contains(page, `id="confirm"`) || strings.Contains(page, "ada@fabrikam.example") || strings.Contains(page, direct.Subscription.Name) {
			t.Errorf("%s sees the purchase", who)
		}
	}
	noWorkflow(t, s, direct.SubscriptionID)

	// The purchaser lands; her form, CSRF cookie and all, posted with another's session: refused.
	ada := buyer()
	_, adaPage := signInAs(t, ada, direct.LandingURL, emulator.BuyerPurchaser)
	form := fields(adaPage)
	pu, _ := url.Parse(s.HTTP.URL)
	for who, c := range others {
		forged := without(ada, s.HTTP.URL, "saasengine_session")
		forged.Jar.SetCookies(pu, c.Jar.Cookies(pu))
		if code, _, _ := postForm(t, forged, s.HTTP.URL+"/landing/confirm", form); code != http.StatusForbidden {
			t.Errorf("%s confirming with the purchaser's form: %d", who, code)
		}
	}
	s.WaitState(t, direct.SubscriptionID, "awaiting confirmation", func(st subscription.State) bool { return st.Phase == subscription.PhaseAwaitingConfirmation })
	if confirmed(t, s, direct.SubscriptionID) {
		t.Fatal("confirmed by someone else's session")
	}

	csp := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerCSPPartner, emulator.BuyerCSPBeneficiary)
	for _, who := range []string{emulator.BuyerCSPPartner, emulator.BuyerCSPBeneficiary} {
		c := buyer()
		code, page := signInAs(t, c, csp.LandingURL, who)
		if code != 200 || !strings.Contains(page, `id="confirm"`) {
			t.Fatalf("%s on the CSP purchase: %d\n%s", who, code, page)
		}
		if who == emulator.BuyerCSPBeneficiary {
			if code, _, final := postForm(t, c, s.HTTP.URL+"/landing/confirm", fields(page)); code != 200 || !strings.HasPrefix(final.Path, "/landing/status/") {
				t.Fatalf("the beneficiary confirming: %d at %s", code, final)
			}
		}
	}
	s.WaitState(t, csp.SubscriptionID, "confirmed", func(st subscription.State) bool { return st.Confirmed })
}

// Sign-in answers that must not be used each get a page saying what happened and how to go on, and leave
// no session; nothing about the purchase is started.
func TestSignInRefusesBadAnswers(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s := stacktest.Start(t, stacktest.Options{NoWorker: true, Logger: zap.New(core)})
	p := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	// What must never reach the log: codes and states of Entra's answers, the purchase token, the app's
	// secret, the buyer's address.
	secrets := []string{p.Token, url.QueryEscape(p.Token), emulator.DemoSignInSecret, emulator.DemoBuyer(emulator.BuyerPurchaser).Email}
	defer func() {
		if len(logs.FilterMessage("sign-in refused").All()) == 0 {
			t.Error("no refusal was logged: the check below would prove nothing")
		}
		for _, e := range logs.All() {
			text := e.Message
			for k, v := range e.ContextMap() {
				text += " " + k + "=" + fmt.Sprint(v)
			}
			for _, sec := range secrets {
				if sec != "" && strings.Contains(text, sec) {
					t.Errorf("a secret reached the log: %q %v", e.Message, e.ContextMap())
				}
			}
		}
	}()
	callback := s.HTTP.URL + "/landing/signin"
	var toCallbackOf func(c *http.Client, landingURL string) string

	// toCallback signs in as Ada up to Entra's answer, which it returns unfollowed.
	toCallback := func(c *http.Client) string {
		t.Helper()
		return toCallbackOf(c, p.LandingURL)
	}
	toCallbackOf = func(c *http.Client, landingURL string) string {
		t.Helper()
		resp, err := c.Get(landingURL)
		if err != nil {
			t.Fatal(err)
		}
		resp = choose(t, stopAt(c, "/landing/signin"), resp, read(t, resp), emulator.BuyerPurchaser)
		read(t, resp)
		if !strings.HasPrefix(resp.Header.Get("Location"), callback+"?") {
			t.Fatalf("Entra answered %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		to, _ := url.Parse(resp.Header.Get("Location"))
		secrets = append(secrets, to.Query().Get("code"), to.Query().Get("state"))
		return resp.Header.Get("Location")
	}
	expect := func(name string, c *http.Client, u string, status int, title string) {
		t.Helper()
		code, page := get(t, c, u)
		if code != status || !strings.Contains(page, title) || !strings.Contains(page, "/landing/login?") {
			t.Errorf("%s: %d, want %d %q\n%s", name, code, status, title, page)
		}
		if hasCookie(c, s.HTTP.URL, "saasengine_session") {
			t.Errorf("%s: a session was set", name)
		}
	}

	// State mismatch: an answer for a sign-in this browser never started (another browser's, a forged one).
	answer := toCallback(buyer())
	expect("another browser's answer", buyer(), answer, http.StatusBadRequest, "This sign-in did not start here")
	c := buyer()
	toCallback(c)
	expect("forged state", c, callback+"?code=forged&state="+strings.Repeat("A", 43), http.StatusBadRequest, "This sign-in did not start here")

	// A replayed code: the answer used once, then again with the pending sign-in's cookie put back. (Used
	// once, it lands on another purchase: landing starts that one's workflow.)
	c = buyer()
	pu, _ := url.Parse(s.HTTP.URL)
	answer = toCallbackOf(c, s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser).LandingURL)
	saved := c.Jar.Cookies(pu)
	if code, _ := get(t, c, answer); code != 200 {
		t.Fatalf("first use of the answer: %d", code)
	}
	replay := buyer()
	replay.Jar.SetCookies(pu, saved)
	expect("replayed code", replay, answer, http.StatusBadRequest, "already been used or has expired")

	// An expired code: Entra's codes live 10 minutes.
	c = buyer()
	answer = toCallback(c)
	s.Emu.Emulator.AdvanceClock(11 * time.Minute)
	expect("expired code", c, answer, http.StatusBadRequest, "already been used or has expired")

	// Cancelled on Entra's page.
	c = buyer()
	resp, err := c.Get(p.LandingURL)
	if err != nil {
		t.Fatal(err)
	}
	resp = choose(t, c, resp, read(t, resp), "")
	if page := read(t, resp); resp.StatusCode != 200 || !strings.Contains(page, "Sign-in was cancelled") || !strings.Contains(page, "/landing/login?return=") {
		t.Errorf("cancelled sign-in: %d\n%s", resp.StatusCode, page)
	}

	// An ID token whose nonce is not this sign-in's, and one whose issuer is another tenant's than its tid.
	for fault, want := range map[string]struct {
		status int
		title  string
	}{
		emulator.SignInFaultNonce:  {http.StatusBadRequest, "This sign-in did not start here"},
		emulator.SignInFaultIssuer: {http.StatusForbidden, "organisation is not accepted here"},
	} {
		c := buyer()
		answer := toCallback(c)
		if err := s.Emu.Emulator.AddSignInFault(emulator.SignInFault{Kind: fault, Count: 1}); err != nil {
			t.Fatal(err)
		}
		expect(fault+" fault", c, answer, want.status, want.title)
	}
	noWorkflow(t, s, p.SubscriptionID)
}

// signOutCSRF is the token of a page's sign-out form.
var signOutCSRF = regexp.MustCompile(`action="/landing/signout"><input type="hidden" name="signout_csrf" value="([^"]+)"`)

func signOutToken(t *testing.T, page string) string {
	t.Helper()
	m := signOutCSRF.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sign-out form with its token on the page:\n%.2000s", page)
	}
	return html.UnescapeString(m[1])
}

// Signing out ends the session here and at Entra, which sends the buyer back to a page that says so; the
// landing page then asks to sign in again. A sign-out posted from another site (no token from the page)
// changes nothing.
func TestSignOut(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	p := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	b := buyer()
	code, landing := signInAs(t, b, p.LandingURL, emulator.BuyerPurchaser)
	if code != 200 {
		t.Fatalf("landing: %d", code)
	}
	if code, page, _ := postForm(t, b, s.HTTP.URL+"/landing/signout", url.Values{}); code != http.StatusForbidden || !hasCookie(b, s.HTTP.URL, "saasengine_session") {
		t.Fatalf("a forged sign-out: %d, session kept %v\n%.500s", code, hasCookie(b, s.HTTP.URL, "saasengine_session"), page)
	}
	code, page, final := postForm(t, b, s.HTTP.URL+"/landing/signout", url.Values{"signout_csrf": {signOutToken(t, landing)}})
	if code != 200 || !strings.Contains(page, "You are signed out") || final.Path != "/landing/signin" {
		t.Fatalf("sign-out: %d at %s\n%s", code, final, page)
	}
	if hasCookie(b, s.HTTP.URL, "saasengine_session") {
		t.Fatal("the session cookie survived sign-out")
	}
	resp, err := stopAt(b, "/organizations/oauth2/v2.0/authorize").Get(p.LandingURL)
	if err != nil {
		t.Fatal(err)
	}
	if read(t, resp); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("landing after sign-out: %d", resp.StatusCode)
	}

	// "Sign in with another account" signs out and goes straight to Entra's account picker.
	c := buyer()
	_, notYours := signInAs(t, c, p.LandingURL, emulator.BuyerStranger)
	resp, err = stopAt(c, "/organizations/oauth2/v2.0/authorize").PostForm(s.HTTP.URL+"/landing/signout",
		url.Values{"switch": {"1"}, "return": {strings.TrimPrefix(p.LandingURL, s.HTTP.URL)}, "signout_csrf": {signOutToken(t, notYours)}})
	if err != nil {
		t.Fatal(err)
	}
	read(t, resp)
	to, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || to.Query().Get("prompt") != "select_account" {
		t.Fatalf("switch account: %d to %s", resp.StatusCode, to)
	}
	resp, err = c.Get(to.String())
	if err != nil {
		t.Fatal(err)
	}
	resp = choose(t, c, resp, read(t, resp), emulator.BuyerPurchaser)
	if page := read(t, resp); resp.StatusCode != 200 || !strings.Contains(page, `id="confirm"`) {
		t.Fatalf("after switching to the purchaser: %d", resp.StatusCode)
	}
}

// selfSigned returns a certificate's PEM and the PEM of the certificate with its key.
func selfSigned(t *testing.T) (certPEM, bothPEM []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sign-in app"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return certPEM, append(append([]byte{}, certPEM...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})...)
}

// The sign-in app may prove itself with a certificate instead of a secret: a signed assertion per code
// redeemed. An assertion signed with another key is refused by Entra, and the buyer is told to try again.
func TestSignInWithACertificate(t *testing.T) {
	registered, ours := selfSigned(t)
	_, other := selfSigned(t)
	for name, c := range map[string]struct {
		pem    []byte
		status int
	}{"the registered certificate": {ours, http.StatusOK}, "another certificate": {other, http.StatusServiceUnavailable}} {
		t.Run(name, func(t *testing.T) {
			assertion, err := server.CertificateAssertion(emulator.DemoSignInClientID, c.pem)
			if err != nil {
				t.Fatal(err)
			}
			s := stacktest.Start(t, stacktest.Options{NoWorker: true,
				ConfigureEmulator: func(cfg *emulator.Config) {
					cfg.SignIn.Apps = []emulator.SignInApp{{ClientID: emulator.DemoSignInClientID, CertificatePEM: string(registered)}}
				},
				ConfigureServer: func(cfg *server.Config) { cfg.SignIn.ClientSecret, cfg.SignIn.ClientAssertion = "", assertion },
			})
			p := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
			code, page := signInAs(t, buyer(), p.LandingURL, emulator.BuyerPurchaser)
			if code != c.status {
				t.Fatalf("%d\n%s", code, page)
			}
		})
	}
}

// Without sign-in (an emulator only), the server starts only when told so on purpose, says so loudly, and the
// landing page then shows the purchase to whoever holds the link.
func TestNoSignInNeedsTheExplicitOptInAndIsAnnounced(t *testing.T) {
	if _, err := server.New(server.Config{Subscriptions: budgetProbe{}, Resolver: noResolver{}, InsecureNoWebhookAuth: true}); err == nil || !strings.Contains(err.Error(), "sign-in") {
		t.Fatalf("New without sign-in and without InsecureNoSignIn: %v", err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	s := stacktest.Start(t, stacktest.Options{NoWorker: true, ConfigureServer: func(c *server.Config) {
		c.SignIn, c.InsecureNoSignIn, c.Logger = nil, true, zap.New(core)
	}})
	if warned := logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("BUYER SIGN-IN IS OFF").All(); len(warned) != 1 {
		t.Fatalf("start-up warnings %+v, want one saying sign-in is off", logs.FilterLevelExact(zapcore.WarnLevel).All())
	}
	p := s.Emu.Purchase(t, "basic", 0)
	if code, page := get(t, buyer(), p.LandingURL); code != http.StatusOK || !strings.Contains(page, `id="confirm"`) || strings.Contains(page, "Signed in as") {
		t.Fatalf("landing without sign-in: %d", code)
	}
}
