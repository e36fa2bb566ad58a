package reconciliation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// EnsureSchedule creates the reconciliation schedule, or updates its interval if it exists. Runs never
// overlap: a run still going when the next is due makes that one skip.
func EnsureSchedule(ctx context.Context, c client.Client, taskQueue string, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultInterval
	}
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: interval}}}
	action := &client.ScheduleWorkflowAction{
		ID:        WorkflowIDPrefix + "scheduled",
		Workflow:  WorkflowType,
		Args:      []any{Input{}},
		TaskQueue: taskQueue,
	}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      ScheduleID,
		Spec:    spec,
		Action:  action,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Memo:    map[string]any{"purpose": "reconcile SaaS subscriptions with Microsoft's records"},
	})
	if err == nil {
		return nil
	}
	var exists *serviceerror.AlreadyExists
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) && !errors.As(err, &exists) {
		return fmt.Errorf("creating reconciliation schedule: %w", err)
	}
	h := c.ScheduleClient().GetHandle(ctx, ScheduleID)
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		s := in.Description.Schedule
		s.Spec = &spec
		s.Action = action
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}})
	if err != nil {
		return fmt.Errorf("updating reconciliation schedule: %w", err)
	}
	return nil
}

// Run names a started reconciliation.
type Run struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
}

// OnDemandWorkflowID is the ID of a reconciliation started on demand where no schedule exists
// (RECONCILE_INTERVAL=off): one at a time.
const OnDemandWorkflowID = WorkflowIDPrefix + "on-demand"

// triggerWait bounds the wait for the schedule to start the run it was asked for.
const triggerWait = 15 * time.Second

// Start runs a reconciliation now and returns it. Runs never overlap, whoever asks for them (two runs
// would read and snapshot the same subscriptions twice over): with the schedule, the run is the
// schedule's, triggered under its own skip-if-running rule, and a run already going is returned as it
// is; without one, a single on-demand run is started or, if running, returned.
func Start(ctx context.Context, c client.Client, taskQueue string) (Run, error) {
	h := c.ScheduleClient().GetHandle(ctx, ScheduleID)
	d, err := h.Describe(ctx)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return startOnDemand(ctx, c, taskQueue)
	case err != nil:
		return Run{}, fmt.Errorf("reading the reconciliation schedule: %w", err)
	}
	if run, ok := running(d); ok {
		return run, nil
	}
	// The run the trigger starts is the first action not among those before it (no clocks compared).
	before := map[string]bool{}
	for _, a := range d.Info.RecentActions {
		if w := a.StartWorkflowResult; w != nil {
			before[w.WorkflowID+"/"+w.FirstExecutionRunID] = true
		}
	}
	if err := h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP}); err != nil {
		return Run{}, fmt.Errorf("triggering the reconciliation schedule: %w", err)
	}
	// The schedule starts the run asynchronously: wait for it to show (or for the run that made it skip).
	wctx, cancel := context.WithTimeout(ctx, triggerWait)
	defer cancel()
	for {
		d, err := h.Describe(wctx)
		if err == nil {
			if run, ok := running(d); ok {
				return run, nil
			}
			for _, a := range slices.Backward(d.Info.RecentActions) {
				if w := a.StartWorkflowResult; w != nil && !before[w.WorkflowID+"/"+w.FirstExecutionRunID] {
					return Run{WorkflowID: w.WorkflowID, RunID: w.FirstExecutionRunID}, nil
				}
			}
		}
		select {
		case <-wctx.Done():
			return Run{}, fmt.Errorf("the reconciliation schedule did not start the run it was asked for within %s", triggerWait)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// running returns a run the schedule has going, if any.
func running(d *client.ScheduleDescription) (Run, bool) {
	for _, w := range d.Info.RunningWorkflows {
		return Run{WorkflowID: w.WorkflowID, RunID: w.FirstExecutionRunID}, true
	}
	return Run{}, false
}

func startOnDemand(ctx context.Context, c client.Client, taskQueue string) (Run, error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: OnDemandWorkflowID, TaskQueue: taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, WorkflowType, Input{})
	if err != nil {
		return Run{}, fmt.Errorf("starting reconciliation: %w", err)
	}
	return Run{WorkflowID: run.GetID(), RunID: run.GetRunID()}, nil
}
