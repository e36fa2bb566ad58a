package subscription

import (
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"saasengine/activities"
	"saasengine/activities/notification"
	subacts "saasengine/activities/subscription"
	"saasengine/marketplace"
	"saasengine/provisioning"
)

// Deciding a customer's ChangePlan/ChangeQuantity. Microsoft waits ten seconds for the webhook's answer,
// then decides by itself; the webhook server waits less (its DecideRequest.Deadline). The decision runs
// beside the loop, so it is answered whatever the loop is doing; the acknowledgement (PATCH) and the
// change itself are the loop's, after the answer has gone.

// Changes to deciding, each guarded in the histories recorded before it (see versions.go).
const (
	// changeDecideLocally runs a decision's calls as local activities.
	changeDecideLocally = "decide-locally"
	// changeExpectAnswerFirst notes a webhook's answer before waiting for the decision lock.
	changeExpectAnswerFirst = "expect-answer-first"
)

const (
	// answerMargin is kept back from the caller's deadline for the answer's way back.
	answerMargin = 300 * time.Millisecond
	// minDecideTime is the least time worth starting a decision with.
	minDecideTime = 500 * time.Millisecond
	// loopDecideTime bounds a decision the loop makes for a change that arrived as a signal (the
	// webhook's wait ran out): Microsoft's window is probably past, but an answer may still count.
	loopDecideTime = 4 * time.Second
)

// decideChange is the UpdateDecideChange handler.
func (r *runner) decideChange(ctx workflow.Context, req DecideRequest) (ChangeDecision, error) {
	ev := req.Event
	deadline := req.Deadline
	if deadline.IsZero() {
		deadline = workflow.Now(ctx).Add(loopDecideTime)
	}
	// This webhook's answer is expected before the lock is taken: the loop may be deciding the same
	// operation (found by List operations) and must not PATCH it while the answer is on its way.
	early := workflow.GetVersion(ctx, changeExpectAnswerFirst, workflow.DefaultVersion, 1) == 1
	if early {
		r.expectAnswer(ev.ID, deadline.Add(answerAfterDeadline))
	}
	if err := r.deciding.Lock(ctx); err != nil {
		return ChangeDecision{Reason: "not decided"}, nil
	}
	defer r.deciding.Unlock()
	if d, ok := r.decidedBefore(ctx, ev.ID, string(ev.Action)); ok {
		return d, nil
	}
	if !early {
		r.expectAnswer(ev.ID, deadline.Add(answerAfterDeadline))
	}
	left := func() time.Duration { return deadline.Sub(workflow.Now(ctx)) - answerMargin }
	if left() < minDecideTime {
		r.enqueue(&item{name: SignalWebhook, webhook: &ev})
		return ChangeDecision{Reason: "no time left to decide"}, nil
	}
	// Verify with the operation and read the subscription at once, in at most half the time left.
	verify := left() / 2
	opF := r.decideCall(ctx, verify, acts.GetOperation, subacts.OperationRef{SubscriptionID: r.st.SubscriptionID, OperationID: ev.ID})
	subF := r.decideCall(ctx, verify, acts.GetSubscription, r.st.SubscriptionID)
	var op marketplace.Operation
	var sub marketplace.Subscription
	opErr := opF.Get(ctx, &op)
	subErr := subF.Get(ctx, &sub)
	switch {
	case opErr != nil && isNotFound(opErr):
		r.st.Record(r.now(ctx), "webhook-unverified", "", "", ev.ID, string(ev.Action)+": "+message(opErr))
		return ChangeDecision{Reason: "the operation does not verify"}, nil
	case opErr != nil:
		r.enqueue(&item{name: SignalWebhook, webhook: &ev}) // the loop verifies it with patience
		return ChangeDecision{Reason: "could not verify in time"}, nil
	case !matches(ev, op, r.st.SubscriptionID):
		r.st.Record(r.now(ctx), "webhook-mismatch", "", "", ev.ID, "event says "+string(ev.Action)+", operation says "+string(op.Action))
		return ChangeDecision{Reason: "the operation does not match the event"}, nil
	}
	if subErr == nil && sub.Status == marketplace.StatusUnsubscribed {
		// Its Unsubscribe webhook may be lost: refuse, never apply, and let the loop end the subscription.
		r.refuseEnded(ctx, op)
		r.enqueue(&item{name: SignalSnapshot})
		return ChangeDecision{Decided: true, Reason: "the subscription is unsubscribed"}, nil
	}
	if step, _ := r.st.Plan(op); step != StepDecide {
		r.enqueue(&item{name: SignalWebhook, webhook: &ev}) // decided already (auto-accepted, failed): the loop follows it
		return ChangeDecision{Reason: "Microsoft has decided the operation (" + string(op.Status) + ")"}, nil
	}
	d := r.decide(ctx, op, left())
	return d, nil
}

