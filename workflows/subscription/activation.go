package subscription

import (
	"go.temporal.io/sdk/workflow"

	"saasengine/activities"
	"saasengine/activities/notification"
	subacts "saasengine/activities/subscription"
	"saasengine/marketplace"
)

// Activation, adoption and removal: what the loop does on its own, between inputs, to bring the tenant
// and Microsoft to where the subscription's status says they should be.

const (
	// maxActivationPolls bounds the check that an activation took (about ten minutes).
	maxActivationPolls = 25
	// Idempotency suffixes of the once-in-a-lifetime provisioning steps.
	keyActivate    = "activate"
	keyDeprovision = "deprovision"
)

func (r *runner) advance(ctx workflow.Context) {
	switch r.st.NextActivation(r.opts) {
	case ActAwaitConfirmation:
		r.st.SetPhase(r.now(ctx), PhaseAwaitingConfirmation, "")
	case ActAwaitApproval:
		if r.st.Phase != PhaseAwaitingApproval {
			r.notify(ctx, notification.ApprovalPending, stamp(ctx, "approval-pending"), "Subscription "+r.st.SubscriptionID+" waits for your approval", "", nil)
		}
		r.st.SetPhase(r.now(ctx), PhaseAwaitingApproval, "")
	case ActActivate:
		r.activate(ctx)
	case ActAdopt:
		r.adopt(ctx)
	case ActDeprovision:
		r.deprovision(ctx, "Microsoft shows Unsubscribed")
	}
}

// retryActivation lets a failed activation run again (after a confirm or an approve).
func (r *runner) retryActivation(ctx workflow.Context) {
	if r.st.Phase == PhaseActivationFailed {
		r.st.SetPhase(r.now(ctx), PhaseNew, "activation retried")
	}
}

// retry lets whatever failed run again: the loop's next turn (advance, syncTenant) does the work.
func (r *runner) retry(ctx workflow.Context) {
	switch r.st.Attention {
	case AttentionActivation:
		r.retryActivation(ctx)
	case AttentionDeprovisioning:
		if r.st.Phase == PhaseDeprovisionFailed {
			r.st.SetPhase(r.now(ctx), PhaseIdle, "deprovisioning retried")
		}
	case AttentionTenantSync:
		r.st.Attention, r.st.LastError = "", "" // syncTenant runs again
	}
}

func (r *runner) activate(ctx workflow.Context) {
	r.st.SetPhase(r.now(ctx), PhaseProvisioning, "")
	r.upsertSearch(ctx)
	if err := r.provision(ctx, "provision", keyActivate); err != nil {
		r.failActivation(ctx, "provisioning: "+message(err))
		return
	}
	r.st.Provisioned = true
	r.st.TenantApplied()
	r.st.SetPhase(r.now(ctx), PhaseActivating, "")
	r.upsertSearch(ctx)
	in := subacts.ActivateInput{SubscriptionID: r.st.SubscriptionID, PlanID: r.st.PlanID, Quantity: r.st.Quantity}
	err := workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.Activate, in).Get(ctx, nil)
	if err != nil {
		typ := activities.ErrorType(err)
		if typ != activities.ErrMarketplaceBadRequest && typ != activities.ErrMarketplaceConflict {
			r.failActivation(ctx, "activate: "+message(err))
			return
		}
		// A repeated activation answers 400: it counts as success if Microsoft shows Subscribed.
		sub, gerr := r.getSubscription(ctx)
		if gerr != nil || sub.Status != marketplace.StatusSubscribed {
			r.failActivation(ctx, "activate: "+message(err))
			return
		}
		r.st.Record(r.now(ctx), "activate", "", "", "", "already active at Microsoft")
	}
	// Activate's 200 only means received: confirm with Get subscription, whose record lags.
	delay := pollInitial
	for i := 0; i < maxActivationPolls; i++ {
		sub, err := r.getSubscription(ctx)
		if err != nil {
			r.failActivation(ctx, "confirm activation: "+message(err))
			return
		}
		r.follow(ctx, sub, "activation")
		switch sub.Status {
		case marketplace.StatusSubscribed, marketplace.StatusSuspended:
			r.st.ActivatedAt = r.now(ctx)
			r.st.Resolved(r.now(ctx), AttentionActivation)
			r.st.LastError = ""
			r.st.SetPhase(r.now(ctx), PhaseIdle, "activated")
			return
		case marketplace.StatusUnsubscribed:
			return // advance deprovisions
		}
		_ = workflow.Sleep(ctx, delay)
		delay = min(2*delay, pollMax)
	}
	r.failActivation(ctx, "subscription not Subscribed after activation")
}

func (r *runner) failActivation(ctx workflow.Context, err string) {
	r.st.Fail(r.now(ctx), PhaseActivationFailed, err)
	r.needAttention(ctx, AttentionActivation, err)
}

// adopt takes over a subscription Microsoft already shows active (found by a webhook or reconciliation)
// without calling Activate again.
func (r *runner) adopt(ctx workflow.Context) {
	r.st.SetPhase(r.now(ctx), PhaseProvisioning, "adopting an active subscription")
	if err := r.provision(ctx, "provision", keyActivate); err != nil {
		r.failActivation(ctx, "provisioning: "+message(err))
		return
	}
	r.st.Provisioned = true
	r.st.TenantApplied()
	r.st.Resolved(r.now(ctx), AttentionActivation)
	r.st.Record(r.now(ctx), "adopt", "", string(r.st.Status), "", "provisioned without Activate")
	r.st.SetPhase(r.now(ctx), PhaseIdle, "")
	// A suspended subscription's tenant is suspended by syncTenant.
}

func (r *runner) deprovision(ctx workflow.Context, why string) {
	if err := r.provision(ctx, "deprovision", keyDeprovision); err != nil {
		r.st.Fail(r.now(ctx), PhaseDeprovisionFailed, "deprovision: "+message(err))
		r.needAttention(ctx, AttentionDeprovisioning, "deprovision: "+message(err))
		return
	}
	now := r.now(ctx)
	r.st.Status = marketplace.StatusUnsubscribed
	if r.st.UnsubscribedAt.IsZero() {
		r.st.UnsubscribedAt = now
	}
	r.st.DeprovisionedAt = now
	r.st.Provisioned, r.st.TenantSuspended = false, false
	r.st.Resolved(now, AttentionDeprovisioning)
	r.st.Resolved(now, AttentionTenantSync)
	r.st.SetPhase(now, PhaseDeprovisioned, why)
	r.notify(ctx, notification.Unsubscribed, "unsubscribed", "Subscription "+r.st.SubscriptionID+" ended; its tenant was deprovisioned", why, nil)
}
