package emulator_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"saasengine/emulator"
	"saasengine/emulator/emulatortest"
)

// noRedirects is a browser that shows each redirect instead of following it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// authorizeAs runs the authorization endpoint as a browser picking user, and returns the redirect.
func authorizeAs(t *testing.T, env *emulatortest.Env, params url.Values, user string) *url.URL {
	t.Helper()
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	form.Set("user", user)
	resp, err := noRedirects.PostForm(env.Server.URL+"/organizations/oauth2/v2.0/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize as %s: %d", user, resp.StatusCode)
	}
	to, _ := url.Parse(resp.Header.Get("Location"))
	return to
}

type tokenAnswer struct {
	IDToken          string `json:"id_token"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func redeem(t *testing.T, env *emulatortest.Env, form url.Values) (int, tokenAnswer) {
	t.Helper()
	resp, err := http.PostForm(env.Server.URL+"/organizations/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a tokenAnswer
	_ = json.Unmarshal(b, &a)
	return resp.StatusCode, a
}

// The emulator signs buyers in as Entra's v2.0 endpoints do: multi-tenant discovery with the issuer as a
// template, a code for the picked test user, redeemed once with the app's secret and the PKCE verifier
// for an RS256 ID token whose issuer is the user's tenant's, verifiable with the published keys.
func TestBuyerSignIn(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	var disc map[string]any
	getJSON(t, env.Server.URL+"/organizations/v2.0/.well-known/openid-configuration", &disc)
	if disc["issuer"] != env.Server.URL+"/{tenantid}/v2.0" || disc["authorization_endpoint"] != env.Server.URL+"/organizations/oauth2/v2.0/authorize" || disc["end_session_endpoint"] == nil {
		t.Fatalf("discovery %+v", disc)
	}
	var raw map[string]any
	getJSON(t, env.Server.URL+"/"+emulator.DemoTenantID+"/v2.0/.well-known/openid-configuration", &raw)
	if raw["issuer"] != env.Server.URL+"/"+emulator.DemoTenantID+"/v2.0" {
		t.Fatalf("a tenant's issuer: %v", raw["issuer"])
	}

	verifier := "a-verifier-of-forty-three-characters-or-more-123"
	sum := sha256.Sum256([]byte(verifier))
	redirect := "https://isv.example/landing/signin"
	params := url.Values{
		"client_id": {emulator.DemoSignInClientID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid profile email"}, "state": {"st"}, "nonce": {"n0nce"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	to := authorizeAs(t, env, params, emulator.BuyerCSPBeneficiary)
	code := to.Query().Get("code")
	if !strings.HasPrefix(to.String(), redirect+"?") || to.Query().Get("state") != "st" || code == "" {
		t.Fatalf("back to the app: %s", to)
	}
	redeemForm := func(mod func(url.Values)) url.Values {
		f := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
			"client_id": {emulator.DemoSignInClientID}, "client_secret": {emulator.DemoSignInSecret}, "code_verifier": {verifier}}
		if mod != nil {
			mod(f)
		}
		return f
	}
	for name, c := range map[string]struct {
		mod    func(url.Values)
		status int
		err    string
	}{
		"wrong secret":        {func(f url.Values) { f.Set("client_secret", "guess") }, 401, "invalid_client"},
		"no credential":       {func(f url.Values) { f.Del("client_secret") }, 401, "invalid_client"},
		"wrong verifier":      {func(f url.Values) { f.Set("code_verifier", verifier+"x") }, 400, "invalid_grant"},
		"other redirect":      {func(f url.Values) { f.Set("redirect_uri", "https://evil.example/") }, 400, "invalid_grant"},
		"unknown code":        {func(f url.Values) { f.Set("code", "forged") }, 400, "invalid_grant"},
		"another grant":       {func(f url.Values) { f.Set("grant_type", "client_credentials") }, 400, "unsupported_grant_type"},
		"an unregistered app": {func(f url.Values) { f.Set("client_id", "someone-else") }, 400, "unauthorized_client"},
	} {
		if status, a := redeem(t, env, redeemForm(c.mod)); status != c.status || a.Error != c.err || !strings.HasPrefix(a.ErrorDescription, "AADSTS") {
			t.Errorf("%s: %d %+v", name, status, a)
		}
	}
	status, a := redeem(t, env, redeemForm(nil))
	if status != 200 || a.IDToken == "" {
		t.Fatalf("redeem: %d %+v", status, a)
	}
	if status, a := redeem(t, env, redeemForm(nil)); status != 400 || !strings.Contains(a.ErrorDescription, "AADSTS54005") {
		t.Fatalf("the code redeemed twice: %d %+v", status, a)
	}

	kim := emulator.DemoBuyer(emulator.BuyerCSPBeneficiary)
	keys := oidc.NewRemoteKeySet(context.Background(), disc["jwks_uri"].(string))
	idt, err := oidc.NewVerifier(env.Server.URL+"/"+kim.TenantID+"/v2.0", keys, &oidc.Config{ClientID: emulator.DemoSignInClientID}).Verify(context.Background(), a.IDToken)
	if err != nil {
		t.Fatalf("the ID token does not verify: %v", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims["oid"] != kim.ObjectID || claims["tid"] != kim.TenantID || claims["email"] != kim.Email || claims["nonce"] != "n0nce" {
		t.Fatalf("claims %v", claims)
	}
}

// Requests Entra would not send back to the app are refused on the sign-in page itself (an unregistered
// app or reply URL: no open redirect); others go back to the app with Entra's error.
func TestBuyerSignInRefusals(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) {
		c.SignIn.Apps = []emulator.SignInApp{{ClientID: emulator.DemoSignInClientID, ClientSecret: emulator.DemoSignInSecret, RedirectURIs: []string{"https://isv.example/landing/signin"}}}
	}})
	base := url.Values{"client_id": {emulator.DemoSignInClientID}, "redirect_uri": {"https://isv.example/landing/signin"}, "response_type": {"code"}, "scope": {"openid"}, "state": {"st"}}
	with := func(k, v string) string {
		q := url.Values{}
		for key, vals := range base {
			q[key] = vals
		}
		q.Set(k, v)
		return env.Server.URL + "/organizations/oauth2/v2.0/authorize?" + q.Encode()
	}
	for name, c := range map[string]struct {
		url   string
		shown string // an error on the page, or "" for one sent back to the app
		back  string
	}{
		"unregistered reply URL": {with("redirect_uri", "https://evil.example/"), "AADSTS50011", ""},
		"unknown app":            {with("client_id", "nobody"), "AADSTS700016", ""},
		"unknown tenant":         {strings.Replace(with("state", "st"), "/organizations/", "/contoso.example/", 1), "AADSTS90002", ""},
		"implicit flow":          {with("response_type", "id_token"), "", "unsupported_response_type"},
		"silent sign-in":         {with("prompt", "none"), "", "login_required"},
		"no openid scope":        {with("scope", "User.Read"), "", "invalid_scope"},
	} {
		resp, err := noRedirects.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if c.shown != "" {
			if resp.StatusCode != 400 || !strings.Contains(string(body), c.shown) {
				t.Errorf("%s: %d, want the page to show %s", name, resp.StatusCode, c.shown)
			}
			continue
		}
		to, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(to.String(), "https://isv.example/landing/signin?") || to.Query().Get("error") != c.back || to.Query().Get("state") != "st" {
			t.Errorf("%s: %d to %s", name, resp.StatusCode, to)
		}
	}
	// Sign-out returns only to a registered URL.
	for back, want := range map[string]int{"https://isv.example/landing/signin": http.StatusFound, "https://evil.example/": http.StatusOK} {
		resp, err := noRedirects.Get(env.Server.URL + "/organizations/oauth2/v2.0/logout?post_logout_redirect_uri=" + url.QueryEscape(back))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("sign-out back to %s: %d", back, resp.StatusCode)
		}
	}
}
