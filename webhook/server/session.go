package server

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
)

// Cookies of the buyer's sign-in: encrypted (AES-256-CTR) and authenticated (HMAC-SHA256) with keys
// derived from SESSION_KEY, one pair per purpose, so that one cookie cannot stand in for another; each
// carries its issue time, and a cookie older than its lifetime is refused whatever the browser kept.

const (
	sessionCookie = "saasengine_session"
	// pendingPrefix names the cookie of a sign-in in progress; the rest of the name comes from its state,
	// so that sign-ins started in two tabs do not overwrite each other.
	pendingPrefix = "saasengine_signin_"
	// sessionTTL is how long a sign-in lasts; the buyer then signs in again (silently, if still signed in
	// to Microsoft).
	sessionTTL = 8 * time.Hour
	// pendingTTL bounds the time between leaving for Microsoft's sign-in page and coming back.
	pendingTTL = 10 * time.Minute
)

// cookieCodec seals values into cookies for one purpose.
type cookieCodec struct {
	sc  *securecookie.SecureCookie
	ttl time.Duration
}

func newCookieCodec(key []byte, purpose string, ttl time.Duration) (*cookieCodec, error) {
	hashKey, err := hkdf.Key(sha256.New, key, nil, "saasengine cookie mac: "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("cookie keys: %w", err)
	}
	blockKey, err := hkdf.Key(sha256.New, key, nil, "saasengine cookie encryption: "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("cookie keys: %w", err)
	}
	sc := securecookie.New(hashKey, blockKey).MaxAge(int(ttl.Seconds())).SetSerializer(securecookie.JSONEncoder{})
	return &cookieCodec{sc: sc, ttl: ttl}, nil
}

// set writes v into the cookie name. persistent cookies carry a Max-Age; the session cookie does not, so
// it also ends with the browser.
func (c *cookieCodec) set(w http.ResponseWriter, r *http.Request, name string, v any, persistent bool) error {
	enc, err := c.sc.Encode(name, v)
	if err != nil {
		return fmt.Errorf("sealing cookie: %w", err)
	}
	ck := &http.Cookie{
		Name: name, Value: enc, Path: "/", HttpOnly: true, Secure: secureRequest(r),
		// Lax, not Strict: the buyer arrives from Microsoft's pages (the portal's link, the sign-in's way
		// back), top-level navigations that must carry the cookie; cross-site POSTs do not carry it.
		SameSite: http.SameSiteLaxMode,
	}
	if persistent {
		ck.MaxAge = int(c.ttl.Seconds())
	}
	http.SetCookie(w, ck)
	return nil
}

// get reads the cookie name into v; false if it is absent, forged, expired or sealed for another purpose.
func (c *cookieCodec) get(r *http.Request, name string, v any) bool {
	ck, err := r.Cookie(name)
	if err != nil || ck.Value == "" {
		return false
	}
	return c.sc.Decode(name, ck.Value, v) == nil
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
}

// secureRequest reports an HTTPS connection, also behind a load balancer that ends TLS and says so.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}
