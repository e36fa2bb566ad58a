package reconciliation_test

import (
	"context"
	"errors"
	"testing"

	"go.temporal.io/sdk/testsuite"

	acts "saasengine/activities/reconciliation"
	"saasengine/marketplace"
)

// flakyEngine knows some subscriptions and fails snapshots of those listed in failing.
type flakyEngine struct {
	known     map[string]acts.Ours
	failing   map[string]bool
	snapshots []string
}

func (e *flakyEngine) Ours(_ context.Context, id string) (acts.Ours, bool, error) {
	o, ok := e.known[id]
	return o, ok, nil
}

func (e *flakyEngine) Snapshot(_ context.Context, sub marketplace.Subscription) error {
	if e.failing[sub.ID] {
		return errors.New("workflow unreachable")
	}
	e.snapshots = append(e.snapshots, sub.ID)
	return nil
}

func reconcilePage(t *testing.T, eng acts.Engine, subs ...marketplace.Subscription) acts.Report {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := &acts.Activities{Marketplace: pagedMarketplace{}, Engine: eng, Concurrency: 1}
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.ReconcilePage, subs)
	if err != nil {
		t.Fatal(err)
	}
	var rep acts.Report
	if err := v.Get(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// A subscription that errs still shows what drifted: the page's drift counts (and the metric an alert
// watches) include it.
func TestDriftIsCountedWhenASubscriptionErrs(t *testing.T) {
	subscribed := func(id, plan string, qty int) marketplace.Subscription {
		return marketplace.Subscription{ID: id, Status: marketplace.StatusSubscribed, PlanID: plan, Quantity: marketplace.Quantity(qty)}
	}
	ours := acts.Ours{Status: marketplace.StatusSubscribed, PlanID: "team", Quantity: 10}
	eng := &flakyEngine{
		known:   map[string]acts.Ours{"plan-drift": ours, "qty-drift": ours},
		failing: map[string]bool{"plan-drift": true},
	}
	rep := reconcilePage(t, eng, subscribed("plan-drift", "enterprise", 10), subscribed("qty-drift", "team", 12))
	if rep.Seen != 2 || rep.Errors != 1 || rep.Healed != 1 || len(rep.ErrorSamples) != 1 {
		t.Fatalf("report %s", rep)
	}
	if rep.Drift[acts.DriftPlan] != 1 || rep.Drift[acts.DriftQuantity] != 1 {
		t.Fatalf("drift %v: the erring subscription's plan drift is missing", rep.Drift)
	}
}

// Microsoft drops the quantity of a per-seat subscription once it ended. That is no drift, and an ended
// workflow facing an ended subscription is in sync, not an error every run.
func TestEndedPerSeatSubscriptionIsInSync(t *testing.T) {
	ended := marketplace.Subscription{ID: "ended", Status: marketplace.StatusUnsubscribed, PlanID: "team"}
	for name, closed := range map[string]bool{"workflow ended": true, "workflow still deprovisioning": false} {
		t.Run(name, func(t *testing.T) {
			eng := &flakyEngine{known: map[string]acts.Ours{
				"ended": {Status: marketplace.StatusUnsubscribed, PlanID: "team", Quantity: 10, Closed: closed},
			}}
			rep := reconcilePage(t, eng, ended)
			if rep.InSync != 1 || rep.Errors != 0 || len(rep.Drift) != 0 || len(eng.snapshots) != 0 {
				t.Fatalf("report %s, snapshots %v", rep, eng.snapshots)
			}
		})
	}
	if kinds := acts.Compare(ended, acts.Ours{Status: marketplace.StatusUnsubscribed, PlanID: "team", Quantity: 10}); len(kinds) != 0 {
		t.Fatalf("Compare: %v", kinds)
	}
	// A quantity Microsoft does report still counts.
	withSeats := ended
	withSeats.Quantity = 12
	if kinds := acts.Compare(withSeats, acts.Ours{Status: marketplace.StatusUnsubscribed, PlanID: "team", Quantity: 10}); len(kinds) != 1 || kinds[0] != acts.DriftQuantity {
		t.Fatalf("acts.Compare with a reported quantity: %v", kinds)
	}
}
