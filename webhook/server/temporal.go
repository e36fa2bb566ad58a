package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"saasengine/marketplace"
	"saasengine/workflows/reconciliation"
	"saasengine/workflows/subscription"
)

// Temporal is the Subscriptions of production: the subscription workflows, reached through Temporal.
type Temporal struct {
	Client *subscription.Client
}

var _ Subscriptions = Temporal{}

// DeliverWebhook signals (or starts) the subscription's workflow.
func (t Temporal) DeliverWebhook(ctx context.Context, ev marketplace.WebhookEvent) error {
	return webhookError(t.Client.DeliverWebhook(ctx, ev))
}

// WebhookAnswered tells the workflow its webhook's response has been sent.
func (t Temporal) WebhookAnswered(ctx context.Context, ev marketplace.WebhookEvent) error {
	return t.Client.WebhookAnswered(ctx, ev)
}

// DecideChange asks the workflow to decide within wait.
func (t Temporal) DecideChange(ctx context.Context, ev marketplace.WebhookEvent, wait time.Duration) (subscription.ChangeDecision, error) {
	d, err := t.Client.DecideChange(ctx, ev, wait)
	return d, webhookError(err)
}

// webhookError sorts what the webhook answers 200 or 400 from what makes Microsoft deliver again (503).
func webhookError(err error) error {
	switch {
	case errors.Is(err, subscription.ErrUnknownToMicrosoft):
		return ErrUnknownSubscription
	case errors.Is(err, subscription.ErrInvalidSubscription), errors.Is(err, subscription.ErrInvalidEvent):
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return err
}

// Land starts the workflow of a resolved subscription if needed and shows it.
func (t Temporal) Land(ctx context.Context, resolved marketplace.ResolvedSubscription) (View, error) {
	st, err := t.Client.Land(ctx, resolved.Subscription)
	if err != nil {
		return View{}, err
	}
	v := viewOfSubscription(resolved)
	if st != nil {
		v = viewOfState(*st, v)
	}
	return v, nil
}

// Confirm records the buyer's confirmation.
func (t Temporal) Confirm(ctx context.Context, resolved marketplace.ResolvedSubscription) (View, error) {
	st, err := t.Client.Confirm(ctx, resolved.Subscription)
	if err != nil {
		return View{}, mapError(err)
	}
	if st == nil { // taken, and the workflow is busy: the status page follows it
		return viewOfSubscription(resolved), nil
	}
	return viewOfState(*st, viewOfSubscription(resolved)), nil
}

// View reads the workflow's state.
func (t Temporal) View(ctx context.Context, subscriptionID string) (View, error) {
	st, err := t.Client.State(ctx, subscriptionID)
	if err != nil {
		return View{}, mapError(err)
	}
	return viewOfState(*st, View{}), nil
}

// OfTenant reads the subscriptions bought for a tenant: the newest manageLimit its search attributes name,
// each one's state queried (a few at a time).
func (t Temporal) OfTenant(ctx context.Context, tenantID string) (TenantSubscriptions, error) {
	sums, _, err := t.Client.List(ctx, subscription.Filter{Tenant: tenantID, PageSize: manageLimit})
	if err != nil {
		return TenantSubscriptions{}, mapError(err)
	}
	views := make([]*View, len(sums))
	var g errgroup.Group
	g.SetLimit(8)
	for i, sum := range sums {
		g.Go(func() error {
			st, err := t.Client.State(ctx, sum.SubscriptionID)
			if err == nil {
				v := viewOfState(*st, View{})
				views[i] = &v
			}
			return nil
		})
	}
	_ = g.Wait()
	out := TenantSubscriptions{}
	for _, v := range views {
		if v == nil {
			out.Unreadable++
			continue
		}
		out.Views = append(out.Views, *v)
	}
	return out, nil
}

// List lists subscriptions by their search attributes.
func (t Temporal) List(ctx context.Context, f subscription.Filter) ([]subscription.Summary, []byte, error) {
	subs, next, err := t.Client.List(ctx, f)
	return subs, next, mapError(err)
}

// State returns the workflow's full state.
func (t Temporal) State(ctx context.Context, subscriptionID string) (any, error) {
	st, err := t.Client.State(ctx, subscriptionID)
	if err != nil {
		return nil, mapError(err)
	}
	return st, nil
}

// ChangePlan asks for a publisher-initiated plan change.
func (t Temporal) ChangePlan(ctx context.Context, subscriptionID, planID string, wait time.Duration) (any, error) {
	res, err := t.Client.ChangePlanWithin(ctx, subscriptionID, planID, wait)
	return commandResult(res, err)
}

// ChangeQuantity asks for a publisher-initiated seat change.
func (t Temporal) ChangeQuantity(ctx context.Context, subscriptionID string, quantity int64, wait time.Duration) (any, error) {
	res, err := t.Client.ChangeQuantityWithin(ctx, subscriptionID, quantity, wait)
	return commandResult(res, err)
}

// Cancel cancels at Microsoft.
func (t Temporal) Cancel(ctx context.Context, subscriptionID string, wait time.Duration) (any, error) {
	res, err := t.Client.CancelWithin(ctx, subscriptionID, wait)
	return commandResult(res, err)
}

// Approve approves a pending activation.
func (t Temporal) Approve(ctx context.Context, subscriptionID string, wait time.Duration) (any, error) {
	st, err := t.Client.Approve(ctx, subscriptionID, wait)
	if err != nil {
		return nil, mapError(err)
	}
	return st, nil
}

// Retry retries what failed.
func (t Temporal) Retry(ctx context.Context, subscriptionID string, wait time.Duration) (any, error) {
	st, err := t.Client.Retry(ctx, subscriptionID, wait)
	if err != nil {
		return nil, mapError(err)
	}
	return st, nil
}

// Reconcile starts a reconciliation run.
func (t Temporal) Reconcile(ctx context.Context) (any, error) {
	run, err := reconciliation.Start(ctx, t.Client.Temporal(), t.Client.TaskQueue())
	if err != nil {
		return nil, err
	}
	return run, nil
}

// commandResult turns a refused command (by the workflow's checks or by Microsoft) into a 4xx; a Failed or Conflict
// operation is an answer, not an error.
func commandResult(res subscription.CommandResult, err error) (any, error) {
	if err != nil {
		return nil, mapError(err)
	}
	if res.Status == subscription.ResultRejected {
		return nil, &subscription.CommandError{Code: "Rejected", Message: res.Message}
	}
	return res, nil
}

// mapError answers an ended subscription's workflow as a refusal; the client's other errors
// (*subscription.CommandError, *subscription.InProgressError, ErrNotAccepted, ErrNotFound) are the
// server's vocabulary as they are.
func mapError(err error) error {
	if errors.Is(err, subscription.ErrEnded) {
		return &subscription.CommandError{Code: "Ended", Message: "the subscription has ended; nothing more can be done with it"}
	}
	return err
}

func viewOfSubscription(r marketplace.ResolvedSubscription) View {
	s := r.Subscription
	name := r.SubscriptionName
	if name == "" {
		name = s.Name
	}
	return View{
		SubscriptionID: r.ID, Name: name, OfferID: s.OfferID, PlanID: s.PlanID, Quantity: int64(s.Quantity),
		Status: string(s.Status), Stage: "Recorded", Purchaser: s.Purchaser, Beneficiary: s.Beneficiary,
		TermUnit: s.Term.TermUnit, TermStart: s.Term.StartDate.Time, TermEnd: s.Term.EndDate.Time,
		AutoRenew: s.AutoRenew, FreeTrial: s.IsFreeTrial,
		AwaitingConfirmation: s.Status == marketplace.StatusPendingFulfillmentStart,
	}
}

// viewOfState overlays the workflow's state on base (which may carry the subscription's name, which the
// state does not keep).
func viewOfState(st subscription.State, base View) View {
	v := base
	v.SubscriptionID = st.SubscriptionID
	if st.Name != "" {
		v.Name = st.Name
	}
	if st.Status != "" {
		v.Status = string(st.Status)
	}
	v.Stage = string(st.Phase)
	if st.OfferID != "" {
		v.OfferID, v.PlanID, v.Quantity = st.OfferID, st.PlanID, st.Quantity
	}
	if st.Beneficiary != (marketplace.AADIdentifier{}) {
		v.Beneficiary, v.Purchaser = st.Beneficiary, st.Purchaser
	}
	if st.Term.TermUnit != "" {
		v.TermUnit, v.TermStart, v.TermEnd = st.Term.TermUnit, st.Term.StartDate.Time, st.Term.EndDate.Time
	}
	if st.OfferID != "" {
		v.AutoRenew, v.FreeTrial = st.AutoRenew, st.IsFreeTrial
	}
	v.AwaitingConfirmation = st.Phase == subscription.PhaseAwaitingConfirmation
	v.Failed = st.Phase == subscription.PhaseActivationFailed
	return v
}
