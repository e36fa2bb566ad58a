package config

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"saasengine/internal/promtest"
	"saasengine/marketplace"
)

func env(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	tc := TemporalFromEnv(env(nil))
	if tc.Address != "127.0.0.1:7233" || tc.Namespace != "default" || tc.TaskQueue != "saas-subscriptions" {
		t.Fatalf("temporal defaults %+v", tc)
	}
	if tls, err := tc.TLS(); tls != nil || err != nil {
		t.Fatalf("plaintext by default: %v %v", tls, err)
	}
	p, err := ProvisioningFromEnv(env(nil))
	if err != nil || p.Mode != "demo" || p.DemoFile != "data/tenants.db" {
		t.Fatalf("provisioning defaults %+v %v", p, err)
	}
}

func TestWorkerFromEnv(t *testing.T) {
	w, err := WorkerFromEnv(env(nil))
	// A stopping worker lets running activities finish by default instead of cancelling them at once.
	if err != nil || w.StopTimeout != 30*time.Second || w.RequireApproval || w.WorkflowCacheSize != DefaultWorkflowCacheSize {
		t.Fatalf("worker defaults %+v %v", w, err)
	}
	w, err = WorkerFromEnv(env(map[string]string{"WORKER_STOP_TIMEOUT": "2m", "REQUIRE_APPROVAL": "true", "WORKFLOW_CACHE_SIZE": "250"}))
	if err != nil || w.StopTimeout != 2*time.Minute || !w.RequireApproval || w.WorkflowCacheSize != 250 {
		t.Fatalf("worker settings %+v %v", w, err)
	}
	// 0 is a choice (no cache: every workflow task replays its history), not a missing value.
	w, err = WorkerFromEnv(env(map[string]string{"WORKFLOW_CACHE_SIZE": "0"}))
	if err != nil || w.WorkflowCacheSize != 0 {
		t.Fatalf("cache off %+v %v", w, err)
	}
}

func TestAPIKeyImpliesTLS(t *testing.T) {
	tc := TemporalFromEnv(env(map[string]string{"TEMPORAL_API_KEY": "k"}))
	cfg, err := tc.TLS()
	if err != nil || cfg == nil {
		t.Fatalf("Temporal Cloud API keys need TLS: %v %v", cfg, err)
	}
	tc = TemporalFromEnv(env(map[string]string{"TEMPORAL_TLS_CERT": "c.pem"}))
	if _, err := tc.TLS(); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name string
		vars map[string]string
		run  func(Getenv) error
		want string
	}{
		{"webhook auth off without the insecure flag", map[string]string{"WEBHOOK_AUTH": "none"}, func(g Getenv) error { _, err := WebhookFromEnv(g); return err }, "WEBHOOK_INSECURE_NO_AUTH"},
		{"entra auth without tenant", map[string]string{}, func(g Getenv) error { _, err := WebhookFromEnv(g); return err }, "WEBHOOK_TENANT_ID"},
		{"decision wait past Microsoft's window", map[string]string{"WEBHOOK_AUTH": "none", "WEBHOOK_INSECURE_NO_AUTH": "true", "WEBHOOK_DECISION_WAIT": "8s"}, func(g Getenv) error { _, err := WebhookFromEnv(g); return err }, "10-second"},
		{"admin command wait past the write timeout", map[string]string{"WEBHOOK_AUTH": "none", "WEBHOOK_INSECURE_NO_AUTH": "true", "ADMIN_COMMAND_WAIT": "45s"}, func(g Getenv) error { _, err := WebhookFromEnv(g); return err }, "write timeout"},
		{"http provisioning without secret", map[string]string{"PROVISIONING_MODE": "http", "PROVISIONING_URL": "http://x"}, func(g Getenv) error { _, err := ProvisioningFromEnv(g); return err }, "PROVISIONING_SECRET"},
		{"negative stop timeout", map[string]string{"WORKER_STOP_TIMEOUT": "-1s"}, func(g Getenv) error { _, err := WorkerFromEnv(g); return err }, "WORKER_STOP_TIMEOUT"},
		{"stop timeout without unit", map[string]string{"WORKER_STOP_TIMEOUT": "30"}, func(g Getenv) error { _, err := WorkerFromEnv(g); return err }, "WORKER_STOP_TIMEOUT"},
		{"negative workflow cache", map[string]string{"WORKFLOW_CACHE_SIZE": "-1"}, func(g Getenv) error { _, err := WorkerFromEnv(g); return err }, "WORKFLOW_CACHE_SIZE"},
		{"workflow cache in bytes", map[string]string{"WORKFLOW_CACHE_SIZE": "100MB"}, func(g Getenv) error { _, err := WorkerFromEnv(g); return err }, "number of workflows"},
		{"unknown provisioning mode", map[string]string{"PROVISIONING_MODE": "ftp"}, func(g Getenv) error { _, err := ProvisioningFromEnv(g); return err }, "want demo or http"},
		{"two credentials", map[string]string{"MARKETPLACE_TENANT_ID": "t", "MARKETPLACE_CLIENT_ID": "c", "MARKETPLACE_CLIENT_SECRET": "s", "MARKETPLACE_DEV_TOKEN_SECRET": "d"}, func(g Getenv) error { _, err := MarketplaceFromEnv(g).TokenSource(); return err }, "exactly one"},
		{"dev tokens against Microsoft", map[string]string{"MARKETPLACE_TENANT_ID": "t", "MARKETPLACE_CLIENT_ID": "c", "MARKETPLACE_DEV_TOKEN_SECRET": "d"}, func(g Getenv) error { _, err := MarketplaceFromEnv(g).TokenSource(); return err }, "emulator"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.run(env(c.vars))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error naming %q", err, c.want)
			}
		})
	}
}

