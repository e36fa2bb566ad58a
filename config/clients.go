package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	tlog "go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"

	"saasengine/activities"
	"saasengine/encryption"
	"saasengine/marketplace"
	"saasengine/tracing"
)

// NewLogger builds the process logger.
func NewLogger(o Observability) (*zap.Logger, error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL %q: %w", o.LogLevel, err)
	}
	cfg := zap.NewProductionConfig()
	if o.LogFormat == "console" {
		cfg = zap.NewDevelopmentConfig()
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	// Errors here are expected conditions (Microsoft or Temporal unreachable), not bugs: no stack traces.
	cfg.DisableStacktrace = true
	return cfg.Build()
}

// TemporalLogger adapts zap for the Temporal SDK, so SDK and engine logs share one format: no stack
// traces (as NewLogger), and no second line for an activity failure the engine logged already (see
// activities.QuietLogged).
func TemporalLogger(l *zap.Logger) tlog.Logger {
	h := zapslog.NewHandler(l.Core(), zapslog.WithName("temporal"), zapslog.AddStacktraceAt(slog.Level(math.MaxInt)))
	return activities.QuietLogged(tlog.NewStructuredLogger(slog.New(h)))
}

// Metrics is a Prometheus registry fed by the Temporal SDK's metrics (and whatever else registers).
type Metrics struct {
	Registry *promclient.Registry
	// Handler is the SDK's metrics handler, for client.Options.MetricsHandler.
	Handler client.MetricsHandler
}

// NewMetrics wires the SDK's OpenTelemetry metrics into a Prometheus registry.
func NewMetrics() (*Metrics, error) {
	reg := promclient.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	h := temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: provider.Meter("temporal-sdk-go"),
		// Counters only grow: exported as Prometheus counters (with the _total suffix), not gauges, so
		// rate() and increase() handle restarts.
		UseMonotonicCounters: true,
		// A metric that cannot be recorded must not take the worker down.
		OnError: func(error) {},
	})
	return &Metrics{Registry: reg, Handler: h}, nil
}

// HTTPHandler serves the registry in Prometheus' text format.
func (m *Metrics) HTTPHandler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Dial connects to Temporal with the configured TLS or API key, using logger and metrics (either may be nil).
func Dial(ctx context.Context, t Temporal, logger *zap.Logger, metrics *Metrics) (client.Client, error) {
	opts, err := clientOptions(t, logger, metrics)
	if err != nil {
		return nil, err
	}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("temporal at %s (namespace %s): %w", t.Address, t.Namespace, err)
	}
	return c, nil
}

// DialLazy is Dial that connects on first use. The webhook server starts with it so that it comes up
// while Temporal is still down (a restart of the cluster, a deployment in the wrong order): /readyz then
// says 503 and Microsoft's deliveries get 503 and come again, instead of the process crash-looping.
func DialLazy(t Temporal, logger *zap.Logger, metrics *Metrics) (client.Client, error) {
	opts, err := clientOptions(t, logger, metrics)
	if err != nil {
		return nil, err
	}
	c, err := client.NewLazyClient(opts)
	if err != nil {
		return nil, fmt.Errorf("temporal at %s (namespace %s): %w", t.Address, t.Namespace, err)
	}
	return c, nil
}

func clientOptions(t Temporal, logger *zap.Logger, metrics *Metrics) (client.Options, error) {
	tlsCfg, err := t.TLS()
	if err != nil {
		return client.Options{}, err
	}
	opts := client.Options{
		HostPort:          t.Address,
		Namespace:         t.Namespace,
		ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg},
	}
	if t.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	if logger != nil {
		opts.Logger = TemporalLogger(logger)
	}
	if metrics != nil {
		opts.MetricsHandler = metrics.Handler
	}
	if opts.Interceptors, err = tracing.Interceptors(); err != nil {
		return client.Options{}, err
	}
	codec, err := t.Codec()
	if err != nil {
		return client.Options{}, err
	}
	if codec != nil {
		opts.DataConverter = encryption.DataConverter(codec)
	} else if logger != nil {
		logger.Warn("PAYLOAD_KEYS is not set: workflow payloads, purchasers' e-mail addresses among them, are stored in clear in Temporal")
	}
	return opts, nil
}

// TokenSource builds the Marketplace credentials: MSAL with a secret or certificate, or a development
// token source for an emulator.
func (m Marketplace) TokenSource() (marketplace.TokenSource, error) {
	if m.TenantID == "" || m.ClientID == "" {
		return nil, errors.New("MARKETPLACE_TENANT_ID and MARKETPLACE_CLIENT_ID are required")
	}
	set := 0
	for _, v := range []string{m.ClientSecret, m.CertFile, m.DevTokenSecret} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("set exactly one of MARKETPLACE_CLIENT_SECRET, MARKETPLACE_CERT_FILE or MARKETPLACE_DEV_TOKEN_SECRET")
	}
	if m.DevTokenSecret != "" {
		if strings.HasPrefix(m.BaseURL, marketplace.DefaultBaseURL) {
			return nil, errors.New("MARKETPLACE_DEV_TOKEN_SECRET only works against an emulator, not Microsoft's API")
		}
		return &marketplace.DevTokenSource{TenantID: m.TenantID, ClientID: m.ClientID, Secret: []byte(m.DevTokenSecret)}, nil
	}
	cfg := marketplace.MSALConfig{Authority: m.EntraAuthority, TenantID: m.TenantID, ClientID: m.ClientID, ClientSecret: m.ClientSecret}
	if m.CertFile != "" {
		pem, err := os.ReadFile(m.CertFile)
		if err != nil {
			return nil, fmt.Errorf("MARKETPLACE_CERT_FILE: %w", err)
		}
		cfg.CertificatePEM = pem
	}
	return marketplace.NewMSALTokenSource(cfg)
}

// NewClient builds the Marketplace client this configuration describes, with its Entra ID token source.
func (m Marketplace) NewClient(logger *zap.Logger) (*marketplace.Client, error) {
	tokens, err := m.TokenSource()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: tracing.Transport(nil)}
	return marketplace.NewClient(m.BaseURL, tokens, marketplace.WithLogger(logger), marketplace.WithHTTPClient(hc))
}
