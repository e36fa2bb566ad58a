package reconciliation

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// EndMistypedRuns terminates the runs under reconciliation's workflow IDs that are not reconciliations,
// and returns their IDs. Before the fix, a reconciliation longer than one run (more than 2,000
// subscriptions) continued as a metering workflow: it sat idle for a day, a caller waiting for its report
// waited as long, and the schedule skipped every run while it lived. Workers call this as they start,
// so upgrading them clears what the old ones left.
func EndMistypedRuns(ctx context.Context, c client.Client) ([]string, error) {
	ids := []string{OnDemandWorkflowID}
	d, err := c.ScheduleClient().GetHandle(ctx, ScheduleID).Describe(ctx)
	var nf *serviceerror.NotFound
	switch {
	case err == nil:
		for _, w := range d.Info.RunningWorkflows {
			ids = append(ids, w.WorkflowID)
		}
	case !errors.As(err, &nf):
		return nil, fmt.Errorf("reading the reconciliation schedule: %w", err)
	}
	var ended []string
	for _, id := range ids {
		de, err := c.DescribeWorkflowExecution(ctx, id, "")
		if errors.As(err, &nf) {
			continue
		}
		if err != nil {
			return ended, fmt.Errorf("describing %s: %w", id, err)
		}
		info := de.GetWorkflowExecutionInfo()
		typ := info.GetType().GetName()
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING || typ == WorkflowType {
			continue
		}
		reason := fmt.Sprintf("a reconciliation that continued as a %s workflow (a fixed defect); ended so that reconciliation runs again", typ)
		if err := c.TerminateWorkflow(ctx, id, info.GetExecution().GetRunId(), reason); err != nil && !errors.As(err, &nf) {
			return ended, fmt.Errorf("terminating %s: %w", id, err)
		}
		ended = append(ended, id)
	}
	return ended, nil
}
