package engine_test

import (
	"context"
	"testing"
	"time"

	"saasengine/engine"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// Reconciliation reads an ended subscription from its workflow's search attributes, without a query: a
// query would replay the whole history on a worker, for every ended subscription, every hour. With no
// worker running the answer still comes at once.
func TestReconciliationDoesNotQueryEndedWorkflows(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	id := s.Activated(t, "team", 5)
	if _, err := s.Emu.Emulator.Unsubscribe(id); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "workflow completed", func() bool {
		d, err := s.Client.DescribeWorkflowExecution(context.Background(), subscription.WorkflowID(id), "")
		return err == nil && d.GetWorkflowExecutionInfo().GetCloseTime() != nil
	})
	s.StopWorker()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ours, found, err := engine.ReconciliationView(s.Subs).Ours(ctx, id)
	if err != nil || !found || !ours.Closed || ours.Status != marketplace.StatusUnsubscribed {
		t.Fatalf("ended subscription read as %+v (found %v, error %v); want closed and Unsubscribed without a worker", ours, found, err)
	}
}
