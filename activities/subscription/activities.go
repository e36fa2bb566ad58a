// Package subscription holds the subscription workflow's activities: calls to Microsoft's Marketplace
// APIs and to the ISV's provisioning. Errors leave here already classified (activities.MapError), so the
// workflow decides on error types, never on strings.
package subscription

import (
	"context"
	"errors"
	"net/http"

	"go.temporal.io/sdk/activity"
	"go.uber.org/zap"

	"saasengine/activities"
	"saasengine/marketplace"
	"saasengine/provisioning"
)

// Marketplace is the part of *marketplace.Client the activities use.
type Marketplace interface {
	GetSubscription(ctx context.Context, subscriptionID string) (*marketplace.Subscription, error)
	Activate(ctx context.Context, subscriptionID string, plan marketplace.SubscriberPlan) error
	GetOperation(ctx context.Context, subscriptionID, operationID string) (*marketplace.Operation, error)
	ListOperations(ctx context.Context, subscriptionID string) ([]marketplace.Operation, error)
	UpdateOperation(ctx context.Context, subscriptionID, operationID string, update marketplace.OperationUpdate) error
	ListAvailablePlans(ctx context.Context, subscriptionID, planID string) ([]marketplace.Plan, error)
	ChangePlan(ctx context.Context, subscriptionID, planID string) (string, error)
	ChangeQuantity(ctx context.Context, subscriptionID string, quantity int64) (string, error)
	DeleteSubscription(ctx context.Context, subscriptionID string) (string, error)
}

var _ Marketplace = (*marketplace.Client)(nil)

// Provisioner is the ISV's side: provisioning.Demo, provisioning.HTTP or the ISV's own implementation.
// Every method must be idempotent on the request's key.
type Provisioner interface {
	Provision(ctx context.Context, r provisioning.Request) error
	DecideChange(ctx context.Context, r provisioning.ChangeRequest) (provisioning.Decision, error)
	ApplyChange(ctx context.Context, r provisioning.ChangeRequest) error
	Suspend(ctx context.Context, r provisioning.Request) error
	Reinstate(ctx context.Context, r provisioning.Request) error
	Deprovision(ctx context.Context, r provisioning.Request) error
}

var (
	_ Provisioner = (*provisioning.Demo)(nil)
	_ Provisioner = (*provisioning.HTTP)(nil)
)

// Activities are the subscription workflow's activities; register the struct with a worker.
type Activities struct {
	Marketplace Marketplace
	Provisioner Provisioner
	// Logger may be nil. Nothing with e-mail addresses or tokens is logged.
	Logger *zap.Logger
}

// ActivateInput is the plan and quantity to activate.
type ActivateInput struct {
	SubscriptionID string `json:"subscriptionId"`
	PlanID         string `json:"planId"`
	Quantity       int64  `json:"quantity,omitempty"`
}

// OperationRef names one operation of one subscription.
type OperationRef struct {
	SubscriptionID string `json:"subscriptionId"`
	OperationID    string `json:"operationId"`
}

// UpdateOperationInput is the publisher's answer to an operation.
type UpdateOperationInput struct {
	SubscriptionID string                   `json:"subscriptionId"`
	OperationID    string                   `json:"operationId"`
	Status         marketplace.UpdateStatus `json:"status"`
	// TolerateBadRequest also takes a 400 as "already decided" (Reinstate, whose ACK Microsoft may refuse).
	TolerateBadRequest bool `json:"tolerateBadRequest,omitempty"`
}

// UpdateOperationResult says whether Microsoft took the answer.
type UpdateOperationResult struct {
	// AlreadyDecided is true when Microsoft answered 409 (or a tolerated 400): the operation was decided
	// already (auto-accepted, patched before, superseded). Re-read the operation.
	AlreadyDecided bool   `json:"alreadyDecided,omitempty"`
	Note           string `json:"note,omitempty"`
}

// ChangePlanInput asks Microsoft to move a subscription to another plan.
type ChangePlanInput struct {
	SubscriptionID string `json:"subscriptionId"`
	PlanID         string `json:"planId"`
}

// ChangeQuantityInput asks Microsoft to change a subscription's seats.
type ChangeQuantityInput struct {
	SubscriptionID string `json:"subscriptionId"`
	Quantity       int64  `json:"quantity"`
}

func (a *Activities) log(ctx context.Context) *zap.Logger {
	l := a.Logger
	if l == nil {
		l = zap.NewNop()
	}
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		l = l.With(zap.String("workflowId", info.WorkflowExecution.ID), zap.String("activity", info.ActivityType.Name), zap.Int32("attempt", info.Attempt))
	}
	return l
}

// fail logs a failed call (without payloads) once and returns it classified: the Marketplace client has
// logged its own failures already, with their request IDs.
func (a *Activities) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		// Cut short (worker shutting down, activity timeout): MapError retries it; say so once.
		a.log(ctx).Warn("activity cut short", zap.Error(err))
	} else if _, fromMarketplace := marketplace.AsError(err); !fromMarketplace {
		a.log(ctx).Warn("activity failed", zap.Error(err))
	}
	return activities.MapError(ctx, err)
}

// GetSubscription reads the subscription from Microsoft.
func (a *Activities) GetSubscription(ctx context.Context, subscriptionID string) (marketplace.Subscription, error) {
	s, err := a.Marketplace.GetSubscription(activities.WithCorrelation(ctx), subscriptionID)
	if err != nil {
		return marketplace.Subscription{}, a.fail(ctx, err)
	}
	return *s, nil
}

