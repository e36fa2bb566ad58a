// Package allinone runs the whole engine in one process: an embedded Temporal server with its Web UI
// (SQLite under a data folder, so a restart keeps every workflow), the Marketplace emulator with its demo
// offer, the worker, and the webhook/landing/admin server, wired to each other. The same environment
// variables as the separate binaries point any part at a real service instead: TEMPORAL_ADDRESS for a
// Temporal cluster, MARKETPLACE_BASE_URL (with real credentials) for Microsoft's API. The well-known
// development admin token guards the admin API only while the stack runs its own emulator; pointed at
// Microsoft's API, the admin API needs ADMIN_TOKEN or stays off.
//
// cmd/allinone is its command; the end-to-end test runs it in process.
package allinone

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"saasengine/config"
	"saasengine/devserver"
	"saasengine/emulator"
	"saasengine/engine"
	"saasengine/internal/devmail"
	"saasengine/tracing"
	"saasengine/webhook/frontend"
	"saasengine/webhook/server"
	"saasengine/workflows/subscription"
)

// devAdminToken is the admin API's token when ADMIN_TOKEN is not set and the stack runs its own emulator:
// fine on a laptop's loopback, never in front of Microsoft's API (see environment).
const devAdminToken = "dev-admin-token"

// Options say where the stack keeps its state and listens. Environment variables (Getenv) override the
// development defaults, as for the separate binaries.
type Options struct {
	DataDir      string
	TemporalPort int    // embedded Temporal's gRPC port; default 7233
	UIPort       int    // Temporal Web UI; default 8233; -1 for none
	EmulatorAddr string // default 127.0.0.1:3978
	HTTPAddr     string // webhook, landing page, admin API; default 127.0.0.1:8080
	// SMTPAddr is where the development mail server listens (any free loopback port by default; "off":
	// none). It runs with the emulator when NOTIFY_SMTP_HOST is not set, receives the notification
	// e-mails and shows them at EmulatorURL/dev/mail.
	SMTPAddr string
	// Getenv reads configuration; default os.Getenv.
	Getenv func(string) string
	// Logger defaults to a console logger at LOG_LEVEL.
	Logger *zap.Logger
}

// Stack is the running engine.
type Stack struct {
	UIURL       string // empty when Temporal is external
	TemporalAt  string
	Namespace   string
	EmulatorURL string // empty when the real Marketplace is used
	HTTPURL     string
	// MetricsURL is the worker's Prometheus endpoint (METRICS_ADDR); empty when off. The HTTP server has
	// its own at HTTPURL/metrics.
	MetricsURL  string
	WebhookPath string
	AdminToken  string
	Client      client.Client
	Emulator    *emulator.Emulator
	// Mail is the development mail server; nil when NOTIFY_SMTP_HOST names a real one, or with no emulator.
	Mail *devmail.Server
	// MailURL is the page that shows what Mail received.
	MailURL string

	log     *zap.Logger
	closers []func()
}

