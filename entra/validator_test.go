package entra

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	tenant    = "11111111-2222-4333-8444-555555555555"
	publisher = "66666666-7777-4888-9999-aaaaaaaaaaaa"
)

// fakeEntra serves OpenID discovery and a JWKS whose keys the test can rotate.
type fakeEntra struct {
	srv *httptest.Server

	mu          sync.Mutex
	keys        map[string]*rsa.PrivateKey
	keyFetch    int
	discovery   bool
	discoveries int
	// gate, when set, holds discovery requests until it is closed: a slow Entra.
	gate chan struct{}
}

func newFakeEntra(t *testing.T) *fakeEntra {
	f := &fakeEntra{keys: map[string]*rsa.PrivateKey{}, discovery: true}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/"+tenant+"/v2.0/.well-known/openid-configuration" {
			f.mu.Lock()
			f.discoveries++
			gate := f.gate
			f.mu.Unlock()
			if gate != nil {
				<-gate
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		switch r.URL.Path {
		case "/" + tenant + "/v2.0/.well-known/openid-configuration":
			if !f.discovery {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"issuer": f.srv.URL + "/" + tenant + "/v2.0", "jwks_uri": f.srv.URL + "/" + tenant + "/discovery/v2.0/keys"})
		case "/" + tenant + "/discovery/v2.0/keys":
			f.keyFetch++
			var set []map[string]string
			for kid, k := range f.keys {
				set = append(set, map[string]string{
					"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
					"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
					"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
				})
			}
			json.NewEncoder(w).Encode(map[string]any{"keys": set})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeEntra) addKey(t *testing.T, kid string) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.keys[kid] = k
	f.mu.Unlock()
	return k
}

