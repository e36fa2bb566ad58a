// This file is the typed client of the subscription workflows: how the webhook server, the landing page,
// the admin API, the operator CLI and reconciliation start, signal, update, query and list them. Every start is Signal-With-Start or Update-With-Start on the subscription's workflow ID,
// so whoever sees a subscription first starts its workflow and everyone else joins it.
package subscription

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"saasengine/marketplace"
)

// ErrNotFound means no workflow exists for the subscription.
var ErrNotFound = errors.New("subscription: no workflow for this subscription")

// CommandError is a command the workflow refused (its update validator or its handler), with the
// workflow's code and message.
type CommandError struct {
	Code    string
	Message string
}

func (e *CommandError) Error() string { return e.Code + ": " + e.Message }

// Client reaches the subscription workflows.
type Client struct {
	temporal  client.Client
	taskQueue string
	options   Options
}

// New returns a client for workflows on taskQueue; opts go to every workflow this client starts.
func New(c client.Client, taskQueue string, opts Options) *Client {
	if taskQueue == "" {
		taskQueue = DefaultTaskQueue
	}
	return &Client{temporal: c, taskQueue: taskQueue, options: opts}
}

// Temporal is the underlying Temporal client.
func (c *Client) Temporal() client.Client { return c.temporal }

// TaskQueue is the task queue of the workflows this client starts.
func (c *Client) TaskQueue() string { return c.taskQueue }

// startOptions make every start idempotent: a running workflow is joined, and one that completed is not
// started again (its subscription is over; a late redelivery must not resurrect it). One that failed or
// was terminated may be started afresh.
func (c *Client) startOptions(subscriptionID string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       WorkflowID(subscriptionID),
		TaskQueue:                c.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
	}
}

func isEnded(err error) bool {
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	return errors.As(err, &started)
}

// ErrInvalidSubscription is a subscription ID that is not a GUID, as every ID Microsoft gives out is: it
// names no subscription, and it must not name a workflow.
var ErrInvalidSubscription = errors.New("subscription: the subscription ID is not a GUID")

// ErrUnknownToMicrosoft means the notification's subscription had a workflow that failed lately because
// Microsoft does not know the subscription: the notification starts nothing, and its sender is answered
// as for a delivered one so that it stops delivering it. The landing page and reconciliation, which see
// the subscription at Microsoft first, still start its workflow.
var ErrUnknownToMicrosoft = errors.New("subscription: Microsoft does not know this subscription")

// ErrInvalidEvent is a notification Temporal refuses as it stands (an operation ID too long to be an ID,
// for instance): delivering it again cannot help.
var ErrInvalidEvent = errors.New("subscription: Temporal refuses the notification as it stands")

// ValidID reports whether id is a subscription ID as Microsoft writes them: a GUID in its 36-character form.
func ValidID(id string) bool {
	if len(id) != 36 {
		return false
	}
	_, err := uuid.Parse(id)
	return err == nil
}

// unknownQuiet is how long after a workflow failed for a subscription Microsoft does not know that
// notifications for it start nothing: the eight hours Microsoft keeps redelivering one. A subscription
// Microsoft does not know thus costs one workflow per redelivery series, not one per delivery.
const unknownQuiet = 8 * time.Hour

// lastRun is what the latest workflow of a subscription says about starting another.
type lastRun int

const (
	// runNone: there is none, or one that may be started afresh (failed otherwise, terminated...).
	runNone lastRun = iota
	// runEnded: it completed; the subscription is over.
	runEnded
	// runUnknown: it failed lately because Microsoft does not know the subscription.
	runUnknown
)

// latestRun describes the subscription's latest workflow, for a notification that found none running.
func (c *Client) latestRun(ctx context.Context, subscriptionID string) (lastRun, error) {
	id := WorkflowID(subscriptionID)
	d, err := c.temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return runNone, nil
		}
		return runNone, fmt.Errorf("describing subscription %s: %w", subscriptionID, err)
	}
	info := d.GetWorkflowExecutionInfo()
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		return runEnded, nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED:
	default:
		return runNone, nil
	}
	if closed := info.GetCloseTime(); closed == nil || time.Since(closed.AsTime()) > unknownQuiet {
		return runNone, nil
	}
	it := c.temporal.GetWorkflowHistory(ctx, id, info.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	if !it.HasNext() {
		return runNone, nil
	}
	ev, err := it.Next()
	if err != nil {
		return runNone, fmt.Errorf("reading how subscription %s's workflow ended: %w", subscriptionID, err)
	}
	if ev.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetApplicationFailureInfo().GetType() == ErrSubscriptionNotFound {
		return runUnknown, nil
	}
	return runNone, nil
}