// decideInLoop decides a change the loop found (a signal, List operations), then settles it.
func (r *runner) decideInLoop(ctx workflow.Context, op marketplace.Operation) {
	if err := r.deciding.Lock(ctx); err != nil {
		return
	}
	if _, ok := r.decidedBefore(ctx, op.ID, string(op.Action)); ok {
		r.deciding.Unlock()
		return
	}
	if r.st.Status == marketplace.StatusUnsubscribed {
		r.refuseEnded(ctx, op)
		r.deciding.Unlock()
		return
	}
	r.decide(ctx, op, loopDecideTime)
	r.deciding.Unlock()
	if it := r.popSettle(op.ID); it != nil {
		r.settle(ctx, *it.settle)
	}
}

// decidedBefore answers a redelivery of an operation already decided or handled.
func (r *runner) decidedBefore(ctx workflow.Context, opID, action string) (ChangeDecision, bool) {
	seen, ok := r.st.Seen(opID)
	if !ok {
		return ChangeDecision{}, false
	}
	r.st.Record(r.now(ctx), "webhook-duplicate", "", "", opID, action)
	switch seen.Outcome {
	case OutcomeAccepted:
		return ChangeDecision{Accepted: true, Decided: true, Reason: "decided before"}, true
	case OutcomeRejected:
		return ChangeDecision{Decided: true, Reason: "decided before"}, true
	}
	return ChangeDecision{Reason: "handled before"}, true
}

// decide asks the ISV within d, records the outcome and queues the settlement (the PATCH and the
// change). Called with r.deciding held.
func (r *runner) decide(ctx workflow.Context, op marketplace.Operation, d time.Duration) ChangeDecision {
	req := changeRequest(r.st.SubscriptionID, op)
	var dec provisioning.Decision
	err := r.decideCall(ctx, d, acts.DecideChange, req).Get(ctx, &dec)
	if err != nil {
		r.st.MarkSeen(op.ID, op.Action, "")
		r.st.Record(r.now(ctx), "decide-failed", "", "", op.ID, message(err)+"; Microsoft's default stands")
		r.enqueue(&item{name: itemSettle, settle: &Settlement{Operation: op}})
		return ChangeDecision{Reason: "no decision in time"}
	}
	outcome := OutcomeRejected
	if dec.Accept {
		outcome = OutcomeAccepted
	}
	r.st.MarkSeen(op.ID, op.Action, outcome)
	r.st.Record(r.now(ctx), "decided", "", outcome, op.ID, dec.Reason)
	if !dec.Accept {
		facts := map[string]string{"operation": op.ID, "requested plan": op.PlanID}
		if op.Quantity > 0 {
			facts["requested seats"] = strconv.FormatInt(int64(op.Quantity), 10)
		}
		r.notify(ctx, notification.ChangeRefused, "change-refused/"+op.ID, "Your provisioning refused a "+string(op.Action)+" of subscription "+r.st.SubscriptionID, dec.Reason, facts)
	}
	r.enqueue(&item{name: itemSettle, settle: &Settlement{Operation: op, Accepted: dec.Accept, Patch: true}})
	return ChangeDecision{Accepted: dec.Accept, Reason: dec.Reason, Decided: true}
}

// refuseEnded refuses a change of a subscription Microsoft shows Unsubscribed; nothing is applied.
func (r *runner) refuseEnded(ctx workflow.Context, op marketplace.Operation) {
	r.st.MarkSeen(op.ID, op.Action, OutcomeRejected)
	r.st.Record(r.now(ctx), "decided", "", OutcomeRejected, op.ID, "the subscription is unsubscribed")
	r.enqueue(&item{name: itemSettle, settle: &Settlement{Operation: op, Patch: true}})
}

// enqueue hands the loop an input of the workflow's own making.
func (r *runner) enqueue(it *item) { r.queue = append(r.queue, it) }

// popSettle takes the queued settlement of an operation, if any.
func (r *runner) popSettle(opID string) *item {
	for i, it := range r.queue {
		if it.name == itemSettle && it.settle != nil && it.settle.Operation.ID == opID {
			r.queue = append(r.queue[:i:i], r.queue[i+1:]...)
			return it
		}
	}
	return nil
}

