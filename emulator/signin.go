package emulator

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"go.uber.org/zap"
)

// Buyers' sign-in, as Microsoft Entra ID's v2.0 endpoints do it for a landing page: OpenID discovery
// (multi-tenant authorities announce the issuer as ".../{tenantid}/v2.0"), the authorization endpoint
// (here a page to pick one of the test users instead of a password), the token endpoint (authorization code
// with PKCE, client secret or certificate assertion, codes redeemed once and expiring) and sign-out. ID tokens
// are RS256 with the key the webhook tokens use, published at the same JWKS. Codes live in memory only: a
// restart in the middle of a sign-in makes the buyer sign in again, as an expired code would.

// Sign-in fault kinds: the next ID tokens are wrong in one way, as a forged or misrouted token would be.
const (
	// SignInFaultNonce gives the ID token another nonce than the one of the sign-in request.
	SignInFaultNonce = "nonce"
	// SignInFaultIssuer gives the ID token the issuer of another tenant than its tid.
	SignInFaultIssuer = "issuer"
)

// SignInFault makes the next Count ID tokens (0: all until cleared) wrong in the way Kind says.
type SignInFault struct {
	Kind  string `json:"kind"`
	Count int    `json:"count,omitempty"`
	Fired int    `json:"fired"`
}

type signInStore struct {
	mu     sync.Mutex
	codes  map[string]*authCode
	faults []*SignInFault
}

type authCode struct {
	ClientID, RedirectURI, Nonce, Scope string
	Challenge, ChallengeMethod          string
	User                                TestUser
	Expires                             time.Time
	Redeemed                            bool
}

const (
	// msaTenantID is the tenant of personal Microsoft accounts.
	msaTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"
	codeTTL     = 10 * time.Minute
)

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// multiTenant reports the authorities that stand for many tenants; their discovery documents carry the
// issuer as a template.
func multiTenant(tenant string) bool {
	switch strings.ToLower(tenant) {
	case "organizations", "common", "consumers":
		return true
	}
	return false
}

func (e *Emulator) signInRoutes(r *mux.Router) {
	e.signin = &signInStore{codes: map[string]*authCode{}}
	r.HandleFunc("/{tenant}/v2.0/.well-known/openid-configuration", e.openIDConfiguration).Methods(http.MethodGet)
	r.HandleFunc("/{tenant}/oauth2/v2.0/authorize", e.authorize).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/{tenant}/oauth2/v2.0/token", e.tokenEndpoint).Methods(http.MethodPost)
	r.HandleFunc("/{tenant}/oauth2/v2.0/logout", e.logout).Methods(http.MethodGet)
	r.HandleFunc("/control/signin/faults", e.controlSignInFaults).Methods(http.MethodGet, http.MethodPost, http.MethodDelete)
}

