package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// CSRF protection for the landing page's confirm button: a random nonce in a SameSite=Strict cookie, and in
// the form an HMAC of that nonce and the subscription ID. A forged cross-site POST has neither the cookie nor
// a MAC for it, and a MAC is good for one subscription only. Nothing is stored on the server.

const csrfCookie = "saasengine_csrf"

// signOutScope is what the sign-out forms' CSRF MAC is bound to, in place of a subscription ID.
const signOutScope = "sign-out"

func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request, subscriptionID string) string {
	nonce := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		nonce = c.Value
	} else {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		nonce = base64.RawURLEncoding.EncodeToString(b)
		// A page may hold two forms (confirm, sign out): the second token must use this nonce too.
		r.AddCookie(&http.Cookie{Name: csrfCookie, Value: nonce})
		http.SetCookie(w, &http.Cookie{
			Name: csrfCookie, Value: nonce, Path: "/", HttpOnly: true,
			// Behind a load balancer that ends TLS, the request reaching us is plain HTTP.
			Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https", SameSite: http.SameSiteStrictMode,
		})
	}
	return s.csrfMAC(nonce, subscriptionID)
}

func (s *Server) csrfMAC(nonce, subscriptionID string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(nonce))
	m.Write([]byte{0})
	m.Write([]byte(subscriptionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) csrfValid(r *http.Request, subscriptionID, token string) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(s.csrfMAC(c.Value, subscriptionID)), []byte(token))
}