func TestDevTokenSourceForEmulator(t *testing.T) {
	ts, err := MarketplaceFromEnv(env(map[string]string{"MARKETPLACE_BASE_URL": "http://127.0.0.1:3978/api", "MARKETPLACE_TENANT_ID": "t", "MARKETPLACE_CLIENT_ID": "c", "MARKETPLACE_DEV_TOKEN_SECRET": "d"})).TokenSource()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ts.(*marketplace.DevTokenSource); !ok {
		t.Fatalf("got %T", ts)
	}
}

func TestWebhookWaits(t *testing.T) {
	base := map[string]string{"WEBHOOK_AUTH": "none", "WEBHOOK_INSECURE_NO_AUTH": "true", "SIGNIN_MODE": "none", "SIGNIN_INSECURE_NO_AUTH": "true", "MARKETPLACE_BASE_URL": "http://127.0.0.1:3978/api"}
	w, err := WebhookFromEnv(env(base))
	if err != nil || w.DecisionWait != 5*time.Second || w.CommandWait != 20*time.Second {
		t.Fatalf("webhook defaults %+v %v", w, err)
	}
	base["WEBHOOK_DECISION_WAIT"], base["ADMIN_COMMAND_WAIT"] = "7s", "25s"
	w, err = WebhookFromEnv(env(base))
	if err != nil || w.DecisionWait != 7*time.Second || w.CommandWait != 25*time.Second {
		t.Fatalf("webhook waits %+v %v", w, err)
	}
}

func TestMeteringGrace(t *testing.T) {
	if d, err := MeteringGrace(env(nil)); err != nil || d != 5*time.Minute {
		t.Fatalf("default %v %v", d, err)
	}
	if d, err := MeteringGrace(env(map[string]string{"METERING_GRACE": "30s"})); err != nil || d != 30*time.Second {
		t.Fatalf("30s: %v %v", d, err)
	}
	for _, bad := range []string{"2h", "0s", "-1m", "soon"} {
		if _, err := MeteringGrace(env(map[string]string{"METERING_GRACE": bad})); err == nil {
			t.Errorf("METERING_GRACE=%s accepted", bad)
		}
	}
}

