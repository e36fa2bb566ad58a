// Package entra validates the Entra ID access tokens Microsoft's Marketplace sends with webhook calls: RS256
// signatures against the tenant's keys found by OpenID discovery, and the claims that say the call comes
// from the Marketplace service for this publisher's app.
package entra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// DefaultAuthority is Entra ID's public-cloud host.
const DefaultAuthority = "https://login.microsoftonline.com"

// MarketplaceAppID is the Marketplace SaaS API application: the caller (appid or azp) of webhook calls.
const MarketplaceAppID = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"

// maxSkew bounds the clock skew allowed on exp and nbf.
const maxSkew = time.Minute

// discoveryRetryAfter is how long a failed discovery is remembered: while Entra is down, webhooks are
// answered 503 at once instead of each waiting for its own failing request.
const discoveryRetryAfter = 5 * time.Second

// discoveryTimeout bounds one discovery (OpenID configuration and the first key fetch).
const discoveryTimeout = 10 * time.Second

// ErrInvalidToken is wrapped by every rejection of the token itself: answer 401.
var ErrInvalidToken = errors.New("invalid token")

// ErrKeysUnavailable is wrapped when the signing keys cannot be had (discovery down): answer 503, so that
// Microsoft redelivers instead of the call being lost as unauthorized.
var ErrKeysUnavailable = errors.New("signing keys unavailable")

