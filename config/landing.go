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

// Brand makes the landing page look like the vendor's product (BRAND_*).
type Brand struct {
	ProductName string // BRAND_PRODUCT_NAME
	LogoURL     string // BRAND_LOGO_URL: https URL (or a path on the webhook server's host)
	AccentColor string // BRAND_ACCENT_COLOR: #rrggbb; the pages fit it to WCAG AA contrast in both colour schemes
	SupportURL  string // BRAND_SUPPORT_URL: https: or mailto:
	PrivacyURL  string // BRAND_PRIVACY_URL
	TermsURL    string // BRAND_TERMS_URL
	AppURL      string // BRAND_APP_URL: where "Open <product>" leads once the account is ready
	// Per offer: BRAND_OFFER_NAMES and BRAND_OFFER_APP_URLS, "offerId=value;offerId=value".
	OfferNames   map[string]string
	OfferAppURLs map[string]string
}

// BrandFromEnv reads the BRAND_* variables.
func BrandFromEnv(g Getenv) (Brand, error) {
	b := Brand{
		ProductName: g.str("BRAND_PRODUCT_NAME", ""),
		LogoURL:     g.str("BRAND_LOGO_URL", ""),
		AccentColor: g.str("BRAND_ACCENT_COLOR", ""),
		SupportURL:  g.str("BRAND_SUPPORT_URL", ""),
		PrivacyURL:  g.str("BRAND_PRIVACY_URL", ""),
		TermsURL:    g.str("BRAND_TERMS_URL", ""),
		AppURL:      g.str("BRAND_APP_URL", ""),
	}
	var err error
	if b.OfferNames, err = offerMap("BRAND_OFFER_NAMES", g.str("BRAND_OFFER_NAMES", "")); err != nil {
		return b, err
	}
	if b.OfferAppURLs, err = offerMap("BRAND_OFFER_APP_URLS", g.str("BRAND_OFFER_APP_URLS", "")); err != nil {
		return b, err
	}
	return b, nil
}

// offerMap reads "offerId=value;offerId=value" (semicolons, since names may hold commas).
func offerMap(name, v string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(v, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !ok || k == "" || val == "" {
			return nil, fmt.Errorf("%s: %q is not offerId=value", name, part)
		}
		out[k] = val
	}
	return out, nil
}
