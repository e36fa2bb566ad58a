package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// SignIn configures the buyers' Entra ID sign-in on the landing page (SIGNIN_*).
type SignIn struct {
	// Mode is "entra" (default) or "none"; "none" is refused unless SIGNIN_INSECURE_NO_AUTH=true and the
	// Marketplace API is an emulator's.
	Mode           string // SIGNIN_MODE
	InsecureNoAuth bool   // SIGNIN_INSECURE_NO_AUTH
	// Authority is Entra's host (SIGNIN_AUTHORITY, default https://login.microsoftonline.com; the
	// emulator's URL in development).
	Authority string
	// Tenant is "organizations" (default: work and school accounts of any organisation), "common" (personal
	// accounts too) or one tenant ID (SIGNIN_TENANT).
	Tenant   string
	ClientID string // SIGNIN_CLIENT_ID: the sign-in app (multi-tenant), not the Marketplace API's app
	// One of a client secret or a certificate (PEM with certificate and key).
	ClientSecret string // SIGNIN_CLIENT_SECRET
	CertFile     string // SIGNIN_CERT_FILE
	// RedirectURL is https://<host>/landing/signin, registered on the app as a Web redirect URI.
	RedirectURL string // SIGNIN_REDIRECT_URL
}

// SignInFromEnv reads the SIGNIN_* variables.
func SignInFromEnv(g Getenv) (SignIn, error) {
	s := SignIn{
		Mode:         g.str("SIGNIN_MODE", "entra"),
		Authority:    g.str("SIGNIN_AUTHORITY", "https://login.microsoftonline.com"),
		Tenant:       g.str("SIGNIN_TENANT", "organizations"),
		ClientID:     g.str("SIGNIN_CLIENT_ID", ""),
		ClientSecret: g.str("SIGNIN_CLIENT_SECRET", ""),
		CertFile:     g.str("SIGNIN_CERT_FILE", ""),
		RedirectURL:  g.str("SIGNIN_REDIRECT_URL", ""),
	}
	var err error
	if s.InsecureNoAuth, err = g.boolean("SIGNIN_INSECURE_NO_AUTH"); err != nil {
		return s, err
	}
	switch s.Mode {
	case "entra":
	case "none":
		if !s.InsecureNoAuth {
			return s, errors.New("SIGNIN_MODE=none lets anyone holding a purchase link confirm it without signing in; set SIGNIN_INSECURE_NO_AUTH=true as well if you really mean it (emulator only)")
		}
		if base := g.str("MARKETPLACE_BASE_URL", "https://marketplaceapi.microsoft.com/api"); strings.HasPrefix(base, "https://marketplaceapi.microsoft.com") {
			return s, errors.New("SIGNIN_MODE=none is for an emulator only: Microsoft's certification requires Entra ID sign-in on the landing page of a live offer")
		}
		return s, nil
	default:
		return s, fmt.Errorf("SIGNIN_MODE %q: want entra or none", s.Mode)
	}
	if s.ClientID == "" || s.RedirectURL == "" {
		return s, errors.New("buyers must sign in with Entra ID on the landing page: set SIGNIN_CLIENT_ID and SIGNIN_REDIRECT_URL (https://<host>/landing/signin) of a multi-tenant sign-in app, with SIGNIN_CLIENT_SECRET or SIGNIN_CERT_FILE")
	}
	if (s.ClientSecret == "") == (s.CertFile == "") {
		return s, errors.New("set exactly one of SIGNIN_CLIENT_SECRET and SIGNIN_CERT_FILE")
	}
	u, err := url.Parse(s.RedirectURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
		return s, fmt.Errorf("SIGNIN_REDIRECT_URL %q: want an https URL (http only on localhost), as Entra requires", s.RedirectURL)
	}
	if _, err := url.Parse(s.Authority); err != nil || !strings.HasPrefix(s.Authority, "http") {
		return s, fmt.Errorf("SIGNIN_AUTHORITY %q is not a URL", s.Authority)
	}
	return s, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
