// Package tracing turns on OpenTelemetry tracing when the standard OTEL_* variables ask for it: one trace
// runs from Microsoft's webhook request through Temporal (Signal- or Update-With-Start, the workflow, its
// activities) to each Marketplace and provisioning HTTP call, exported over OTLP. Off, it adds nothing.
//
// Nothing secret goes into a span: HTTP server spans carry the route template and path (a purchase token
// travels in the query, which is not recorded), client spans the URL of calls whose credentials travel in
// headers, and Temporal's spans workflow and activity IDs.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
)

// active is set once a tracer provider is installed: the Temporal clients and HTTP sides then trace.
var active atomic.Bool

// Active reports whether tracing is on in this process.
func Active() bool { return active.Load() }

// Enabled reports whether the environment asks for traces: an OTLP endpoint is set
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), and neither OTEL_SDK_DISABLED=true
// nor OTEL_TRACES_EXPORTER=none turns them off.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") || strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")) == "none" {
		return false
	}
	return strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")) != "" || strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) != ""
}

// Setup installs, when Enabled, a tracer provider that exports over OTLP/gRPC (the exporter reads the
// standard OTEL_EXPORTER_OTLP_* variables: endpoint, headers, TLS) with the service named service unless
// OTEL_SERVICE_NAME says otherwise, and returns its stop, which flushes what is buffered (for at most 5
// s). Disabled, it installs nothing and stop does nothing.
func Setup(ctx context.Context, service string, getenv func(string) string) (stop func(), err error) {
	if !Enabled(getenv) {
		return func() {}, nil
	}
	if p := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL")); p != "" && p != "grpc" {
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%s: only grpc is built in; send to a collector that takes OTLP/gRPC", p)
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the default name.
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Use(tp)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	}, nil
}

// Use installs tp as the process's tracer provider, with W3C trace-context and baggage propagation, and
// turns tracing on; tests use it with an in-memory exporter.
func Use(tp trace.TracerProvider) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	active.Store(true)
}

// Interceptors is what a Temporal client needs to trace: Temporal's OpenTelemetry interceptor on the
// installed provider (workers made from the client use it too), or none while tracing is off.
func Interceptors() ([]interceptor.ClientInterceptor, error) {
	if !Active() {
		return nil, nil
	}
	i, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{})
	if err != nil {
		return nil, fmt.Errorf("tracing: Temporal interceptor: %w", err)
	}
	ci, ok := i.(interceptor.ClientInterceptor)
	if !ok {
		return nil, errors.New("tracing: Temporal's interceptor is not a client interceptor")
	}
	return []interceptor.ClientInterceptor{ci}, nil
}

// Transport makes each call through rt a client span while tracing is on; rt nil is
// http.DefaultTransport.
func Transport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	if !Active() {
		return rt
	}
	return otelhttp.NewTransport(rt)
}

// Handler makes each request to h a server span (continuing the caller's trace) while tracing is on. The
// span is named "http" until the router names it by its route (Name).
func Handler(h http.Handler) http.Handler {
	if !Active() {
		return h
	}
	return otelhttp.NewHandler(h, "http")
}

// Name names the request's server span by its route template ("POST /webhook"), never by its raw path.
func Name(ctx context.Context, method, route string) {
	trace.SpanFromContext(ctx).SetName(method + " " + route)
}
