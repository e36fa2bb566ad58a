package subscription

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"saasengine/marketplace"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestStateApplySubscription(t *testing.T) {
	s := NewState(subID)
	moved := s.ApplySubscription(subscription(marketplace.StatusPendingFulfillmentStart), t0, "start")
	assert.False(t, moved, "first read is not a move")
	assert.Equal(t, "basic", s.PlanID)
	assert.Equal(t, int64(5), s.Quantity)
	assert.Equal(t, "tenant-b", s.Beneficiary.TenantID)

	sub := subscription(marketplace.StatusSubscribed)
	sub.PlanID = "gold"
	assert.True(t, s.ApplySubscription(sub, t0, "read"))
	assert.Equal(t, marketplace.StatusSubscribed, s.Status)
	assert.Equal(t, "gold", s.PlanID)
	last := s.Audit[len(s.Audit)-1]
	assert.Equal(t, AuditEntry{Time: t0, Kind: "plan", From: "basic", To: "gold", Note: "read"}, last)

	sub.Status = marketplace.StatusUnsubscribed
	s.ApplySubscription(sub, t0.Add(time.Hour), "read")
	assert.Equal(t, t0.Add(time.Hour), s.UnsubscribedAt)
}

func TestStatePlan(t *testing.T) {
	s := NewState(subID)
	s.ApplySubscription(subscription(marketplace.StatusSubscribed), t0, "")
	op := func(id string, a marketplace.Action, st marketplace.OperationStatus) marketplace.Operation {
		return marketplace.Operation{ID: id, Action: a, Status: st, PlanID: "gold", Quantity: 5}
	}
	cases := []struct {
		op   marketplace.Operation
		want Step
	}{
		{op("1", marketplace.ActionChangePlan, marketplace.OperationInProgress), StepDecide},
		{op("2", marketplace.ActionChangePlan, marketplace.OperationSucceeded), StepApplyChange},
		{op("3", marketplace.ActionChangeQuantity, marketplace.OperationSucceeded), StepIgnore}, // quantity already 5
		{op("4", marketplace.ActionChangePlan, marketplace.OperationFailed), StepNotApplied},
		{op("5", marketplace.ActionSuspend, marketplace.OperationSucceeded), StepSuspend},
		{op("6", marketplace.ActionReinstate, marketplace.OperationInProgress), StepReinstate},
		{op("7", marketplace.ActionRenew, marketplace.OperationSucceeded), StepRenew},
		{op("8", marketplace.ActionUnsubscribe, marketplace.OperationSucceeded), StepUnsubscribe},
		{op("9", "Transfer", marketplace.OperationSucceeded), StepUnknown},
	}
	for _, c := range cases {
		got, _ := s.Plan(c.op)
		assert.Equal(t, c.want, got, "op %s %s", c.op.Action, c.op.Status)
	}
	s.MarkSeen("1", marketplace.ActionChangePlan, OutcomeAccepted)
	got, _ := s.Plan(cases[0].op)
	assert.Equal(t, StepDuplicate, got)

	s.Status = marketplace.StatusUnsubscribed
	got, _ = s.Plan(op("10", marketplace.ActionChangePlan, marketplace.OperationInProgress))
	assert.Equal(t, StepIgnore, got, "changes after Unsubscribe are ignored")
	got, _ = s.Plan(op("11", marketplace.ActionUnsubscribe, marketplace.OperationSucceeded))
	assert.Equal(t, StepUnsubscribe, got)
}

func TestStateBounds(t *testing.T) {
	s := NewState(subID)
	for i := range 250 {
		s.MarkSeen(fmt.Sprint(i), marketplace.ActionRenew, "")
		s.Record(t0, "x", "", "", fmt.Sprint(i), "")
	}
	assert.Len(t, s.SeenOperations, maxSeen)
	assert.Len(t, s.Audit, maxAudit)
	_, ok := s.Seen("0")
	assert.False(t, ok, "oldest dropped")
	_, ok = s.Seen("249")
	assert.True(t, ok)
	assert.Equal(t, "249", s.Audit[maxAudit-1].OperationID)

	s.MarkSeen("249", "", OutcomeRejected)
	seen, _ := s.Seen("249")
	assert.Equal(t, OutcomeRejected, seen.Outcome)
	assert.Len(t, s.SeenOperations, maxSeen)
}

func TestStateNextActivation(t *testing.T) {
	s := NewState(subID)
	s.Status = marketplace.StatusPendingFulfillmentStart
	assert.Equal(t, ActAwaitConfirmation, s.NextActivation(Options{RequireConfirmation: true, RequireApproval: true}))
	s.Confirmed = true
	assert.Equal(t, ActAwaitApproval, s.NextActivation(Options{RequireConfirmation: true, RequireApproval: true}))
	s.Approved = true
	assert.Equal(t, ActActivate, s.NextActivation(Options{RequireConfirmation: true, RequireApproval: true}))
	s.Phase = PhaseActivationFailed
	assert.Equal(t, ActNone, s.NextActivation(Options{}), "a failed activation waits for an operator")

	s = NewState(subID)
	s.Status = marketplace.StatusSubscribed
	assert.Equal(t, ActAdopt, s.NextActivation(Options{RequireConfirmation: true}))
	s.Provisioned = true
	assert.Equal(t, ActNone, s.NextActivation(Options{}))
	s.Status = marketplace.StatusUnsubscribed
	assert.Equal(t, ActDeprovision, s.NextActivation(Options{}))
	s.Phase = PhaseDeprovisioned
	assert.Equal(t, ActNone, s.NextActivation(Options{}))
}

func TestStateValidate(t *testing.T) {
	s := NewState(subID)
	s.ApplySubscription(subscription(marketplace.StatusSubscribed), t0, "")
	assert.NoError(t, s.ValidateChange("gold", 0))
	assert.ErrorContains(t, s.ValidateChange("basic", 0), "already on plan")
	assert.ErrorContains(t, s.ValidateChange("", 5), "already has quantity")
	assert.ErrorContains(t, s.ValidateChange("", 0), "nothing to change")
	s.Pending = &PendingOperation{ID: "op", Action: marketplace.ActionChangePlan}
	assert.ErrorContains(t, s.ValidateChange("gold", 0), "pending")
	assert.NoError(t, s.ValidateCancel(), "cancel waits for a pending change")
	s.Pending = nil
	s.Status = marketplace.StatusSuspended
	assert.ErrorIs(t, s.ValidateChange("gold", 0), ErrNotSubscribed)
	s.Status = marketplace.StatusUnsubscribed
	assert.ErrorIs(t, s.ValidateCancel(), ErrEnded)
}

func TestMoveToFlatRatePlanClearsSeats(t *testing.T) {
	s := NewState("sub")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.ApplySubscription(marketplace.Subscription{ID: "sub", Name: "Fabrikam", PlanID: "team", Quantity: 10, Status: marketplace.StatusSubscribed}, now, "read")
	moved := s.ApplySubscription(marketplace.Subscription{ID: "sub", PlanID: "basic", Status: marketplace.StatusSubscribed}, now, "read")
	assert.True(t, moved)
	assert.Equal(t, "basic", s.PlanID)
	assert.Equal(t, int64(0), s.Quantity, "a flat-rate plan has no seats; keeping 10 would read as drift for ever")
	assert.Equal(t, "Fabrikam", s.Name)
}
