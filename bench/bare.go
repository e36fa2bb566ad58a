package bench

import (
	"fmt"

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
)

// acts names the activities for ExecuteActivity, as the subscription workflow does.
var acts *subacts.Activities

// BareInput starts a bare idle workflow.
type BareInput struct {
	Subscription marketplace.Subscription `json:"subscription"`
	// Provision runs the Provision activity first, as an adoption does.
	Provision bool `json:"provision,omitempty"`
}

// BareIdle is the floor of an idle subscription workflow: optionally provision, show a phase in a search
// attribute, answer a query and wait for signals.
func BareIdle(ctx workflow.Context, in BareInput) error {
	sub := in.Subscription
	if err := workflow.SetQueryHandler(ctx, subscription.QueryState, func() (marketplace.Subscription, error) { return sub, nil }); err != nil {
		return err
	}
	if in.Provision {
		req := provisioning.Request{SubscriptionID: sub.ID, OperationID: "bare-adopt", Subscription: sub}
		actx := workflow.WithActivityOptions(ctx, activities.ProvisioningOptions())
		if err := workflow.ExecuteActivity(actx, acts.Provision, req).Get(ctx, nil); err != nil {
			return err
		}
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, subscription.SaaSPhase.ValueSet(string(subscription.PhaseIdle))); err != nil {
		return err
	}
	ch := workflow.GetSignalChannel(ctx, subscription.SignalSnapshot)
	for {
		ch.Receive(ctx, &sub)
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