// openIDConfiguration is Entra's discovery document for a tenant or a multi-tenant authority.
func (e *Emulator) openIDConfiguration(w http.ResponseWriter, r *http.Request) {
	tenant := mux.Vars(r)["tenant"]
	base := e.base()
	issuer := base + "/" + tenant + "/v2.0"
	if multiTenant(tenant) {
		issuer = base + "/{tenantid}/v2.0"
	}
	browser := base
	if e.cfg.SignIn.BrowserURL != "" {
		browser = strings.TrimRight(e.cfg.SignIn.BrowserURL, "/")
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                issuer,
		"authorization_endpoint":                browser + "/" + tenant + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/" + tenant + "/oauth2/v2.0/token",
		"end_session_endpoint":                  browser + "/" + tenant + "/oauth2/v2.0/logout",
		"jwks_uri":                              base + "/" + tenant + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_modes_supported":              []string{"query"},
		"response_types_supported":              []string{"code"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nonce", "name", "preferred_username", "email", "oid", "tid", "ver"},
		"code_challenge_methods_supported":      []string{"plain", "S256"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"subject_types_supported":               []string{"pairwise"},
		"http_logout_supported":                 true,
		"tenant_region_scope":                   "EU",
	})
}

type authRequest struct {
	Tenant, ClientID, RedirectURI, ResponseType, ResponseMode string
	Scope, State, Nonce, Challenge, ChallengeMethod, Prompt   string
}

func (a authRequest) fields() map[string]string {
	return map[string]string{
		"client_id": a.ClientID, "redirect_uri": a.RedirectURI, "response_type": a.ResponseType,
		"response_mode": a.ResponseMode, "scope": a.Scope, "state": a.State, "nonce": a.Nonce,
		"code_challenge": a.Challenge, "code_challenge_method": a.ChallengeMethod,
	}
}

// authorize shows the test users (GET) and, once one is picked (POST), sends the browser back to the app
// with a code; a cancelled sign-in goes back with access_denied, as Entra's does.
func (e *Emulator) authorize(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		e.signInPage(w, http.StatusBadRequest, "AADSTS900144: The request is not valid.", nil)
		return
	}
	f := r.Form
	req := authRequest{
		Tenant: mux.Vars(r)["tenant"], ClientID: f.Get("client_id"), RedirectURI: f.Get("redirect_uri"),
		ResponseType: f.Get("response_type"), ResponseMode: f.Get("response_mode"), Scope: f.Get("scope"),
		State: f.Get("state"), Nonce: f.Get("nonce"), Challenge: f.Get("code_challenge"),
		ChallengeMethod: f.Get("code_challenge_method"), Prompt: f.Get("prompt"),
	}
	// Until the app and its reply URL are known, errors are shown here: sending them to an unchecked URL
	// would make the sign-in page an open redirector.
	if !multiTenant(req.Tenant) && !guidPattern.MatchString(req.Tenant) {
		e.signInPage(w, http.StatusBadRequest, fmt.Sprintf("AADSTS90002: Tenant '%s' not found.", req.Tenant), nil)
		return
	}
	app, ok := e.cfg.SignIn.app(req.ClientID)
	if !ok {
		e.signInPage(w, http.StatusBadRequest, fmt.Sprintf("AADSTS700016: Application with identifier '%s' was not found in the directory.", req.ClientID), nil)
		return
	}
	if req.RedirectURI == "" || !app.redirectAllowed(req.RedirectURI) {
		e.signInPage(w, http.StatusBadRequest, fmt.Sprintf("AADSTS50011: The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'.", req.RedirectURI, req.ClientID), nil)
		return
	}
	back := func(params url.Values) {
		if req.State != "" {
			params.Set("state", req.State)
		}
		http.Redirect(w, r, withQuery(req.RedirectURI, params), http.StatusFound)
	}
	fail := func(code, description string) {
		back(url.Values{"error": {code}, "error_description": {description}})
	}
	switch {
	case req.ResponseType != "code":
		fail("unsupported_response_type", "AADSTS700054: response_type '"+req.ResponseType+"' is not enabled for the application.")
		return
	case req.ResponseMode != "" && req.ResponseMode != "query":
		fail("invalid_request", "AADSTS900144: response_mode '"+req.ResponseMode+"' is not supported by the emulator; use query.")
		return
	case !hasScope(req.Scope, "openid"):
		fail("invalid_scope", "AADSTS70011: The provided request must include an 'openid' scope.")
		return
	case req.Challenge != "" && req.ChallengeMethod != "" && req.ChallengeMethod != "S256" && req.ChallengeMethod != "plain":
		fail("invalid_request", "AADSTS501491: Invalid code_challenge_method.")
		return
	case req.Prompt == "none":
		// No one is ever signed in to the emulator between requests.
		fail("login_required", "AADSTS50058: A silent sign-in request was sent but no user is signed in.")
		return
	}
	users := e.usersFor(req.Tenant)
	if r.Method == http.MethodGet {
		e.signInPage(w, http.StatusOK, "", &chooser{Request: req, Fields: req.fields(), Users: users, Tenant: req.Tenant})
		return
	}
	if f.Get("cancel") != "" {
		fail("access_denied", "AADSTS65004: User declined to consent to access the app.")
		return
	}
	var user *TestUser
	for i := range users {
		if users[i].ID == f.Get("user") {
			user = &users[i]
		}
	}
	if user == nil {
		e.signInPage(w, http.StatusBadRequest, "AADSTS50034: The user account does not exist in this directory.", nil)
		return
	}
	code := randomString(32)
	e.mu.Lock()
	expires := e.now().Add(e.codeTTL())
	e.mu.Unlock()
	e.signin.mu.Lock()
	e.signin.codes[code] = &authCode{
		ClientID: req.ClientID, RedirectURI: req.RedirectURI, Nonce: req.Nonce, Scope: req.Scope,
		Challenge: req.Challenge, ChallengeMethod: req.ChallengeMethod, User: *user, Expires: expires,
	}
	// Forget codes long expired, so that a long-running emulator does not grow.
	for k, c := range e.signin.codes {
		if expires.Sub(c.Expires) > 24*time.Hour {
			delete(e.signin.codes, k)
		}
	}
	e.signin.mu.Unlock()
	e.log.Info("emulator: buyer signed in", zap.String("user", user.ID), zap.String("clientId", req.ClientID))
	back(url.Values{"code": {code}, "session_state": {uuid.NewString()}})
}

