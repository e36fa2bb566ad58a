package server

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"saasengine/marketplace"
)

// Buyers sign in with Microsoft Entra ID before the landing page shows anything, as Microsoft's certification
// of a transactable SaaS offer requires: OpenID Connect, authorization code flow with PKCE, for a
// multi-tenant app. The ID token's issuer is checked against its own tenant (multi-tenant discovery announces
// ".../{tenantid}/v2.0"), state and nonce against the sign-in this browser started, and the signed-in buyer
// is kept in an encrypted cookie: the server keeps no session store.

// SignInConfig is the Entra app buyers sign in with: a multi-tenant app of its own, not the one that calls
// the Marketplace API.
type SignInConfig struct {
	// Authority is Entra's host, default https://login.microsoftonline.com (the emulator's URL in
	// development).
	Authority string
	// Tenant is "organizations" (work and school accounts of any organisation, the default), "common"
	// (personal Microsoft accounts too) or one tenant ID (that organisation only).
	Tenant   string
	ClientID string
	// ClientSecret or ClientAssertion authenticates the app when it redeems a code. ClientAssertion returns
	// a client assertion (a JWT signed with the app's certificate, see CertificateAssertion) for the token
	// endpoint it is given.
	ClientSecret    string
	ClientAssertion func(tokenURL string) (string, error)
	// RedirectURL is where Entra sends the buyer back: https://<host>/landing/signin, registered on the app
	// as a Web redirect URI.
	RedirectURL string
	// HTTPClient reaches Entra; default has a 10-second timeout.
	HTTPClient *http.Client
}

// DefaultSignInAuthority is Entra's public cloud.
const DefaultSignInAuthority = "https://login.microsoftonline.com"

// msaTenantID is the tenant of personal Microsoft accounts, which "organizations" does not admit.
const msaTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"

// discoveryRetry is how long a failed discovery is remembered before the next sign-in tries again.
const discoveryRetry = 5 * time.Second

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Buyer is the signed-in person, from their ID token.
type Buyer struct {
	ObjectID string `json:"oid"`
	TenantID string `json:"tid"`
	// Email is the token's email claim, else its preferred_username when that is an address.
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
}

// Display is how the page names the buyer.
func (b *Buyer) Display() string {
	switch {
	case b.Name != "" && b.Email != "":
		return b.Name + " (" + b.Email + ")"
	case b.Email != "":
		return b.Email
	case b.Name != "":
		return b.Name
	}
	return "an account without a name"
}

// Is reports whether the buyer is the person Microsoft names: by object ID and tenant when Microsoft gives
// both (they cannot be changed by the user), else by e-mail address, within the tenant when one is given.
func (b *Buyer) Is(id marketplace.AADIdentifier) bool {
	if b == nil {
		return false
	}
	if id.ObjectID != "" && id.TenantID != "" {
		return strings.EqualFold(id.ObjectID, b.ObjectID) && strings.EqualFold(id.TenantID, b.TenantID)
	}
	if id.EmailID == "" || b.Email == "" {
		return false
	}
	if id.TenantID != "" && !strings.EqualFold(id.TenantID, b.TenantID) {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(id.EmailID), b.Email)
}

// mayManage: the purchaser and the beneficiary may see and confirm a subscription, no one else.
func (b *Buyer) mayManage(purchaser, beneficiary marketplace.AADIdentifier) bool {
	return b.Is(purchaser) || b.Is(beneficiary)
}

// pendingSignIn is what a browser carries between leaving for Entra and coming back.
type pendingSignIn struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Return   string `json:"r"`
}

type signIn struct {
	cfg     SignInConfig
	http    *http.Client
	session *cookieCodec
	pending *cookieCodec

	mu       sync.Mutex
	disc     *discovered
	failedAt time.Time
	failErr  error
}

type discovered struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	// issuer may hold "{tenantid}", which stands for the token's own tid.
	issuer     string
	endSession string
}

