package subscription

import (
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"saasengine/marketplace"
)

// item is one input waiting for the loop. Updates wait on done.
type item struct {
	name     string
	webhook  *marketplace.WebhookEvent
	snapshot *marketplace.Subscription
	settle   *Settlement
	confirm  *ConfirmRequest
	planID   string
	quantity int64

	done   bool
	result CommandResult
	state  State
}

// itemSettle is the loop's own input: a decided change to acknowledge and settle.
const itemSettle = "settle"

// setup registers the query and the updates and opens the signal channels; nothing here blocks.
// Signals are not received by goroutines: the loop takes them (takeSignals), so that continue-as-new,
// which runs in the same coroutine, can never leave one behind.
func (r *runner) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return r.st, nil }); err != nil {
		return err
	}
	r.webhooks = workflow.GetSignalChannel(ctx, SignalWebhook)
	r.snapshots = workflow.GetSignalChannel(ctx, SignalSnapshot)
	r.confirms = workflow.GetSignalChannel(ctx, SignalConfirm)
	r.answeredCh = workflow.GetSignalChannel(ctx, SignalAnswered)
	r.deciding = workflow.NewMutex(ctx)
	r.aged = workflow.NewTimer(ctx, MaxRunAge)

	notEnded := func() error {
		if r.st.Ended() {
			return refusal(&Refusal{Code: RefusedEnded, Message: ErrEnded.Error(), Err: ErrEnded})
		}
		return nil
	}
	queued := func(name string) func(ctx workflow.Context) (State, error) {
		return func(ctx workflow.Context) (State, error) { return r.wait(ctx, &item{name: name}).state, nil }
	}
	return errors.Join(
		workflow.SetUpdateHandlerWithOptions(ctx, UpdateConfirm,
			func(ctx workflow.Context, req ConfirmRequest) (State, error) {
				return r.wait(ctx, &item{name: UpdateConfirm, confirm: &req}).state, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req ConfirmRequest) error {
				if req.Subscription.ID != "" && req.Subscription.ID != r.st.SubscriptionID {
					return refusal(refuse(RefusedBadRequest, "subscription %q is not this workflow's", req.Subscription.ID))
				}
				return notEnded()
			}}),
		workflow.SetUpdateHandlerWithOptions(ctx, UpdateApprove, queued(UpdateApprove),
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error { return notEnded() }}),
		workflow.SetUpdateHandlerWithOptions(ctx, UpdateRetry, queued(UpdateRetry),
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error {
				if err := notEnded(); err != nil {
					return err
				}
				if r.st.Attention == "" {
					return refusal(refuse(RefusedNothingToRetry, "nothing failed: the subscription needs no retry"))
				}
				return nil
			}}),
		workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecideChange, r.decideChange,
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req DecideRequest) error {
				ev := req.Event
				if ev.Action != marketplace.ActionChangePlan && ev.Action != marketplace.ActionChangeQuantity {
					return fmt.Errorf("action %q is not decided (only ChangePlan and ChangeQuantity)", ev.Action)
				}
				if ev.ID == "" {
					return errors.New("event has no operation ID")
				}
				if ev.SubscriptionID != "" && ev.SubscriptionID != r.st.SubscriptionID {
					return fmt.Errorf("subscription %q is not this workflow's", ev.SubscriptionID)
				}
				return nil
			}}),
		workflow.SetUpdateHandlerWithOptions(ctx, UpdateChangePlan,
			func(ctx workflow.Context, req ChangePlanRequest) (CommandResult, error) {
				return r.wait(ctx, &item{name: UpdateChangePlan, planID: req.PlanID}).result, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req ChangePlanRequest) error {
				if req.PlanID == "" {
					return refusal(refuse(RefusedBadRequest, "planId is required"))
				}
				return refusal(r.validateChange(req.PlanID, 0))
			}}),
		workflow.SetUpdateHandlerWithOptions(ctx, UpdateChangeQuantity,
			func(ctx workflow.Context, req ChangeQuantityRequest) (CommandResult, error) {
				return r.wait(ctx, &item{name: UpdateChangeQuantity, quantity: req.Quantity}).result, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req ChangeQuantityRequest) error {
				if req.Quantity <= 0 {
					return refusal(refuse(RefusedBadQuantity, "quantity must be positive"))
				}
				return refusal(r.validateChange("", req.Quantity))
			}}),
		workflow.SetUpdateHandlerWithOptions(ctx, UpdateCancel,
			func(ctx workflow.Context) (CommandResult, error) {
				return r.wait(ctx, &item{name: UpdateCancel}).result, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error {
				if r.queued(UpdateCancel) {
					return refusal(refuse(RefusedCommandQueued, "a cancel is already queued"))
				}
				return refusal(r.st.ValidateCancel())
			}}),
	)
}

