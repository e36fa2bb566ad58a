package subscription

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"saasengine/activities"
	subacts "saasengine/activities/subscription"
	"saasengine/marketplace"
)

// Microsoft's events: webhooks and reconciliation snapshots. A webhook is only a hint: it is verified
// with Get operation and acted on as Microsoft's records say. An operation's terminal status is the
// truth for the transition it carries; the subscription record, whose reads lag, is made to agree.

// onEvent handles a webhook the loop took from the queue.
func (r *runner) onEvent(ctx workflow.Context, ev marketplace.WebhookEvent) {
	now := r.now(ctx)
	if ev.ID == "" {
		r.st.Record(now, "webhook-ignored", "", "", "", "no operation ID")
		return
	}
	if _, ok := r.st.Seen(ev.ID); ok {
		r.st.Record(now, "webhook-duplicate", "", "", ev.ID, string(ev.Action))
		return
	}
	if mayPatch(ev.Action) {
		r.expectAnswer(ev.ID, now.Add(answerAfterSignal))
	}
	op, err := r.getOperation(ctx, activities.MarketplaceReadOptions(), ev.ID)
	if err != nil {
		kind := "webhook-unverified"
		if !isNotFound(err) {
			kind = "webhook-verify-failed"
		}
		r.st.Record(r.now(ctx), kind, "", "", ev.ID, string(ev.Action)+": "+message(err))
		return
	}
	if !matches(ev, op, r.st.SubscriptionID) {
		r.st.Record(r.now(ctx), "webhook-mismatch", "", "", ev.ID, fmt.Sprintf("event says %s, operation says %s", ev.Action, op.Action))
		return
	}
	r.onOperation(ctx, op)
}

// matches reports whether a verified operation is the one the event announced, for this subscription.
func matches(ev marketplace.WebhookEvent, op marketplace.Operation, subscriptionID string) bool {
	return (op.SubscriptionID == "" || op.SubscriptionID == subscriptionID) && (ev.Action == "" || op.Action == ev.Action)
}

// onOperation acts on a verified operation, from a webhook or from List operations.
func (r *runner) onOperation(ctx workflow.Context, op marketplace.Operation) {
	step, why := r.st.Plan(op)
	now := r.now(ctx)
	if step == StepDuplicate {
		r.st.Record(now, "duplicate", "", "", op.ID, string(op.Action))
		return
	}
	if step == StepDecide {
		r.decideInLoop(ctx, op)
		return
	}
	// Marked seen before acting, so a redelivery is a duplicate; forgotten again if acting failed.
	r.st.MarkSeen(op.ID, op.Action, "")
	acted := true
	switch step {
	case StepIgnore, StepNotApplied, StepUnknown:
		r.st.Record(now, "ignored", "", "", op.ID, string(op.Action)+": "+why)
	case StepApplyChange:
		r.applyChange(ctx, op, why)
	case StepSuspend:
		acted = r.suspend(ctx, op)
	case StepReinstate:
		acted = r.reinstate(ctx, op)
	case StepRenew:
		acted = r.renew(ctx, op)
	case StepUnsubscribe:
		acted = r.unsubscribe(ctx, op)
	}
	if !acted {
		r.st.ForgetSeen(op.ID)
	}
}

// suspend follows a Suspend: a Succeeded operation is the truth, whatever a lagging read says. It
// reports false when it could not act (Microsoft or the tenant unreachable).
func (r *runner) suspend(ctx workflow.Context, op marketplace.Operation) bool {
	if op.Status == marketplace.OperationSucceeded {
		r.st.ApplyOperation(op, r.now(ctx))
	} else if err := r.refresh(ctx, "suspend"); err != nil {
		r.st.Record(r.now(ctx), "suspend-unverified", "", "", op.ID, message(err))
		return false
	}
	if r.st.Status != marketplace.StatusSuspended {
		r.st.Record(r.now(ctx), "ignored", "", string(r.st.Status), op.ID, "Suspend "+string(op.Status)+": not suspended")
		return true
	}
	return r.suspendTenant(ctx, op.ID)
}

