// Package frontend assembles the engine's HTTP front end (webhook, landing and manage pages, admin API,
// codec endpoint) from the configuration the binaries read, so that webhook/server itself knows nothing
// of environment variables. The webhook binary and cmd/allinone build their server here.
package frontend

import (
	"context"
	"fmt"
	"os"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"saasengine/config"
	"saasengine/entra"
	"saasengine/webhook/server"
	"saasengine/workflows/metering"
	"saasengine/workflows/subscription"
)

// New wires the HTTP server to Temporal, the Marketplace API (resolver, for the landing page) and
// Entra (for webhook tokens).
func New(c client.Client, tc config.Temporal, wc config.Webhook, resolver server.Resolver, logger *zap.Logger) (*server.Server, error) {
	meter := metering.Client{Temporal: c, TaskQueue: tc.TaskQueue, Options: metering.Options{Grace: wc.MeteringGrace}}
	if plans, ok := resolver.(metering.Plans); ok {
		// The Marketplace client reads plans too: usage of a dimension the plan lacks is refused at once.
		meter.Dimensions = &metering.Dimensions{Marketplace: plans}
	}
	cfg := server.Config{
		WebhookPath:           wc.Path,
		InsecureNoWebhookAuth: wc.Auth == "none" && wc.InsecureNoAuth,
		DecisionWait:          wc.DecisionWait,
		CommandWait:           wc.CommandWait,
		Subscriptions:         server.Temporal{Client: subscription.New(c, tc.TaskQueue, subscription.Options{RequireApproval: wc.RequireApproval})},
		Meter:                 meter,
		Resolver:              resolver,
		SessionKey:            []byte(wc.SessionKey),
		AdminToken:            wc.AdminToken,
		Ready: func(ctx context.Context) error {
			_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
		Logger: logger,
	}
	cfg.Brand = server.Brand{
		ProductName: wc.Brand.ProductName, LogoURL: wc.Brand.LogoURL, AccentColor: wc.Brand.AccentColor,
		SupportURL: wc.Brand.SupportURL, PrivacyURL: wc.Brand.PrivacyURL, TermsURL: wc.Brand.TermsURL,
		AppURL: wc.Brand.AppURL, Offers: map[string]server.OfferBrand{},
	}
	for id, name := range wc.Brand.OfferNames {
		o := cfg.Brand.Offers[id]
		o.Name = name
		cfg.Brand.Offers[id] = o
	}
	for id, u := range wc.Brand.OfferAppURLs {
		o := cfg.Brand.Offers[id]
		o.AppURL = u
		cfg.Brand.Offers[id] = o
	}
	if pl, ok := resolver.(server.PlanLister); ok {
		cfg.Plans = pl
	}
	codec, err := tc.Codec()
	if err != nil {
		return nil, err
	}
	if codec != nil {
		cfg.Codec, cfg.CodecPathKey, cfg.CodecOrigins = codec, wc.CodecPathKey, wc.CodecOrigins
	}
	switch wc.SignIn.Mode {
	case "entra":
		si := &server.SignInConfig{Authority: wc.SignIn.Authority, Tenant: wc.SignIn.Tenant, ClientID: wc.SignIn.ClientID, ClientSecret: wc.SignIn.ClientSecret, RedirectURL: wc.SignIn.RedirectURL}
		if wc.SignIn.CertFile != "" {
			pem, err := os.ReadFile(wc.SignIn.CertFile)
			if err != nil {
				return nil, fmt.Errorf("SIGNIN_CERT_FILE: %w", err)
			}
			if si.ClientAssertion, err = server.CertificateAssertion(wc.SignIn.ClientID, pem); err != nil {
				return nil, err
			}
		}
		cfg.SignIn = si
	case "none":
		cfg.InsecureNoSignIn = wc.SignIn.InsecureNoAuth
	default:
		return nil, fmt.Errorf("server: sign-in mode %q: want entra or none", wc.SignIn.Mode)
	}
	if wc.Auth == "entra" {
		v, err := entra.NewValidator(entra.Config{Authority: wc.EntraAuthority, TenantID: wc.TenantID, Audience: wc.AppID})
		if err != nil {
			return nil, err
		}
		// The server is about to serve: have the keys before the first webhook needs them.
		v.Prefetch()
		cfg.Validator = v
	}
	return server.New(cfg)
}
