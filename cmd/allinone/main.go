// Command allinone runs the whole engine in one process on one machine: an embedded Temporal server with
// its Web UI (SQLite under the data folder, so a restart keeps every workflow), the Marketplace emulator
// with its demo offer, the worker, and the webhook/landing/admin server, wired to each other. The same
// environment variables as the separate binaries point any part at a real service instead: set
// TEMPORAL_ADDRESS to use a Temporal cluster, MARKETPLACE_BASE_URL (with real credentials) to use
// Microsoft's API instead of the emulator.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"saasengine/config"
	"saasengine/devserver"
	"saasengine/emulator"
	"saasengine/engine"
	"saasengine/reconcile"
	"saasengine/webhook/server"
	"saasengine/workflows"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "allinone:", err)
		os.Exit(1)
	}
}

func run() error {
	dataDir := flag.String("data", "data", "folder for Temporal's SQLite file, the emulator's state and the demo tenants")
	temporalPort := flag.Int("temporal-port", 7233, "embedded Temporal's gRPC port")
	uiPort := flag.Int("ui-port", 8233, "Temporal Web UI port (-1: no UI)")
	emulatorAddr := flag.String("emulator-addr", "127.0.0.1:3978", "the emulator's listen address")
	httpAddr := flag.String("http-addr", "127.0.0.1:8080", "webhook, landing page and admin API listen address")
	flag.Parse()

	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return err
	}
	sessionKey, err := persistentKey(filepath.Join(*dataDir, "session.key"))
	if err != nil {
		return err
	}
	emulatorURL := "http://" + *emulatorAddr
	webhookURL := "http://" + *httpAddr
	external := func(name string) bool { return os.Getenv(name) != "" }
	useEmulator := !external("MARKETPLACE_BASE_URL")
	defaults := map[string]string{
		"LOG_FORMAT":                   "console",
		"METRICS_ADDR":                 "127.0.0.1:9090",
		"WEBHOOK_LISTEN_ADDR":          *httpAddr,
		"ADMIN_TOKEN":                  "dev-admin-token",
		"SESSION_KEY":                  sessionKey,
		"PROVISIONING_DEMO_FILE":       filepath.Join(*dataDir, "tenants.json"),
		"TEMPORAL_ADDRESS":             fmt.Sprintf("127.0.0.1:%d", *temporalPort),
		"RECONCILE_INTERVAL":           "1h",
		"MARKETPLACE_DEV_TOKEN_SECRET": "allinone-dev-secret",
	}
	if useEmulator {
		defaults["MARKETPLACE_BASE_URL"] = emulatorURL + "/api"
		defaults["MARKETPLACE_TENANT_ID"] = emulator.DemoTenantID
		defaults["MARKETPLACE_CLIENT_ID"] = emulator.DemoAppID
		defaults["WEBHOOK_ENTRA_AUTHORITY"] = emulatorURL
	} else {
		defaults["MARKETPLACE_DEV_TOKEN_SECRET"] = ""
	}
	getenv := config.Getenv(func(k string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return defaults[k]
	})

	obs := config.ObservabilityFromEnv(getenv)
	logger, err := config.NewLogger(obs)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	tc := config.TemporalFromEnv(getenv)
	wc, err := config.WebhookFromEnv(getenv)
	if err != nil {
		return err
	}
	pc, err := config.ProvisioningFromEnv(getenv)
	if err != nil {
		return err
	}
	interval, err := config.ReconcileInterval(getenv)
	if err != nil {
		return err
	}
	mc := config.MarketplaceFromEnv(getenv)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// 1. Temporal: embedded unless TEMPORAL_ADDRESS points elsewhere.
	uiURL := ""
	if !external("TEMPORAL_ADDRESS") {
		dev, err := devserver.Start(ctx, devserver.Config{
			DataDir: *dataDir, Namespace: tc.Namespace, FrontendPort: *temporalPort, UIPort: *uiPort,
			SearchAttributes: workflows.SearchAttributes(),
		})
		if err != nil {
			return fmt.Errorf("embedded Temporal: %w", err)
		}
		defer func() { _ = dev.Stop() }()
		uiURL = dev.UIURL()
	}

	// 2. The emulator, with the engine's webhook and landing page as its publisher's.
	if useEmulator {
		cfg := emulator.DemoConfig()
		cfg.Publishers[0].TokenSecret = mc.DevTokenSecret
		cfg.Publishers[0].WebhookURL = webhookURL + wc.Path
		cfg.Publishers[0].LandingURL = webhookURL + "/landing"
		emu, err := emulator.New(emulator.Options{Config: cfg, StateFile: filepath.Join(*dataDir, "emulator-state.json"), PublicURL: emulatorURL, Logger: logger.Named("emulator")})
		if err != nil {
			return err
		}
		stopEmu, err := serve(*emulatorAddr, emu, logger)
		if err != nil {
			return fmt.Errorf("emulator: %w", err)
		}
		defer func() { stopEmu(); _ = emu.Close() }()
	}

	// 3. The worker.
	metrics, err := config.NewMetrics()
	if err != nil {
		return err
	}
	c, err := config.Dial(ctx, tc, logger.Named("temporal"), metrics)
	if err != nil {
		return err
	}
	defer c.Close()
	api, err := engine.MarketplaceClient(mc, logger.Named("marketplace"))
	if err != nil {
		return err
	}
	prov, err := engine.Provisioner(pc)
	if err != nil {
		return err
	}
	if interval > 0 {
		if err := reconcile.EnsureSchedule(ctx, c, tc.TaskQueue, interval); err != nil {
			return err
		}
	}
	w := engine.NewWorker(c, tc.TaskQueue, engine.Deps{Marketplace: api, Provisioner: prov, Logger: logger.Named("worker")}, worker.Options{})
	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer w.Stop()
	if obs.MetricsAddr != "off" {
		stopMetrics, err := serve(obs.MetricsAddr, metrics.HTTPHandler(), logger)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer stopMetrics()
	}

	// 4. The webhook, landing page and admin API.
	h, err := server.FromConfig(c, tc, wc, api, logger.Named("http"))
	if err != nil {
		return err
	}
	stopHTTP, err := serve(wc.ListenAddr, h, logger)
	if err != nil {
		return fmt.Errorf("webhook server: %w", err)
	}
	defer stopHTTP()

	banner(uiURL, useEmulator, emulatorURL, webhookURL, wc, tc)
	<-ctx.Done()
	logger.Info("stopping")
	return nil
}