func (e *Emulator) codeTTL() time.Duration {
	if e.cfg.SignIn.CodeTTL > 0 {
		return e.cfg.SignIn.CodeTTL.D()
	}
	return codeTTL
}

// usersFor lists the accounts an authority can sign in: one tenant's, or every work account.
func (e *Emulator) usersFor(tenant string) []TestUser {
	var out []TestUser
	for _, u := range e.cfg.SignIn.users() {
		switch strings.ToLower(tenant) {
		case "common":
		case "organizations":
			if u.TenantID == msaTenantID {
				continue
			}
		case "consumers":
			if u.TenantID != msaTenantID {
				continue
			}
		default:
			if !strings.EqualFold(u.TenantID, tenant) {
				continue
			}
		}
		out = append(out, u)
	}
	return out
}

type chooser struct {
	Request authRequest
	Fields  map[string]string
	Users   []TestUser
	Tenant  string
}

func (e *Emulator) signInPage(w http.ResponseWriter, status int, problem string, c *chooser) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The chosen account's form posts here and is redirected to the app: form-action must allow that.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = pageTemplates.ExecuteTemplate(w, "signin.html", map[string]any{"Problem": problem, "Chooser": c})
}

// tokenEndpoint redeems an authorization code for an ID token.
func (e *Emulator) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		entraError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded.")
		return
	}
	f := r.PostForm
	if gt := f.Get("grant_type"); gt != "authorization_code" {
		entraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '"+gt+"'.")
		return
	}
	tenant := mux.Vars(r)["tenant"]
	tokenURL := e.base() + "/" + tenant + "/oauth2/v2.0/token"
	clientID, err := e.authenticateSignInClient(r, tokenURL)
	if err != nil {
		var ce *clientError
		if errors.As(err, &ce) {
			entraError(w, ce.status, ce.code, ce.aadsts, ce.message)
			return
		}
		entraError(w, http.StatusUnauthorized, "invalid_client", 7000215, err.Error())
		return
	}
	e.mu.Lock()
	now := e.now()
	e.mu.Unlock()
	e.signin.mu.Lock()
	c := e.signin.codes[f.Get("code")]
	var problem *clientError
	switch {
	case c == nil:
		problem = &clientError{http.StatusBadRequest, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid."}
	case c.Redeemed:
		problem = &clientError{http.StatusBadRequest, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."}
	case !now.Before(c.Expires):
		problem = &clientError{http.StatusBadRequest, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."}
	case !strings.EqualFold(c.ClientID, clientID):
		problem = &clientError{http.StatusBadRequest, "invalid_grant", 70002, "The client ID does not match the one the code was issued to."}
	case f.Get("redirect_uri") != c.RedirectURI:
		problem = &clientError{http.StatusBadRequest, "invalid_grant", 500117, "The reply uri specified in the request does not match the reply uri used to obtain the authorization code."}
	case !pkceMatches(c.Challenge, c.ChallengeMethod, f.Get("code_verifier")):
		problem = &clientError{http.StatusBadRequest, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request."}
	default:
		c.Redeemed = true
	}
	fault := ""
	if problem == nil {
		fault = e.takeSignInFaultLocked()
	}
	e.signin.mu.Unlock()
	if problem != nil {
		entraError(w, problem.status, problem.code, problem.aadsts, problem.message)
		return
	}
	idToken, err := e.idToken(c, fault)
	if err != nil {
		entraError(w, http.StatusInternalServerError, "server_error", 90012, "The request failed: "+err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "scope": c.Scope, "expires_in": 3599, "ext_expires_in": 3599,
		// The access token is for Microsoft Graph, which a landing page may call for more profile details;
		// the emulator has no Graph, so it is opaque.
		"access_token": randomString(48),
		"id_token":     idToken,
	})
}

// idToken signs the v2.0 ID token of a redeemed code, made wrong as a fault says.
func (e *Emulator) idToken(c *authCode, fault string) (string, error) {
	now := time.Now()
	u := c.User
	iss := e.base() + "/" + u.TenantID + "/v2.0"
	nonce := c.Nonce
	switch fault {
	case SignInFaultNonce:
		nonce = "not-" + nonce
	case SignInFaultIssuer:
		iss = e.base() + "/" + uuid.NewString() + "/v2.0"
	}
	sub := sha256.Sum256([]byte(u.ObjectID + "|" + strings.ToLower(c.ClientID)))
	claims := jwt.MapClaims{
		"aud":                c.ClientID,
		"iss":                iss,
		"iat":                now.Unix(),
		"nbf":                now.Unix(),
		"exp":                now.Add(time.Hour).Unix(),
		"name":               u.Name,
		"oid":                u.ObjectID,
		"preferred_username": u.Email,
		"sub":                base64.RawURLEncoding.EncodeToString(sub[:]),
		"tid":                u.TenantID,
		"uti":                randomString(16),
		"ver":                "2.0",
	}
	if hasScope(c.Scope, "email") {
		claims["email"] = u.Email
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = e.keyID
	return t.SignedString(e.key)
}

type clientError struct {
	status  int
	code    string
	aadsts  int
	message string
}

func (c *clientError) Error() string { return c.message }

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// authenticateSignInClient checks the app's credential: its secret (form or Basic), or an assertion
// signed with its certificate's key, meant for this token endpoint.
func (e *Emulator) authenticateSignInClient(r *http.Request, tokenURL string) (string, error) {
	f := r.PostForm
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if id, pw, ok := r.BasicAuth(); ok {
		clientID, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(pw)
	}
	app, ok := e.cfg.SignIn.app(clientID)
	if !ok {
		return "", &clientError{http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory.", clientID)}
	}
	if len(e.cfg.SignIn.Apps) == 0 {
		return clientID, nil
	}
	switch {
	case secret != "":
		if app.ClientSecret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(app.ClientSecret)) != 1 {
			return "", &clientError{http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."}
		}
		return clientID, nil
	case f.Get("client_assertion_type") == assertionType && f.Get("client_assertion") != "":
		if err := verifyAssertion(app, f.Get("client_assertion"), tokenURL); err != nil {
			return "", &clientError{http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation: " + err.Error()}
		}
		return clientID, nil
	}
	return "", &clientError{http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
}

// verifyAssertion checks a private_key_jwt client assertion against the app's certificate.
func verifyAssertion(app SignInApp, assertion, tokenURL string) error {
	block, _ := pem.Decode([]byte(app.CertificatePEM))
	if block == nil {
		return errors.New("the app has no certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("the app's certificate: %w", err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithAudience(tokenURL), jwt.WithExpirationRequired(), jwt.WithLeeway(time.Minute)).
		ParseWithClaims(assertion, claims, func(*jwt.Token) (any, error) { return cert.PublicKey, nil })
	if err != nil {
		return err
	}
	iss, _ := claims["iss"].(string)
	sub, _ := claims["sub"].(string)
	if !strings.EqualFold(iss, app.ClientID) || !strings.EqualFold(sub, app.ClientID) {
		return errors.New("iss and sub must be the client ID")
	}
	return nil
}

func pkceMatches(challenge, method, verifier string) bool {
	if challenge == "" {
		return true
	}
	if verifier == "" {
		return false
	}
	want := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// logout ends the (emulated) Entra session and sends the browser back to the app when it says where.
func (e *Emulator) logout(w http.ResponseWriter, r *http.Request) {
	back := r.URL.Query().Get("post_logout_redirect_uri")
	if back != "" && e.postLogoutAllowed(back) {
		params := url.Values{}
		if st := r.URL.Query().Get("state"); st != "" {
			params.Set("state", st)
		}
		http.Redirect(w, r, withQuery(back, params), http.StatusFound)
		return
	}
	e.signInPage(w, http.StatusOK, "", nil)
}

// postLogoutAllowed: Entra sends the browser back only to a URL registered on an app.
func (e *Emulator) postLogoutAllowed(uri string) bool {
	if len(e.cfg.SignIn.Apps) == 0 {
		return strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")
	}
	for _, a := range e.cfg.SignIn.Apps {
		if a.redirectAllowed(uri) {
			return true
		}
	}
	return false
}

// AddSignInFault makes the next ID tokens wrong (SignInFaultNonce, SignInFaultIssuer).
func (e *Emulator) AddSignInFault(f SignInFault) error {
	switch f.Kind {
	case SignInFaultNonce, SignInFaultIssuer:
	default:
		return fmt.Errorf("sign-in fault %q: want %s or %s", f.Kind, SignInFaultNonce, SignInFaultIssuer)
	}
	if f.Count < 0 {
		return errors.New("sign-in fault count must not be negative")
	}
	f.Fired = 0
	e.signin.mu.Lock()
	defer e.signin.mu.Unlock()
	e.signin.faults = append(e.signin.faults, &f)
	return nil
}

// takeSignInFaultLocked fires the oldest sign-in fault, if any, and drops it once it has fired Count times.
func (e *Emulator) takeSignInFaultLocked() string {
	if len(e.signin.faults) == 0 {
		return ""
	}
	f := e.signin.faults[0]
	f.Fired++
	if f.Count > 0 && f.Fired >= f.Count {
		e.signin.faults = e.signin.faults[1:]
	}
	return f.Kind
}

func (e *Emulator) controlSignInFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		var f SignInFault
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&f); err != nil {
			apiError(w, http.StatusBadRequest, "BadArgument", "invalid JSON: "+err.Error())
			return
		}
		if err := e.AddSignInFault(f); err != nil {
			apiError(w, http.StatusBadRequest, "BadArgument", err.Error())
			return
		}
		writeJSON(w, http.StatusCreated, f)
	case http.MethodDelete:
		e.signin.mu.Lock()
		e.signin.faults = nil
		e.signin.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		e.signin.mu.Lock()
		out := make([]SignInFault, 0, len(e.signin.faults))
		for _, f := range e.signin.faults {
			out = append(out, *f)
		}
		e.signin.mu.Unlock()
		writeJSON(w, http.StatusOK, out)
	}
}

// entraError writes the token endpoint's error body as Entra shapes it.
func entraError(w http.ResponseWriter, status int, code string, aadsts int, message string) {
	trace, corr := uuid.NewString(), uuid.NewString()
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, message, trace, corr, ts),
		"error_codes":       []int{aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
	})
}

func hasScope(scopes, want string) bool {
	for _, s := range strings.Fields(scopes) {
		if s == want {
			return true
		}
	}
	return false
}

func withQuery(base string, params url.Values) string {
	if len(params) == 0 {
		return base
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + params.Encode()
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
