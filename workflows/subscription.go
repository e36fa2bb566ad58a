package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"saasengine/activities"
	"saasengine/marketplace"
	"saasengine/provisioning"
)

// Versioning: every change to the order of commands (activities, timers, upserts) goes behind a
// version, and a replay test over recorded histories guards determinism. Each run asks once, at its
// start, for the version of changeID (one marker per run rather than one per change); code branches on
// r.version >= the change's constant. Add a change by adding a constant and raising versionLatest.
const changeID = "subscription-workflow"

// Versions of the workflow.
const (
	// versionConfirmSightings: a pending subscription is activated only once the purchase was confirmed
	// (the buyer on the landing page, or an operator's approve), whoever saw it first; before, one found
	// by a webhook or reconciliation was activated (billing started) at once.
	versionConfirmSightings workflow.Version = 1
	// versionServeDecides: the waits between polls (publisher operations, activation) answer decide-change
	// items that arrive meanwhile instead of holding them until the long step ends, past Microsoft's
	// 10-second window.
	versionServeDecides workflow.Version = 2
	// versionAmbiguousRejections: a 409, or any refusal of a retried PATCH/DELETE, may be about the
	// operation an earlier attempt created: look for it before reporting the command Rejected.
	versionAmbiguousRejections workflow.Version = 3
	// versionNotFoundFails: a workflow that ends because Microsoft does not know its subscription fails
	// instead of completing. Starters may start a failed workflow's ID again (ALLOW_DUPLICATE_FAILED_ONLY)
	// but never a completed one, so an early 404 (a forged or premature webhook) no longer blocks the
	// subscription's workflow for good.
	versionNotFoundFails workflow.Version = 4
	// versionSeenWhenActed: an operation whose handling could not read Microsoft (or reach the tenant) is
	// forgotten again, so a redelivery of its webhook is acted on instead of dropped as a duplicate.
	versionSeenWhenActed workflow.Version = 5
	versionLatest                         = versionSeenWhenActed
)

// Timing of the workflow's own waits.
const (
	// ackDelay separates a webhook-driven decision from its PATCH, so that the webhook's HTTP answer
	// reaches Microsoft first ("do not PATCH before returning").
	ackDelay = time.Second
	// maxOperationPolls bounds the polling of one operation (2 s doubling to 30 s: about two hours).
	maxOperationPolls = 240
	// maxActivationPolls bounds the check that an activation took (about ten minutes).
	maxActivationPolls = 25
	// Idempotency suffixes of the once-in-a-lifetime provisioning steps.
	keyActivate    = "activate"
	keyDeprovision = "deprovision"
)

// acts names the activities; its methods are only used as references.
var acts *activities.Activities

// SubscriptionWorkflow is the workflow of one SaaS subscription (type WorkflowType). It returns the final
// State once the subscription is unsubscribed and deprovisioned (or unknown to Microsoft).
//
// All inputs (signals and updates) go through one queue handled in order by one loop; handlers only
// enqueue and wait for their item's answer. Decide-change items jump the queue (Microsoft's 10-second
// window) and are answered even during a long step (see pause). Otherwise a long step (polling a
// publisher-initiated operation) holds the queue: a cancel sent while a change is pending therefore waits
// for the change to finish, then runs ("wait", not "supersede").
func SubscriptionWorkflow(ctx workflow.Context, in Input) (State, error) {
	r := &runner{in: in, opts: in.Options}
	if r.opts.MaxEvents <= 0 {
		r.opts.MaxEvents = DefaultMaxEvents
	}
	return r.run(ctx)
}

type runner struct {
	in      Input
	opts    Options
	version workflow.Version
	st      State
	queue   []*item
	// handled counts inputs handled in this run.
	handled int
	lastSA  *searchView
}

// item is one input waiting for the loop. Updates wait on done.
type item struct {
	name     string
	webhook  *marketplace.WebhookEvent
	snapshot *marketplace.Subscription
	confirm  *ConfirmRequest
	planID   string
	quantity int64

	done     bool
	decision ChangeDecision
	result   CommandResult
	state    State
}

func (r *runner) run(ctx workflow.Context) (State, error) {
	if r.in.Carried != nil {
		r.st = r.in.Carried.State
		for _, s := range r.in.Carried.Pending {
			r.queue = append(r.queue, &item{name: s.Name, webhook: s.Webhook, snapshot: s.Snapshot})
		}
	} else {
		r.st = NewState(r.in.SubscriptionID)
	}
	r.st.Runs++
	if err := r.setup(ctx); err != nil {
		return r.st, err
	}
	r.version = workflow.GetVersion(ctx, changeID, workflow.DefaultVersion, versionLatest)
	if r.version >= versionConfirmSightings {
		// Billing starts at activation: never on the strength of a webhook or a reconciliation snapshot
		// alone. The buyer's landing visit (confirm) or an operator (approve) confirms the purchase.
		r.opts.RequireConfirmation = true
	}
	if r.in.Carried == nil {
		r.st.Record(r.now(ctx), "start", "", "", "", "source "+r.in.Source)
		if r.in.Subscription != nil {
			r.follow(ctx, *r.in.Subscription, "start: "+r.in.Source)
		} else {
			r.refresh(ctx, "start: "+r.in.Source)
		}
	}
	for {
		r.advance(ctx)
		r.upsertSearch(ctx)
		if r.st.Ended() {
			return r.finish(ctx)
		}
		if r.handled >= r.opts.MaxEvents || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return r.continueAsNew(ctx)
		}
		if err := workflow.Await(ctx, func() bool {
			return len(r.queue) > 0 || workflow.GetInfo(ctx).GetContinueAsNewSuggested()
		}); err != nil {
			return r.st, err
		}
		if it := r.pop(); it != nil {
			r.handle(ctx, it)
		}
	}
}