// reinstate restores the tenant when Microsoft is reinstating (the operation waits for our answer:
// restore, then acknowledge, tolerating 400/409) or has reinstated (Succeeded). It reports false when it
// could not act (Microsoft or the tenant unreachable).
func (r *runner) reinstate(ctx workflow.Context, op marketplace.Operation) bool {
	switch op.Status {
	case marketplace.OperationInProgress, marketplace.OperationNotStarted, "":
		if r.st.TenantSuspended && r.reinstateTenant(ctx, op.ID) != nil {
			return false
		}
		r.awaitAnswer(ctx, op.ID)
		var res subacts.UpdateOperationResult
		err := workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.UpdateOperation,
			subacts.UpdateOperationInput{SubscriptionID: r.st.SubscriptionID, OperationID: op.ID, Status: marketplace.UpdateSuccess, TolerateBadRequest: true}).Get(ctx, &res)
		note := "acknowledged"
		if err != nil {
			note = "acknowledge failed: " + message(err)
		} else if res.AlreadyDecided {
			note = "already decided"
		}
		r.st.Record(r.now(ctx), "reinstate", "", "", op.ID, note)
		done, err := r.pollOperation(ctx, op.ID)
		if err != nil {
			r.st.Record(r.now(ctx), "reinstate-unknown", "", "", op.ID, message(err))
			return true // the status follows at the next read or snapshot; the tenant is restored
		}
		r.st.ApplyOperation(done, r.now(ctx))
	case marketplace.OperationSucceeded:
		r.st.ApplyOperation(op, r.now(ctx))
		if r.st.Status == marketplace.StatusSubscribed && r.st.TenantSuspended && r.reinstateTenant(ctx, op.ID) != nil {
			return false
		}
		r.st.Record(r.now(ctx), "reinstate", "", string(r.st.Status), op.ID, "operation succeeded")
	default:
		r.st.Record(r.now(ctx), "ignored", "", string(r.st.Status), op.ID, "Reinstate: operation "+string(op.Status))
	}
	return true
}

// renew records a new term; the run then continues as new (a yearly point where fixes reach the
// subscription).
func (r *runner) renew(ctx workflow.Context, op marketplace.Operation) bool {
	r.st.Expecting(Expectation{OperationID: op.ID, TermEndAfter: r.st.Term.EndDate.Time})
	if err := r.refresh(ctx, "renew"); err != nil {
		r.st.Record(r.now(ctx), "renew-unverified", "", "", op.ID, message(err))
		return false
	}
	r.st.Record(r.now(ctx), "renew", "", r.st.Term.EndDate.Format(time.DateOnly), op.ID, "term renewed")
	r.renewed = true
	return true
}

// unsubscribe ends the subscription once Microsoft confirms it (the operation, or the record);
// advance then deprovisions.
func (r *runner) unsubscribe(ctx workflow.Context, op marketplace.Operation) bool {
	if op.Status == marketplace.OperationSucceeded {
		r.st.ApplyOperation(op, r.now(ctx))
		return true
	}
	err := r.refresh(ctx, "unsubscribe")
	switch {
	case r.st.Status == marketplace.StatusUnsubscribed:
	case isNotFound(err):
		r.st.ApplyOperation(marketplace.Operation{ID: op.ID, Action: marketplace.ActionUnsubscribe, Status: marketplace.OperationSucceeded}, r.now(ctx))
	default:
		r.st.Record(r.now(ctx), "ignored", "", "", op.ID, "Unsubscribe not confirmed by Get subscription")
		return err == nil
	}
	return true
}

// onSnapshot catches up with Microsoft after reconciliation noticed a difference: retry what failed,
// re-read the subscription and its outstanding operations and run them through the same transitions.
func (r *runner) onSnapshot(ctx workflow.Context) {
	if r.st.Attention != "" {
		r.st.Record(r.now(ctx), "retry", "", r.st.Attention, "", "reconciliation snapshot")
		r.retry(ctx)
	}
	if r.refresh(ctx, "snapshot") != nil || r.st.Ended() || r.st.Status == marketplace.StatusUnsubscribed {
		return // advance deprovisions an unsubscribed one
	}
	var ops []marketplace.Operation
	err := workflow.ExecuteActivity(r.ao(ctx, activities.MarketplaceReadOptions()), acts.ListOperations, r.st.SubscriptionID).Get(ctx, &ops)
	if err != nil {
		r.st.Record(r.now(ctx), "snapshot-failed", "", "", "", message(err))
		return
	}
	for _, op := range ops {
		if _, seen := r.st.Seen(op.ID); !seen {
			r.onOperation(ctx, op)
		}
	}
}