// invalid sorts out the errors of a notification Temporal refuses as it stands.
func invalid(err error) error {
	var ia *serviceerror.InvalidArgument
	if errors.As(err, &ia) {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return err
}

// DeliverWebhook hands an authenticated notification to its subscription's workflow and returns once
// Temporal has recorded it: a running workflow is signalled; otherwise the workflow is started with it
// (Signal-With-Start), unless the subscription has ended (the notification is dropped: Microsoft must stop
// redelivering) or Microsoft did not know it lately (ErrUnknownToMicrosoft).
func (c *Client) DeliverWebhook(ctx context.Context, ev marketplace.WebhookEvent) error {
	if !ValidID(ev.SubscriptionID) {
		return ErrInvalidSubscription
	}
	id := WorkflowID(ev.SubscriptionID)
	// The common case, a running workflow, costs one call.
	err := c.temporal.SignalWorkflow(ctx, id, "", SignalWebhook, ev)
	var nf *serviceerror.NotFound
	if err == nil || !errors.As(err, &nf) {
		if err != nil {
			return invalid(fmt.Errorf("signalling subscription %s: %w", ev.SubscriptionID, err))
		}
		return nil
	}
	switch last, err := c.latestRun(ctx, ev.SubscriptionID); {
	case err != nil:
		return err
	case last == runEnded:
		return nil
	case last == runUnknown:
		return ErrUnknownToMicrosoft
	}
	in := Input{SubscriptionID: ev.SubscriptionID, Source: SourceWebhook, Options: c.options}
	_, err = c.temporal.SignalWithStartWorkflow(ctx, id, SignalWebhook, ev,
		c.startOptions(ev.SubscriptionID), WorkflowType, in)
	if err != nil && !isEnded(err) {
		return invalid(fmt.Errorf("signalling subscription %s: %w", ev.SubscriptionID, err))
	}
	return nil
}

// WebhookAnswered tells the workflow that the HTTP response to a webhook has been sent, so that its
// PATCH of the operation may follow (Microsoft expects none before). Only notifications whose operation
// the workflow may PATCH (ChangePlan, ChangeQuantity, Reinstate) are passed on; a workflow that is not
// running needs no word.
func (c *Client) WebhookAnswered(ctx context.Context, ev marketplace.WebhookEvent) error {
	if !mayPatch(ev.Action) || !ValidID(ev.SubscriptionID) || ev.ID == "" {
		return nil
	}
	err := c.temporal.SignalWorkflow(ctx, WorkflowID(ev.SubscriptionID), "", SignalAnswered, ev.ID)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("telling subscription %s its webhook was answered: %w", ev.SubscriptionID, err)
	}
	return nil
}