// Config says whose tokens to accept.
type Config struct {
	// Authority is the Entra host; empty means DefaultAuthority. In development, the emulator's base URL.
	Authority string
	// TenantID is the publisher's tenant (Technical configuration in Partner Center): the tid claim.
	TenantID string
	// Audience is the publisher's app (client) ID: the aud claim.
	Audience string
	// Callers are the accepted appid/azp values; empty means MarketplaceAppID.
	Callers []string
	// HTTPClient fetches discovery and keys; nil means a client with a 10-second timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Claims are the claims a valid webhook token carries.
type Claims struct {
	TenantID string `json:"tid"`
	AppID    string `json:"appid"`
	AZP      string `json:"azp"`
	jwt.RegisteredClaims
}

// Validator checks bearer tokens. It is safe for concurrent use and discovers the keys on first use, so a
// server starts even while Entra is unreachable.
type Validator struct {
	cfg  Config
	http *http.Client
	now  func() time.Time

	// discovery runs at most one discovery at a time; callers wait for it without holding mu.
	discovery singleflight.Group

	mu          sync.Mutex
	keys        keyfunc.Keyfunc
	issuers     map[string]bool
	stop        context.CancelFunc
	closed      bool
	failedUntil time.Time // a failed discovery is not retried before then
	failure     error
}

// NewValidator checks the configuration; keys are fetched on first use.
func NewValidator(cfg Config) (*Validator, error) {
	if cfg.TenantID == "" || cfg.Audience == "" {
		return nil, errors.New("entra: the publisher's tenant ID and app ID are required")
	}
	cfg.Authority = strings.TrimRight(cfg.Authority, "/")
	if cfg.Authority == "" {
		cfg.Authority = DefaultAuthority
	}
	if len(cfg.Callers) == 0 {
		cfg.Callers = []string{MarketplaceAppID}
	}
	v := &Validator{cfg: cfg, http: cfg.HTTPClient, now: cfg.Now}
	if v.http == nil {
		v.http = &http.Client{Timeout: 10 * time.Second}
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Prefetch starts discovery in the background, so that the first webhook after a start does not spend
// Microsoft's ten seconds on it. A failure counts as one on first use would (remembered for
// discoveryRetryAfter); the next token check after that tries again.
func (v *Validator) Prefetch() {
	go func() { _, _, _ = v.discover(context.Background()) }()
}

// Close stops the background key refresh.
func (v *Validator) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	if v.stop != nil {
		v.stop()
	}
}

// Validate checks an Authorization header value ("Bearer <jwt>") and returns the token's claims.
func (v *Validator) Validate(ctx context.Context, authorization string) (*Claims, error) {
	raw, ok := strings.CutPrefix(strings.TrimSpace(authorization), "Bearer ")
	if !ok || strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("%w: no bearer token", ErrInvalidToken)
	}
	keys, issuers, err := v.discover(ctx)
	if err != nil {
		return nil, err
	}
	claims := &Claims{}
	_, err = jwt.ParseWithClaims(strings.TrimSpace(raw), claims, keys.KeyfuncCtx(ctx),
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithAudience(v.cfg.Audience),
		jwt.WithLeeway(maxSkew),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.now),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if claims.TenantID != v.cfg.TenantID {
		return nil, fmt.Errorf("%w: tid %q is not the publisher's tenant", ErrInvalidToken, claims.TenantID)
	}
	if !v.knownCaller(claims) {
		return nil, fmt.Errorf("%w: caller (appid %q, azp %q) is not the Marketplace", ErrInvalidToken, claims.AppID, claims.AZP)
	}
	if !issuers[claims.Issuer] {
		return nil, fmt.Errorf("%w: issuer %q is not the publisher tenant's", ErrInvalidToken, claims.Issuer)
	}
	return claims, nil
}

func (v *Validator) knownCaller(c *Claims) bool {
	for _, want := range v.cfg.Callers {
		if c.AppID == want || c.AZP == want {
			return true
		}
	}
	return false
}

// discover returns the key set and the tenant's issuers, discovering them on first use. Concurrent
// callers share one discovery and each waits only as long as its own ctx allows; a failure is remembered
// for discoveryRetryAfter, so a slow or down Entra costs one request, not one per webhook.
func (v *Validator) discover(ctx context.Context) (keyfunc.Keyfunc, map[string]bool, error) {
	v.mu.Lock()
	keys, issuers := v.keys, v.issuers
	failed := v.now().Before(v.failedUntil)
	failure := v.failure
	v.mu.Unlock()
	if keys != nil {
		return keys, issuers, nil
	}
	if failed {
		return nil, nil, failure
	}
	ch := v.discovery.DoChan("discover", func() (any, error) { return nil, v.discoverOnce() })
	select {
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("%w: waiting for discovery: %v", ErrKeysUnavailable, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, nil, r.Err
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys, v.issuers, nil
}

// discoverOnce fetches the OpenID configuration and sets up the key set, which refreshes hourly and
// whenever a token names a key ID it does not know (keys rotate). It runs on its own context: the caller
// that happened to start it may give up, the others still want the answer.
func (v *Validator) discoverOnce() error {
	keys, issuers, stop, err := v.fetchKeys()
	v.mu.Lock()
	defer v.mu.Unlock()
	if err == nil && v.closed {
		stop()
		err = errors.New("validator closed")
	}
	if err != nil {
		err = fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
		v.failedUntil, v.failure = v.now().Add(discoveryRetryAfter), err
		return err
	}
	v.keys, v.issuers, v.stop = keys, issuers, stop
	return nil
}

func (v *Validator) fetchKeys() (keyfunc.Keyfunc, map[string]bool, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), discoveryTimeout)
	defer cancel()
	doc, err := v.openIDConfiguration(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	bg, stop := context.WithCancel(context.Background())
	storage, err := jwkset.NewStorageFromHTTP(doc.JWKSURI, jwkset.HTTPClientStorageOptions{
		Client:          v.http,
		Ctx:             bg,
		HTTPTimeout:     discoveryTimeout,
		RefreshInterval: time.Hour,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			slog.Default().WarnContext(ctx, "entra: refreshing signing keys failed", "error", err)
		},
	})
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{doc.JWKSURI: storage},
		RateLimitWaitMax:  5 * time.Second,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Minute), 1),
	})
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	keys, err := keyfunc.New(keyfunc.Options{Ctx: bg, Storage: client})
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	tid := v.cfg.TenantID
	// v1 and v2 tokens name the tenant's issuer differently; both are the tenant's own.
	issuers := map[string]bool{
		doc.Issuer:                             true,
		"https://sts.windows.net/" + tid + "/": true,
		v.cfg.Authority + "/" + tid + "/v2.0":  true,
		v.cfg.Authority + "/" + tid + "/":      true,
	}
	return keys, issuers, stop, nil
}

type openIDConfiguration struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

func (v *Validator) openIDConfiguration(ctx context.Context) (*openIDConfiguration, error) {
	u := v.cfg.Authority + "/" + v.cfg.TenantID + "/v2.0/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("OpenID discovery: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("OpenID discovery: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("OpenID discovery %s: status %d", u, resp.StatusCode)
	}
	var doc openIDConfiguration
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("OpenID discovery %s: %w", u, err)
	}
	if doc.JWKSURI == "" {
		return nil, fmt.Errorf("OpenID discovery %s: no jwks_uri", u)
	}
	doc.Issuer = strings.ReplaceAll(doc.Issuer, "{tenantid}", v.cfg.TenantID)
	return &doc, nil
}