// Start brings everything up; Close takes it down in reverse order.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.DataDir == "" {
		o.DataDir = "data"
	}
	if o.TemporalPort == 0 {
		o.TemporalPort = 7233
	}
	if o.UIPort == 0 {
		o.UIPort = 8233
	}
	if o.EmulatorAddr == "" {
		o.EmulatorAddr = "127.0.0.1:3978"
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:8080"
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, err
	}
	sessionKey, err := persistentKey(filepath.Join(o.DataDir, "session.key"))
	if err != nil {
		return nil, err
	}
	s := &Stack{EmulatorURL: "http://" + o.EmulatorAddr, HTTPURL: "http://" + o.HTTPAddr}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	external := func(name string) bool { return o.Getenv(name) != "" }
	getenv, useEmulator, err := environment(o, s.EmulatorURL, sessionKey)
	if err != nil {
		return nil, err
	}
	if !useEmulator {
		s.EmulatorURL = ""
	}

	if useEmulator && strings.TrimSpace(getenv("NOTIFY_SMTP_HOST")) == "" && o.SMTPAddr != "off" {
		if getenv, err = s.startMail(o.SMTPAddr, getenv); err != nil {
			return nil, fmt.Errorf("development mail server (-smtp-addr %s): %w", o.SMTPAddr, err)
		}
	}

	obs := config.ObservabilityFromEnv(getenv)
	s.log = o.Logger
	if s.log == nil {
		if s.log, err = config.NewLogger(obs); err != nil {
			return nil, err
		}
	}
	stopTracing, err := tracing.Setup(ctx, "saasengine-allinone", getenv)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, stopTracing)
	tc := config.TemporalFromEnv(getenv)
	wc, err := config.WebhookFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	pc, err := config.ProvisioningFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	interval, err := config.ReconcileInterval(getenv)
	if err != nil {
		return nil, err
	}
	mc := config.MarketplaceFromEnv(getenv)
	wk, err := config.WorkerFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	nc, err := config.NotifyFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	s.TemporalAt, s.Namespace, s.WebhookPath, s.AdminToken = tc.Address, tc.Namespace, wc.Path, wc.AdminToken
	if !useEmulator && s.AdminToken == "" {
		s.log.Warn("admin API off: pointed at Microsoft's marketplace API, the development admin token is not used; set ADMIN_TOKEN to turn the admin API on")
	}

	// 0. The worker's metrics endpoint first: a port already taken fails the start before anything runs.
	metrics, err := config.NewMetrics()
	if err != nil {
		return nil, err
	}
	if obs.MetricsAddr != "off" {
		if err := s.serve(obs.MetricsAddr, metrics.HTTPHandler()); err != nil {
			return nil, fmt.Errorf("the worker's metrics endpoint (METRICS_ADDR=%s; off disables it): %w", obs.MetricsAddr, err)
		}
		s.MetricsURL = "http://" + loopbackIfUnspecified(obs.MetricsAddr) + "/metrics"
	}

	// 1. Temporal: embedded unless TEMPORAL_ADDRESS points elsewhere.
	if !external("TEMPORAL_ADDRESS") {
		dev, err := devserver.Start(ctx, devserver.Config{
			DataDir: o.DataDir, Namespace: tc.Namespace, FrontendPort: o.TemporalPort, UIPort: o.UIPort,
			SearchAttributes: subscription.SearchAttributes(), CodecEndpoint: codecEndpoint(s.HTTPURL, getenv),
		})
		if err != nil {
			return nil, fmt.Errorf("embedded Temporal: %w", err)
		}
		s.closers = append(s.closers, func() { _ = dev.Stop() })
		if o.UIPort > 0 {
			s.UIURL = dev.UIURL()
		}
	}

	// 2. The emulator, with the engine's webhook and landing page as its publisher's.
	if useEmulator {
		cfg := emulator.DemoConfig()
		cfg.Publishers[0].TokenSecret = mc.DevTokenSecret
		cfg.Publishers[0].WebhookURL = s.HTTPURL + wc.Path
		cfg.Publishers[0].LandingURL = s.HTTPURL + "/landing"
		// EMULATOR_READ_LAG, as for cmd/emulator; unset keeps Microsoft's lag (emulator.DefaultReadLag).
		if v := getenv("EMULATOR_READ_LAG"); v != "" {
			lag, err := time.ParseDuration(v)
			if err != nil || lag < 0 {
				return nil, fmt.Errorf("EMULATOR_READ_LAG %q: want a duration such as 2s, or 0", v)
			}
			cfg.ReadLag = emulator.NewDuration(lag)
		}
		if wc.SignIn.Mode == "entra" && strings.TrimRight(wc.SignIn.Authority, "/") == s.EmulatorURL {
			cfg.SignIn.Apps = []emulator.SignInApp{{ClientID: wc.SignIn.ClientID, ClientSecret: wc.SignIn.ClientSecret, RedirectURIs: []string{wc.SignIn.RedirectURL}}}
		}
		emu, err := emulator.New(emulator.Options{Config: cfg, StateFile: filepath.Join(o.DataDir, "emulator-state.json"), PublicURL: s.EmulatorURL, Logger: s.log.Named("emulator")})
		if err != nil {
			return nil, err
		}
		s.Emulator = emu
		s.closers = append(s.closers, func() { _ = emu.Close() })
		var h http.Handler = emu
		if s.Mail != nil {
			// The development inbox beside the emulator: both stand in for the outside world.
			mux := http.NewServeMux()
			mux.Handle("/dev/mail", s.Mail)
			mux.Handle("/", emu)
			h = mux
			s.MailURL = s.EmulatorURL + "/dev/mail"
		}
		if err := s.serve(o.EmulatorAddr, h); err != nil {
			return nil, fmt.Errorf("emulator: %w", err)
		}
	}

	// 3. The worker.
	c, err := config.Dial(ctx, tc, s.log.Named("temporal"), metrics)
	if err != nil {
		return nil, err
	}
	s.Client = c
	s.closers = append(s.closers, c.Close)
	if !external("TEMPORAL_ADDRESS") {
		// A namespace an earlier version made gains the search attributes added since.
		if err := subscription.RegisterSearchAttributes(ctx, c.OperatorService(), tc.Namespace); err != nil {
			return nil, fmt.Errorf("embedded Temporal: %w", err)
		}
	}
	api, err := mc.NewClient(s.log.Named("marketplace"))
	if err != nil {
		return nil, err
	}
	prov, err := engine.Provisioner(pc)
	if err != nil {
		return nil, err
	}
	if closer, ok := prov.(io.Closer); ok {
		s.closers = append(s.closers, func() { _ = closer.Close() })
	}
	if err := engine.SetUpReconciliation(ctx, c, tc.TaskQueue, interval, s.log); err != nil {
		return nil, err
	}
	deps := engine.Deps{Marketplace: api, Provisioner: prov, Logger: s.log.Named("worker"), Workflow: subscription.Options{RequireApproval: wk.RequireApproval},
		Notify: engine.Notifier(nc, s.log.Named("notify"))}
	engine.SetWorkflowCacheSize(wk)
	w := engine.NewWorker(c, tc.TaskQueue, deps, engine.WorkerOptions(wk))
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	s.closers = append(s.closers, w.Stop)

	// 4. The webhook, landing page and admin API.
	h, err := frontend.New(c, tc, wc, api, s.log.Named("http"))
	if err != nil {
		return nil, err
	}
	if err := s.serve(wc.ListenAddr, h); err != nil {
		return nil, fmt.Errorf("webhook server (-http-addr or WEBHOOK_LISTEN_ADDR=%s): %w", wc.ListenAddr, err)
	}
	return s, nil
}