func newSignIn(cfg SignInConfig, key []byte) (*signIn, error) {
	cfg.Authority = strings.TrimRight(cfg.Authority, "/")
	if cfg.Authority == "" {
		cfg.Authority = DefaultSignInAuthority
	}
	if cfg.Tenant == "" {
		cfg.Tenant = "organizations"
	}
	switch {
	case cfg.ClientID == "":
		return nil, errors.New("server: sign-in needs the client ID of the buyers' sign-in app")
	case (cfg.ClientSecret == "") == (cfg.ClientAssertion == nil):
		return nil, errors.New("server: sign-in needs a client secret or a certificate, one of them")
	case !multiTenantAuthority(cfg.Tenant) && !guidPattern.MatchString(cfg.Tenant):
		return nil, fmt.Errorf("server: sign-in tenant %q: want organizations, common or a tenant ID", cfg.Tenant)
	}
	if u, err := url.Parse(cfg.RedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server: sign-in redirect URL %q must be an absolute http(s) URL", cfg.RedirectURL)
	}
	if u, err := url.Parse(cfg.Authority); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server: sign-in authority %q must be an absolute http(s) URL", cfg.Authority)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	si := &signIn{cfg: cfg, http: cfg.HTTPClient}
	var err error
	if si.session, err = newCookieCodec(key, "session", sessionTTL); err != nil {
		return nil, err
	}
	if si.pending, err = newCookieCodec(key, "pending sign-in", pendingTTL); err != nil {
		return nil, err
	}
	return si, nil
}

func multiTenantAuthority(t string) bool {
	switch strings.ToLower(t) {
	case "organizations", "common":
		return true
	}
	return false
}

// callbackPath is the path Entra sends the buyer back to.
func (si *signIn) callbackPath() string {
	u, _ := url.Parse(si.cfg.RedirectURL)
	return u.Path
}

// authorityOrigin is where the sign-in and sign-out forms may lead (Content-Security-Policy form-action).
func (si *signIn) authorityOrigin() string {
	u, _ := url.Parse(si.cfg.Authority)
	return u.Scheme + "://" + u.Host
}

type discoveryDoc struct {
	Issuer     string   `json:"issuer"`
	AuthURL    string   `json:"authorization_endpoint"`
	TokenURL   string   `json:"token_endpoint"`
	JWKSURL    string   `json:"jwks_uri"`
	EndSession string   `json:"end_session_endpoint"`
	Algorithms []string `json:"id_token_signing_alg_values_supported"`
}

// discover reads Entra's OpenID configuration once; a failure is remembered for a few seconds, so that a
// burst of buyers during an outage makes one request, not one each.
func (si *signIn) discover(ctx context.Context) (*discovered, error) {
	si.mu.Lock()
	defer si.mu.Unlock()
	if si.disc != nil {
		return si.disc, nil
	}
	if si.failErr != nil && time.Since(si.failedAt) < discoveryRetry {
		return nil, si.failErr
	}
	d, err := si.fetchDiscovery(ctx)
	if err != nil {
		si.failedAt, si.failErr = time.Now(), err
		return nil, err
	}
	si.disc, si.failErr = d, nil
	return d, nil
}

func (si *signIn) fetchDiscovery(ctx context.Context) (*discovered, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := si.cfg.Authority + "/" + si.cfg.Tenant + "/v2.0/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := si.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sign-in discovery %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sign-in discovery %s: status %d", u, resp.StatusCode)
	}
	var doc discoveryDoc
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("sign-in discovery %s: %w", u, err)
	}
	if doc.Issuer == "" || doc.AuthURL == "" || doc.TokenURL == "" || doc.JWKSURL == "" {
		return nil, fmt.Errorf("sign-in discovery %s: issuer, authorization, token or keys endpoint missing", u)
	}
	// The key set fetches keys in the background; its context only carries the HTTP client.
	provider := (&oidc.ProviderConfig{IssuerURL: doc.Issuer, AuthURL: doc.AuthURL, TokenURL: doc.TokenURL, JWKSURL: doc.JWKSURL, Algorithms: doc.Algorithms}).
		NewProvider(oidc.ClientContext(context.Background(), si.http))
	return &discovered{
		oauth: oauth2.Config{
			ClientID: si.cfg.ClientID, ClientSecret: si.cfg.ClientSecret, RedirectURL: si.cfg.RedirectURL,
			Endpoint: oauth2.Endpoint{AuthURL: doc.AuthURL, TokenURL: doc.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
			Scopes:   []string{oidc.ScopeOpenID, "profile", "email"},
		},
		// The issuer is checked by hand: for a multi-tenant app it depends on the token's tenant.
		verifier:   provider.Verifier(&oidc.Config{ClientID: si.cfg.ClientID, SkipIssuerCheck: true}),
		issuer:     doc.Issuer,
		endSession: doc.EndSession,
	}, nil
}