// Activate tells Microsoft the subscription is set up (billing starts). Safe to repeat: a repeat of a
// successful activation answers 400, which the workflow resolves with GetSubscription.
func (a *Activities) Activate(ctx context.Context, in ActivateInput) error {
	err := a.Marketplace.Activate(activities.WithCorrelation(ctx), in.SubscriptionID, marketplace.SubscriberPlan{PlanID: in.PlanID, Quantity: marketplace.Quantity(in.Quantity)})
	if err != nil {
		return a.fail(ctx, err)
	}
	return nil
}

// GetOperation reads one operation.
func (a *Activities) GetOperation(ctx context.Context, ref OperationRef) (marketplace.Operation, error) {
	op, err := a.Marketplace.GetOperation(activities.WithCorrelation(ctx), ref.SubscriptionID, ref.OperationID)
	if err != nil {
		return marketplace.Operation{}, a.fail(ctx, err)
	}
	return *op, nil
}

// ListOperations lists the operations waiting for the publisher.
func (a *Activities) ListOperations(ctx context.Context, subscriptionID string) ([]marketplace.Operation, error) {
	ops, err := a.Marketplace.ListOperations(activities.WithCorrelation(ctx), subscriptionID)
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	return ops, nil
}

// UpdateOperation sends Success or Failure for an operation. A 409 (and, when tolerated, a 400) is a
// result, not an error: the operation was decided already.
func (a *Activities) UpdateOperation(ctx context.Context, in UpdateOperationInput) (UpdateOperationResult, error) {
	err := a.Marketplace.UpdateOperation(activities.WithCorrelation(ctx), in.SubscriptionID, in.OperationID, marketplace.OperationUpdate{Status: in.Status})
	if err == nil {
		return UpdateOperationResult{}, nil
	}
	if me, ok := marketplace.AsError(err); ok {
		if me.StatusCode == http.StatusConflict || (in.TolerateBadRequest && me.StatusCode == http.StatusBadRequest) {
			a.log(ctx).Info("operation already decided", zap.Int("status", me.StatusCode), zap.String("code", me.Code))
			return UpdateOperationResult{AlreadyDecided: true, Note: me.Error()}, nil
		}
	}
	return UpdateOperationResult{}, a.fail(ctx, err)
}

// ListAvailablePlans lists the plans the subscription may move to.
func (a *Activities) ListAvailablePlans(ctx context.Context, subscriptionID string) ([]marketplace.Plan, error) {
	plans, err := a.Marketplace.ListAvailablePlans(activities.WithCorrelation(ctx), subscriptionID, "")
	if err != nil {
		return nil, a.fail(ctx, err)
	}
	return plans, nil
}

// ChangePlan asks Microsoft for a plan change and returns the operation ID.
func (a *Activities) ChangePlan(ctx context.Context, in ChangePlanInput) (string, error) {
	id, err := a.Marketplace.ChangePlan(activities.WithCorrelation(ctx), in.SubscriptionID, in.PlanID)
	if err != nil {
		return "", a.fail(ctx, err)
	}
	return id, nil
}

// ChangeQuantity asks Microsoft for a quantity change and returns the operation ID.
func (a *Activities) ChangeQuantity(ctx context.Context, in ChangeQuantityInput) (string, error) {
	id, err := a.Marketplace.ChangeQuantity(activities.WithCorrelation(ctx), in.SubscriptionID, in.Quantity)
	if err != nil {
		return "", a.fail(ctx, err)
	}
	return id, nil
}

// DeleteSubscription asks Microsoft to cancel the subscription and returns the operation ID.
func (a *Activities) DeleteSubscription(ctx context.Context, subscriptionID string) (string, error) {
	id, err := a.Marketplace.DeleteSubscription(activities.WithCorrelation(ctx), subscriptionID)
	if err != nil {
		return "", a.fail(ctx, err)
	}
	return id, nil
}

// Provision creates the tenant.
func (a *Activities) Provision(ctx context.Context, r provisioning.Request) error {
	return a.provisioned(ctx, a.Provisioner.Provision(ctx, r))
}

// DecideChange asks the ISV whether to accept a change Microsoft announced.
func (a *Activities) DecideChange(ctx context.Context, r provisioning.ChangeRequest) (provisioning.Decision, error) {
	d, err := a.Provisioner.DecideChange(ctx, r)
	if err != nil {
		return provisioning.Decision{}, a.provisioned(ctx, err)
	}
	return d, nil
}

// ApplyChange applies an accepted plan or quantity change on the ISV's side.
func (a *Activities) ApplyChange(ctx context.Context, r provisioning.ChangeRequest) error {
	return a.provisioned(ctx, a.Provisioner.ApplyChange(ctx, r))
}

// Suspend restricts the tenant.
func (a *Activities) Suspend(ctx context.Context, r provisioning.Request) error {
	return a.provisioned(ctx, a.Provisioner.Suspend(ctx, r))
}

// Reinstate restores the tenant.
func (a *Activities) Reinstate(ctx context.Context, r provisioning.Request) error {
	return a.provisioned(ctx, a.Provisioner.Reinstate(ctx, r))
}

// Deprovision removes the tenant (per the ISV's retention policy).
func (a *Activities) Deprovision(ctx context.Context, r provisioning.Request) error {
	return a.provisioned(ctx, a.Provisioner.Deprovision(ctx, r))
}

func (a *Activities) provisioned(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return a.fail(ctx, err)
}
