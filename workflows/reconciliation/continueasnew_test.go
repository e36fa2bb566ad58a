package reconciliation_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/metering"
	"saasengine/workflows/reconciliation"
)

// A reconciliation longer than one run (more pages than PagesPerRun) continues as new and still adopts
// every subscription, reporting the totals of all its runs.
func TestReconciliationContinuesAsNewAcrossPages(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{ConfigureEmulator: func(c *emulator.Config) { c.PageSize = 5 }})
	seed := emulator.SeedRequest{}
	seed.Subscriptions = append(seed.Subscriptions, struct {
		emulator.PurchaseRequest
		Count int `json:"count"`
	}{emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: "basic", Status: marketplace.StatusSubscribed}, 110})
	if _, err := s.Emu.Emulator.Seed(seed); err != nil {
		t.Fatal(err)
	}
	rep := runReconciliation(t, s)
	if rep.Pages != 22 || rep.Adopted != 110 || rep.Errors != 0 {
		t.Fatalf("first run: %s (pages %d) %v", rep, rep.Pages, rep.ErrorSamples)
	}
}

// What earlier versions left behind, a metering workflow running under a reconciliation's ID, is ended
// when a worker starts, and reconciliation runs again; a real reconciliation is left alone.
func TestMistypedRunIsEnded(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	ctx := context.Background()
	old, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: reconciliation.OnDemandWorkflowID, TaskQueue: s.TaskQueue},
		metering.WorkflowType, reconciliation.Input{NextLink: "page-21"})
	if err != nil {
		t.Fatal(err)
	}
	ended, err := reconciliation.EndMistypedRuns(ctx, s.Client)
	if err != nil || !slices.Equal(ended, []string{reconciliation.OnDemandWorkflowID}) {
		t.Fatalf("ended %v, %v", ended, err)
	}
	var terr *temporal.TerminatedError
	if err := old.Get(ctx, nil); !errors.As(err, &terr) {
		t.Fatalf("the mistyped run: %v, want it terminated", err)
	}
	if rep := runReconciliation(t, s); rep.Errors != 0 || rep.Pages != 1 {
		t.Fatalf("reconciliation after the repair: %s", rep)
	}
	if ended, err := reconciliation.EndMistypedRuns(ctx, s.Client); err != nil || len(ended) != 0 {
		t.Fatalf("a second check ended %v, %v", ended, err)
	}
}