// current returns the signed-in buyer of the request, or nil.
func (si *signIn) current(r *http.Request) *Buyer {
	var b Buyer
	if !si.session.get(r, sessionCookie, &b) || b.ObjectID == "" || b.TenantID == "" {
		return nil
	}
	return &b
}

// start sends the browser to Entra's sign-in page, to come back to returnTo (a local path).
func (si *signIn) start(ctx context.Context, w http.ResponseWriter, r *http.Request, returnTo string, selectAccount bool) error {
	d, err := si.discover(ctx)
	if err != nil {
		return err
	}
	p := pendingSignIn{State: random(32), Nonce: random(32), Verifier: oauth2.GenerateVerifier(), Return: returnTo}
	if err := si.pending.set(w, r, pendingPrefix+p.State[:16], p, true); err != nil {
		return err
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(p.Verifier), oidc.Nonce(p.Nonce), oauth2.SetAuthURLParam("response_mode", "query")}
	if selectAccount {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "select_account"))
	}
	http.Redirect(w, r, d.oauth.AuthCodeURL(p.State, opts...), http.StatusSeeOther)
	return nil
}

// signInProblem is why a sign-in did not complete. Kind picks the page the buyer sees; Err is for the log.
type signInProblem struct {
	Kind string
	// Code is Entra's error code (AADSTS…) when it gave one, shown to help support.
	Code string
	Err  error
}

func (p *signInProblem) Error() string { return p.Kind + ": " + p.Err.Error() }

// Kinds of sign-in problems.
const (
	problemMismatch    = "mismatch"    // state or nonce not of a sign-in this browser started
	problemCancelled   = "cancelled"   // the buyer cancelled at Entra
	problemDenied      = "denied"      // Entra refused for another reason
	problemCodeUsed    = "code"        // the code was already redeemed or expired
	problemInvalid     = "invalid"     // the ID token did not verify
	problemTenant      = "tenant"      // a tenant this app does not accept, or an issuer not of the token's tenant
	problemUnavailable = "unavailable" // Entra could not be reached, or refused the app itself
)

var aadstsCode = regexp.MustCompile(`AADSTS\d+`)

