package marketplace

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"saasengine/internal/fakeentra"
)

// A certificate credential: MSAL signs a client assertion with the certificate's key, which Entra checks
// against the certificate registered on the app.
func TestMSALTokenSourceWithCertificate(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "saasengine"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)

	signedByCert := func(r *http.Request) bool {
		if r.Form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || r.Form.Get("client_secret") != "" {
			return false
		}
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(r.Form.Get("client_assertion"), claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
			jwt.WithValidMethods([]string{"RS256", "PS256"}))
		return err == nil && claims["iss"] == "app-1" && claims["sub"] == "app-1"
	}
	srv := fakeentra.Start(t, fakeentra.Grant(signedByCert, "cert-token"))

	src, err := NewMSALTokenSource(MSALConfig{Authority: srv.URL, TenantID: fakeentra.TenantID, ClientID: "app-1", CertificatePEM: pemBytes, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := src.Token(context.Background()); err != nil || tok != "cert-token" {
		t.Fatalf("token %q, %v", tok, err)
	}

	// A certificate Entra does not know (another key) is refused, loudly and for good.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	der2, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &other.PublicKey, other)
	otherPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der2}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)})...)
	bad, err := NewMSALTokenSource(MSALConfig{Authority: srv.URL, TenantID: fakeentra.TenantID, ClientID: "app-1", CertificatePEM: otherPEM, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewClient(srv.URL+"/api", bad)
	_, err = c.GetSubscription(context.Background(), "sub")
	if e, ok := AsError(err); !ok || e.Code != "TokenAcquisitionFailed" || e.Retryable {
		t.Fatalf("an unknown certificate must fail loudly and not be retried: %v", err)
	}

	if _, err := NewMSALTokenSource(MSALConfig{TenantID: "t", ClientID: "c", CertificatePEM: []byte("not a certificate")}); err == nil {
		t.Error("a malformed certificate must be an error")
	}
	if _, err := NewMSALTokenSource(MSALConfig{TenantID: "t", ClientID: "c", ClientSecret: "s", CertificatePEM: pemBytes}); err == nil {
		t.Error("a secret and a certificate together must be an error")
	}
}

// A failed call is logged with both request IDs, so Microsoft's support can find it, and never with the
// bearer token.
func TestFailuresAreLoggedWithRequestIDsNotTokens(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":{"code":"InternalServerError","message":"boom"}}`))
	}))
	defer api.Close()
	core, logs := observer.New(zap.DebugLevel)
	tokens := &DevTokenSource{TenantID: "tenant", ClientID: "client", Secret: []byte("secret")}
	bearer, err := tokens.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(api.URL, tokens, WithLogger(zap.New(core)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSubscription(WithCorrelationID(context.Background(), "4a1c5a0e-0b7e-4c53-9d8e-2f1b3c4d5e6f"), "sub-1")
	e, ok := AsError(err)
	if !ok || e.StatusCode != http.StatusInternalServerError {
		t.Fatalf("got %v", err)
	}
	if logs.Len() == 0 {
		t.Fatal("a failed call was not logged")
	}
	found := false
	for _, entry := range logs.All() {
		fields := entry.ContextMap()
		if fields["requestId"] == e.RequestID && e.RequestID != "" && fields["correlationId"] == "4a1c5a0e-0b7e-4c53-9d8e-2f1b3c4d5e6f" {
			found = true
		}
		b, _ := json.Marshal(fields)
		if strings.Contains(entry.Message+string(b), bearer) || strings.Contains(string(b), "Bearer ") {
			t.Fatalf("the bearer token reached the log: %s %s", entry.Message, b)
		}
	}
	if !found {
		t.Fatalf("no log entry carries both request IDs: %+v", logs.All())
	}
}
