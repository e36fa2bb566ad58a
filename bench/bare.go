package bench

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"saasengine/activities"
	subacts "saasengine/activities/subscription"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/workflows/subscription"
)

// Names of the baseline workflows: Temporal alone, none of the engine's logic.
const (
	BareIdleType       = "BenchBareIdle"
	BareActivationType = "BenchBareActivation"
	BareDecideType     = "BenchBareDecide"
	BareContractType   = "BenchBareContract"
)

// acts names the activities for ExecuteActivity, as the subscription workflow does.
var acts *subacts.Activities

// BareInput starts a bare idle workflow.
type BareInput struct {
	Subscription marketplace.Subscription `json:"subscription"`
	// Read reads the subscription from Microsoft first (Get subscription), as an adoption does.
	Read bool `json:"read,omitempty"`
	// Provision runs the Provision activity first, as an adoption does.
	Provision bool `json:"provision,omitempty"`
}

// bareAdopt makes the activity calls in asks for, with the options the subscription workflow uses.
func bareAdopt(ctx workflow.Context, in BareInput) error {
	sub := in.Subscription
	if in.Read {
		rctx := workflow.WithActivityOptions(ctx, activities.MarketplaceReadOptions())
		if err := workflow.ExecuteActivity(rctx, acts.GetSubscription, sub.ID).Get(ctx, nil); err != nil {
			return err
		}
	}
	if in.Provision {
		req := provisioning.Request{SubscriptionID: sub.ID, OperationID: "bare-adopt", Subscription: sub}
		actx := workflow.WithActivityOptions(ctx, activities.ProvisioningOptions())
		if err := workflow.ExecuteActivity(actx, acts.Provision, req).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// BareIdle is the floor of an idle subscription workflow: optionally read and provision, show a phase in
// a search attribute, answer a query and wait for signals.
func BareIdle(ctx workflow.Context, in BareInput) error {
	sub := in.Subscription
	if err := workflow.SetQueryHandler(ctx, subscription.QueryState, func() (marketplace.Subscription, error) { return sub, nil }); err != nil {
		return err
	}
	if err := bareAdopt(ctx, in); err != nil {
		return err
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, subscription.SaaSPhase.ValueSet(string(subscription.PhaseIdle))); err != nil {
		return err
	}
	ch := workflow.GetSignalChannel(ctx, subscription.SignalSnapshot)
	for {
		ch.Receive(ctx, &sub)
	}
}

// BareContract is the floor of an idle subscription workflow that keeps the subscription's contract
// with Temporal and its callers, without any of the engine's logic: the same query, signal channels and
// update handlers (that do nothing), the same ten search attributes, the run-age timer and a mutex, and
// optionally the same activity calls as an adoption. Beside BareIdle it tells what the contract costs
// from what the engine adds.
func BareContract(ctx workflow.Context, in BareInput) error {
	sub := in.Subscription
	if err := workflow.SetQueryHandler(ctx, subscription.QueryState, func() (marketplace.Subscription, error) { return sub, nil }); err != nil {
		return err
	}
	if err := bareAdopt(ctx, in); err != nil {
		return err
	}
	var chans []workflow.ReceiveChannel
	for _, name := range []string{subscription.SignalWebhook, subscription.SignalSnapshot, subscription.SignalConfirm, subscription.SignalAnswered} {
		chans = append(chans, workflow.GetSignalChannel(ctx, name))
	}
	_ = workflow.NewMutex(ctx)
	_ = workflow.NewTimer(ctx, subscription.MaxRunAge)
	for _, name := range []string{subscription.UpdateConfirm, subscription.UpdateApprove, subscription.UpdateRetry, subscription.UpdateDecideChange,
		subscription.UpdateChangePlan, subscription.UpdateChangeQuantity, subscription.UpdateCancel} {
		err := workflow.SetUpdateHandlerWithOptions(ctx, name, func(ctx workflow.Context) error { return nil },
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error { return nil }})
		if err != nil {
			return err
		}
	}
	err := workflow.UpsertTypedSearchAttributes(ctx,
		subscription.SaaSPhase.ValueSet(string(subscription.PhaseIdle)), subscription.SaaSQuantity.ValueSet(int64(sub.Quantity)),
		subscription.SaaSIsTest.ValueSet(sub.IsTest), subscription.SaaSIsFreeTrial.ValueSet(sub.IsFreeTrial),
		subscription.SaaSNeedsAttention.ValueSet(false), subscription.SaaSStatus.ValueSet(string(sub.Status)),
		subscription.SaaSOffer.ValueSet(sub.OfferID), subscription.SaaSPlan.ValueSet(sub.PlanID),
		subscription.SaaSBeneficiaryTenant.ValueSet(sub.Beneficiary.TenantID), subscription.SaaSPurchaserTenant.ValueSet(sub.Purchaser.TenantID))
	if err != nil {
		return err
	}
	sel := workflow.NewSelector(ctx)
	for _, ch := range chans {
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, more bool) { c.Receive(ctx, nil) })
	}
	for {
		sel.Select(ctx)
	}
}