// finish completes a sign-in that came back with the request's query: checks, redeems the code, verifies
// the ID token. p is the browser's pending sign-in whose state matched.
func (si *signIn) finish(ctx context.Context, q url.Values, p pendingSignIn) (*Buyer, *signInProblem) {
	if e := q.Get("error"); e != "" {
		code := aadstsCode.FindString(q.Get("error_description"))
		kind := problemDenied
		// AADSTS65004: the buyer declined; access_denied is also what a closed consent prompt gives.
		if e == "access_denied" || code == "AADSTS65004" {
			kind = problemCancelled
		}
		return nil, &signInProblem{Kind: kind, Code: code, Err: fmt.Errorf("entra answered %s %s", e, code)}
	}
	code := q.Get("code")
	if code == "" {
		return nil, &signInProblem{Kind: problemMismatch, Err: errors.New("no code in the answer")}
	}
	d, err := si.discover(ctx)
	if err != nil {
		return nil, &signInProblem{Kind: problemUnavailable, Err: err}
	}
	opts := []oauth2.AuthCodeOption{oauth2.VerifierOption(p.Verifier)}
	if si.cfg.ClientAssertion != nil {
		assertion, err := si.cfg.ClientAssertion(d.oauth.Endpoint.TokenURL)
		if err != nil {
			return nil, &signInProblem{Kind: problemUnavailable, Err: fmt.Errorf("client assertion: %w", err)}
		}
		opts = append(opts, oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
			oauth2.SetAuthURLParam("client_assertion", assertion))
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, si.http), 15*time.Second)
	defer cancel()
	tok, err := d.oauth.Exchange(ctx, code, opts...)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			aad := aadstsCode.FindString(re.ErrorDescription)
			// Only Entra's code and error name are kept: the description is long and says nothing secret,
			// but the rest of the answer is not needed either.
			cause := fmt.Errorf("token endpoint answered %d %s %s", re.Response.StatusCode, re.ErrorCode, aad)
			if re.ErrorCode == "invalid_grant" {
				return nil, &signInProblem{Kind: problemCodeUsed, Code: aad, Err: cause}
			}
			return nil, &signInProblem{Kind: problemUnavailable, Code: aad, Err: cause}
		}
		return nil, &signInProblem{Kind: problemUnavailable, Err: fmt.Errorf("redeeming the code: %w", err)}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, &signInProblem{Kind: problemInvalid, Err: errors.New("no ID token in the answer")}
	}
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, &signInProblem{Kind: problemInvalid, Err: fmt.Errorf("ID token: %w", err)}
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.Nonce)) != 1 {
		return nil, &signInProblem{Kind: problemMismatch, Err: errors.New("the ID token's nonce is not the one this sign-in sent")}
	}
	var c struct {
		TID               string `json:"tid"`
		OID               string `json:"oid"`
		Name              string `json:"name"`
		Email             string `json:"email"`
		PreferredUsername string `json:"preferred_username"`
	}
	if err := idt.Claims(&c); err != nil {
		return nil, &signInProblem{Kind: problemInvalid, Err: fmt.Errorf("ID token claims: %w", err)}
	}
	if !guidPattern.MatchString(c.TID) || c.OID == "" {
		return nil, &signInProblem{Kind: problemInvalid, Err: errors.New("the ID token lacks tid or oid")}
	}
	if want := strings.ReplaceAll(d.issuer, "{tenantid}", c.TID); idt.Issuer != want {
		return nil, &signInProblem{Kind: problemTenant, Err: fmt.Errorf("issuer %q is not %q, its tenant's", idt.Issuer, want)}
	}
	if err := si.tenantAllowed(c.TID); err != nil {
		return nil, &signInProblem{Kind: problemTenant, Err: err}
	}
	b := &Buyer{ObjectID: c.OID, TenantID: c.TID, Name: c.Name, Email: c.Email}
	if b.Email == "" && strings.Contains(c.PreferredUsername, "@") {
		b.Email = c.PreferredUsername
	}
	return b, nil
}

func (si *signIn) tenantAllowed(tid string) error {
	switch {
	case strings.EqualFold(si.cfg.Tenant, "common"):
		return nil
	case strings.EqualFold(si.cfg.Tenant, "organizations"):
		if strings.EqualFold(tid, msaTenantID) {
			return errors.New("a personal Microsoft account, but only work and school accounts are accepted")
		}
		return nil
	case !strings.EqualFold(si.cfg.Tenant, tid):
		return fmt.Errorf("tenant %s is not the one tenant accepted", tid)
	}
	return nil
}

// takePending finds and clears the browser's pending sign-in of state; false if there is none that
// matches (another browser's answer, a replay, or more than ten minutes).
func (si *signIn) takePending(w http.ResponseWriter, r *http.Request, state string) (pendingSignIn, bool) {
	if len(state) < 16 {
		return pendingSignIn{}, false
	}
	name := pendingPrefix + state[:16]
	var p pendingSignIn
	ok := si.pending.get(r, name, &p)
	if _, err := r.Cookie(name); err == nil {
		clearCookie(w, r, name)
	}
	if !ok || subtle.ConstantTimeCompare([]byte(p.State), []byte(state)) != 1 {
		return pendingSignIn{}, false
	}
	return p, true
}

// logoutURL is Entra's sign-out, coming back to the redirect URL; empty when Entra announced none.
func (si *signIn) logoutURL(ctx context.Context) string {
	d, err := si.discover(ctx)
	if err != nil || d.endSession == "" {
		return ""
	}
	v := url.Values{"post_logout_redirect_uri": {si.cfg.RedirectURL}, "client_id": {si.cfg.ClientID}}
	sep := "?"
	if strings.Contains(d.endSession, "?") {
		sep = "&"
	}
	return d.endSession + sep + v.Encode()
}

// localReturn accepts only a path of the buyer's pages as where to go after signing in, so that no link
// can use the sign-in to send a buyer elsewhere.
func localReturn(s string) string {
	if !strings.HasPrefix(s, "/landing") || strings.HasPrefix(s, "//") || strings.ContainsAny(s, "\\\r\n") {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return s
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
