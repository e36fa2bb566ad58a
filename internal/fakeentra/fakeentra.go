// Package fakeentra is an Entra ID stand-in for tests of the client-credentials flow (MSAL): OpenID
// discovery for one tenant and a token endpoint that answers as the test says.
package fakeentra

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TenantID is the tenant the stand-in serves discovery for.
const TenantID = "tenant-1"

// Start serves discovery for TenantID over TLS (use the server's Client) and answers its token endpoint
// with token, until the test ends.
func Start(t testing.TB, token http.HandlerFunc) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"token_endpoint":         srv.URL + "/" + TenantID + "/oauth2/v2.0/token",
				"authorization_endpoint": srv.URL + "/" + TenantID + "/oauth2/v2.0/authorize",
				"issuer":                 srv.URL + "/" + TenantID + "/v2.0",
			})
		case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
			token(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Grant answers a token request with token when accept approves the parsed form, else as Entra refuses a
// client credential (401 invalid_client, AADSTS7000215).
func Grant(accept func(*http.Request) bool, token string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := r.ParseForm(); err != nil || !accept(r) {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client credential provided."})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": token})
	}
}