// setup registers the query, the updates and the signal receivers; nothing here blocks.
func (r *runner) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return r.st, nil }); err != nil {
		return err
	}
	webhooks := workflow.GetSignalChannel(ctx, SignalWebhook)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var ev marketplace.WebhookEvent
			webhooks.Receive(ctx, &ev)
			r.queue = append(r.queue, &item{name: SignalWebhook, webhook: &ev})
		}
	})
	snapshots := workflow.GetSignalChannel(ctx, SignalSnapshot)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var sub marketplace.Subscription
			snapshots.Receive(ctx, &sub)
			r.queue = append(r.queue, &item{name: SignalSnapshot, snapshot: &sub})
		}
	})

	notEnded := func() error {
		if r.st.Ended() {
			return refusal(&Refusal{Code: RefusedEnded, Message: ErrEnded.Error(), Err: ErrEnded})
		}
		return nil
	}
	err := errors.Join(
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
		workflow.SetUpdateHandlerWithOptions(ctx, UpdateApprove,
			func(ctx workflow.Context) (State, error) {
				return r.wait(ctx, &item{name: UpdateApprove}).state, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context) error { return notEnded() }}),
		workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecideChange,
			func(ctx workflow.Context, ev marketplace.WebhookEvent) (ChangeDecision, error) {
				return r.wait(ctx, &item{name: UpdateDecideChange, webhook: &ev}).decision, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, ev marketplace.WebhookEvent) error {
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
	return err
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

// pop takes the next item: a decide-change first, else the oldest.
func (r *runner) pop() *item {
	if len(r.queue) == 0 {
		return nil
	}
	i := slices.IndexFunc(r.queue, func(it *item) bool { return it.name == UpdateDecideChange })
	if i < 0 {
		i = 0
	}
	it := r.queue[i]
	r.queue = slices.Delete(r.queue, i, i+1)
	return it
}

func (r *runner) handle(ctx workflow.Context, it *item) {
	r.handled++
	r.st.Events++
	switch it.name {
	case SignalWebhook:
		if it.webhook != nil {
			r.onEvent(ctx, *it.webhook, nil)
		}
	case UpdateDecideChange:
		r.onEvent(ctx, *it.webhook, it)
	case SignalSnapshot:
		r.onSnapshot(ctx)
	case UpdateConfirm:
		r.st.Confirmed = true
		r.st.Record(r.now(ctx), "confirm", "", "", "", "buyer confirmed on the landing page")
		if it.confirm != nil && r.st.Status == "" {
			r.follow(ctx, it.confirm.Subscription, "landing page")
		}
		r.retryActivation(ctx)
		r.answerState(it)
	case UpdateApprove:
		r.st.Approved = true
		note := "operator approved"
		if r.version >= versionConfirmSightings && !r.st.Confirmed {
			// So operators can activate a subscription whose buyer never came back to the landing page.
			r.st.Confirmed = true
			note += " (counts as the purchase's confirmation)"
		}
		r.st.Record(r.now(ctx), "approve", "", "", "", note)
		r.retryActivation(ctx)
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

// retryActivation lets a failed activation run again (after a confirm or an approve).
func (r *runner) retryActivation(ctx workflow.Context) {
	if r.st.Phase == PhaseActivationFailed {
		r.st.SetPhase(r.now(ctx), PhaseNew, "activation retried")
	}
}

// ---- activation and adoption ----

func (r *runner) advance(ctx workflow.Context) {
	switch r.st.NextActivation(r.opts) {
	case ActAwaitConfirmation:
		r.st.SetPhase(r.now(ctx), PhaseAwaitingConfirmation, "")
	case ActAwaitApproval:
		r.st.SetPhase(r.now(ctx), PhaseAwaitingApproval, "")
	case ActActivate:
		r.activate(ctx)
	case ActAdopt:
		r.adopt(ctx)
	case ActDeprovision:
		r.deprovision(ctx, "Microsoft shows Unsubscribed")
	}
}

func (r *runner) activate(ctx workflow.Context) {
	r.st.SetPhase(r.now(ctx), PhaseProvisioning, "")
	r.upsertSearch(ctx)
	if err := r.provision(ctx, "provision", keyActivate); err != nil {
		r.st.Fail(r.now(ctx), PhaseActivationFailed, "provisioning: "+message(err))
		return
	}
	r.st.Provisioned = true
	r.st.SetPhase(r.now(ctx), PhaseActivating, "")
	r.upsertSearch(ctx)
	in := activities.ActivateInput{SubscriptionID: r.st.SubscriptionID, PlanID: r.st.PlanID, Quantity: r.st.Quantity}
	err := workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.Activate, in).Get(ctx, nil)
	if err != nil {
		typ := activities.ErrorType(err)
		if typ != activities.ErrMarketplaceBadRequest && typ != activities.ErrMarketplaceConflict {
			r.st.Fail(r.now(ctx), PhaseActivationFailed, "activate: "+message(err))
			return
		}
		// A repeated activation answers 400: it counts as success if Microsoft shows Subscribed.
		sub, gerr := r.getSubscription(ctx)
		if gerr != nil || sub.Status != marketplace.StatusSubscribed {
			r.st.Fail(r.now(ctx), PhaseActivationFailed, "activate: "+message(err))
			return
		}
		r.st.Record(r.now(ctx), "activate", "", "", "", "already active at Microsoft")
	}
	// Activate's 200 only means received: confirm with Get subscription.
	delay := pollInitial
	for i := 0; i < maxActivationPolls; i++ {
		sub, err := r.getSubscription(ctx)
		if err != nil {
			r.st.Fail(r.now(ctx), PhaseActivationFailed, "confirm activation: "+message(err))
			return
		}
		r.follow(ctx, sub, "activation")
		switch sub.Status {
		case marketplace.StatusSubscribed, marketplace.StatusSuspended:
			r.st.ActivatedAt = r.now(ctx)
			r.st.LastError = ""
			r.st.SetPhase(r.now(ctx), PhaseIdle, "activated")
			return
		case marketplace.StatusUnsubscribed:
			return // advance deprovisions
		}
		_ = r.pause(ctx, delay)
		delay = min(2*delay, pollMax)
	}
	r.st.Fail(r.now(ctx), PhaseActivationFailed, "subscription not Subscribed after activation")
}

// adopt takes over a subscription Microsoft already shows active (found by a webhook or reconciliation)
// without calling Activate again.
func (r *runner) adopt(ctx workflow.Context) {
	r.st.SetPhase(r.now(ctx), PhaseProvisioning, "adopting an active subscription")
	if err := r.provision(ctx, "provision", keyActivate); err != nil {
		r.st.Fail(r.now(ctx), PhaseActivationFailed, "provisioning: "+message(err))
		return
	}
	r.st.Provisioned = true
	if r.st.Status == marketplace.StatusSuspended {
		if err := r.provision(ctx, "suspend", "adopt-suspend"); err == nil {
			r.st.TenantSuspended = true
		}
	}
	r.st.Record(r.now(ctx), "adopt", "", string(r.st.Status), "", "provisioned without Activate")
	r.st.SetPhase(r.now(ctx), PhaseIdle, "")
}

// ---- webhooks and snapshots ----

// onEvent handles a webhook (signal, or decide-change update when it is non-nil). The event is only a
// hint: it is verified with Get operation and acted on as Microsoft's records say.
func (r *runner) onEvent(ctx workflow.Context, ev marketplace.WebhookEvent, it *item) {
	defer answerDecision(it, ChangeDecision{Reason: "not decided"})
	now := r.now(ctx)
	if ev.ID == "" {
		r.st.Record(now, "webhook-ignored", "", "", "", "no operation ID")
		return
	}
	if seen, ok := r.st.Seen(ev.ID); ok {
		r.st.Record(now, "webhook-duplicate", "", "", ev.ID, string(ev.Action))
		switch seen.Outcome {
		case OutcomeAccepted:
			answerDecision(it, ChangeDecision{Accepted: true, Decided: true, Reason: "decided before"})
		case OutcomeRejected:
			answerDecision(it, ChangeDecision{Accepted: false, Decided: true, Reason: "decided before"})
		}
		return
	}
	reads := activities.MarketplaceReadOptions()
	if it != nil {
		reads = activities.VerifyOptions() // the answer is due within seconds
	}
	op, err := r.getOperation(ctx, reads, ev.ID)
	if err != nil && it != nil && !isNotFound(err) {
		answerDecision(it, ChangeDecision{Reason: "could not verify in time"})
		op, err = r.getOperation(ctx, activities.MarketplaceReadOptions(), ev.ID)
	}
	if err != nil {
		kind := "webhook-unverified"
		if !isNotFound(err) {
			kind = "webhook-verify-failed"
		}
		r.st.Record(r.now(ctx), kind, "", "", ev.ID, string(ev.Action)+": "+message(err))
		return
	}
	if (op.SubscriptionID != "" && op.SubscriptionID != r.st.SubscriptionID) || (ev.Action != "" && op.Action != ev.Action) {
		r.st.Record(r.now(ctx), "webhook-mismatch", "", "", ev.ID, fmt.Sprintf("event says %s, operation says %s", ev.Action, op.Action))
		return
	}
	r.onOperation(ctx, op, it, true)
}

func answerDecision(it *item, d ChangeDecision) {
	if it != nil && !it.done {
		it.decision = d
		it.done = true
	}
}

// onOperation acts on a verified operation, from a webhook or from List operations.
func (r *runner) onOperation(ctx workflow.Context, op marketplace.Operation, it *item, fromWebhook bool) {
	step, why := r.st.Plan(op)
	now := r.now(ctx)
	if step == StepDuplicate {
		r.st.Record(now, "duplicate", "", "", op.ID, string(op.Action))
		return
	}
	// Marked seen before acting, so that a redelivery handled meanwhile (nested in a long step) is a
	// duplicate; forgotten again below if acting failed.
	r.st.MarkSeen(op.ID, op.Action, "")
	acted := true
	switch step {
	case StepIgnore, StepNotApplied, StepUnknown:
		r.st.Record(now, "ignored", "", "", op.ID, string(op.Action)+": "+why)
	case StepDecide:
		r.decide(ctx, op, it, fromWebhook)
	case StepApplyChange:
		r.applyChange(ctx, changeRequest(r.st.SubscriptionID, op), why)
	case StepSuspend:
		acted = r.suspend(ctx, op.ID)
	case StepReinstate:
		acted = r.reinstate(ctx, op)
	case StepRenew:
		sub, err := r.getSubscription(ctx)
		if err != nil {
			r.st.Record(r.now(ctx), "renew-unverified", "", "", op.ID, message(err))
			acted = false
			break
		}
		r.follow(ctx, sub, "renew")
		r.st.Record(r.now(ctx), "renew", "", r.st.Term.EndDate.Format(time.DateOnly), op.ID, "term renewed")
	case StepUnsubscribe:
		sub, err := r.getSubscription(ctx)
		if err == nil {
			r.follow(ctx, sub, "unsubscribe")
		}
		if r.st.Status == marketplace.StatusUnsubscribed || op.Status == marketplace.OperationSucceeded || isNotFound(err) {
			r.st.Status = marketplace.StatusUnsubscribed
			r.deprovision(ctx, "Unsubscribe "+op.ID)
			return
		}
		r.st.Record(r.now(ctx), "ignored", "", "", op.ID, "Unsubscribe not confirmed by Get subscription")
		acted = err == nil
	}
	if !acted && r.version >= versionSeenWhenActed {
		r.st.ForgetSeen(op.ID)
	}
}

func changeRequest(subscriptionID string, op marketplace.Operation) provisioning.ChangeRequest {
	return provisioning.ChangeRequest{SubscriptionID: subscriptionID, OperationID: op.ID, Action: op.Action,
		PlanID: op.PlanID, Quantity: int64(op.Quantity), Source: op.OperationRequestSource}
}

// decide answers a ChangePlan/ChangeQuantity Microsoft announced: the ISV decides, the caller (webhook)
// gets the decision, then the workflow PATCHes Success or Failure and applies the change once Microsoft
// shows it done.
func (r *runner) decide(ctx workflow.Context, op marketplace.Operation, it *item, fromWebhook bool) {
	req := changeRequest(r.st.SubscriptionID, op)
	var dec provisioning.Decision
	err := workflow.ExecuteActivity(r.ao(ctx, activities.DecideOptions()), acts.DecideChange, req).Get(ctx, &dec)
	if err != nil {
		answerDecision(it, ChangeDecision{Reason: "no decision in time"})
		r.st.Record(r.now(ctx), "decide-failed", "", "", op.ID, message(err)+"; Microsoft's default stands")
		r.settleChange(ctx, req, false)
		return
	}
	outcome := OutcomeRejected
	status := marketplace.UpdateFailure
	if dec.Accept {
		outcome, status = OutcomeAccepted, marketplace.UpdateSuccess
	}
	r.st.MarkSeen(op.ID, op.Action, outcome)
	r.st.Record(r.now(ctx), "decided", "", outcome, op.ID, dec.Reason)
	answerDecision(it, ChangeDecision{Accepted: dec.Accept, Reason: dec.Reason, Decided: true})
	if fromWebhook {
		_ = workflow.Sleep(ctx, ackDelay)
	}
	var res activities.UpdateOperationResult
	err = workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.UpdateOperation,
		activities.UpdateOperationInput{SubscriptionID: r.st.SubscriptionID, OperationID: op.ID, Status: status}).Get(ctx, &res)
	switch {
	case err != nil:
		r.st.Record(r.now(ctx), "ack-failed", "", string(status), op.ID, message(err))
	case res.AlreadyDecided:
		r.st.Record(r.now(ctx), "ack-late", "", string(status), op.ID, "operation was already decided")
	default:
		r.st.Record(r.now(ctx), "ack", "", string(status), op.ID, "")
	}
	r.settleChange(ctx, req, dec.Accept)
}

// settleChange waits for Microsoft's verdict on a change and applies it on our side if it succeeded.
func (r *runner) settleChange(ctx workflow.Context, req provisioning.ChangeRequest, accepted bool) {
	op, err := r.pollOperation(ctx, req.OperationID)
	if err != nil {
		r.st.Record(r.now(ctx), "change-unknown", "", "", req.OperationID, message(err))
		return
	}
	if op.Status != marketplace.OperationSucceeded {
		r.st.Record(r.now(ctx), "change-not-applied", "", string(op.Status), op.ID, "")
		return
	}
	note := "Microsoft completed the change"
	if !accepted {
		note = "Microsoft applied a change we did not accept; following Microsoft"
	}
	if op.PlanID != "" {
		req.PlanID = op.PlanID
	}
	if op.Quantity != 0 {
		req.Quantity = int64(op.Quantity)
	}
	r.applyChange(ctx, req, note)
}

// applyChange applies a change Microsoft made to the ISV's tenant and to the state.
func (r *runner) applyChange(ctx workflow.Context, req provisioning.ChangeRequest, note string) {
	if r.st.Provisioned {
		err := workflow.ExecuteActivity(r.ao(ctx, activities.ProvisioningOptions()), acts.ApplyChange, req).Get(ctx, nil)
		if err != nil {
			r.st.LastError = "apply change: " + message(err)
			r.st.Record(r.now(ctx), "apply-failed", "", "", req.OperationID, message(err))
			return
		}
	}
	now := r.now(ctx)
	if req.Action == marketplace.ActionChangePlan && req.PlanID != "" && req.PlanID != r.st.PlanID {
		r.st.Record(now, "plan", r.st.PlanID, req.PlanID, req.OperationID, note)
		r.st.PlanID = req.PlanID
	}
	if req.Action == marketplace.ActionChangeQuantity && req.Quantity > 0 && req.Quantity != r.st.Quantity {
		r.st.Record(now, "quantity", fmt.Sprint(r.st.Quantity), fmt.Sprint(req.Quantity), req.OperationID, note)
		r.st.Quantity = req.Quantity
	}
	// Microsoft may adjust more than the operation names (a plan whose minimum exceeds the seats raises
	// them): its record is the truth, and follow passes any further difference on to the tenant.
	_ = r.refresh(ctx, "after change")
}

// suspend reports false when it could not act (Microsoft or the tenant unreachable).
func (r *runner) suspend(ctx workflow.Context, opID string) bool {
	sub, err := r.getSubscription(ctx)
	if err != nil {
		r.st.Record(r.now(ctx), "suspend-unverified", "", "", opID, message(err))
		return false
	}
	r.follow(ctx, sub, "suspend")
	if sub.Status != marketplace.StatusSuspended {
		r.st.Record(r.now(ctx), "ignored", "", string(sub.Status), opID, "Suspend resolved against Get subscription: not suspended")
		return true
	}
	return r.suspendTenant(ctx, opID)
}

func (r *runner) suspendTenant(ctx workflow.Context, key string) bool {
	if !r.st.Provisioned || r.st.TenantSuspended {
		return true
	}
	if err := r.provision(ctx, "suspend", key); err != nil {
		r.st.LastError = "suspend: " + message(err)
		return false
	}
	r.st.TenantSuspended = true
	r.st.Record(r.now(ctx), "tenant", "active", "suspended", key, "")
	return true
}

func (r *runner) reinstateTenant(ctx workflow.Context, key string) error {
	if err := r.provision(ctx, "reinstate", key); err != nil {
		r.st.LastError = "reinstate: " + message(err)
		return err
	}
	if r.st.TenantSuspended {
		r.st.Record(r.now(ctx), "tenant", "suspended", "active", key, "")
	}
	r.st.TenantSuspended = false
	return nil
}

// reinstate restores the tenant when Microsoft is reinstating (Suspended with the Reinstate operation in
// progress: restore, then acknowledge tolerating 400/409) or has reinstated (Subscribed).
//
// It reports false when it could not act (Microsoft or the tenant unreachable).
func (r *runner) reinstate(ctx workflow.Context, op marketplace.Operation) bool {
	sub, err := r.getSubscription(ctx)
	if err != nil {
		r.st.Record(r.now(ctx), "reinstate-unverified", "", "", op.ID, message(err))
		return false
	}
	r.follow(ctx, sub, "reinstate")
	inProgress := op.Status == marketplace.OperationInProgress || op.Status == marketplace.OperationNotStarted
	switch {
	case sub.Status == marketplace.StatusSuspended && inProgress:
		if r.reinstateTenant(ctx, op.ID) != nil {
			return false
		}
		var res activities.UpdateOperationResult
		err := workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.UpdateOperation,
			activities.UpdateOperationInput{SubscriptionID: r.st.SubscriptionID, OperationID: op.ID, Status: marketplace.UpdateSuccess, TolerateBadRequest: true}).Get(ctx, &res)
		note := "acknowledged"
		if err != nil {
			note = "acknowledge failed: " + message(err)
		} else if res.AlreadyDecided {
			note = "already decided"
		}
		r.st.Record(r.now(ctx), "reinstate", "", "", op.ID, note)
		if sub, err := r.getSubscription(ctx); err == nil {
			r.follow(ctx, sub, "after reinstate")
		}
	case sub.Status == marketplace.StatusSubscribed:
		if r.st.TenantSuspended && r.reinstateTenant(ctx, op.ID) != nil {
			return false
		}
		r.st.Record(r.now(ctx), "reinstate", "", string(sub.Status), op.ID, "resolved against Get subscription")
	default:
		r.st.Record(r.now(ctx), "ignored", "", string(sub.Status), op.ID, "Reinstate: operation "+string(op.Status))
	}
	return true
}

