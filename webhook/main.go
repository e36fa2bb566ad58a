// Command webhook is the engine's HTTP server: Microsoft's connection webhook, the buyer's landing page,
// the admin API and the health and metrics endpoints. It keeps no state: every request is answered only
// once the subscription's Temporal workflow has what it carries. Configuration is by environment
// variables (README.md, "Configuration").
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"saasengine/config"
	"saasengine/internal/probe"
	"saasengine/tracing"
	"saasengine/webhook/frontend"
	"saasengine/webhook/server"
)

func main() {
	probe.FromArgs(os.Args)
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "webhook:", err)
		os.Exit(1)
	}
}

func run() error {
	getenv := config.Getenv(os.Getenv)
	logger, err := config.NewLogger(config.ObservabilityFromEnv(getenv))
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	stopTracing, err := tracing.Setup(context.Background(), "saasengine-webhook", getenv)
	if err != nil {
		return err
	}
	defer stopTracing()
	tc := config.TemporalFromEnv(getenv)
	wc, err := config.WebhookFromEnv(getenv)
	if err != nil {
		return err
	}
	mc := config.MarketplaceFromEnv(getenv)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Lazy: the server comes up (and says so on /readyz) even while Temporal is not reachable yet.
	c, err := config.DialLazy(tc, logger, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	api, err := mc.NewClient(logger)
	if err != nil {
		return err
	}
	h, err := frontend.New(c, tc, wc, api, logger)
	if err != nil {
		return err
	}
	return server.Serve(ctx, wc.ListenAddr, h, logger)
}