// refusal turns a validator's refusal into the application error callers receive, its code as the
// error's type; other errors pass unchanged.
func refusal(err error) error {
	var r *Refusal
	if errors.As(err, &r) {
		return temporal.NewApplicationError(r.Message, r.Code)
	}
	return err
}

// validateChange adds to the state's checks that no other command is queued.
func (r *runner) validateChange(planID string, quantity int64) error {
	if r.queued(UpdateChangePlan) || r.queued(UpdateChangeQuantity) || r.queued(UpdateCancel) {
		return refuse(RefusedCommandQueued, "another command is queued")
	}
	return r.st.ValidateChange(planID, quantity)
}

func (r *runner) queued(name string) bool {
	return slices.ContainsFunc(r.queue, func(it *item) bool { return it.name == name })
}

// wait enqueues an update's item and blocks until the loop has answered it.
func (r *runner) wait(ctx workflow.Context, it *item) *item {
	r.queue = append(r.queue, it)
	_ = workflow.Await(ctx, func() bool { return it.done })
	return it
}

// signalled reports whether a signal waits in a channel.
func (r *runner) signalled() bool {
	return r.webhooks.Len() > 0 || r.snapshots.Len() > 0 || r.confirms.Len() > 0 || r.answeredCh.Len() > 0
}

// takeSignals moves every signal waiting in the channels to the queue, in order per channel. Only the
// root coroutine calls it.
func (r *runner) takeSignals() {
	for {
		var ev marketplace.WebhookEvent
		if !r.webhooks.ReceiveAsync(&ev) {
			break
		}
		r.queue = append(r.queue, &item{name: SignalWebhook, webhook: &ev})
	}
	for {
		var sub marketplace.Subscription
		if !r.snapshots.ReceiveAsync(&sub) {
			break
		}
		r.queue = append(r.queue, &item{name: SignalSnapshot, snapshot: &sub})
	}
	for {
		var req ConfirmRequest
		if !r.confirms.ReceiveAsync(&req) {
			break
		}
		// What the update's validator refuses, the signal drops: nobody waits for an answer.
		if (req.Subscription.ID != "" && req.Subscription.ID != r.st.SubscriptionID) || r.st.Ended() {
			continue
		}
		r.queue = append(r.queue, &item{name: UpdateConfirm, confirm: &req})
	}
	r.takeAnswers()
}

// pop takes the oldest input.
func (r *runner) pop() *item {
	if len(r.queue) == 0 {
		return nil
	}
	it := r.queue[0]
	// Clear the slot: the backing array would otherwise keep a handled input (a whole snapshot) alive
	// for as long as the workflow stays cached.
	r.queue[0] = nil
	r.queue = r.queue[1:]
	if len(r.queue) == 0 {
		r.queue = nil
	}
	return it
}

// popUpdate takes the oldest update.
func (r *runner) popUpdate() *item {
	i := slices.IndexFunc(r.queue, isUpdate)
	it := r.queue[i]
	r.queue = slices.Delete(r.queue, i, i+1)
	return it
}

func isUpdate(it *item) bool {
	return it.name != SignalWebhook && it.name != SignalSnapshot && it.name != itemSettle
}

func (r *runner) handle(ctx workflow.Context, it *item) {
	r.handled++
	r.st.Events++
	switch it.name {
	case SignalWebhook:
		if it.webhook != nil {
			r.onEvent(ctx, *it.webhook)
		}
	case SignalSnapshot:
		r.onSnapshot(ctx)
	case itemSettle:
		if it.settle != nil {
			r.settle(ctx, *it.settle)
		}
	case UpdateConfirm:
		r.st.Confirmed = true
		r.st.Record(r.now(ctx), "confirm", "", "", "", "buyer confirmed on the landing page")
		if it.confirm != nil && r.st.Status == "" {
			r.st.ApplySubscription(it.confirm.Subscription, r.now(ctx), "landing page")
		}
		r.retryActivation(ctx)
		r.answerState(it)
	case UpdateApprove:
		r.st.Approved = true
		note := "operator approved"
		if !r.st.Confirmed {
			// So operators can activate a subscription whose buyer never came back to the landing page.
			r.st.Confirmed = true
			note += " (counts as the purchase's confirmation)"
		}
		r.st.Record(r.now(ctx), "approve", "", "", "", note)
		r.retryActivation(ctx)
		r.answerState(it)
	case UpdateRetry:
		r.st.Record(r.now(ctx), "retry", "", r.st.Attention, "", "operator asked to retry")
		r.retry(ctx)
		r.answerState(it)
	case UpdateChangePlan, UpdateChangeQuantity, UpdateCancel:
		it.result = r.command(ctx, it)
		it.done = true
	}
	r.upsertSearch(ctx)
}

func (r *runner) answerState(it *item) {
	it.state = r.st
	it.done = true
}