// onSnapshot catches up with Microsoft after reconciliation noticed a difference: re-read the
// subscription and its outstanding operations and run them through the same transitions.
func (r *runner) onSnapshot(ctx workflow.Context) {
	if r.refresh(ctx, "snapshot") != nil || r.st.Ended() {
		return
	}
	switch r.st.Status {
	case marketplace.StatusUnsubscribed:
		return // advance deprovisions
	case marketplace.StatusSuspended:
		_ = r.suspendTenant(ctx, r.st.NextKey("reconcile-suspend"))
	}
	var ops []marketplace.Operation
	err := workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.ListOperations, r.st.SubscriptionID).Get(ctx, &ops)
	if err != nil {
		r.st.Record(r.now(ctx), "snapshot-failed", "", "", "", message(err))
		return
	}
	reinstating := false
	for _, op := range ops {
		if op.Action == marketplace.ActionReinstate {
			reinstating = true
		}
		if _, seen := r.st.Seen(op.ID); seen {
			continue
		}
		r.onOperation(ctx, op, nil, false)
	}
	if r.st.Status == marketplace.StatusSubscribed && r.st.TenantSuspended && !reinstating {
		_ = r.reinstateTenant(ctx, r.st.NextKey("reconcile-reinstate"))
	}
}

// ---- publisher commands ----

