package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"saasengine/marketplace"
	"saasengine/tracing"
)

// metrics are the server's Prometheus series, on a registry of its own so several servers (tests) coexist.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	webhooks *prometheus.CounterVec
	// fallbacks counts ChangePlan/ChangeQuantity webhooks answered without the workflow's decision: a
	// refusal could not reach Microsoft as a 4xx in time (workers slow or down).
	fallbacks *prometheus.CounterVec
}

// The HTTP server's metric names, as Prometheus shows them (deploy/prometheus/alerts.yml names them).
const (
	MetricHTTPRequests      = "saasengine_http_requests_total"
	MetricHTTPDuration      = "saasengine_http_request_duration_seconds"
	MetricWebhookDeliveries = "saasengine_webhook_deliveries_total"
	MetricDecisionFallbacks = "saasengine_webhook_decision_fallbacks_total"
)

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricHTTPRequests,
			Help: "HTTP requests by route template, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricHTTPDuration,
			Help:    "HTTP request latency by route template.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricWebhookDeliveries,
			Help: "Marketplace webhook deliveries by action and outcome (accepted, rejected, unauthorized, malformed, unavailable).",
		}, []string{"action", "outcome"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricDecisionFallbacks,
			Help: "ChangePlan/ChangeQuantity webhooks answered 200 without the workflow's decision (it came too late; the workflow PATCHes its own).",
		}, []string{"action"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.webhooks, m.fallbacks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the writer underneath: the webhook flushes its answer through it
// before it tells the workflow the answer went out.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// instrument counts and times requests by route template (never by raw path, which would let callers mint
// series), and turns a panic into a 500 instead of a dropped connection.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		route := "unmatched"
		if cr := mux.CurrentRoute(r); cr != nil {
			if tpl, err := cr.GetPathTemplate(); err == nil {
				route = tpl
			}
		}
		tracing.Name(r.Context(), methodLabel(r.Method), route)
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("handler panicked", zap.String("route", route), zap.Any("panic", p), zap.Stack("stack"))
				if rec.status == 0 {
					s.fail(rec, r, http.StatusInternalServerError, "InternalError", "internal error", nil)
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			method := methodLabel(r.Method)
			s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
			s.metrics.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r)
	})
}

// methodLabel keeps the method label a closed set: any method is accepted on the wire (and answered 404
// or 405), so a caller must not be able to mint series by inventing methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// actionLabel keeps the webhook's action label a closed set: Microsoft's actions, or "other" for
// whatever else a payload (or a forger, before the token check refuses it) says.
func actionLabel(a marketplace.Action) string {
	switch a {
	case marketplace.ActionChangePlan, marketplace.ActionChangeQuantity, marketplace.ActionRenew,
		marketplace.ActionSuspend, marketplace.ActionReinstate, marketplace.ActionUnsubscribe:
		return string(a)
	}
	return "other"
}
