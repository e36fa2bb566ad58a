package marketplace

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/golang-jwt/jwt/v5"
)

// TokenSource hands out bearer tokens for the Marketplace APIs. Implementations cache and refresh.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// DefaultAuthority is Entra ID's public-cloud authority host.
const DefaultAuthority = "https://login.microsoftonline.com"

// MSALConfig names the publisher's Entra ID app registration: the tenant and application (client) ID entered
// in Partner Center's Technical configuration, and one credential.
type MSALConfig struct {
	// Authority is the Entra host; empty means DefaultAuthority.
	Authority string
	TenantID  string
	ClientID  string
	// ClientSecret, or CertificatePEM (certificate and private key, PEM) with CertificatePassword.
	ClientSecret        string
	CertificatePEM      []byte
	CertificatePassword string
	// SendX5C sends the certificate chain, for subject-name/issuer authentication.
	SendX5C bool
	// HTTPClient overrides MSAL's HTTP client (tests, proxies).
	HTTPClient *http.Client
}

// MSALTokenSource gets tokens through MSAL's confidential client (client-credentials flow) with the scope
// of the Marketplace API. MSAL caches the token and refreshes it before it expires.
type MSALTokenSource struct {
	client confidential.Client
}

// NewMSALTokenSource builds a token source from the app registration.
func NewMSALTokenSource(cfg MSALConfig) (*MSALTokenSource, error) {
	if cfg.TenantID == "" || cfg.ClientID == "" {
		return nil, errors.New("marketplace: MSAL needs a tenant ID and a client ID")
	}
	var cred confidential.Credential
	var err error
	switch {
	case cfg.ClientSecret != "" && len(cfg.CertificatePEM) > 0:
		return nil, errors.New("marketplace: give a client secret or a certificate, not both")
	case cfg.ClientSecret != "":
		cred, err = confidential.NewCredFromSecret(cfg.ClientSecret)
	case len(cfg.CertificatePEM) > 0:
		var certs []*x509.Certificate
		var key crypto.PrivateKey
		certs, key, err = confidential.CertFromPEM(cfg.CertificatePEM, cfg.CertificatePassword)
		if err == nil {
			cred, err = confidential.NewCredFromCert(certs, key)
		}
	default:
		return nil, errors.New("marketplace: MSAL needs a client secret or a certificate")
	}
	if err != nil {
		return nil, fmt.Errorf("marketplace: MSAL credential: %w", err)
	}
	authority := strings.TrimRight(cfg.Authority, "/")
	if authority == "" {
		authority = DefaultAuthority
	}
	var opts []confidential.Option
	if cfg.HTTPClient != nil {
		opts = append(opts, confidential.WithHTTPClient(cfg.HTTPClient))
	}
	if cfg.SendX5C {
		opts = append(opts, confidential.WithX5C())
	}
	if authority != DefaultAuthority {
		// Instance discovery asks the public cloud about the host; a private or test authority is not known there.
		opts = append(opts, confidential.WithInstanceDiscovery(false))
	}
	client, err := confidential.New(authority+"/"+cfg.TenantID, cfg.ClientID, cred, opts...)
	if err != nil {
		return nil, fmt.Errorf("marketplace: MSAL client: %w", err)
	}
	return &MSALTokenSource{client: client}, nil
}

// Token returns a cached token while it is valid, else acquires a new one.
func (s *MSALTokenSource) Token(ctx context.Context) (string, error) {
	scopes := []string{Scope}
	if res, err := s.client.AcquireTokenSilent(ctx, scopes); err == nil {
		return res.AccessToken, nil
	}
	res, err := s.client.AcquireTokenByCredential(ctx, scopes)
	if err != nil {
		return "", fmt.Errorf("MSAL client credentials: %w", err)
	}
	return res.AccessToken, nil
}

// DevTokenSource mints locally signed (HS256) access tokens shaped like Entra's for the Marketplace API:
// aud is the Marketplace app, tid and appid name the publisher. Emulators tell publishers apart by those
// claims, as Microsoft does, so the client code path is the same in development and production. Never
// point it at the real API: Microsoft rejects these tokens.
type DevTokenSource struct {
	TenantID string
	ClientID string
	// Secret signs the tokens; an emulator given the same secret verifies them.
	Secret []byte
	// TTL is the token lifetime; zero means one hour.
	TTL time.Duration

	mu      sync.Mutex
	token   string
	expires time.Time
}

// Token returns a cached token until five minutes before it expires.
func (s *DevTokenSource) Token(context.Context) (string, error) {
	if s.TenantID == "" || s.ClientID == "" {
		return "", errors.New("dev token source needs a tenant ID and a client ID")
	}
	if len(s.Secret) == 0 {
		return "", errors.New("dev token source needs a signing secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.token != "" && now.Add(5*time.Minute).Before(s.expires) {
		return s.token, nil
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	exp := now.Add(ttl)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"aud":   ResourceAppID,
		"iss":   "https://sts.windows.net/" + s.TenantID + "/",
		"tid":   s.TenantID,
		"appid": s.ClientID,
		"azp":   s.ClientID,
		"oid":   s.ClientID,
		"sub":   s.ClientID,
		"iat":   now.Unix(),
		"nbf":   now.Add(-time.Minute).Unix(),
		"exp":   exp.Unix(),
		"ver":   "1.0",
	}).SignedString(s.Secret)
	if err != nil {
		return "", fmt.Errorf("sign dev token: %w", err)
	}
	s.token, s.expires = tok, exp
	return tok, nil
}