func (r *runner) command(ctx workflow.Context, it *item) CommandResult {
	var err error
	if it.name == UpdateCancel {
		err = r.st.ValidateCancel()
	} else {
		err = r.st.ValidateChange(it.planID, it.quantity)
	}
	if err != nil {
		return CommandResult{Status: ResultRejected, Message: err.Error()}
	}
	short := activities.MarketplaceReadOptions()
	short.ScheduleToCloseTimeout = 2 * time.Minute
	writes := r.ao(ctx, activities.MarketplaceWriteOptions())
	pending := PendingOperation{PlanID: it.planID, Quantity: it.quantity, Started: r.now(ctx)}
	var opID string
	switch it.name {
	case UpdateChangePlan:
		var plans []marketplace.Plan
		if err := workflow.ExecuteActivity(r.ao(ctx, short), acts.ListAvailablePlans, r.st.SubscriptionID).Get(ctx, &plans); err != nil {
			return CommandResult{Status: ResultUnknown, Message: "list available plans: " + message(err)}
		}
		if !slices.ContainsFunc(plans, func(p marketplace.Plan) bool { return p.PlanID == it.planID }) {
			return CommandResult{Status: ResultRejected, Message: fmt.Sprintf("plan %q is not available to this subscription", it.planID)}
		}
		pending.Action = marketplace.ActionChangePlan
		err = workflow.ExecuteActivity(writes, acts.ChangePlan, activities.ChangePlanInput{SubscriptionID: r.st.SubscriptionID, PlanID: it.planID}).Get(ctx, &opID)
	case UpdateChangeQuantity:
		// Microsoft refuses seats outside the plan's bounds; say why before asking.
		var plans []marketplace.Plan
		if err := workflow.ExecuteActivity(r.ao(ctx, short), acts.ListAvailablePlans, r.st.SubscriptionID).Get(ctx, &plans); err != nil {
			return CommandResult{Status: ResultUnknown, Message: "list available plans: " + message(err)}
		}
		if i := slices.IndexFunc(plans, func(p marketplace.Plan) bool { return p.PlanID == r.st.PlanID }); i >= 0 {
			p := plans[i]
			switch {
			case !p.IsPricePerSeat:
				return CommandResult{Status: ResultRejected, Message: fmt.Sprintf("plan %q is not priced per seat", p.PlanID)}
			case p.MinQuantity > 0 && it.quantity < int64(p.MinQuantity), p.MaxQuantity > 0 && it.quantity > int64(p.MaxQuantity):
				return CommandResult{Status: ResultRejected, Message: fmt.Sprintf("plan %q allows %d to %d seats", p.PlanID, p.MinQuantity, p.MaxQuantity)}
			}
		}
		pending.Action = marketplace.ActionChangeQuantity
		err = workflow.ExecuteActivity(writes, acts.ChangeQuantity, activities.ChangeQuantityInput{SubscriptionID: r.st.SubscriptionID, Quantity: it.quantity}).Get(ctx, &opID)
	case UpdateCancel:
		pending.Action = marketplace.ActionUnsubscribe
		err = workflow.ExecuteActivity(writes, acts.DeleteSubscription, r.st.SubscriptionID).Get(ctx, &opID)
	}
	if err != nil {
		refused := rejected(err)
		if refused && !(r.version >= versionAmbiguousRejections && ambiguousRefusal(err)) {
			r.st.Record(r.now(ctx), "command-rejected", "", "", "", it.name+": "+message(err))
			return CommandResult{Status: ResultRejected, Message: message(err)}
		}
		// Ambiguous: the write may have happened. Look for it rather than sending it again.
		opID = r.findOperation(ctx, pending)
		switch {
		case opID == "" && refused:
			r.st.Record(r.now(ctx), "command-rejected", "", "", "", it.name+": "+message(err))
			return CommandResult{Status: ResultRejected, Message: message(err)}
		case opID == "":
			r.st.Record(r.now(ctx), "command-unknown", "", "", "", it.name+": "+message(err))
			return CommandResult{Status: ResultUnknown, Message: message(err)}
		}
	}
	pending.ID = opID
	r.st.Pending = &pending
	r.st.MarkSeen(opID, pending.Action, "publisher")
	phase := PhaseChanging
	if it.name == UpdateCancel {
		phase = PhaseCancelling
	}
	r.st.SetPhase(r.now(ctx), phase, it.name)
	r.st.Record(r.now(ctx), "command", "", string(pending.Action), opID, fmt.Sprintf("plan %q quantity %d", pending.PlanID, pending.Quantity))
	r.upsertSearch(ctx)

	op, err := r.pollOperation(ctx, opID)
	r.st.Pending = nil
	r.st.SetPhase(r.now(ctx), PhaseIdle, "")
	if err != nil {
		return CommandResult{OperationID: opID, Status: ResultUnknown, Message: message(err)}
	}
	res := CommandResult{OperationID: opID, Status: string(op.Status), Message: op.ErrorMessage}
	if op.Status != marketplace.OperationSucceeded {
		r.st.Record(r.now(ctx), "command-"+string(op.Status), "", "", opID, op.ErrorMessage)
		return res
	}
	if it.name == UpdateCancel {
		if sub, err := r.getSubscription(ctx); err == nil {
			r.follow(ctx, sub, "cancel")
		}
		r.st.Status = marketplace.StatusUnsubscribed
		r.deprovision(ctx, "cancelled by the publisher")
		return res
	}
	r.applyChange(ctx, provisioning.ChangeRequest{SubscriptionID: r.st.SubscriptionID, OperationID: opID, Action: pending.Action,
		PlanID: pending.PlanID, Quantity: pending.Quantity, Source: "Publisher"}, "publisher change succeeded")
	return res
}