// DecideChange hands a ChangePlan/ChangeQuantity notification to the workflow as an update and waits at
// most wait for the decision. The event is durable before this returns: if the workflow cannot accept the
// update in time (no worker running), it is signalled instead and decided later. A workflow that is not
// running is started with it, as DeliverWebhook would (and ErrUnknownToMicrosoft likewise).
func (c *Client) DecideChange(ctx context.Context, ev marketplace.WebhookEvent, wait time.Duration) (ChangeDecision, error) {
	if !ValidID(ev.SubscriptionID) {
		return ChangeDecision{}, ErrInvalidSubscription
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// The deadline travels with the update: verifying and deciding share what is left of the wait,
	// however long the update queued before a worker took it.
	deadline, _ := wctx.Deadline()
	upd := client.UpdateWorkflowOptions{
		WorkflowID: WorkflowID(ev.SubscriptionID),
		// One update per operation: a redelivery joins the first one instead of deciding twice.
		UpdateID:     "decide-change/" + ev.ID,
		UpdateName:   UpdateDecideChange,
		Args:         []any{DecideRequest{Event: ev, Deadline: deadline}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	}
	// The common case, a running workflow, costs one call.
	h, err := c.temporal.UpdateWorkflow(wctx, upd)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		switch last, err := c.latestRun(ctx, ev.SubscriptionID); {
		case err != nil:
			return ChangeDecision{}, err
		case last == runEnded:
			return ChangeDecision{}, nil
		case last == runUnknown:
			return ChangeDecision{}, ErrUnknownToMicrosoft
		}
		in := Input{SubscriptionID: ev.SubscriptionID, Source: SourceWebhook, Options: c.options}
		start := c.temporal.NewWithStartWorkflowOperation(c.startOptions(ev.SubscriptionID), WorkflowType, in)
		upd.WorkflowID = "" // the start operation names the workflow
		h, err = c.temporal.UpdateWithStartWorkflow(wctx, client.UpdateWithStartWorkflowOptions{StartWorkflowOperation: start, UpdateOptions: upd})
	}
	var d ChangeDecision
	if err == nil {
		err = h.Get(wctx, &d)
	}
	switch {
	case err == nil:
		return d, nil
	case isEnded(err):
		return ChangeDecision{}, nil
	case outOfTime(ctx, wctx, err):
		// Out of time: make sure the event is recorded, and let the workflow's own PATCH decide.
		return ChangeDecision{}, c.DeliverWebhook(ctx, ev)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		// The workflow refused to decide (for instance, the event did not verify with Get operation).
		return ChangeDecision{}, nil
	}
	return ChangeDecision{}, invalid(fmt.Errorf("deciding %s of subscription %s: %w", ev.Action, ev.SubscriptionID, err))
}

// Land makes a resolved subscription known: it starts its workflow if there is none (waiting for the
// buyer's confirmation) and returns its state, or nothing yet if the workflow has not answered within a
// few seconds.
func (c *Client) Land(ctx context.Context, sub marketplace.Subscription) (*State, error) {
	_, err := c.temporal.ExecuteWorkflow(ctx, c.startOptions(sub.ID), WorkflowType, LandingInput(sub, c.options))
	if err != nil && !isEnded(err) {
		return nil, fmt.Errorf("starting subscription %s: %w", sub.ID, err)
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := c.State(qctx, sub.ID)
	if err != nil && outOfTime(ctx, qctx, err) {
		return nil, nil
	}
	return st, err
}

// Confirm records the buyer's confirmation (Update-With-Start) and returns the state after it. The wait
// is bounded: once the workflow has accepted the confirmation it is durable, and if the loop is busy
// (an activation poll) the state is not waited for: st is nil and the caller shows progress instead.
// When the workflow does not take the update in time (a worker busy or restarting; an update not yet
// accepted is not durable), the confirmation is sent as a signal instead, which Temporal records at
// once: st is nil again. ErrNotAccepted only when even the signal could not be recorded.
func (c *Client) Confirm(ctx context.Context, sub marketplace.Subscription) (*State, error) {
	start := c.temporal.NewWithStartWorkflowOperation(c.startOptions(sub.ID), WorkflowType, LandingInput(sub, c.options))
	actx, cancel := context.WithTimeout(ctx, confirmWait)
	defer cancel()
	h, err := c.temporal.UpdateWithStartWorkflow(actx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   UpdateConfirm,
			Args:         []any{ConfirmRequest{Subscription: sub}},
			WaitForStage: client.WorkflowUpdateStageAccepted,
		},
	})
	if err != nil {
		if outOfTime(ctx, actx, err) {
			if serr := c.confirmBySignal(ctx, sub); serr != nil {
				return nil, fmt.Errorf("confirming subscription %s: %w (signal: %v)", sub.ID, ErrNotAccepted, serr)
			}
			return nil, nil
		}
		return nil, c.commandError("confirming", sub.ID, err)
	}
	var st State
	if err := h.Get(actx, &st); err != nil {
		if outOfTime(ctx, actx, err) {
			return nil, nil
		}
		return nil, c.commandError("confirming", sub.ID, err)
	}
	return &st, nil
}

// confirmWait bounds the landing page's wait for the workflow to take a confirmation.
const confirmWait = 10 * time.Second

// confirmBySignal records a confirmation as SignalConfirm, starting the workflow if it is not running.
func (c *Client) confirmBySignal(ctx context.Context, sub marketplace.Subscription) error {
	sctx, cancel := context.WithTimeout(ctx, confirmSignalWait)
	defer cancel()
	_, err := c.temporal.SignalWithStartWorkflow(sctx, WorkflowID(sub.ID), SignalConfirm, ConfirmRequest{Subscription: sub},
		c.startOptions(sub.ID), WorkflowType, LandingInput(sub, c.options))
	return err
}

