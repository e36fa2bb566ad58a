package subscription

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"saasengine/activities"
	subacts "saasengine/activities/subscription"
	"saasengine/marketplace"
)

// Operator commands: plan and seat changes and cancellation started by the publisher. Each is a PATCH
// or DELETE that Microsoft answers 202 with an operation, polled until terminal; our side follows only
// when it succeeded.

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
	pending := PendingOperation{PlanID: it.planID, Quantity: it.quantity, Started: r.now(ctx)}
	if res, ok := r.checkPlans(ctx, it); !ok {
		return res
	}
	writes := r.ao(ctx, activities.MarketplaceWriteOptions())
	var opID string
	switch it.name {
	case UpdateChangePlan:
		pending.Action = marketplace.ActionChangePlan
		err = workflow.ExecuteActivity(writes, acts.ChangePlan, subacts.ChangePlanInput{SubscriptionID: r.st.SubscriptionID, PlanID: it.planID}).Get(ctx, &opID)
	case UpdateChangeQuantity:
		pending.Action = marketplace.ActionChangeQuantity
		err = workflow.ExecuteActivity(writes, acts.ChangeQuantity, subacts.ChangeQuantityInput{SubscriptionID: r.st.SubscriptionID, Quantity: it.quantity}).Get(ctx, &opID)
	case UpdateCancel:
		pending.Action = marketplace.ActionUnsubscribe
		err = workflow.ExecuteActivity(writes, acts.DeleteSubscription, r.st.SubscriptionID).Get(ctx, &opID)
	}
	var op marketplace.Operation
	if err != nil {
		if rejected(err) && !ambiguousRefusal(err) {
			r.st.Record(r.now(ctx), "command-rejected", "", "", "", it.name+": "+message(err))
			return CommandResult{Status: ResultRejected, Message: message(err)}
		}
		// Ambiguous: the write may have happened with its answer lost. Look for it rather than sending
		// it again: among the outstanding operations, else in the subscription itself.
		if opID = r.findOperation(ctx, pending); opID == "" {
			return r.settledWithoutOperation(ctx, it.name, pending, err)
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

	op, err = r.pollOperation(ctx, opID)
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
	r.commandSucceeded(ctx, pending, "publisher "+it.name+" succeeded")
	return res
}

// checkPlans says why Microsoft would refuse a plan or seat change, before asking it.
func (r *runner) checkPlans(ctx workflow.Context, it *item) (CommandResult, bool) {
	if it.name == UpdateCancel {
		return CommandResult{}, true
	}
	short := activities.MarketplaceReadOptions()
	short.ScheduleToCloseTimeout = 2 * time.Minute
	var plans []marketplace.Plan
	if err := workflow.ExecuteActivity(r.ao(ctx, short), acts.ListAvailablePlans, r.st.SubscriptionID).Get(ctx, &plans); err != nil {
		return CommandResult{Status: ResultUnknown, Message: "list available plans: " + message(err)}, false
	}
	if it.name == UpdateChangePlan {
		if !slices.ContainsFunc(plans, func(p marketplace.Plan) bool { return p.PlanID == it.planID }) {
			return CommandResult{Status: ResultRejected, Message: fmt.Sprintf("plan %q is not available to this subscription", it.planID)}, false
		}
		return CommandResult{}, true
	}
	if i := slices.IndexFunc(plans, func(p marketplace.Plan) bool { return p.PlanID == r.st.PlanID }); i >= 0 {
		p := plans[i]
		switch {
		case !p.IsPricePerSeat:
			return CommandResult{Status: ResultRejected, Message: fmt.Sprintf("plan %q is not priced per seat", p.PlanID)}, false
		case p.MinQuantity > 0 && it.quantity < int64(p.MinQuantity), p.MaxQuantity > 0 && it.quantity > int64(p.MaxQuantity):
			return CommandResult{Status: ResultRejected, Message: fmt.Sprintf("plan %q allows %d to %d seats", p.PlanID, p.MinQuantity, p.MaxQuantity)}, false
		}
	}
	return CommandResult{}, true
}

// commandSucceeded follows a publisher operation that Microsoft completed.
func (r *runner) commandSucceeded(ctx workflow.Context, p PendingOperation, note string) {
	op := marketplace.Operation{ID: p.ID, Action: p.Action, PlanID: p.PlanID, Quantity: marketplace.Quantity(p.Quantity),
		Status: marketplace.OperationSucceeded, OperationRequestSource: "Publisher"}
	if p.Action == marketplace.ActionUnsubscribe {
		r.st.ApplyOperation(op, r.now(ctx))
		r.deprovision(ctx, "cancelled by the publisher")
		return
	}
	r.applyChange(ctx, op, note)
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

// settledWithoutOperation decides an ambiguous write that left no outstanding operation: List operations
// shows only outstanding ones, so a first attempt that already succeeded is found in the subscription
// itself, once its lagging record shows it.
func (r *runner) settledWithoutOperation(ctx workflow.Context, name string, p PendingOperation, err error) CommandResult {
	r.st.Expecting(Expectation{OperationID: "requested", Status: wantStatus(p), PlanID: p.PlanID, Quantity: p.Quantity})
	sub, rerr := r.readSubscription(ctx)
	r.st.CaughtUp(sub, true)
	switch {
	case rerr != nil && isNotFound(rerr) && p.Action == marketplace.ActionUnsubscribe:
	case rerr != nil:
		r.st.Record(r.now(ctx), "command-unknown", "", "", "", name+": "+message(err))
		return CommandResult{Status: ResultUnknown, Message: message(err)}
	case !Expectation{Status: wantStatus(p), PlanID: p.PlanID, Quantity: p.Quantity}.met(sub) || (p.Action == marketplace.ActionUnsubscribe && sub.Status != marketplace.StatusUnsubscribed):
		status := ResultUnknown
		if rejected(err) {
			status = ResultRejected
		}
		r.st.Record(r.now(ctx), "command-"+status, "", "", "", name+": "+message(err))
		return CommandResult{Status: status, Message: message(err)}
	}
	r.st.Record(r.now(ctx), "command", "", string(p.Action), "", "an earlier attempt succeeded; its answer was lost")
	r.commandSucceeded(ctx, p, "publisher "+name+" succeeded (answer lost)")
	return CommandResult{Status: string(marketplace.OperationSucceeded), Message: "an earlier attempt succeeded; its answer was lost"}
}

func wantStatus(p PendingOperation) marketplace.SubscriptionStatus {
	if p.Action == marketplace.ActionUnsubscribe {
		return marketplace.StatusUnsubscribed
	}
	return ""
}