// settle acknowledges a decided change and applies it once Microsoft shows it done. It runs in the
// loop, and PATCHes only once the webhook's answer has been sent (awaitAnswer).
func (r *runner) settle(ctx workflow.Context, s Settlement) {
	op := s.Operation
	if s.Patch {
		r.awaitAnswer(ctx, op.ID)
		status := marketplace.UpdateFailure
		if s.Accepted {
			status = marketplace.UpdateSuccess
		}
		var res subacts.UpdateOperationResult
		err := workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.UpdateOperation,
			subacts.UpdateOperationInput{SubscriptionID: r.st.SubscriptionID, OperationID: op.ID, Status: status}).Get(ctx, &res)
		switch {
		case err != nil:
			r.st.Record(r.now(ctx), "ack-failed", "", string(status), op.ID, message(err))
		case res.AlreadyDecided:
			r.st.Record(r.now(ctx), "ack-late", "", string(status), op.ID, "operation was already decided")
		default:
			r.st.Record(r.now(ctx), "ack", "", string(status), op.ID, "")
		}
	}
	done, err := r.pollOperation(ctx, op.ID)
	if err != nil {
		r.st.Record(r.now(ctx), "change-unknown", "", "", op.ID, message(err))
		return
	}
	if done.Status != marketplace.OperationSucceeded {
		r.st.Record(r.now(ctx), "change-not-applied", "", string(done.Status), op.ID, "")
		return
	}
	if r.st.Status == marketplace.StatusUnsubscribed {
		r.st.Record(r.now(ctx), "change-not-applied", "", string(done.Status), op.ID, "the subscription is unsubscribed")
		return
	}
	note := "Microsoft completed the change"
	if !s.Accepted {
		note = "Microsoft applied a change we did not accept; following Microsoft"
	}
	if done.PlanID == "" {
		done.PlanID = op.PlanID
	}
	if done.Quantity == 0 {
		done.Quantity = op.Quantity
	}
	r.applyChange(ctx, done, note)
}

// applyChange takes a Succeeded change as the truth and brings the tenant to it at once, keyed by the
// operation. Microsoft may adjust more than the operation names (a plan whose minimum exceeds the
// seats raises them): a lag-aware read follows, and syncTenant passes any further difference on.
func (r *runner) applyChange(ctx workflow.Context, op marketplace.Operation, note string) {
	r.st.ApplyOperation(op, r.now(ctx))
	r.st.Record(r.now(ctx), "change", "", string(op.Action), op.ID, note)
	if r.st.Provisioned && r.st.TenantBehind() {
		req := changeRequest(r.st.SubscriptionID, op)
		req.PlanID, req.Quantity = r.st.PlanID, r.st.Quantity
		r.applyToTenant(ctx, req)
	}
	_ = r.refresh(ctx, "after change")
}

func changeRequest(subscriptionID string, op marketplace.Operation) provisioning.ChangeRequest {
	return provisioning.ChangeRequest{SubscriptionID: subscriptionID, OperationID: op.ID, Action: op.Action,
		PlanID: op.PlanID, Quantity: int64(op.Quantity), Source: op.OperationRequestSource}
}

// decideCall runs one of a decision's calls within d. Since changeDecideLocally it is a local activity:
// the calls run in the worker that holds the workflow, inside the workflow task, so the answer waits
// for no task queue (three trips through Temporal's matching fewer, which under load were most of the
// answer's time). Histories recorded before replay their activities.
func (r *runner) decideCall(ctx workflow.Context, d time.Duration, activity any, args ...any) workflow.Future {
	if workflow.GetVersion(ctx, changeDecideLocally, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return workflow.ExecuteActivity(r.ao(ctx, decideWithin(d)), activity, args...)
	}
	o := decideWithin(d)
	lo := workflow.LocalActivityOptions{StartToCloseTimeout: o.StartToCloseTimeout, ScheduleToCloseTimeout: o.ScheduleToCloseTimeout, RetryPolicy: o.RetryPolicy}
	return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, lo), activity, args...)
}

// decideWithin are activity options for calls that must end within d, retries included.
func decideWithin(d time.Duration) workflow.ActivityOptions {
	d = max(d, minDecideTime)
	return workflow.ActivityOptions{
		StartToCloseTimeout:    d,
		ScheduleToCloseTimeout: d,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    200 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Second,
		},
	}
}
