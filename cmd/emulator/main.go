// Command emulator runs the Marketplace emulator on its own: the SaaS Fulfillment, Operations and
// Metering APIs, signed webhooks, the control API and a purchase page. See emulator/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"saasengine/emulator"
	"saasengine/internal/probe"
)

func main() {
	probe.FromArgs(os.Args)
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "emulator:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run() error {
	addr := flag.String("addr", env("EMULATOR_ADDR", "127.0.0.1:3978"), "listen address (EMULATOR_ADDR)")
	configFile := flag.String("config", env("EMULATOR_CONFIG", ""), "JSON configuration file; empty uses the built-in demo offer (EMULATOR_CONFIG)")
	stateFile := flag.String("state", env("EMULATOR_STATE_FILE", "data/emulator-state.json"), "state file, empty for memory only (EMULATOR_STATE_FILE)")
	publicURL := flag.String("public-url", env("EMULATOR_PUBLIC_URL", ""), "base URL others reach the emulator at; default http://<addr> (EMULATOR_PUBLIC_URL)")
	webhookURL := flag.String("webhook-url", env("EMULATOR_WEBHOOK_URL", ""), "publisher webhook URL for every publisher without one (EMULATOR_WEBHOOK_URL)")
	landingURL := flag.String("landing-url", env("EMULATOR_LANDING_URL", ""), "publisher landing page URL for every publisher without one (EMULATOR_LANDING_URL)")
	browserURL := flag.String("browser-url", env("EMULATOR_BROWSER_URL", ""), "base URL browsers reach the emulator at for buyers' sign-in, when not the public URL (EMULATOR_BROWSER_URL)")
	tokenSecret := flag.String("token-secret", env("EMULATOR_TOKEN_SECRET", ""), "HS256 secret publishers' development tokens must be signed with, for publishers without one (EMULATOR_TOKEN_SECRET)")
	readLag := flag.String("read-lag", env("EMULATOR_READ_LAG", ""), "how long Get/List subscription lag a finished operation, e.g. 2s or 0; default the configuration's readLag, else 2s (EMULATOR_READ_LAG)")
	flag.Parse()

	log, err := zap.NewProduction()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	cfg := emulator.DemoConfig()
	if *configFile != "" {
		if cfg, err = emulator.LoadConfig(*configFile); err != nil {
			return err
		}
	}
	if *readLag != "" {
		d, err := time.ParseDuration(*readLag)
		if err != nil || d < 0 {
			return fmt.Errorf("read lag %q: want a duration such as 2s, or 0", *readLag)
		}
		cfg.ReadLag = emulator.NewDuration(d)
	}
	for i := range cfg.Publishers {
		if cfg.Publishers[i].WebhookURL == "" {
			cfg.Publishers[i].WebhookURL = *webhookURL
		}
		if cfg.Publishers[i].TokenSecret == "" {
			cfg.Publishers[i].TokenSecret = *tokenSecret
		}
		if cfg.Publishers[i].LandingURL == "" {
			cfg.Publishers[i].LandingURL = *landingURL
		}
	}
	if cfg.SignIn.BrowserURL == "" {
		cfg.SignIn.BrowserURL = *browserURL
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if *publicURL == "" {
		*publicURL = "http://" + ln.Addr().String()
	}
	emu, err := emulator.New(emulator.Options{Config: cfg, StateFile: *stateFile, PublicURL: *publicURL, Logger: log})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	for _, p := range cfg.Publishers {
		log.Info("publisher", zap.String("id", p.ID), zap.String("tenantId", p.TenantID), zap.String("appId", p.AppID),
			zap.String("webhookUrl", p.WebhookURL), zap.String("landingUrl", p.LandingURL))
	}
	log.Info("Marketplace emulator listening",
		zap.String("purchasePage", *publicURL+"/"),
		zap.String("apiBaseUrl", emu.APIBaseURL()),
		zap.String("entraAuthority", emu.Authority()),
		zap.String("controlApi", *publicURL+"/control/state"))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return emu.Close()
}