// findOperation looks among the outstanding operations for one matching a write whose answer was lost.
func (r *runner) findOperation(ctx workflow.Context, p PendingOperation) string {
	var ops []marketplace.Operation
	if err := workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.ListOperations, r.st.SubscriptionID).Get(ctx, &ops); err != nil {
		return ""
	}
	for _, op := range ops {
		if _, seen := r.st.Seen(op.ID); seen || op.Action != p.Action {
			continue
		}
		if (p.PlanID == "" || op.PlanID == p.PlanID) && (p.Quantity == 0 || int64(op.Quantity) == p.Quantity) {
			return op.ID
		}
	}
	return ""
}

// ---- ending and continuing ----

func (r *runner) deprovision(ctx workflow.Context, why string) {
	if err := r.provision(ctx, "deprovision", keyDeprovision); err != nil {
		r.st.Fail(r.now(ctx), PhaseDeprovisionFailed, "deprovision: "+message(err))
		return
	}
	now := r.now(ctx)
	r.st.Status = marketplace.StatusUnsubscribed
	if r.st.UnsubscribedAt.IsZero() {
		r.st.UnsubscribedAt = now
	}
	r.st.DeprovisionedAt = now
	r.st.Provisioned, r.st.TenantSuspended = false, false
	r.st.SetPhase(now, PhaseDeprovisioned, why)
}