// BareActivation is the floor of an activation: the activities the subscription workflow runs to activate
// a purchase (provision, Activate, Get subscription to confirm), with the same options, in a plain
// sequence.
func BareActivation(ctx workflow.Context, sub marketplace.Subscription) error {
	prov := workflow.WithActivityOptions(ctx, activities.ProvisioningOptions())
	reads := workflow.WithActivityOptions(ctx, activities.MarketplaceReadOptions())
	req := provisioning.Request{SubscriptionID: sub.ID, OperationID: "activate", Subscription: sub}
	if err := workflow.ExecuteActivity(prov, acts.Provision, req).Get(ctx, nil); err != nil {
		return err
	}
	in := subacts.ActivateInput{SubscriptionID: sub.ID, PlanID: sub.PlanID, Quantity: int64(sub.Quantity)}
	if err := workflow.ExecuteActivity(reads, acts.Activate, in).Get(ctx, nil); err != nil {
		return err
	}
	var got marketplace.Subscription
	if err := workflow.ExecuteActivity(reads, acts.GetSubscription, sub.ID).Get(ctx, &got); err != nil {
		return err
	}
	if got.Status != marketplace.StatusSubscribed {
		return fmt.Errorf("subscription %s is %s after activation", sub.ID, got.Status)
	}
	return nil
}

// BareDecide is the floor of deciding a customer's changes to one subscription, reached with
// Update-With-Start: an update with the engine's name, request and time budget that verifies the
// operation and reads the subscription at once, asks the provisioner and answers; the workflow PATCHes
// each outcome after its answer has gone, as the subscription workflow's loop does.
func BareDecide(ctx workflow.Context, subscriptionID string) error {
	var settle []subacts.UpdateOperationInput
	err := workflow.SetUpdateHandler(ctx, subscription.UpdateDecideChange, func(ctx workflow.Context, req subscription.DecideRequest) (subscription.ChangeDecision, error) {
		left := func() time.Duration { return req.Deadline.Sub(workflow.Now(ctx)) - bareAnswerMargin }
		// Half the time left for the reads, the rest for the decision, as the engine shares it.
		reads := workflow.WithActivityOptions(ctx, bareWithin(left()/2))
		opF := workflow.ExecuteActivity(reads, acts.GetOperation, subacts.OperationRef{SubscriptionID: subscriptionID, OperationID: req.Event.ID})
		subF := workflow.ExecuteActivity(reads, acts.GetSubscription, subscriptionID)
		var op marketplace.Operation
		if err := opF.Get(ctx, &op); err != nil {
			return subscription.ChangeDecision{}, err
		}
		if err := subF.Get(ctx, nil); err != nil {
			return subscription.ChangeDecision{}, err
		}
		cr := provisioning.ChangeRequest{SubscriptionID: subscriptionID, OperationID: op.ID, Action: op.Action,
			PlanID: op.PlanID, Quantity: int64(op.Quantity), Source: op.OperationRequestSource}
		var dec provisioning.Decision
		if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, bareWithin(left())), acts.DecideChange, cr).Get(ctx, &dec); err != nil {
			return subscription.ChangeDecision{}, err
		}
		status := marketplace.UpdateFailure
		if dec.Accept {
			status = marketplace.UpdateSuccess
		}
		settle = append(settle, subacts.UpdateOperationInput{SubscriptionID: subscriptionID, OperationID: op.ID, Status: status})
		return subscription.ChangeDecision{Accepted: dec.Accept, Reason: dec.Reason, Decided: true}, nil
	})
	if err != nil {
		return err
	}
	patch := workflow.WithActivityOptions(ctx, activities.MarketplaceReadOptions())
	for {
		if err := workflow.Await(ctx, func() bool { return len(settle) > 0 }); err != nil {
			return err
		}
		in := settle[0]
		settle = settle[1:]
		// A PATCH that fails for good shows as one that never arrived; the benchmark counts it.
		_ = workflow.ExecuteActivity(patch, acts.UpdateOperation, in).Get(ctx, nil)
	}
}

// bareAnswerMargin is kept back from the caller's deadline for the answer's way back, as the engine does.
const bareAnswerMargin = 300 * time.Millisecond

// bareWithin are the options of a decision's calls, the engine's: done within d (at least 500 ms), retries
// included.
func bareWithin(d time.Duration) workflow.ActivityOptions {
	d = max(d, 500*time.Millisecond)
	return workflow.ActivityOptions{
		StartToCloseTimeout:    d,
		ScheduleToCloseTimeout: d,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: time.Second},
	}
}
