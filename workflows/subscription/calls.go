package subscription

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"saasengine/activities"
	subacts "saasengine/activities/subscription"
	"saasengine/marketplace"
	"saasengine/provisioning"
)

// Activity calls, Microsoft's reads and polling.

const (
	// maxOperationPolls bounds the polling of one operation (2 s doubling to 30 s: about two hours).
	maxOperationPolls = 240
	// maxStaleReads bounds the re-reads of a subscription record that has not caught up with an
	// operation (2 s doubling to 30 s: about a minute) before the difference is taken as drift.
	maxStaleReads = 5
)

func (r *runner) ao(ctx workflow.Context, o workflow.ActivityOptions) workflow.Context {
	return workflow.WithActivityOptions(ctx, o)
}

// refresh reads the subscription from Microsoft and follows it; a 404 for a subscription never seen
// ends the workflow.
func (r *runner) refresh(ctx workflow.Context, why string) error {
	sub, err := r.readSubscription(ctx)
	if err != nil {
		r.st.Record(r.now(ctx), "read-failed", "", "", "", why+": "+message(err))
		if isNotFound(err) && !r.st.Provisioned && r.st.Status == "" {
			r.st.Fail(r.now(ctx), PhaseNotFound, "Microsoft does not know the subscription")
		}
		return err
	}
	r.follow(ctx, sub, why)
	return nil
}

// readSubscription reads Microsoft's record of the subscription. Microsoft's reads lag its operations
// by seconds: a read that contradicts a transition a Succeeded operation confirmed is stale, and is read
// again with backoff; after maxStaleReads the read is taken as the truth (drift).
func (r *runner) readSubscription(ctx workflow.Context) (marketplace.Subscription, error) {
	delay := pollInitial
	for i := 0; ; i++ {
		sub, err := r.getSubscription(ctx)
		if err != nil {
			return sub, err
		}
		stale, what := r.st.Stale(sub)
		if !stale {
			r.st.CaughtUp(sub, false)
			return sub, nil
		}
		if i >= maxStaleReads {
			r.st.Record(r.now(ctx), "drift", "", "", "", "Microsoft's record still differs: "+what)
			r.st.CaughtUp(sub, true)
			return sub, nil
		}
		_ = workflow.Sleep(ctx, delay)
		delay = min(2*delay, pollMax)
	}
}

// follow takes a fresh, caught-up read of the subscription as the truth; syncTenant passes what moved
// on to the tenant.
func (r *runner) follow(ctx workflow.Context, sub marketplace.Subscription, why string) {
	r.st.ApplySubscription(sub, r.now(ctx), why)
}

func (r *runner) getSubscription(ctx workflow.Context) (marketplace.Subscription, error) {
	var sub marketplace.Subscription
	err := workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.GetSubscription, r.st.SubscriptionID).Get(ctx, &sub)
	return sub, err
}

func (r *runner) getOperation(ctx workflow.Context, o workflow.ActivityOptions, opID string) (marketplace.Operation, error) {
	var op marketplace.Operation
	err := workflow.ExecuteActivity(r.ao(ctx, o), acts.GetOperation, subacts.OperationRef{SubscriptionID: r.st.SubscriptionID, OperationID: opID}).Get(ctx, &op)
	return op, err
}

// pollOperation reads an operation until it is terminal, waiting 2 s doubling to 30 s between reads.
func (r *runner) pollOperation(ctx workflow.Context, opID string) (marketplace.Operation, error) {
	delay := pollInitial
	for i := 0; ; i++ {
		op, err := r.getOperation(ctx, activities.MarketplaceReadOptions(), opID)
		if err != nil || op.Status.Terminal() {
			return op, err
		}
		if i >= maxOperationPolls {
			return op, fmt.Errorf("operation %s still %s after %d polls", opID, op.Status, i+1)
		}
		if err := workflow.Sleep(ctx, delay); err != nil {
			return op, err
		}
		delay = min(2*delay, pollMax)
	}
}

// provision runs one lifecycle provisioning step keyed by the subscription and key.
func (r *runner) provision(ctx workflow.Context, step, key string) error {
	req := provisioning.Request{SubscriptionID: r.st.SubscriptionID, OperationID: key, Subscription: r.st.Subscription()}
	var fn any
	switch step {
	case "provision":
		fn = acts.Provision
	case "suspend":
		fn = acts.Suspend
	case "reinstate":
		fn = acts.Reinstate
	case "deprovision":
		fn = acts.Deprovision
	default:
		return fmt.Errorf("unknown provisioning step %q", step)
	}
	return workflow.ExecuteActivity(r.ao(ctx, activities.ProvisioningOptions()), fn, req).Get(ctx, nil)
}

// rejected reports a definite refusal by Microsoft (as opposed to an ambiguous failure).
func rejected(err error) bool {
	switch activities.ErrorType(err) {
	case activities.ErrMarketplaceBadRequest, activities.ErrMarketplaceForbidden, activities.ErrMarketplaceNotFound,
		activities.ErrMarketplaceConflict, activities.ErrMarketplaceRejected:
		return true
	}
	return false
}

// ambiguousRefusal reports a refusal of a write that may concern an operation the write itself created:
// a 409 (an operation is in progress, perhaps ours), or any refusal of a retried attempt (the first one
// may have gone through with its answer lost).
func ambiguousRefusal(err error) bool {
	if activities.ErrorType(err) == activities.ErrMarketplaceConflict {
		return true
	}
	f, ok := activities.Failure(err)
	return ok && f.Attempt > 1
}

func isNotFound(err error) bool {
	t := activities.ErrorType(err)
	// The real API sometimes answers 400 where 404 is meant.
	return t == activities.ErrMarketplaceNotFound || t == activities.ErrMarketplaceBadRequest
}

// message is an activity failure's own message, without the wrapping.
func message(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	return err.Error()
}