// finish ends the workflow: queued inputs are answered (nothing more happens to an ended subscription)
// and running update handlers are let finish.
func (r *runner) finish(ctx workflow.Context) (State, error) {
	for {
		for _, it := range r.queue {
			r.st.Record(r.now(ctx), "ignored", "", "", "", it.name+" after the subscription ended")
			it.result = CommandResult{Status: ResultRejected, Message: ErrEnded.Error()}
			it.decision = ChangeDecision{Reason: ErrEnded.Error()}
			it.state = r.st
			it.done = true
		}
		r.queue = nil
		_ = workflow.Await(ctx, func() bool { return len(r.queue) > 0 || workflow.AllHandlersFinished(ctx) })
		if len(r.queue) == 0 {
			r.upsertSearch(ctx)
			if r.st.Phase == PhaseNotFound && r.version >= versionNotFoundFails {
				return r.st, temporal.NewNonRetryableApplicationError(
					"Microsoft does not know subscription "+r.st.SubscriptionID, ErrSubscriptionNotFound, nil, r.st)
			}
			return r.st, nil
		}
	}
}

// continueAsNew hands the state and the unhandled signals to a new run, after answering every queued
// update and letting running handlers finish.
func (r *runner) continueAsNew(ctx workflow.Context) (State, error) {
	for {
		for slices.ContainsFunc(r.queue, isUpdate) {
			r.handle(ctx, r.pop())
		}
		_ = workflow.Await(ctx, func() bool {
			return slices.ContainsFunc(r.queue, isUpdate) || workflow.AllHandlersFinished(ctx)
		})
		if !slices.ContainsFunc(r.queue, isUpdate) {
			break
		}
	}
	for _, name := range []string{SignalWebhook, SignalSnapshot} {
		ch := workflow.GetSignalChannel(ctx, name)
		for {
			var ev marketplace.WebhookEvent
			var sub marketplace.Subscription
			var ok bool
			if name == SignalWebhook {
				ok = ch.ReceiveAsync(&ev)
			} else {
				ok = ch.ReceiveAsync(&sub)
			}
			if !ok {
				break
			}
			if name == SignalWebhook {
				r.queue = append(r.queue, &item{name: name, webhook: &ev})
			} else {
				r.queue = append(r.queue, &item{name: name, snapshot: &sub})
			}
		}
	}
	carried := &Carried{State: r.st}
	for _, it := range r.queue {
		carried.Pending = append(carried.Pending, Signal{Name: it.name, Webhook: it.webhook, Snapshot: it.snapshot})
	}
	r.st.Record(r.now(ctx), "continue-as-new", "", "", "", fmt.Sprintf("%d pending signals", len(carried.Pending)))
	carried.State = r.st
	next := Input{SubscriptionID: r.in.SubscriptionID, Source: r.in.Source, Options: r.in.Options, Carried: carried}
	return r.st, workflow.NewContinueAsNewError(ctx, WorkflowType, next)
}

