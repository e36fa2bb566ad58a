package reconciliation_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	acts "saasengine/activities/reconciliation"
	"saasengine/config"
	"saasengine/internal/promtest"
	"saasengine/marketplace"
	"saasengine/workflows/reconciliation"
)

// pagedMarketplace serves fixed pages of subscriptions and no outstanding operations.
type pagedMarketplace struct{ pages [][]marketplace.Subscription }

func (m pagedMarketplace) ListSubscriptionsPage(_ context.Context, nextLink string) (*marketplace.SubscriptionsPage, error) {
	i := 0
	if nextLink != "" {
		i, _ = strconv.Atoi(nextLink)
	}
	p := &marketplace.SubscriptionsPage{Subscriptions: m.pages[i]}
	if i+1 < len(m.pages) {
		p.NextLink = strconv.Itoa(i + 1)
	}
	return p, nil
}

func (pagedMarketplace) ListOperations(context.Context, string) ([]marketplace.Operation, error) {
	return nil, nil
}

// knownEngine knows some subscriptions; snapshots are accepted.
type knownEngine map[string]acts.Ours

func (e knownEngine) Ours(_ context.Context, id string) (acts.Ours, bool, error) {
	o, ok := e[id]
	return o, ok, nil
}

func (knownEngine) Snapshot(context.Context, marketplace.Subscription) error { return nil }

// A run's findings reach the worker's Prometheus endpoint (the same wiring as the worker binary), so
// operators can alert on drift without opening each run.
func TestReconciliationMetricsReachPrometheus(t *testing.T) {
	m, err := config.NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	var suite testsuite.WorkflowTestSuite
	suite.SetMetricsHandler(m.Handler)
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	// The test environment checksums the test binary inside the workflow's first activity call; on a
	// loaded machine that alone outlasts the default one-second deadlock detection.
	env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: time.Minute})

	sub := func(id, plan string, qty int) marketplace.Subscription {
		return marketplace.Subscription{ID: id, Status: marketplace.StatusSubscribed, PlanID: plan, Quantity: marketplace.Quantity(qty)}
	}
	ours := func(plan string, qty int64) acts.Ours {
		return acts.Ours{Status: marketplace.StatusSubscribed, PlanID: plan, Quantity: qty}
	}
	env.RegisterActivity(&acts.Activities{
		Marketplace: pagedMarketplace{pages: [][]marketplace.Subscription{
			{sub("in-sync", "basic", 0), sub("plan-drift", "enterprise", 0)},
			{sub("unknown", "basic", 0), sub("qty-drift", "team", 12)},
		}},
		Engine: knownEngine{"in-sync": ours("basic", 0), "plan-drift": ours("basic", 0), "qty-drift": ours("team", 10)},
	})
	env.ExecuteWorkflow(reconciliation.ReconciliationWorkflow, reconciliation.Input{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var rep acts.Report
	if err := env.GetWorkflowResult(&rep); err != nil {
		t.Fatal(err)
	}
	if rep.Pages != 2 || rep.InSync != 1 || rep.Healed != 2 || rep.Adopted != 1 {
		t.Fatalf("report %s", rep)
	}

	page := promtest.Scrape(t, m.HTTPHandler())
	for _, c := range []struct {
		metric, label, value string
		want                 float64
	}{
		{reconciliation.MetricSubscriptions, "outcome", "in_sync", 1},
		{reconciliation.MetricSubscriptions, "outcome", "healed", 2},
		{reconciliation.MetricSubscriptions, "outcome", "adopted", 1},
		{reconciliation.MetricDrift, "kind", "plan", 1},
		{reconciliation.MetricDrift, "kind", "quantity", 1},
		{reconciliation.MetricDrift, "kind", acts.DriftUnknown, 1},
	} {
		if got, ok := promtest.Value(page, c.metric+"_total", map[string]string{c.label: c.value}); !ok || got != c.want {
			t.Errorf("%s{%s=%q}: got %v (found %v), want %v", c.metric, c.label, c.value, got, ok, c.want)
		}
	}
	for _, m := range []string{reconciliation.MetricSubscriptions, reconciliation.MetricDrift, reconciliation.MetricRuns} {
		if typ := promtest.Type(page, m+"_total"); typ != "counter" {
			t.Errorf("%s is exported as %q, not a counter", m, typ)
		}
	}
	if got, ok := promtest.Value(page, reconciliation.MetricRuns+"_total", nil); !ok || got != 1 {
		t.Errorf("%s: got %v (found %v), want 1", reconciliation.MetricRuns, got, ok)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", page)
	}
}