// environment is the configuration the stack runs with: the caller's variables first, then development
// defaults. The well-known development admin token is a default only while the stack runs its own
// emulator: pointed at Microsoft's API (MARKETPLACE_BASE_URL set), the admin API is on only with an
// ADMIN_TOKEN of the operator's own, and the development token is refused rather than trusted there.
func environment(o Options, emulatorURL, sessionKey string) (_ config.Getenv, useEmulator bool, _ error) {
	set := func(name string) string { return strings.TrimSpace(o.Getenv(name)) }
	useEmulator = set("MARKETPLACE_BASE_URL") == ""
	defaults := map[string]string{
		"LOG_FORMAT":             "console",
		"METRICS_ADDR":           "127.0.0.1:9090",
		"WEBHOOK_LISTEN_ADDR":    o.HTTPAddr,
		"SESSION_KEY":            sessionKey,
		"PROVISIONING_DEMO_FILE": filepath.Join(o.DataDir, "tenants.db"),
		"TEMPORAL_ADDRESS":       fmt.Sprintf("127.0.0.1:%d", o.TemporalPort),
		"RECONCILE_INTERVAL":     "1h",
		// Links in notifications lead to this stack's admin API and Web UI.
		"NOTIFY_ADMIN_URL": "http://" + o.HTTPAddr,
	}
	if set("TEMPORAL_ADDRESS") == "" && o.UIPort > 0 {
		defaults["NOTIFY_TEMPORAL_UI_URL"] = fmt.Sprintf("http://127.0.0.1:%d", o.UIPort)
	}
	if useEmulator {
		defaults["ADMIN_TOKEN"] = devAdminToken
		defaults["MARKETPLACE_DEV_TOKEN_SECRET"] = "allinone-dev-secret"
		defaults["MARKETPLACE_BASE_URL"] = emulatorURL + "/api"
		defaults["MARKETPLACE_TENANT_ID"] = emulator.DemoTenantID
		defaults["MARKETPLACE_CLIENT_ID"] = emulator.DemoAppID
		defaults["WEBHOOK_ENTRA_AUTHORITY"] = emulatorURL
		// Buyers sign in on the emulator's Entra, as one of its test users.
		defaults["SIGNIN_AUTHORITY"] = emulatorURL
		defaults["SIGNIN_CLIENT_ID"] = emulator.DemoSignInClientID
		defaults["SIGNIN_CLIENT_SECRET"] = emulator.DemoSignInSecret
		defaults["SIGNIN_REDIRECT_URL"] = "http://" + o.HTTPAddr + "/landing/signin"
		// The demo offer's product; "Open Contoso Analytics" leads to a placeholder: set BRAND_APP_URL to yours.
		defaults["BRAND_PRODUCT_NAME"] = "Contoso Analytics"
		defaults["BRAND_APP_URL"] = "https://contoso.example/app"
	} else if set("ADMIN_TOKEN") == devAdminToken {
		return nil, false, errors.New("ADMIN_TOKEN is the development token, which anyone can read in this repository: " +
			"pointed at Microsoft's API (MARKETPLACE_BASE_URL), set a token of your own, or leave ADMIN_TOKEN unset to run with the admin API off")
	}
	// Workflow payloads are encrypted with a key kept in the data folder, and the embedded Web UI shows
	// them through the HTTP server's codec endpoint, at an address only it is told.
	if set("PAYLOAD_KEYS") == "" {
		key, err := persistentKey(filepath.Join(o.DataDir, "payload.key"))
		if err != nil {
			return nil, false, err
		}
		defaults["PAYLOAD_KEYS"] = "dev=" + key
		pathKey, err := persistentKey(filepath.Join(o.DataDir, "codec-path.key"))
		if err != nil {
			return nil, false, err
		}
		defaults["PAYLOAD_CODEC_PATH_KEY"] = pathKey
		if o.UIPort > 0 {
			defaults["PAYLOAD_CODEC_ORIGINS"] = fmt.Sprintf("http://127.0.0.1:%d,http://localhost:%d", o.UIPort, o.UIPort)
		}
	}
	return config.Getenv(func(k string) string {
		if v := o.Getenv(k); v != "" {
			return v
		}
		return defaults[k]
	}), useEmulator, nil
}

