package reconciliation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"saasengine/internal/stacktest"
	"saasengine/workflows/reconciliation"
)

// A run asked for while one is going returns that one, whether the schedule started it or someone asked
// before; an ask otherwise triggers the schedule, whose skip rule then covers it: runs never overlap. (No
// worker runs, so every run stays open.)
func TestRunsNeverOverlap(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if err := reconciliation.EnsureSchedule(ctx, s.Client, s.TaskQueue, time.Hour); err != nil {
		t.Fatal(err)
	}
	h := s.Client.ScheduleClient().GetHandle(ctx, reconciliation.ScheduleID)
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{}); err != nil {
		t.Fatal(err)
	}
	var scheduled client.ScheduleWorkflowExecution
	for scheduled.WorkflowID == "" {
		d, err := h.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Info.RunningWorkflows) > 0 {
			scheduled = d.Info.RunningWorkflows[0]
		} else if ctx.Err() != nil {
			t.Fatal("the triggered run never started")
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	run, err := reconciliation.Start(ctx, s.Client, s.TaskQueue)
	if err != nil {
		t.Fatal(err)
	}
	if run.WorkflowID != scheduled.WorkflowID || run.RunID != scheduled.FirstExecutionRunID {
		t.Fatalf("asked during the scheduled run %+v, got a run of its own: %+v", scheduled, run)
	}

	// The scheduled run ends; an ask goes through the schedule (its skip rule applies), and a second
	// ask while that run goes returns it.
	if err := s.Client.TerminateWorkflow(ctx, scheduled.WorkflowID, "", "test"); err != nil {
		t.Fatal(err)
	}
	for {
		d, err := h.Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Info.RunningWorkflows) == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the terminated run still shows as running")
		}
		time.Sleep(50 * time.Millisecond)
	}
	triggered, err := reconciliation.Start(ctx, s.Client, s.TaskQueue)
	if err != nil {
		t.Fatal(err)
	}
	again, err := reconciliation.Start(ctx, s.Client, s.TaskQueue)
	if err != nil {
		t.Fatal(err)
	}
	if triggered.RunID == scheduled.FirstExecutionRunID || !strings.HasPrefix(triggered.WorkflowID, reconciliation.WorkflowIDPrefix+"scheduled") || again != triggered {
		t.Fatalf("after the scheduled run: asked twice, got %+v and %+v; want one new run of the schedule", triggered, again)
	}

	// Without a schedule (RECONCILE_INTERVAL=off), two asks share one on-demand run.
	if err := s.Client.TerminateWorkflow(ctx, triggered.WorkflowID, "", "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := reconciliation.Start(ctx, s.Client, s.TaskQueue)
	if err != nil {
		t.Fatal(err)
	}
	second, err := reconciliation.Start(ctx, s.Client, s.TaskQueue)
	if err != nil {
		t.Fatal(err)
	}
	if first.WorkflowID != reconciliation.OnDemandWorkflowID || second != first {
		t.Fatalf("two asks started %+v and %+v, want one on-demand run", first, second)
	}
}
