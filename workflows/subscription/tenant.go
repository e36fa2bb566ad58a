package subscription

import (
	"go.temporal.io/sdk/workflow"

	"saasengine/activities"
	"saasengine/activities/notification"
	"saasengine/marketplace"
	"saasengine/provisioning"
)

// The tenant follows the subscription. What the provisioner last applied is kept apart from Microsoft's
// view (State.TenantPlanID, TenantQuantity, TenantSuspended), so a failed apply is a visible difference
// that the loop retries on the next retry or snapshot instead of a change forgotten.

// syncTenant brings the tenant to the subscription's plan, seats and suspension. It does nothing while
// a publisher operation is pending (the tenant follows once it settles) or while a failed sync waits
// for a retry.
func (r *runner) syncTenant(ctx workflow.Context) {
	if !r.st.Provisioned || r.st.Pending != nil || r.st.Attention == AttentionTenantSync || r.st.Ended() {
		return
	}
	if r.st.TenantBehind() {
		req := provisioning.ChangeRequest{SubscriptionID: r.st.SubscriptionID, OperationID: r.st.NextKey("sync"), Source: "Reconcile",
			Action: marketplace.ActionChangeQuantity, PlanID: r.st.PlanID, Quantity: r.st.Quantity}
		if r.st.TenantPlanID != r.st.PlanID {
			req.Action = marketplace.ActionChangePlan
		}
		if !r.applyToTenant(ctx, req) {
			return
		}
	}
	switch {
	case r.st.Status == marketplace.StatusSuspended && !r.st.TenantSuspended:
		r.suspendTenant(ctx, r.st.NextKey("sync-suspend"))
	case r.st.Status == marketplace.StatusSubscribed && r.st.TenantSuspended:
		_ = r.reinstateTenant(ctx, r.st.NextKey("sync-reinstate"))
	}
}

// applyToTenant applies a plan or seat change to the tenant; a failure needs attention.
func (r *runner) applyToTenant(ctx workflow.Context, req provisioning.ChangeRequest) bool {
	err := workflow.ExecuteActivity(r.ao(ctx, activities.ProvisioningOptions()), acts.ApplyChange, req).Get(ctx, nil)
	if err != nil {
		r.st.Record(r.now(ctx), "apply-failed", "", "", req.OperationID, message(err))
		r.needAttention(ctx, AttentionTenantSync, "apply change: "+message(err))
		return false
	}
	r.st.Record(r.now(ctx), "tenant", r.st.TenantPlanID, req.PlanID, req.OperationID, "plan and seats applied")
	r.st.TenantPlanID, r.st.TenantQuantity = req.PlanID, req.Quantity
	r.st.Resolved(r.now(ctx), AttentionTenantSync)
	return true
}

func (r *runner) suspendTenant(ctx workflow.Context, key string) bool {
	if !r.st.Provisioned || r.st.TenantSuspended {
		return true
	}
	if err := r.provision(ctx, "suspend", key); err != nil {
		r.needAttention(ctx, AttentionTenantSync, "suspend: "+message(err))
		return false
	}
	r.st.TenantSuspended = true
	r.st.Record(r.now(ctx), "tenant", "active", "suspended", key, "")
	r.notify(ctx, notification.Suspended, "suspended/"+key, "Subscription "+r.st.SubscriptionID+" is suspended; its tenant is restricted", "", map[string]string{"step": key})
	return true
}

func (r *runner) reinstateTenant(ctx workflow.Context, key string) error {
	if err := r.provision(ctx, "reinstate", key); err != nil {
		r.needAttention(ctx, AttentionTenantSync, "reinstate: "+message(err))
		return err
	}
	if r.st.TenantSuspended {
		r.st.Record(r.now(ctx), "tenant", "suspended", "active", key, "")
		r.notify(ctx, notification.Reinstated, "reinstated/"+key, "Subscription "+r.st.SubscriptionID+" is reinstated; its tenant is restored", "", map[string]string{"step": key})
	}
	r.st.TenantSuspended = false
	return nil
}
