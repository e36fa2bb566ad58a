package reconciliation

import (
	"context"
	"errors"
	"fmt"
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

// OnDemandWorkflowID is the ID of every reconciliation started on demand: one at a time.
const OnDemandWorkflowID = WorkflowIDPrefix + "on-demand"

// Start runs a reconciliation now, unless one is running already, the schedule's or another started on
// demand: then it returns that one. Runs never overlap, whoever asks for them (two runs would read and
// snapshot the same subscriptions twice over).
func Start(ctx context.Context, c client.Client, taskQueue string) (Run, error) {
	d, err := c.ScheduleClient().GetHandle(ctx, ScheduleID).Describe(ctx)
	var nf *serviceerror.NotFound
	switch {
	case err == nil:
		for _, w := range d.Info.RunningWorkflows {
			return Run{WorkflowID: w.WorkflowID, RunID: w.FirstExecutionRunID}, nil
		}
	case !errors.As(err, &nf):
		return Run{}, fmt.Errorf("reading the reconciliation schedule: %w", err)
	}
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