func isUpdate(it *item) bool { return it.name != SignalWebhook && it.name != SignalSnapshot }

// ---- helpers ----

func (r *runner) now(ctx workflow.Context) time.Time { return workflow.Now(ctx).UTC() }

func (r *runner) ao(ctx workflow.Context, o workflow.ActivityOptions) workflow.Context {
	return workflow.WithActivityOptions(ctx, o)
}

// refresh reads the subscription from Microsoft and follows it; a 404 ends the workflow.
func (r *runner) refresh(ctx workflow.Context, why string) error {
	sub, err := r.getSubscription(ctx)
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

// follow takes a fresh read of the subscription as the truth; a plan or quantity that moved without us
// (a missed webhook) is applied to the tenant too.
func (r *runner) follow(ctx workflow.Context, sub marketplace.Subscription, why string) {
	prevPlan, prevQty := r.st.PlanID, r.st.Quantity
	if !r.st.ApplySubscription(sub, r.now(ctx), why) || !r.st.Provisioned || r.st.Pending != nil {
		return
	}
	req := provisioning.ChangeRequest{SubscriptionID: r.st.SubscriptionID, OperationID: r.st.NextKey("sync"), Source: "Reconcile"}
	if r.st.PlanID != prevPlan {
		req.Action, req.PlanID = marketplace.ActionChangePlan, r.st.PlanID
	}
	if r.st.Quantity != prevQty {
		if req.Action == "" {
			req.Action = marketplace.ActionChangeQuantity
		}
		req.Quantity = r.st.Quantity
	}
	if err := workflow.ExecuteActivity(r.ao(ctx, activities.ProvisioningOptions()), acts.ApplyChange, req).Get(ctx, nil); err != nil {
		r.st.LastError = "sync change: " + message(err)
	}
}

func (r *runner) getSubscription(ctx workflow.Context) (marketplace.Subscription, error) {
	var sub marketplace.Subscription
	err := workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.GetSubscription, r.st.SubscriptionID).Get(ctx, &sub)
	return sub, err
}

