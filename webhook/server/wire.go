package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"saasengine/config"
	"saasengine/entra"
	"saasengine/metering"
	"saasengine/subscriptions"
	"saasengine/workflows"
)

// FromConfig wires the HTTP server to Temporal, the Marketplace API (resolver, for the landing page) and
// Entra (for webhook tokens).
func FromConfig(c client.Client, tc config.Temporal, wc config.Webhook, resolver Resolver, logger *zap.Logger) (*Server, error) {
	meter := metering.Client{Temporal: c, TaskQueue: tc.TaskQueue, Options: metering.Options{Grace: wc.MeteringGrace}}
	if plans, ok := resolver.(metering.Plans); ok {
		// The Marketplace client reads plans too: usage of a dimension the plan lacks is refused at once.
		meter.Dimensions = &metering.Dimensions{Marketplace: plans}
	}
	cfg := Config{
		WebhookPath:           wc.Path,
		InsecureNoWebhookAuth: wc.Auth == "none" && wc.InsecureNoAuth,
		DecisionWait:          wc.DecisionWait,
		CommandWait:           wc.CommandWait,
		Subscriptions:         Temporal{Client: subscriptions.New(c, tc.TaskQueue, workflows.Options{RequireApproval: wc.RequireApproval})},
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
	if wc.Auth == "entra" {
		v, err := entra.NewValidator(entra.Config{Authority: wc.EntraAuthority, TenantID: wc.TenantID, Audience: wc.AppID})
		if err != nil {
			return nil, err
		}
		cfg.Validator = v
	}
	return New(cfg)
}

// Serve runs h on addr until ctx ends, then drains requests for up to 20 seconds.
func Serve(ctx context.Context, addr string, h http.Handler, logger *zap.Logger) error {
	srv := HTTPServer(addr, h)
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("webhook server listening", zap.String("addr", addr))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