// confirmSignalWait bounds the fallback signal: Temporal records a signal without waiting for a worker.
const confirmSignalWait = 5 * time.Second

// State queries a subscription's workflow.
func (c *Client) State(ctx context.Context, subscriptionID string) (*State, error) {
	v, err := c.temporal.QueryWorkflow(ctx, WorkflowID(subscriptionID), "", QueryState)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("querying subscription %s: %w", subscriptionID, err)
	}
	var st State
	if err := v.Get(&st); err != nil {
		return nil, fmt.Errorf("decoding state of subscription %s: %w", subscriptionID, err)
	}
	return &st, nil
}

// ChangePlan asks for a publisher-initiated plan change and waits for Microsoft's outcome, however long
// Microsoft takes (callers without a deadline of their own, such as the CLI).
func (c *Client) ChangePlan(ctx context.Context, subscriptionID, planID string) (CommandResult, error) {
	return c.ChangePlanWithin(ctx, subscriptionID, planID, 0)
}

// ChangePlanWithin is ChangePlan waiting at most wait (0: no bound); see ErrNotAccepted and InProgressError.
func (c *Client) ChangePlanWithin(ctx context.Context, subscriptionID, planID string, wait time.Duration) (CommandResult, error) {
	return c.command(ctx, subscriptionID, UpdateChangePlan, marketplace.ActionChangePlan, wait, ChangePlanRequest{PlanID: planID})
}

// ChangeQuantity asks for a publisher-initiated seat change and waits for Microsoft's outcome.
func (c *Client) ChangeQuantity(ctx context.Context, subscriptionID string, quantity int64) (CommandResult, error) {
	return c.ChangeQuantityWithin(ctx, subscriptionID, quantity, 0)
}

// ChangeQuantityWithin is ChangeQuantity waiting at most wait (0: no bound).
func (c *Client) ChangeQuantityWithin(ctx context.Context, subscriptionID string, quantity int64, wait time.Duration) (CommandResult, error) {
	return c.command(ctx, subscriptionID, UpdateChangeQuantity, marketplace.ActionChangeQuantity, wait, ChangeQuantityRequest{Quantity: quantity})
}

// Cancel cancels the subscription at Microsoft and waits for the outcome.
func (c *Client) Cancel(ctx context.Context, subscriptionID string) (CommandResult, error) {
	return c.CancelWithin(ctx, subscriptionID, 0)
}

// CancelWithin is Cancel waiting at most wait (0: no bound).
func (c *Client) CancelWithin(ctx context.Context, subscriptionID string, wait time.Duration) (CommandResult, error) {
	return c.command(ctx, subscriptionID, UpdateCancel, marketplace.ActionUnsubscribe, wait)
}

// Approve approves a pending activation (or retries a failed one) and returns the state after it,
// waiting at most wait (0: no bound); see ErrNotAccepted and InProgressError.
func (c *Client) Approve(ctx context.Context, subscriptionID string, wait time.Duration) (*State, error) {
	return c.stateUpdate(ctx, subscriptionID, UpdateApprove, wait)
}

// Retry retries what failed and needs a person (State.Attention: an activation, a deprovisioning, a
// tenant sync) and returns the state after it, waiting at most wait (0: no bound).
func (c *Client) Retry(ctx context.Context, subscriptionID string, wait time.Duration) (*State, error) {
	return c.stateUpdate(ctx, subscriptionID, UpdateRetry, wait)
}