func (r *runner) getOperation(ctx workflow.Context, o workflow.ActivityOptions, opID string) (marketplace.Operation, error) {
	var op marketplace.Operation
	err := workflow.ExecuteActivity(r.ao(ctx, o), acts.GetOperation, activities.OperationRef{SubscriptionID: r.st.SubscriptionID, OperationID: opID}).Get(ctx, &op)
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
		if err := r.pause(ctx, delay); err != nil {
			return op, err
		}
		delay = min(2*delay, pollMax)
	}
}

// pause waits d between two polls of a long step. From versionServeDecides on, a decide-change item
// that arrives meanwhile is handled at once (nested in the long step) rather than after it: the customer's
// webhook is waiting for the answer and Microsoft decides by itself after ten seconds.
func (r *runner) pause(ctx workflow.Context, d time.Duration) error {
	if r.version < versionServeDecides {
		return workflow.Sleep(ctx, d)
	}
	end := workflow.Now(ctx).Add(d)
	for d > 0 {
		decide, err := workflow.AwaitWithTimeout(ctx, d, r.hasDecide)
		if err != nil || !decide {
			return err
		}
		r.handle(ctx, r.pop()) // pop takes decide-change items first
		d = end.Sub(workflow.Now(ctx))
	}
	return nil
}

func (r *runner) hasDecide() bool { return r.queued(UpdateDecideChange) }

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

// searchView is what the search attributes show.
type searchView struct {
	status, phase, offer, plan, tenant string
	quantity                           int64
	isTest, isFreeTrial                bool
}

// upsertSearch keeps the search attributes current, writing only when something shown changed.
func (r *runner) upsertSearch(ctx workflow.Context) {
	v := searchView{status: string(r.st.Status), phase: string(r.st.Phase), offer: r.st.OfferID, plan: r.st.PlanID,
		tenant: r.st.Beneficiary.TenantID, quantity: r.st.Quantity, isTest: r.st.IsTest, isFreeTrial: r.st.IsFreeTrial}
	if r.lastSA != nil && *r.lastSA == v {
		return
	}
	updates := []temporal.SearchAttributeUpdate{
		SaaSPhase.ValueSet(v.phase), SaaSQuantity.ValueSet(v.quantity),
		SaaSIsTest.ValueSet(v.isTest), SaaSIsFreeTrial.ValueSet(v.isFreeTrial),
	}
	keywords := []struct {
		key temporal.SearchAttributeKeyKeyword
		val string
	}{{SaaSStatus, v.status}, {SaaSOffer, v.offer}, {SaaSPlan, v.plan}, {SaaSBeneficiaryTenant, v.tenant}}
	for _, kw := range keywords {
		if kw.val != "" {
			updates = append(updates, kw.key.ValueSet(kw.val))
		}
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
		return
	}
	r.lastSA = &v
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
