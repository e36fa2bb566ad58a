// Package config reads the engine's settings from environment variables, the same ones for every binary
// (worker, webhook server, starter CLI, the all-in-one dev command), and turns them into a Temporal
// client, a Marketplace token source, a logger and a metrics endpoint.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"saasengine/encryption"
)

// Getenv looks a variable up; os.Getenv in binaries, a map in tests.
type Getenv func(string) string

func (g Getenv) str(name, def string) string {
	if v := strings.TrimSpace(g(name)); v != "" {
		return v
	}
	return def
}

func (g Getenv) duration(name string, def time.Duration) (time.Duration, error) {
	v := g.str(name, "")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

func (g Getenv) boolean(name string) (bool, error) {
	v := g.str(name, "")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: want true or false, got %q", name, v)
	}
	return b, nil
}

// Temporal says which Temporal deployment to use and how to authenticate to it.
type Temporal struct {
	Address   string // TEMPORAL_ADDRESS, default 127.0.0.1:7233
	Namespace string // TEMPORAL_NAMESPACE, default "default"
	TaskQueue string // TEMPORAL_TASK_QUEUE, default "saas-subscriptions"
	// mTLS (self-hosted with TLS, or Temporal Cloud with certificates).
	TLSCertFile   string // TEMPORAL_TLS_CERT
	TLSKeyFile    string // TEMPORAL_TLS_KEY
	TLSCAFile     string // TEMPORAL_TLS_CA
	TLSServerName string // TEMPORAL_TLS_SERVER_NAME
	// APIKey authenticates to Temporal Cloud instead of certificates (TLS is then implied).
	APIKey string // TEMPORAL_API_KEY
	// PayloadKeys encrypt every payload the engine hands Temporal (encryption.Parse: "id=key,..."), so
	// that purchasers' e-mail addresses never sit in clear in histories; PayloadKeyID names the one to
	// encrypt with (default the first). Every process of a deployment needs the same keys.
	PayloadKeys  string // PAYLOAD_KEYS
	PayloadKeyID string // PAYLOAD_KEY_ID
}

// Codec is the payload encryption PayloadKeys configure, or nil when none are set.
func (t Temporal) Codec() (*encryption.Codec, error) {
	if strings.TrimSpace(t.PayloadKeys) == "" {
		return nil, nil
	}
	c, err := encryption.Parse(t.PayloadKeys, strings.TrimSpace(t.PayloadKeyID))
	if err != nil {
		return nil, fmt.Errorf("PAYLOAD_KEYS: %w", err)
	}
	return c, nil
}

