package subscription

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"saasengine/activities/notification"
	subacts "saasengine/activities/subscription"
)

// This file is the workflow's entry and its loop: one run handles inputs in order until the
// subscription ends or the run continues as new. The other files of the package hold, by concern:
// handlers.go (message handlers and the queue), activation.go, events.go (Microsoft's events),
// decide.go (deciding changes inside Microsoft's window), commands.go (operator commands), calls.go
// (activity calls, reads and polling), tenant.go (keeping the tenant in step), attention.go (search
// attributes, failures that need a person) and versions.go.

// acts names the activities; its methods are only used as references.
var acts *subacts.Activities

// SubscriptionWorkflow is the workflow of one SaaS subscription (type WorkflowType). It returns the final
// State once the subscription is unsubscribed and deprovisioned (or unknown to Microsoft).
//
// Signals and operator updates go through one queue, taken in order by the loop in the root coroutine;
// update handlers only enqueue and wait for their item's answer. Decide-change updates do not queue:
// they run beside the loop, one at a time, so Microsoft's 10-second window never waits for a long step.
// A long step (polling a publisher-initiated operation) holds the queue: a cancel sent while a change is
// pending therefore waits for the change to finish, then runs ("wait", not "supersede").
func SubscriptionWorkflow(ctx workflow.Context, in Input) (State, error) {
	r := &runner{in: in, opts: in.Options}
	if r.opts.MaxEvents <= 0 {
		r.opts.MaxEvents = DefaultMaxEvents
	}
	// Billing starts at activation: never on the strength of a webhook or a reconciliation snapshot
	// alone. The buyer's landing visit (confirm) or an operator (approve) confirms the purchase.
	r.opts.RequireConfirmation = true
	return r.run(ctx)
}

type runner struct {
	in   Input
	opts Options
	st   State
	// queue holds the inputs the loop has yet to handle, oldest first.
	queue []*item
	// handled counts inputs handled in this run.
	handled int
	lastSA  *searchView

	webhooks, snapshots, confirms, answeredCh workflow.ReceiveChannel
	// answers are the operations whose webhook may still be waiting for its HTTP answer (answer.go).
	answers []answerWait
	// deciding serialises decisions (the handler's and the loop's), so an operation is decided once.
	deciding workflow.Mutex
	// aged is ready once the run is MaxRunAge old; renewed once the term renewed. Either ends the run
	// (continue-as-new), so released fixes reach long-lived subscriptions.
	aged    workflow.Future
	renewed bool
	// outbox sends notices to operators (notify.go).
	outbox notification.Outbox
}

func (r *runner) run(ctx workflow.Context) (State, error) {
	if r.in.Carried != nil {
		r.st = r.in.Carried.State
		for _, s := range r.in.Carried.Pending {
			r.queue = append(r.queue, &item{name: s.Name, webhook: s.Webhook, snapshot: s.Snapshot, settle: s.Settle})
		}
	} else {
		r.st = NewState(r.in.SubscriptionID)
	}
	r.st.Runs++
	if err := r.setup(ctx); err != nil {
		return r.st, err
	}
	if r.in.Carried == nil {
		r.st.Record(r.now(ctx), "start", "", "", "", "source "+r.in.Source)
		if r.in.Subscription != nil {
			r.st.ApplySubscription(*r.in.Subscription, r.now(ctx), "start: "+r.in.Source)
		} else {
			_ = r.refresh(ctx, "start: "+r.in.Source)
		}
	}
	// The state now holds what the input carried: a cached workflow keeps it once, not twice.
	r.in.Carried, r.in.Subscription = nil, nil
	for {
		r.takeSignals()
		r.advance(ctx)
		r.syncTenant(ctx)
		r.upsertSearch(ctx)
		if r.st.Ended() {
			return r.finish(ctx)
		}
		if r.shouldContinueAsNew(ctx) {
			return r.continueAsNew(ctx)
		}
		if err := workflow.Await(ctx, func() bool {
			return len(r.queue) > 0 || r.signalled() || r.shouldContinueAsNew(ctx)
		}); err != nil {
			return r.st, err
		}
		r.takeSignals()
		if it := r.pop(); it != nil {
			r.handle(ctx, it)
		}
	}
}

func (r *runner) shouldContinueAsNew(ctx workflow.Context) bool {
	return r.handled >= r.opts.MaxEvents || r.renewed || r.aged.IsReady() || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

// finish ends the workflow: queued inputs are answered (nothing more happens to an ended subscription)
// and running update handlers are let finish.
func (r *runner) finish(ctx workflow.Context) (State, error) {
	r.outbox.Flush(ctx, notification.FlushTimeout)
	for {
		r.takeSignals()
		for _, it := range r.queue {
			r.st.Record(r.now(ctx), "ignored", "", "", "", it.name+" after the subscription ended")
			it.result = CommandResult{Status: ResultRejected, Message: ErrEnded.Error()}
			it.state = r.st
			it.done = true
		}
		r.queue = nil
		_ = workflow.Await(ctx, func() bool { return len(r.queue) > 0 || workflow.AllHandlersFinished(ctx) })
		if len(r.queue) == 0 {
			r.upsertSearch(ctx)
			if r.st.Phase == PhaseNotFound {
				return r.st, temporal.NewNonRetryableApplicationError(
					"Microsoft does not know subscription "+r.st.SubscriptionID, ErrSubscriptionNotFound, nil, r.st)
			}
			return r.st, nil
		}
	}
}

// continueAsNew hands the state and the unhandled inputs to a new run. Queued updates are answered
// first and running handlers let finish; signals are taken in this coroutine, so none is lost between
// the last one handled and the end of the run.
func (r *runner) continueAsNew(ctx workflow.Context) (State, error) {
	r.outbox.Flush(ctx, notification.FlushTimeout)
	for {
		r.takeSignals()
		for slices.ContainsFunc(r.queue, isUpdate) {
			r.handle(ctx, r.popUpdate())
			r.takeSignals()
		}
		_ = workflow.Await(ctx, func() bool {
			return slices.ContainsFunc(r.queue, isUpdate) || workflow.AllHandlersFinished(ctx)
		})
		if !slices.ContainsFunc(r.queue, isUpdate) {
			break
		}
	}
	r.takeSignals()
	carried := &Carried{}
	for _, it := range r.queue {
		carried.Pending = append(carried.Pending, Signal{Name: it.name, Webhook: it.webhook, Snapshot: it.snapshot, Settle: it.settle})
	}
	r.st.Record(r.now(ctx), "continue-as-new", "", "", "", fmt.Sprintf("%d pending inputs", len(carried.Pending)))
	carried.State = r.st
	next := Input{SubscriptionID: r.in.SubscriptionID, Source: r.in.Source, Options: r.in.Options, Carried: carried}
	return r.st, workflow.NewContinueAsNewError(ctx, WorkflowType, next)
}

func (r *runner) now(ctx workflow.Context) time.Time { return workflow.Now(ctx).UTC() }