func validClaims(iss string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"aud": publisher, "tid": tenant, "azp": MarketplaceAppID, "iss": iss,
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func sign(t *testing.T, k *rsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + s
}

func newValidator(t *testing.T, f *fakeEntra) *Validator {
	v, err := NewValidator(Config{Authority: f.srv.URL, TenantID: tenant, Audience: publisher})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestValidTokens(t *testing.T) {
	f := newFakeEntra(t)
	k := f.addKey(t, "k1")
	v := newValidator(t, f)
	v2 := validClaims(f.srv.URL + "/" + tenant + "/v2.0")
	v1 := validClaims("https://sts.windows.net/" + tenant + "/")
	delete(v1, "azp")
	v1["appid"] = MarketplaceAppID
	skewed := validClaims(f.srv.URL + "/" + tenant + "/v2.0")
	skewed["exp"] = time.Now().Add(-30 * time.Second).Unix()
	for name, c := range map[string]jwt.MapClaims{"v2 token": v2, "v1 token": v1, "expired within the skew": skewed} {
		got, err := v.Validate(context.Background(), sign(t, k, "k1", c))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got.TenantID != tenant {
			t.Errorf("%s: claims %+v", name, got)
		}
	}
}

func TestForgedTokens(t *testing.T) {
	f := newFakeEntra(t)
	k := f.addKey(t, "k1")
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	v := newValidator(t, f)
	iss := f.srv.URL + "/" + tenant + "/v2.0"
	with := func(key string, val any) jwt.MapClaims {
		c := validClaims(iss)
		if val == nil {
			delete(c, key)
		} else {
			c[key] = val
		}
		return c
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims(iss)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hsTok := jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims(iss))
	hsTok.Header["kid"] = "k1"
	// The classic confusion attack: HMAC keyed with the public key's bytes.
	hs, _ := hsTok.SignedString(k.PublicKey.N.Bytes())

	cases := map[string]string{
		"no header":       "",
		"not bearer":      "Basic abc",
		"garbage":         "Bearer not.a.jwt",
		"wrong signature": sign(t, other, "k1", validClaims(iss)),
		"unknown kid":     sign(t, other, "k-unknown", validClaims(iss)),
		"wrong audience":  sign(t, k, "k1", with("aud", "someone-else")),
		"wrong tenant":    sign(t, k, "k1", with("tid", "99999999-2222-4333-8444-555555555555")),
		"wrong caller":    sign(t, k, "k1", with("azp", "00000000-0000-4000-8000-000000000000")),
		"no caller":       sign(t, k, "k1", with("azp", nil)),
		"foreign issuer":  sign(t, k, "k1", with("iss", "https://evil.example/"+tenant+"/v2.0")),
		"expired":         sign(t, k, "k1", with("exp", time.Now().Add(-2*time.Minute).Unix())),
		"no expiry":       sign(t, k, "k1", with("exp", nil)),
		"not yet valid":   sign(t, k, "k1", with("nbf", time.Now().Add(5*time.Minute).Unix())),
		"alg none":        "Bearer " + none,
		"HS256 with n":    "Bearer " + hs,
	}
	for name, header := range cases {
		_, err := v.Validate(context.Background(), header)
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: got %v, want ErrInvalidToken", name, err)
		}
	}
}

func TestKeyRotationRefreshesOnUnknownKID(t *testing.T) {
	f := newFakeEntra(t)
	k1 := f.addKey(t, "k1")
	v := newValidator(t, f)
	iss := f.srv.URL + "/" + tenant + "/v2.0"
	if _, err := v.Validate(context.Background(), sign(t, k1, "k1", validClaims(iss))); err != nil {
		t.Fatal(err)
	}
	k2 := f.addKey(t, "k2")
	if _, err := v.Validate(context.Background(), sign(t, k2, "k2", validClaims(iss))); err != nil {
		t.Fatalf("a rotated-in key must be fetched: %v", err)
	}
	f.mu.Lock()
	fetches := f.keyFetch
	f.mu.Unlock()
	if fetches < 2 {
		t.Fatalf("keys fetched %d times", fetches)
	}
}

// clock is a test clock that runs with real time plus an offset the test moves.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time              { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration)     { c.offset.Add(int64(d)) }
func (f *fakeEntra) discoveryCount() int     { f.mu.Lock(); defer f.mu.Unlock(); return f.discoveries }
func (f *fakeEntra) keyFetches() int         { f.mu.Lock(); defer f.mu.Unlock(); return f.keyFetch }
func (f *fakeEntra) setDiscovery(ok bool)    { f.mu.Lock(); f.discovery = ok; f.mu.Unlock() }
func (f *fakeEntra) setGate(g chan struct{}) { f.mu.Lock(); f.gate = g; f.mu.Unlock() }

func newValidatorWithClock(t *testing.T, f *fakeEntra, c *clock) *Validator {
	v, err := NewValidator(Config{Authority: f.srv.URL, TenantID: tenant, Audience: publisher, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestDiscoveryDownIsUnavailableNotUnauthorized(t *testing.T) {
	f := newFakeEntra(t)
	k := f.addKey(t, "k1")
	f.setDiscovery(false)
	c := &clock{}
	v := newValidatorWithClock(t, f, c)
	iss := f.srv.URL + "/" + tenant + "/v2.0"
	if _, err := v.Validate(context.Background(), sign(t, k, "k1", validClaims(iss))); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("got %v, want ErrKeysUnavailable", err)
	}
	f.setDiscovery(true)
	// The failure is remembered for a few seconds: no new request, still unavailable.
	if _, err := v.Validate(context.Background(), sign(t, k, "k1", validClaims(iss))); !errors.Is(err, ErrKeysUnavailable) || f.discoveryCount() != 1 {
		t.Fatalf("right after a failed discovery: %v, %d discoveries", err, f.discoveryCount())
	}
	c.advance(discoveryRetryAfter + time.Second)
	if _, err := v.Validate(context.Background(), sign(t, k, "k1", validClaims(iss))); err != nil {
		t.Fatalf("discovery must be retried once Entra is back: %v", err)
	}
}

// While discovery is slow, concurrent webhooks share the one request instead of queueing behind it and
// each making its own; when it fails, they all get ErrKeysUnavailable from it.
func TestSlowDiscoveryIsMadeOnceForConcurrentCalls(t *testing.T) {
	for _, up := range []bool{false, true} {
		t.Run(map[bool]string{false: "failing", true: "succeeding"}[up], func(t *testing.T) {
			f := newFakeEntra(t)
			k := f.addKey(t, "k1")
			f.setDiscovery(up)
			gate := make(chan struct{})
			f.setGate(gate)
			v := newValidatorWithClock(t, f, &clock{})
			tok := sign(t, k, "k1", validClaims(f.srv.URL+"/"+tenant+"/v2.0"))

			const callers = 8
			errs := make(chan error, callers)
			for range callers {
				go func() {
					_, err := v.Validate(context.Background(), tok)
					errs <- err
				}()
			}
			for deadline := time.Now().Add(10 * time.Second); f.discoveryCount() == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no discovery request")
				}
			}
			close(gate)
			for range callers {
				err := <-errs
				if up && err != nil || !up && !errors.Is(err, ErrKeysUnavailable) {
					t.Errorf("validation: %v", err)
				}
			}
			if n := f.discoveryCount(); n != 1 {
				t.Fatalf("%d discovery requests for %d concurrent validations, want 1", n, callers)
			}
		})
	}
}

// A caller whose own deadline passes while discovery is slow gives up, without ending the discovery for
// the others.
func TestWaitingForDiscoveryHonoursTheCallersContext(t *testing.T) {
	f := newFakeEntra(t)
	k := f.addKey(t, "k1")
	gate := make(chan struct{})
	f.setGate(gate)
	v := newValidatorWithClock(t, f, &clock{})
	tok := sign(t, k, "k1", validClaims(f.srv.URL+"/"+tenant+"/v2.0"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Validate(ctx, tok); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(gate)
	if _, err := v.Validate(context.Background(), tok); err != nil {
		t.Fatalf("after the slow discovery: %v", err)
	}
	if n := f.discoveryCount(); n != 1 {
		t.Fatalf("%d discovery requests, want 1", n)
	}
}

// Prefetch discovers the keys before any token arrives; the first token is then checked without a
// request to Entra.
func TestPrefetchDiscoversBeforeTheFirstToken(t *testing.T) {
	f := newFakeEntra(t)
	k := f.addKey(t, "k1")
	v := newValidator(t, f)
	v.Prefetch()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v.mu.Lock()
		ready := v.keys != nil
		v.mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no keys discovered without a token")
		}
	}
	discoveries, fetches := f.discoveryCount(), f.keyFetches()
	if discoveries != 1 || fetches != 1 {
		t.Fatalf("prefetch made %d discoveries and %d key fetches, want 1 and 1", discoveries, fetches)
	}
	if _, err := v.Validate(context.Background(), sign(t, k, "k1", validClaims(f.srv.URL+"/"+tenant+"/v2.0"))); err != nil {
		t.Fatal(err)
	}
	if f.discoveryCount() != 1 || f.keyFetches() != 1 {
		t.Fatalf("the first token asked Entra again: %d discoveries, %d key fetches", f.discoveryCount(), f.keyFetches())
	}
}
