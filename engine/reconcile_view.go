package engine

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	reconacts "saasengine/activities/reconciliation"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// ReconciliationView is how reconciliation sees the subscription workflows reached through subs.
func ReconciliationView(subs *subscription.Client) reconacts.Engine { return subscriptionView{subs} }

// subscriptionView is how reconciliation sees the subscription workflows: through the same client the webhook
// server uses, with their state put in reconciliation's terms. It lives here, in the wiring, so that neither
// side imports the other.
type subscriptionView struct{ *subscription.Client }

// Ours reports the workflow's view of a subscription for reconacts.
func (v subscriptionView) Ours(ctx context.Context, subscriptionID string) (reconacts.Ours, bool, error) {
	d, err := v.Temporal().DescribeWorkflowExecution(ctx, subscription.WorkflowID(subscriptionID), "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return reconacts.Ours{}, false, nil
		}
		return reconacts.Ours{}, false, fmt.Errorf("describing subscription %s: %w", subscriptionID, err)
	}
	switch info := d.GetWorkflowExecutionInfo(); info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		// A subscription's workflow completes only once Microsoft ended the subscription and the tenant
		// was deprovisioned. Its search attributes say so: a query would replay its whole history on a
		// worker, for every ended subscription, every hour.
		status := subscription.StatusFromSearchAttributes(info.GetSearchAttributes())
		if status == "" {
			status = marketplace.StatusUnsubscribed
		}
		return reconacts.Ours{Status: status, Closed: true}, true, nil
	default:
		// Failed (Microsoft did not know the subscription yet), terminated or timed out: the workflow ID
		// may be started again, and Microsoft's view is the one to start from, as for a subscription we
		// never saw.
		return reconacts.Ours{}, false, nil
	}
	st, err := v.State(ctx, subscriptionID)
	if err != nil {
		return reconacts.Ours{}, true, err
	}
	return oursFromState(*st, d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING), true, nil
}

// oursFromState is the part of a workflow's state reconciliation compares with Microsoft's.
func oursFromState(st subscription.State, closed bool) reconacts.Ours {
	o := reconacts.Ours{Status: st.Status, PlanID: st.PlanID, Quantity: st.Quantity, TermEnd: st.Term.EndDate.Time, Closed: closed,
		NeedsAttention: st.Attention != ""}
	if st.Provisioned && !closed {
		o.Tenant = &reconacts.Tenant{PlanID: st.TenantPlanID, Quantity: st.TenantQuantity, Suspended: st.TenantSuspended}
	}
	if st.Pending != nil {
		o.PendingOperationIDs = append(o.PendingOperationIDs, st.Pending.ID)
	}
	for _, s := range st.SeenOperations {
		o.PendingOperationIDs = append(o.PendingOperationIDs, s.ID)
	}
	return o
}

var _ reconacts.Engine = subscriptionView{}