func (c *Client) stateUpdate(ctx context.Context, subscriptionID, name string, wait time.Duration) (*State, error) {
	var st State
	if err := c.bounded(ctx, subscriptionID, name, wait, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// ErrNotAccepted means the workflow did not take a command within the caller's wait (no worker polling,
// or one far behind). The command was not refused either: it may still be taken once a worker gets to it.
var ErrNotAccepted = errors.New("subscription: the workflow did not take the command in time")

// InProgressError is a command the workflow accepted that did not finish within the caller's wait:
// Microsoft's operation takes its time (minutes, sometimes more), and the workflow keeps following it.
type InProgressError struct {
	SubscriptionID string
	// OperationID is Microsoft's operation for the command, when the workflow has started it by now.
	OperationID string
}

func (e *InProgressError) Error() string {
	if e.OperationID == "" {
		return "subscriptions: command on " + e.SubscriptionID + " accepted and in progress"
	}
	return "subscriptions: command on " + e.SubscriptionID + " in progress as operation " + e.OperationID
}

// command sends a publisher command as an update and waits for its result, at most wait when wait > 0.
// The update is durable once accepted, so running out of time after that is no failure: the caller is
// told it is in progress.
func (c *Client) command(ctx context.Context, subscriptionID, name string, action marketplace.Action, wait time.Duration, args ...any) (CommandResult, error) {
	var res CommandResult
	err := c.bounded(ctx, subscriptionID, name, wait, &res, args...)
	var ip *InProgressError
	if errors.As(err, &ip) {
		ip.OperationID = c.pendingOperation(ctx, subscriptionID, action)
	}
	return res, err
}

// bounded sends an update and waits for its result into out, at most wait when wait > 0: ErrNotAccepted
// when the workflow did not take it in time, InProgressError when it took it and is still at it.
func (c *Client) bounded(ctx context.Context, subscriptionID, name string, wait time.Duration, out any, args ...any) error {
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if wait > 0 {
		wctx, cancel = context.WithTimeout(ctx, wait)
	}
	defer cancel()
	h, err := c.temporal.UpdateWorkflow(wctx, client.UpdateWorkflowOptions{
		WorkflowID:   WorkflowID(subscriptionID),
		UpdateName:   name,
		Args:         args,
		WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	if err != nil {
		if outOfTime(ctx, wctx, err) {
			return fmt.Errorf("%s subscription %s: %w", name, subscriptionID, ErrNotAccepted)
		}
		return c.commandError(name, subscriptionID, err)
	}
	if err := h.Get(wctx, out); err != nil {
		if outOfTime(ctx, wctx, err) {
			return &InProgressError{SubscriptionID: subscriptionID}
		}
		return c.commandError(name, subscriptionID, err)
	}
	return nil
}

// outOfTime reports whether err means that the bounded wait wctx ran out while the caller's ctx still
// runs. The error can arrive a moment before wctx reports itself done: the server gives up on an update
// a little before the deadline, and gRPC's own deadline timer may fire first.
func outOfTime(ctx, wctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if wctx.Err() != nil {
		return true
	}
	var timeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	var deadline *serviceerror.DeadlineExceeded
	return errors.As(err, &timeout) || errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded) ||
		status.Code(err) == codes.DeadlineExceeded
}

// pendingOperation returns the ID of the operation of action the workflow is following, or "" if it has
// none yet (or the query does not answer quickly: the ID is a courtesy, not worth a slow answer).
func (c *Client) pendingOperation(ctx context.Context, subscriptionID string, action marketplace.Action) string {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := c.State(qctx, subscriptionID)
	if err != nil || st.Pending == nil || st.Pending.Action != action {
		return ""
	}
	return st.Pending.ID
}

// commandError sorts a failed update: refused by the workflow (CommandError), no such workflow
// (ErrNotFound), ended (ErrEnded), or Temporal trouble (wrapped as is).
func (c *Client) commandError(what, subscriptionID string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		// Updates on a completed workflow also answer NotFound; tell the two apart.
		if d, derr := c.temporal.DescribeWorkflowExecution(context.WithoutCancel(context.Background()), WorkflowID(subscriptionID), ""); derr == nil &&
			d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return ErrEnded
		}
		return ErrNotFound
	}
	if isEnded(err) {
		return ErrEnded
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return &CommandError{Code: appErr.Type(), Message: appErr.Message()}
	}
	return fmt.Errorf("%s subscription %s: %w", what, subscriptionID, err)
}

// Snapshot hands Microsoft's view of a subscription to its workflow, starting it from that view if there
// is none (adoption).
func (c *Client) Snapshot(ctx context.Context, sub marketplace.Subscription) error {
	in := Input{SubscriptionID: sub.ID, Source: SourceReconcile, Subscription: &sub, Options: c.options}
	_, err := c.temporal.SignalWithStartWorkflow(ctx, WorkflowID(sub.ID), SignalSnapshot, sub,
		c.startOptions(sub.ID), WorkflowType, in)
	if err != nil && !isEnded(err) {
		return fmt.Errorf("snapshot of subscription %s: %w", sub.ID, err)
	}
	return nil
}
