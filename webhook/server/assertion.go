package server

import (
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// CertificateAssertion authenticates the sign-in app with a certificate instead of a secret: it returns a
// SignInConfig.ClientAssertion that signs, for each code redeemed, a short-lived JWT naming the app (iss,
// sub) and the token endpoint (aud), with the certificate's thumbprints in its header, as Entra expects.
// pemData holds the certificate and its RSA private key.
func CertificateAssertion(clientID string, pemData []byte) (func(tokenURL string) (string, error), error) {
	certs, key, err := confidential.CertFromPEM(pemData, "")
	if err != nil {
		return nil, fmt.Errorf("sign-in certificate: %w", err)
	}
	if len(certs) == 0 {
		return nil, errors.New("sign-in certificate: no certificate in the PEM file")
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("sign-in certificate: the private key must be RSA")
	}
	sha1sum := sha1.Sum(certs[0].Raw)
	sha256sum := sha256.Sum256(certs[0].Raw)
	x5t := base64.RawURLEncoding.EncodeToString(sha1sum[:])
	x5tS256 := base64.RawURLEncoding.EncodeToString(sha256sum[:])
	return func(tokenURL string) (string, error) {
		now := time.Now()
		t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"aud": tokenURL, "iss": clientID, "sub": clientID, "jti": uuid.NewString(),
			"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		})
		t.Header["x5t"] = x5t
		t.Header["x5t#S256"] = x5tS256
		return t.SignedString(rsaKey)
	}, nil
}