func banner(uiURL string, useEmulator bool, emulatorURL, webhookURL string, wc config.Webhook, tc config.Temporal) {
	var b strings.Builder
	fmt.Fprintln(&b, "\nsaasengine is running. Ctrl-C stops it; state is kept for the next run.")
	if uiURL != "" {
		fmt.Fprintf(&b, "  Temporal Web UI     %s   (namespace %s; filter e.g. SaaSStatus=\"Subscribed\")\n", uiURL, tc.Namespace)
	} else {
		fmt.Fprintf(&b, "  Temporal            %s   (namespace %s)\n", tc.Address, tc.Namespace)
	}
	if useEmulator {
		fmt.Fprintf(&b, "  Marketplace (buy)   %s/   (purchase, then act as customer or Microsoft)\n", emulatorURL)
		fmt.Fprintf(&b, "  Emulator control    %s/control/state\n", emulatorURL)
	}
	fmt.Fprintf(&b, "  Landing page        %s/landing?token=...   (the emulator sends buyers here)\n", webhookURL)
	fmt.Fprintf(&b, "  Webhook             %s%s\n", webhookURL, wc.Path)
	if wc.AdminToken != "" {
		fmt.Fprintf(&b, "  Admin API           %s/admin/subscriptions   (Authorization: Bearer %s)\n", webhookURL, wc.AdminToken)
	}
	fmt.Fprintf(&b, "  Operator CLI        go run ./starter --help\n")
	fmt.Println(b.String())
}

// serve listens on addr and serves h in the background; the returned func shuts it down.
func serve(addr string, h http.Handler, logger *zap.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := server.HTTPServer(addr, h)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server", zap.String("addr", addr), zap.Error(err))
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// persistentKey keeps a random session key in a file so landing-page links survive restarts.
func persistentKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	s := hex.EncodeToString(k)
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		return "", fmt.Errorf("session key: %w", err)
	}
	return s, nil
}