// The webhook server's client comes up without Temporal (its /readyz says 503 meanwhile); the eager one
// the other binaries use refuses to start.
func TestDialLazyComesUpWithoutTemporal(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nothing := Temporal{Address: l.Addr().String(), Namespace: "default"}
	l.Close()
	c, err := DialLazy(nothing, nil, nil)
	if err != nil {
		t.Fatalf("lazy client: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err == nil {
		t.Fatal("health check passed with no Temporal")
	}
	if eager, err := Dial(ctx, nothing, nil, nil); err == nil {
		eager.Close()
		t.Fatal("eager client connected to nothing")
	}
}

// The SDK's counters (the engine's own included) reach Prometheus as counters, with their _total suffix,
// not as gauges.
func TestMetricsExportCountersAsCounters(t *testing.T) {
	m, err := NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	m.Handler.WithTags(map[string]string{"outcome": "accepted"}).Counter("saas_test_events").Inc(2)
	m.Handler.Gauge("saas_test_level").Update(3)
	page := promtest.Scrape(t, m.HTTPHandler())
	if typ := promtest.Type(page, "saas_test_events_total"); typ != "counter" {
		t.Errorf("counter exported as %q:\n%s", typ, page)
	}
	if v, ok := promtest.Value(page, "saas_test_events_total", map[string]string{"outcome": "accepted"}); !ok || v != 2 {
		t.Errorf("counter value %v (found %v)", v, ok)
	}
	if typ := promtest.Type(page, "saas_test_level"); typ != "gauge" {
		t.Errorf("gauge exported as %q", typ)
	}
}

func TestSignIn(t *testing.T) {
	good := map[string]string{"SIGNIN_CLIENT_ID": "app", "SIGNIN_CLIENT_SECRET": "s", "SIGNIN_REDIRECT_URL": "https://isv.example/landing/signin"}
	s, err := SignInFromEnv(env(good))
	if err != nil || s.Mode != "entra" || s.Tenant != "organizations" || s.Authority != "https://login.microsoftonline.com" {
		t.Fatalf("sign-in defaults %+v %v", s, err)
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for key, val := range good {
			m[key] = val
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for name, c := range map[string]struct {
		vars map[string]string
		want string
	}{
		"nothing configured":           {map[string]string{}, "SIGNIN_CLIENT_ID"},
		"no redirect URL":              {with("SIGNIN_REDIRECT_URL", ""), "SIGNIN_REDIRECT_URL"},
		"plain http redirect":          {with("SIGNIN_REDIRECT_URL", "http://isv.example/landing/signin"), "https"},
		"no credential":                {with("SIGNIN_CLIENT_SECRET", ""), "exactly one"},
		"two credentials":              {with("SIGNIN_CERT_FILE", "/x.pem"), "exactly one"},
		"unknown mode":                 {with("SIGNIN_MODE", "saml"), "want entra or none"},
		"none without the flag":        {map[string]string{"SIGNIN_MODE": "none", "MARKETPLACE_BASE_URL": "http://127.0.0.1:3978/api"}, "SIGNIN_INSECURE_NO_AUTH"},
		"none against Microsoft's API": {map[string]string{"SIGNIN_MODE": "none", "SIGNIN_INSECURE_NO_AUTH": "true"}, "emulator only"},
	} {
		if _, err := SignInFromEnv(env(c.vars)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error naming %q", name, err, c.want)
		}
	}
	if _, err := SignInFromEnv(env(with("SIGNIN_REDIRECT_URL", "http://127.0.0.1:8080/landing/signin"))); err != nil {
		t.Errorf("http on loopback: %v", err)
	}
	if s, err := SignInFromEnv(env(map[string]string{"SIGNIN_MODE": "none", "SIGNIN_INSECURE_NO_AUTH": "true", "MARKETPLACE_BASE_URL": "http://127.0.0.1:3978/api"})); err != nil || s.Mode != "none" {
		t.Errorf("none against an emulator: %+v %v", s, err)
	}
}

func TestBrand(t *testing.T) {
	b, err := BrandFromEnv(env(map[string]string{"BRAND_PRODUCT_NAME": "Contoso", "BRAND_OFFER_NAMES": "a=Contoso, Inc. Analytics; b = Backup", "BRAND_OFFER_APP_URLS": "a=https://a.example/"}))
	if err != nil || b.ProductName != "Contoso" || b.OfferNames["a"] != "Contoso, Inc. Analytics" || b.OfferNames["b"] != "Backup" || b.OfferAppURLs["a"] != "https://a.example/" {
		t.Fatalf("brand %+v %v", b, err)
	}
	if _, err := BrandFromEnv(env(map[string]string{"BRAND_OFFER_APP_URLS": "a"})); err == nil || !strings.Contains(err.Error(), "BRAND_OFFER_APP_URLS") {
		t.Fatalf("a malformed offer list: %v", err)
	}
}