// TemporalFromEnv reads the TEMPORAL_* variables.
func TemporalFromEnv(g Getenv) Temporal {
	return Temporal{
		Address:       g.str("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		Namespace:     g.str("TEMPORAL_NAMESPACE", "default"),
		TaskQueue:     g.str("TEMPORAL_TASK_QUEUE", "saas-subscriptions"),
		TLSCertFile:   g.str("TEMPORAL_TLS_CERT", ""),
		TLSKeyFile:    g.str("TEMPORAL_TLS_KEY", ""),
		TLSCAFile:     g.str("TEMPORAL_TLS_CA", ""),
		TLSServerName: g.str("TEMPORAL_TLS_SERVER_NAME", ""),
		APIKey:        g.str("TEMPORAL_API_KEY", ""),
		PayloadKeys:   g.str("PAYLOAD_KEYS", ""),
		PayloadKeyID:  g.str("PAYLOAD_KEY_ID", ""),
	}
}

// TLS builds the client TLS configuration, or nil for a plaintext connection.
func (t Temporal) TLS() (*tls.Config, error) {
	if t.TLSCertFile == "" && t.TLSKeyFile == "" && t.TLSCAFile == "" && t.TLSServerName == "" && t.APIKey == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.TLSServerName}
	if (t.TLSCertFile == "") != (t.TLSKeyFile == "") {
		return nil, errors.New("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together")
	}
	if t.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.TLSCertFile, t.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("temporal client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.TLSCAFile != "" {
		pem, err := os.ReadFile(t.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TEMPORAL_TLS_CA %s holds no PEM certificate", t.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Marketplace says where the Marketplace APIs are and which credentials call them.
type Marketplace struct {
	BaseURL  string // MARKETPLACE_BASE_URL, default Microsoft's
	TenantID string // MARKETPLACE_TENANT_ID: the tenant of the app in Partner Center's Technical configuration
	ClientID string // MARKETPLACE_CLIENT_ID: that app's ID
	// One of: a client secret, a certificate (PEM with certificate and key), or, against an emulator only,
	// a development signing secret.
	ClientSecret   string // MARKETPLACE_CLIENT_SECRET
	CertFile       string // MARKETPLACE_CERT_FILE
	DevTokenSecret string // MARKETPLACE_DEV_TOKEN_SECRET
	// EntraAuthority is the Entra host, for sovereign clouds or an emulator (MARKETPLACE_ENTRA_AUTHORITY).
	EntraAuthority string
}

// MarketplaceFromEnv reads the MARKETPLACE_* variables.
func MarketplaceFromEnv(g Getenv) Marketplace {
	return Marketplace{
		BaseURL:        g.str("MARKETPLACE_BASE_URL", "https://marketplaceapi.microsoft.com/api"),
		TenantID:       g.str("MARKETPLACE_TENANT_ID", ""),
		ClientID:       g.str("MARKETPLACE_CLIENT_ID", ""),
		ClientSecret:   g.str("MARKETPLACE_CLIENT_SECRET", ""),
		CertFile:       g.str("MARKETPLACE_CERT_FILE", ""),
		DevTokenSecret: g.str("MARKETPLACE_DEV_TOKEN_SECRET", ""),
		EntraAuthority: g.str("MARKETPLACE_ENTRA_AUTHORITY", ""),
	}
}

// Provisioning says how the engine reaches the ISV's own service.
type Provisioning struct {
	Mode string // PROVISIONING_MODE: "demo" (default) or "http"
	// HTTP callback.
	URL     string        // PROVISIONING_URL
	Secret  string        // PROVISIONING_SECRET: HMAC key of the callback's signature
	Timeout time.Duration // PROVISIONING_TIMEOUT, default 10s
	// Demo provisioner.
	DemoFile        string // PROVISIONING_DEMO_FILE: its SQLite database, default data/tenants.db
	DemoMaxQuantity int64  // PROVISIONING_DEMO_MAX_QUANTITY: reject seat changes above it (0: no limit)
}

// ProvisioningFromEnv reads the PROVISIONING_* variables.
func ProvisioningFromEnv(g Getenv) (Provisioning, error) {
	p := Provisioning{
		Mode:     g.str("PROVISIONING_MODE", "demo"),
		URL:      g.str("PROVISIONING_URL", ""),
		Secret:   g.str("PROVISIONING_SECRET", ""),
		DemoFile: g.str("PROVISIONING_DEMO_FILE", "data/tenants.db"),
	}
	var err error
	if p.Timeout, err = g.duration("PROVISIONING_TIMEOUT", 10*time.Second); err != nil {
		return p, err
	}
	if v := g.str("PROVISIONING_DEMO_MAX_QUANTITY", ""); v != "" {
		if p.DemoMaxQuantity, err = strconv.ParseInt(v, 10, 64); err != nil {
			return p, fmt.Errorf("PROVISIONING_DEMO_MAX_QUANTITY: %w", err)
		}
	}
	switch p.Mode {
	case "demo":
	case "http":
		if p.URL == "" || p.Secret == "" {
			return p, errors.New("PROVISIONING_MODE=http needs PROVISIONING_URL and PROVISIONING_SECRET")
		}
	default:
		return p, fmt.Errorf("PROVISIONING_MODE %q: want demo or http", p.Mode)
	}
	return p, nil
}

// Worker configures the worker process.
type Worker struct {
	// StopTimeout is how long a stopping worker (SIGTERM, a deployment) lets running activities finish
	// before cancelling them (WORKER_STOP_TIMEOUT, default 30s); 0 cancels them at once.
	StopTimeout time.Duration
	// RequireApproval makes the workflows the worker starts (reconciliation's adoptions) wait for an
	// operator's approval before activation, as the webhook server's do (REQUIRE_APPROVAL).
	RequireApproval bool
	// WorkflowCacheSize is how many workflows the process keeps in memory between their tasks (the
	// Temporal SDK's sticky cache, WORKFLOW_CACHE_SIZE, default DefaultWorkflowCacheSize). A cached
	// workflow's next task runs at once; an evicted one first replays its history. 0 caches none.
	WorkflowCacheSize int
}

// DefaultWorkflowCacheSize bounds a worker's memory whatever the number of subscriptions: a cached
// subscription workflow costs tens of kilobytes (see BENCHMARKS.md), and the SDK's own default of 10,000
// would keep every subscription of a large publisher in memory although nearly all are idle for weeks.
const DefaultWorkflowCacheSize = 1000

// WorkerFromEnv reads WORKER_STOP_TIMEOUT, REQUIRE_APPROVAL and WORKFLOW_CACHE_SIZE.
func WorkerFromEnv(g Getenv) (Worker, error) {
	w := Worker{WorkflowCacheSize: DefaultWorkflowCacheSize}
	var err error
	if w.StopTimeout, err = g.duration("WORKER_STOP_TIMEOUT", 30*time.Second); err != nil {
		return w, err
	}
	if w.StopTimeout < 0 {
		return w, errors.New("WORKER_STOP_TIMEOUT must not be negative")
	}
	if w.RequireApproval, err = g.boolean("REQUIRE_APPROVAL"); err != nil {
		return w, err
	}
	if v := g.str("WORKFLOW_CACHE_SIZE", ""); v != "" {
		if w.WorkflowCacheSize, err = strconv.Atoi(v); err != nil || w.WorkflowCacheSize < 0 {
			return w, fmt.Errorf("WORKFLOW_CACHE_SIZE: want a number of workflows, 0 or more, got %q", v)
		}
	}
	return w, nil
}

// Webhook configures the HTTP server: webhook, landing page, admin API.
type Webhook struct {
	ListenAddr string // WEBHOOK_LISTEN_ADDR, default :8080
	Path       string // WEBHOOK_PATH, default /webhook
	// Auth is "entra" (default) or "none"; "none" is refused unless WEBHOOK_INSECURE_NO_AUTH=true too.
	Auth            string        // WEBHOOK_AUTH
	InsecureNoAuth  bool          // WEBHOOK_INSECURE_NO_AUTH
	EntraAuthority  string        // WEBHOOK_ENTRA_AUTHORITY: Entra host, or the emulator's URL in development
	TenantID        string        // WEBHOOK_TENANT_ID, default MARKETPLACE_TENANT_ID
	AppID           string        // WEBHOOK_APP_ID: the aud of Microsoft's tokens, default MARKETPLACE_CLIENT_ID
	AdminToken      string        // ADMIN_TOKEN: bearer token of the admin API; empty disables it
	SessionKey      string        // SESSION_KEY: signs landing-page CSRF tokens and status links; share it between replicas
	DecisionWait    time.Duration // WEBHOOK_DECISION_WAIT
	CommandWait     time.Duration // ADMIN_COMMAND_WAIT: how long an admin command waits before answering 202
	MeteringGrace   time.Duration // METERING_GRACE: see MeteringGrace
	RequireApproval bool          // REQUIRE_APPROVAL: activations wait for an operator's approval
	SignIn          SignIn        // SIGNIN_*: the buyers' Entra ID sign-in on the landing page (landing.go)
	Brand           Brand         // BRAND_*: the landing page's look (landing.go)
	// CodecPathKey opens the codec endpoint (PAYLOAD_KEYS) at /codec/<key> for a Web UI that cannot send
	// the admin token; CodecOrigins are the browser origins (the UI's) allowed to call it.
	CodecPathKey string   // PAYLOAD_CODEC_PATH_KEY
	CodecOrigins []string // PAYLOAD_CODEC_ORIGINS, comma-separated
}

// WebhookFromEnv reads the WEBHOOK_* and related variables.
func WebhookFromEnv(g Getenv) (Webhook, error) {
	w := Webhook{
		ListenAddr:     g.str("WEBHOOK_LISTEN_ADDR", ":8080"),
		Path:           g.str("WEBHOOK_PATH", "/webhook"),
		Auth:           g.str("WEBHOOK_AUTH", "entra"),
		EntraAuthority: g.str("WEBHOOK_ENTRA_AUTHORITY", ""),
		TenantID:       g.str("WEBHOOK_TENANT_ID", g.str("MARKETPLACE_TENANT_ID", "")),
		AppID:          g.str("WEBHOOK_APP_ID", g.str("MARKETPLACE_CLIENT_ID", "")),
		AdminToken:     g.str("ADMIN_TOKEN", ""),
		SessionKey:     g.str("SESSION_KEY", ""),
		CodecPathKey:   g.str("PAYLOAD_CODEC_PATH_KEY", ""),
	}
	for _, o := range strings.Split(g.str("PAYLOAD_CODEC_ORIGINS", ""), ",") {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			w.CodecOrigins = append(w.CodecOrigins, o)
		}
	}
	if k := w.CodecPathKey; k != "" && (len(k) < 32 || strings.ContainsAny(k, "/?#%")) {
		return w, errors.New("PAYLOAD_CODEC_PATH_KEY must be at least 32 characters, with no / ? # or %: it is the only secret guarding the codec endpoint")
	}
	var err error
	if w.InsecureNoAuth, err = g.boolean("WEBHOOK_INSECURE_NO_AUTH"); err != nil {
		return w, err
	}
	if w.RequireApproval, err = g.boolean("REQUIRE_APPROVAL"); err != nil {
		return w, err
	}
	if w.DecisionWait, err = g.duration("WEBHOOK_DECISION_WAIT", 5*time.Second); err != nil {
		return w, err
	}
	// The webhook server answers within 9 s of Microsoft's 10 and keeps 2 s of them for the fallback
	// signal when the decision does not come.
	if w.DecisionWait > 7*time.Second {
		return w, errors.New("WEBHOOK_DECISION_WAIT must be at most 7s: the answer is due inside Microsoft's 10-second window, with 2s kept for recording the event")
	}
	if w.CommandWait, err = g.duration("ADMIN_COMMAND_WAIT", 20*time.Second); err != nil {
		return w, err
	}
	if w.CommandWait <= 0 || w.CommandWait >= 30*time.Second {
		return w, errors.New("ADMIN_COMMAND_WAIT must be positive and below the server's 30s write timeout")
	}
	if w.MeteringGrace, err = MeteringGrace(g); err != nil {
		return w, err
	}
	switch w.Auth {
	case "entra":
		if w.TenantID == "" || w.AppID == "" {
			return w, errors.New("WEBHOOK_AUTH=entra needs WEBHOOK_TENANT_ID and WEBHOOK_APP_ID (or MARKETPLACE_TENANT_ID and MARKETPLACE_CLIENT_ID)")
		}
	case "none":
		if !w.InsecureNoAuth {
			return w, errors.New("WEBHOOK_AUTH=none accepts forged webhooks; set WEBHOOK_INSECURE_NO_AUTH=true as well if you really mean it")
		}
	default:
		return w, fmt.Errorf("WEBHOOK_AUTH %q: want entra or none", w.Auth)
	}
	if w.SignIn, err = SignInFromEnv(g); err != nil {
		return w, err
	}
	if w.Brand, err = BrandFromEnv(g); err != nil {
		return w, err
	}
	return w, nil
}

// ReconcileInterval is how often the reconciliation schedule runs (RECONCILE_INTERVAL, default 1h);
// "off" returns a negative duration: leave the schedule as it is.
func ReconcileInterval(g Getenv) (time.Duration, error) {
	if g.str("RECONCILE_INTERVAL", "") == "off" {
		return -1, nil
	}
	d, err := g.duration("RECONCILE_INTERVAL", time.Hour)
	if err == nil && d < time.Minute {
		err = errors.New("RECONCILE_INTERVAL must be at least 1m (or off)")
	}
	return d, err
}

// MeteringGrace is how long a closed hour's usage waits for late reports before it is posted to Microsoft
// (METERING_GRACE, default 5m). Whoever starts a subscription's meter (the admin API, the CLI) sets it.
func MeteringGrace(g Getenv) (time.Duration, error) {
	d, err := g.duration("METERING_GRACE", 5*time.Minute)
	if err == nil && (d <= 0 || d >= time.Hour) {
		err = errors.New("METERING_GRACE must be positive and under an hour (Microsoft takes an hour's usage for 24 hours)")
	}
	return d, err
}

// Observability configures logs and metrics.
type Observability struct {
	LogLevel    string // LOG_LEVEL: debug, info (default), warn, error
	LogFormat   string // LOG_FORMAT: json (default) or console
	MetricsAddr string // METRICS_ADDR: Prometheus endpoint of the worker, default :9090; "off" disables
}

// ObservabilityFromEnv reads LOG_* and METRICS_ADDR.
func ObservabilityFromEnv(g Getenv) Observability {
	return Observability{
		LogLevel:    g.str("LOG_LEVEL", "info"),
		LogFormat:   g.str("LOG_FORMAT", "json"),
		MetricsAddr: g.str("METRICS_ADDR", ":9090"),
	}
}