// startMail runs the development mail server and points the notification e-mails at it, unencrypted on
// loopback, to an operators' address that goes nowhere else.
func (s *Stack) startMail(addr string, getenv config.Getenv) (config.Getenv, error) {
	m, err := devmail.Start(devmail.Options{Addr: addr})
	if err != nil {
		return nil, err
	}
	s.Mail = m
	s.closers = append(s.closers, func() { _ = m.Close() })
	host, port, _ := net.SplitHostPort(m.Addr)
	defaults := map[string]string{
		"NOTIFY_SMTP_HOST": host, "NOTIFY_SMTP_PORT": port, "NOTIFY_SMTP_TLS": "none",
		"NOTIFY_EMAIL_FROM": "saasengine <saasengine@localhost>", "NOTIFY_EMAIL_TO": "operators@localhost",
	}
	return func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return defaults[k]
	}, nil
}

// Close stops everything, newest first.
func (s *Stack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// Banner says where to go.
func (s *Stack) Banner() string {
	var b strings.Builder
	fmt.Fprintln(&b, "\nsaasengine is running. Ctrl-C stops it; state is kept for the next run.")
	if s.UIURL != "" {
		fmt.Fprintf(&b, "  Temporal Web UI     %s   (namespace %s; filter e.g. SaaSStatus=\"Subscribed\")\n", s.UIURL, s.Namespace)
	} else {
		fmt.Fprintf(&b, "  Temporal            %s   (namespace %s)\n", s.TemporalAt, s.Namespace)
	}
	if s.EmulatorURL != "" {
		fmt.Fprintf(&b, "  Marketplace (buy)   %s/   (purchase, then act as customer or Microsoft)\n", s.EmulatorURL)
		fmt.Fprintf(&b, "  Emulator control    %s/control/state\n", s.EmulatorURL)
	}
	fmt.Fprintf(&b, "  Landing page        %s/landing?token=...   (the emulator sends buyers here)\n", s.HTTPURL)
	if s.EmulatorURL != "" {
		fmt.Fprintf(&b, "  Buyers sign in      on the emulator's Entra: pick a test account (Ada bought, Sam and Lee did not)\n")
	}
	fmt.Fprintf(&b, "  Manage account      %s/landing/manage\n", s.HTTPURL)
	fmt.Fprintf(&b, "  Webhook             %s%s\n", s.HTTPURL, s.WebhookPath)
	switch s.AdminToken {
	case "":
		fmt.Fprintf(&b, "  Admin API           off   (the development token serves only the emulator; set ADMIN_TOKEN to turn it on)\n")
	case devAdminToken:
		fmt.Fprintf(&b, "  Admin API           %s/admin/subscriptions   (Authorization: Bearer %s)\n", s.HTTPURL, devAdminToken)
	default:
		// A token the operator chose is a secret: it is not printed.
		fmt.Fprintf(&b, "  Admin API           %s/admin/subscriptions   (Authorization: Bearer $ADMIN_TOKEN)\n", s.HTTPURL)
	}
	fmt.Fprintf(&b, "  Operator CLI        go run ./starter --help\n")
	if s.MailURL != "" {
		fmt.Fprintf(&b, "  Notifications       %s   (e-mail to operators, received by the development SMTP server at %s)\n", s.MailURL, s.Mail.Addr)
	}
	if s.MetricsURL != "" {
		fmt.Fprintf(&b, "  Metrics (worker)    %s   (Temporal SDK, metering, reconciliation)\n", s.MetricsURL)
	}
	fmt.Fprintf(&b, "  Metrics (HTTP)      %s/metrics   (requests, webhook deliveries)\n", s.HTTPURL)
	return b.String()
}

// loopbackIfUnspecified turns ":9090" or "0.0.0.0:9090" into an address a browser on this machine opens.
func loopbackIfUnspecified(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// serve listens on addr and serves h in the background until Close.
func (s *Stack) serve(addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := server.HTTPServer(addr, h)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", zap.String("addr", addr), zap.Error(err))
		}
	}()
	s.closers = append(s.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return nil
}

// codecEndpoint is the HTTP server's codec address for the Web UI, when payloads are encrypted and a path
// key opens it to the UI.
func codecEndpoint(httpURL string, getenv config.Getenv) string {
	if getenv("PAYLOAD_KEYS") == "" || getenv("PAYLOAD_CODEC_PATH_KEY") == "" {
		return ""
	}
	return httpURL + "/codec/" + getenv("PAYLOAD_CODEC_PATH_KEY")
}

// persistentKey keeps a random key in a file, so that what it protects survives restarts: landing-page
// links (the session key), encrypted payloads (the payload key), the UI's codec address.
func persistentKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	v := hex.EncodeToString(k)
	if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
		return "", fmt.Errorf("key %s: %w", filepath.Base(path), err)
	}
	return v, nil
}
