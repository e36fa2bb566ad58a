package deploytest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"saasengine/webhook/server"
	"saasengine/workflows/metering"
	"saasengine/workflows/reconciliation"
	"saasengine/workflows/subscription"
)

// exported is every metric name the engine's endpoints show: the HTTP server's own, the workflows'
// counters (the worker's exporter adds _total), and the Temporal SDK's counters, read from the source
// of the SDK this build uses, so a name the SDK renames fails here.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, n := range []string{server.MetricHTTPRequests, server.MetricWebhookDeliveries, server.MetricDecisionFallbacks} {
		names[n] = true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		names[server.MetricHTTPDuration+suffix] = true
	}
	for _, n := range []string{subscription.MetricAttention, metering.MetricEvents, reconciliation.MetricSubscriptions, reconciliation.MetricDrift, reconciliation.MetricRuns} {
		names[n+"_total"] = true
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/sdk").Output()
	if err != nil {
		t.Fatalf("finding the Temporal SDK's source: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "internal", "common", "metrics", "constants.go"))
	if err != nil {
		t.Fatal(err)
	}
	sdk := regexp.MustCompile(`TemporalMetricsPrefix \+ "([a-z_]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(sdk) < 20 {
		t.Fatalf("read only %d metric names from the SDK's source", len(sdk))
	}
	for _, m := range sdk {
		names["temporal_"+m[1]+"_total"] = true
	}
	return names
}

// metricsIn parses a PromQL expression with Prometheus's own parser and returns the metrics it selects.
func metricsIn(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := parser.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	if len(names) == 0 {
		t.Errorf("%s: %q selects no metric", where, expr)
	}
	return names
}

// The alerting rules parse as Prometheus parses rule files, and every metric they name is one the engine
// exports: an alert on a name nobody exports would never fire.
func TestAlertRulesParseAndNameExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(b)
	for _, err := range errs {
		t.Errorf("alerts.yml: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	names := exported(t)
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts++
			if r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("alert %s has no summary or severity", r.Alert.Value)
			}
			for _, m := range metricsIn(t, "alert "+r.Alert.Value, r.Expr.Value) {
				if !names[m] {
					t.Errorf("alert %s names %s, which the engine does not export", r.Alert.Value, m)
				}
			}
		}
	}
	// What issue 16 asks alerts for: attention, decision fallbacks, metering, reconciliation drift and
	// errors, webhook 401 bursts, activity retries.
	want := []string{subscription.MetricAttention, server.MetricDecisionFallbacks, metering.MetricEvents, reconciliation.MetricDrift,
		reconciliation.MetricSubscriptions, "unauthorized", "temporal_activity_execution_failed"}
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Errorf("no alert on %s", w)
		}
	}
	if alerts < len(want) {
		t.Errorf("only %d alerts", alerts)
	}
}

// The Grafana dashboard is valid JSON whose every query parses and names exported metrics.
func TestDashboardQueriesNameExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "saasengine.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || len(d.Panels) < 6 {
		t.Fatalf("dashboard %q with %d panels", d.Title, len(d.Panels))
	}
	names := exported(t)
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricsIn(t, "panel "+p.Title, tg.Expr) {
				if !names[m] {
					t.Errorf("panel %q names %s, which the engine does not export", p.Title, m)
				}
			}
		}
	}
}
