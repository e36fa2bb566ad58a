package subscription

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"saasengine/marketplace"
)

// This file is the workflow's pure state machine: plain Go, no Temporal, so it is unit-tested directly.
// The workflow reads Microsoft (Get subscription, Get operation) and hands the fresh reads to these
// methods, which say what the read means.

// Phase is what the engine is doing, beside Microsoft's status.
type Phase string

// Phases.
const (
	PhaseNew                  Phase = "New"
	PhaseAwaitingConfirmation Phase = "AwaitingConfirmation"
	PhaseAwaitingApproval     Phase = "AwaitingApproval"
	PhaseProvisioning         Phase = "Provisioning"
	PhaseActivating           Phase = "Activating"
	PhaseActivationFailed     Phase = "ActivationFailed"
	PhaseIdle                 Phase = "Idle"
	PhaseChanging             Phase = "Changing"
	PhaseCancelling           Phase = "Cancelling"
	PhaseDeprovisionFailed    Phase = "DeprovisionFailed"
	PhaseDeprovisioned        Phase = "Deprovisioned"
	// PhaseNotFound: Microsoft does not know the subscription; the workflow ends.
	PhaseNotFound Phase = "NotFound"
)

// Bounds of the state's lists.
const (
	maxSeen   = 200
	maxAudit  = 100
	maxExpect = 8
)

// Attention kinds: a failed phase that needs a person, or a retry (UpdateRetry, or a reconciliation
// snapshot).
const (
	AttentionActivation     = "activation"
	AttentionDeprovisioning = "deprovisioning"
	AttentionTenantSync     = "tenant-sync"
)

// State is the workflow's full view of one subscription, returned by QueryState. E-mail addresses (in
// Beneficiary and Purchaser) stay here: never in search attributes or logs.
type State struct {
	SubscriptionID string                         `json:"subscriptionId"`
	Status         marketplace.SubscriptionStatus `json:"status,omitempty"`
	Phase          Phase                          `json:"phase"`
	Name           string                         `json:"name,omitempty"`
	OfferID        string                         `json:"offerId,omitempty"`
	PlanID         string                         `json:"planId,omitempty"`
	Quantity       int64                          `json:"quantity,omitempty"`
	Term           marketplace.Term               `json:"term"`
	AutoRenew      bool                           `json:"autoRenew"`
	Beneficiary    marketplace.AADIdentifier      `json:"beneficiary"`
	Purchaser      marketplace.AADIdentifier      `json:"purchaser"`
	IsTest         bool                           `json:"isTest"`
	IsFreeTrial    bool                           `json:"isFreeTrial"`

	// The tenant, tracked apart from Microsoft's view: what the ISV's provisioning last applied. A failed
	// apply leaves a difference that is retried, and reconciliation compares Microsoft, the workflow and
	// the tenant. Provisioned is true once the tenant exists; TenantSuspended while it is suspended.
	Provisioned     bool   `json:"provisioned"`
	TenantSuspended bool   `json:"tenantSuspended"`
	TenantPlanID    string `json:"tenantPlanId,omitempty"`
	TenantQuantity  int64  `json:"tenantQuantity,omitempty"`
	// Confirmed: the buyer confirmed on the landing page, or an operator approved.
	Confirmed bool `json:"confirmed"`
	Approved  bool `json:"approved"`

	ActivatedAt     time.Time `json:"activatedAt,omitzero"`
	UnsubscribedAt  time.Time `json:"unsubscribedAt,omitzero"`
	DeprovisionedAt time.Time `json:"deprovisionedAt,omitzero"`

	// Pending is the publisher-initiated operation being polled, if any.
	Pending *PendingOperation `json:"pending,omitempty"`
	// SeenOperations are the last operations handled, newest last (dedupe by operation ID).
	SeenOperations []SeenOperation `json:"seenOperations,omitempty"`
	// Audit is the last entries of the subscription's history, newest last.
	Audit     []AuditEntry `json:"audit,omitempty"`
	LastError string       `json:"lastError,omitempty"`
	// Attention names the failed phase that waits for a person (or a retry): AttentionActivation,
	// AttentionDeprovisioning or AttentionTenantSync; empty when nothing does.
	Attention string `json:"attention,omitempty"`

	// Expect are the transitions Succeeded operations confirmed that Microsoft's subscription record
	// has not shown yet (its reads lag its operations): a read that contradicts them is stale.
	Expect []Expectation `json:"expect,omitempty"`
	// StatusAsOf is the time of the newest operation that set Status, so that an older one delivered
	// late (Suspend after the Reinstate that undid it) does not move it back.
	StatusAsOf time.Time `json:"statusAsOf,omitzero"`

	// Events counts inputs handled over all runs; Runs counts runs (continue-as-new).
	Events int `json:"events"`
	Runs   int `json:"runs"`
	// Seq numbers engine-made idempotency keys.
	Seq int `json:"seq"`
}

// PendingOperation is an operation the engine started and is waiting on.
type PendingOperation struct {
	ID       string             `json:"id"`
	Action   marketplace.Action `json:"action"`
	PlanID   string             `json:"planId,omitempty"`
	Quantity int64              `json:"quantity,omitempty"`
	Started  time.Time          `json:"started"`
}

// SeenOperation is a handled operation and what came of it.
type SeenOperation struct {
	ID     string             `json:"id"`
	Action marketplace.Action `json:"action"`
	// Outcome is "accepted", "rejected" or a note.
	Outcome string `json:"outcome,omitempty"`
}

// Outcomes of decided changes.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
)

// AuditEntry is one line of history.
type AuditEntry struct {
	Time        time.Time `json:"time"`
	Kind        string    `json:"kind"`
	From        string    `json:"from,omitempty"`
	To          string    `json:"to,omitempty"`
	OperationID string    `json:"operationId,omitempty"`
	Note        string    `json:"note,omitempty"`
}

// NewState is the state of a subscription the engine has just heard of.
func NewState(subscriptionID string) State {
	return State{SubscriptionID: subscriptionID, Phase: PhaseNew}
}

// Record appends an audit entry, dropping the oldest beyond the bound.
func (s *State) Record(now time.Time, kind, from, to, operationID, note string) {
	s.Audit = append(s.Audit, AuditEntry{Time: now, Kind: kind, From: from, To: to, OperationID: operationID, Note: note})
	if n := len(s.Audit) - maxAudit; n > 0 {
		s.Audit = slices.Delete(s.Audit, 0, n)
	}
}

// SetPhase moves to phase p, recording the move.
func (s *State) SetPhase(now time.Time, p Phase, note string) {
	if s.Phase == p {
		return
	}
	s.Record(now, "phase", string(s.Phase), string(p), "", note)
	s.Phase = p
}

// Fail records an error and moves to phase p.
func (s *State) Fail(now time.Time, p Phase, err string) {
	s.LastError = err
	s.SetPhase(now, p, err)
}

// NeedAttention records that a phase failed and waits for a person or a retry. It reports whether this
// is news (the state did not already need attention for the same kind), so callers log and count once.
func (s *State) NeedAttention(now time.Time, kind, err string) bool {
	s.LastError = err
	if s.Attention == kind {
		return false
	}
	s.Attention = kind
	s.Record(now, "attention", "", kind, "", err)
	return true
}

// Resolved clears the attention of kind once its phase succeeded.
func (s *State) Resolved(now time.Time, kind string) {
	if s.Attention != kind {
		return
	}
	s.Attention, s.LastError = "", ""
	s.Record(now, "attention", kind, "", "", "resolved")
}

// TenantBehind reports whether the tenant's plan or seats differ from the subscription's.
func (s *State) TenantBehind() bool {
	return s.Provisioned && (s.TenantPlanID != s.PlanID || s.TenantQuantity != s.Quantity)
}

// TenantApplied records that the tenant now has the subscription's plan and seats.
func (s *State) TenantApplied() { s.TenantPlanID, s.TenantQuantity = s.PlanID, s.Quantity }

// Ended reports whether the workflow is done with the subscription.
func (s *State) Ended() bool { return s.Phase == PhaseDeprovisioned || s.Phase == PhaseNotFound }

// ApplySubscription takes Microsoft's view of the subscription (a fresh read) as the truth, recording
// what changed. It reports whether the plan or quantity moved.
func (s *State) ApplySubscription(sub marketplace.Subscription, now time.Time, why string) (planOrQuantityMoved bool) {
	if sub.Status != "" && sub.Status != s.Status {
		s.Record(now, "status", string(s.Status), string(sub.Status), "", why)
		if sub.Status == marketplace.StatusUnsubscribed && s.UnsubscribedAt.IsZero() {
			s.UnsubscribedAt = now
		}
		s.Status = sub.Status
	}
	if sub.PlanID != "" && sub.PlanID != s.PlanID {
		if s.PlanID != "" {
			s.Record(now, "plan", s.PlanID, sub.PlanID, "", why)
			planOrQuantityMoved = true
		}
		s.PlanID = sub.PlanID
	}
	// Taken as read, zero included: Microsoft omits the quantity of flat-rate plans, so a move from a
	// per-seat plan to a flat one reads as zero seats, and keeping the old count would look like drift
	// to reconciliation for ever. (Reads are always whole Get subscription or Resolve answers.)
	if q := int64(sub.Quantity); q != s.Quantity && (q != 0 || sub.PlanID != "") {
		if s.Quantity != 0 {
			s.Record(now, "quantity", fmt.Sprint(s.Quantity), fmt.Sprint(q), "", why)
			planOrQuantityMoved = true
		}
		s.Quantity = q
	}
	if sub.OfferID != "" {
		s.OfferID = sub.OfferID
	}
	if sub.Name != "" {
		s.Name = sub.Name
	}
	if !sub.Term.EndDate.IsZero() || !sub.Term.StartDate.IsZero() || sub.Term.TermUnit != "" {
		if sub.Term.EndDate != s.Term.EndDate && !s.Term.EndDate.IsZero() {
			s.Record(now, "term", s.Term.EndDate.Format(time.DateOnly), sub.Term.EndDate.Format(time.DateOnly), "", why)
		}
		s.Term = sub.Term
	}
	s.AutoRenew = sub.AutoRenew
	if sub.Beneficiary != (marketplace.AADIdentifier{}) {
		s.Beneficiary = sub.Beneficiary
	}
	if sub.Purchaser != (marketplace.AADIdentifier{}) {
		s.Purchaser = sub.Purchaser
	}
	s.IsTest, s.IsFreeTrial = sub.IsTest, sub.IsFreeTrial
	return planOrQuantityMoved
}

// Subscription is the state as a marketplace.Subscription, for provisioning requests.
func (s *State) Subscription() marketplace.Subscription {
	return marketplace.Subscription{
		ID: s.SubscriptionID, OfferID: s.OfferID, Status: s.Status, PlanID: s.PlanID,
		Quantity: marketplace.Quantity(s.Quantity), Term: s.Term, AutoRenew: s.AutoRenew,
		Beneficiary: s.Beneficiary, Purchaser: s.Purchaser, IsTest: s.IsTest, IsFreeTrial: s.IsFreeTrial,
	}
}

// Seen returns the handled operation with this ID.
func (s *State) Seen(operationID string) (SeenOperation, bool) {
	for _, o := range s.SeenOperations {
		if o.ID == operationID {
			return o, true
		}
	}
	return SeenOperation{}, false
}

// MarkSeen remembers an operation as handled (or updates its outcome), keeping the last maxSeen.
func (s *State) MarkSeen(operationID string, action marketplace.Action, outcome string) {
	for i := range s.SeenOperations {
		if s.SeenOperations[i].ID == operationID {
			if outcome != "" {
				s.SeenOperations[i].Outcome = outcome
			}
			return
		}
	}
	s.SeenOperations = append(s.SeenOperations, SeenOperation{ID: operationID, Action: action, Outcome: outcome})
	if n := len(s.SeenOperations) - maxSeen; n > 0 {
		s.SeenOperations = slices.Delete(s.SeenOperations, 0, n)
	}
}

// ForgetSeen drops an operation from the handled ones, so that it is handled again when it comes back.
func (s *State) ForgetSeen(operationID string) {
	s.SeenOperations = slices.DeleteFunc(s.SeenOperations, func(o SeenOperation) bool { return o.ID == operationID })
}

// NextKey returns a fresh engine-made idempotency suffix such as "sync-3".
func (s *State) NextKey(prefix string) string {
	s.Seq++
	return fmt.Sprintf("%s-%d", prefix, s.Seq)
}

// Step is what an operation means for the subscription, given the state.
type Step string

// Steps.
const (
	StepDuplicate Step = "duplicate"
	StepIgnore    Step = "ignore"
	// StepDecide: a ChangePlan/ChangeQuantity waiting for our answer.
	StepDecide Step = "decide"
	// StepApplyChange: a change Microsoft already made (auto-accepted, or decided earlier).
	StepApplyChange Step = "apply-change"
	// StepNotApplied: a change that failed or conflicted at Microsoft; nothing to do.
	StepNotApplied  Step = "not-applied"
	StepSuspend     Step = "suspend"
	StepReinstate   Step = "reinstate"
	StepRenew       Step = "renew"
	StepUnsubscribe Step = "unsubscribe"
	StepUnknown     Step = "unknown"
)

// Plan says what a verified operation (a fresh Get operation read) means now.
func (s *State) Plan(op marketplace.Operation) (Step, string) {
	if _, ok := s.Seen(op.ID); ok {
		return StepDuplicate, "operation already handled"
	}
	if s.Ended() {
		return StepIgnore, "subscription has ended"
	}
	if s.Status == marketplace.StatusUnsubscribed {
		if op.Action == marketplace.ActionUnsubscribe {
			return StepUnsubscribe, ""
		}
		return StepIgnore, "subscription is unsubscribed"
	}
	switch op.Action {
	case marketplace.ActionChangePlan, marketplace.ActionChangeQuantity:
		switch op.Status {
		case marketplace.OperationInProgress, marketplace.OperationNotStarted, "":
			return StepDecide, ""
		case marketplace.OperationSucceeded:
			if s.changeIsCurrent(op) {
				return StepIgnore, "change already in effect"
			}
			return StepApplyChange, "Microsoft completed the change"
		default:
			return StepNotApplied, "operation " + string(op.Status)
		}
	case marketplace.ActionSuspend:
		return StepSuspend, ""
	case marketplace.ActionReinstate:
		return StepReinstate, ""
	case marketplace.ActionRenew:
		return StepRenew, ""
	case marketplace.ActionUnsubscribe:
		return StepUnsubscribe, ""
	}
	return StepUnknown, "action " + string(op.Action) + " is not handled"
}

func (s *State) changeIsCurrent(op marketplace.Operation) bool {
	if op.Action == marketplace.ActionChangePlan {
		return op.PlanID == "" || op.PlanID == s.PlanID
	}
	return op.Quantity == 0 || int64(op.Quantity) == s.Quantity
}

// ActivationStep is what activation or adoption needs next.
type ActivationStep string

// Activation steps.
const (
	ActNone              ActivationStep = ""
	ActAwaitConfirmation ActivationStep = "await-confirmation"
	ActAwaitApproval     ActivationStep = "await-approval"
	ActActivate          ActivationStep = "activate"
	// ActAdopt: Microsoft shows the subscription active but the engine never provisioned it (found by a
	// webhook or reconciliation): provision without calling Activate again.
	ActAdopt ActivationStep = "adopt"
	// ActDeprovision: Microsoft shows Unsubscribed and the tenant is not yet removed.
	ActDeprovision ActivationStep = "deprovision"
)

// NextActivation says what activation, adoption or removal needs next.
func (s *State) NextActivation(o Options) ActivationStep {
	if s.Ended() {
		return ActNone
	}
	switch s.Status {
	case marketplace.StatusPendingFulfillmentStart, marketplace.StatusNotStarted:
		switch {
		case s.Phase == PhaseActivationFailed:
			return ActNone
		case o.RequireConfirmation && !s.Confirmed:
			return ActAwaitConfirmation
		case o.RequireApproval && !s.Approved:
			return ActAwaitApproval
		}
		return ActActivate
	case marketplace.StatusSubscribed, marketplace.StatusSuspended:
		if !s.Provisioned && s.Phase != PhaseActivationFailed {
			return ActAdopt
		}
	case marketplace.StatusUnsubscribed:
		if s.Phase != PhaseDeprovisionFailed {
			return ActDeprovision
		}
	}
	return ActNone
}

// Refusal is a command the workflow turns down before sending anything to Microsoft. Its Code reaches
// callers (the admin API's error code, the CLI) as the type of the update's application error.
type Refusal struct {
	Code    string
	Message string
	// Err lets errors.Is match the sentinel errors below.
	Err error
}

func (r *Refusal) Error() string { return r.Message }
func (r *Refusal) Unwrap() error { return r.Err }

// Refusal codes.
const (
	RefusedEnded           = "Ended"
	RefusedNotSubscribed   = "NotSubscribed"
	RefusedChangePending   = "ChangePending"
	RefusedCommandQueued   = "CommandQueued"
	RefusedNothingToChange = "NothingToChange"
	RefusedSamePlan        = "SamePlan"
	RefusedSameQuantity    = "SameQuantity"
	RefusedBadQuantity     = "InvalidQuantity"
	RefusedBadRequest      = "InvalidRequest"
	RefusedNothingToRetry  = "NothingToRetry"
)

func refuse(code, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Errors of the command validators, for errors.Is.
var (
	ErrNotSubscribed = errors.New("subscription is not Subscribed")
	ErrEnded         = errors.New("subscription has ended")
)

// ValidateChange checks the cheap invariants of a publisher-initiated change: the subscription is
// Subscribed, nothing else is pending, the request changes something.
func (s *State) ValidateChange(planID string, quantity int64) error {
	if s.Ended() {
		return &Refusal{Code: RefusedEnded, Message: ErrEnded.Error(), Err: ErrEnded}
	}
	if s.Status != marketplace.StatusSubscribed {
		return &Refusal{Code: RefusedNotSubscribed, Message: fmt.Sprintf("%v (it is %s)", ErrNotSubscribed, s.Status), Err: ErrNotSubscribed}
	}
	if s.Pending != nil {
		return refuse(RefusedChangePending, "operation %s (%s) is pending", s.Pending.ID, s.Pending.Action)
	}
	switch {
	case planID == "" && quantity == 0:
		return refuse(RefusedNothingToChange, "nothing to change")
	case planID != "" && planID == s.PlanID:
		return refuse(RefusedSamePlan, "subscription is already on plan %q", planID)
	case planID == "" && quantity < 0:
		return refuse(RefusedBadQuantity, "quantity must be positive")
	case planID == "" && quantity == s.Quantity:
		return refuse(RefusedSameQuantity, "subscription already has quantity %d", quantity)
	}
	return nil
}

// ValidateCancel checks that the subscription can still be cancelled. A pending change does not block
// it: the cancel waits for the change to finish.
func (s *State) ValidateCancel() error {
	if s.Ended() || s.Status == marketplace.StatusUnsubscribed {
		return &Refusal{Code: RefusedEnded, Message: ErrEnded.Error(), Err: ErrEnded}
	}
	return nil
}

// Expectation is what a Succeeded operation says Microsoft's subscription record will show once its
// reads catch up with the operation. Empty fields expect nothing.
type Expectation struct {
	OperationID string                         `json:"operationId"`
	Status      marketplace.SubscriptionStatus `json:"status,omitempty"`
	PlanID      string                         `json:"planId,omitempty"`
	Quantity    int64                          `json:"quantity,omitempty"`
	// TermEndAfter expects a term that ends after this (a Renew).
	TermEndAfter time.Time `json:"termEndAfter,omitzero"`
}

// met reports whether a read shows what e expects.
func (e Expectation) met(sub marketplace.Subscription) bool {
	return (e.Status == "" || sub.Status == e.Status || sub.Status == marketplace.StatusUnsubscribed) &&
		(e.PlanID == "" || sub.PlanID == e.PlanID) &&
		(e.Quantity == 0 || int64(sub.Quantity) == e.Quantity) &&
		(e.TermEndAfter.IsZero() || sub.Term.EndDate.Time.After(e.TermEndAfter))
}

// Expecting adds an expectation, replacing older ones about the same fields (the newer operation wins).
func (s *State) Expecting(e Expectation) {
	s.Expect = slices.DeleteFunc(s.Expect, func(o Expectation) bool {
		return (e.Status != "" && o.Status != "") || (e.PlanID != "" && o.PlanID != "") || (e.Quantity != 0 && o.Quantity != 0) ||
			(!e.TermEndAfter.IsZero() && !o.TermEndAfter.IsZero())
	})
	s.Expect = append(s.Expect, e)
	if n := len(s.Expect) - maxExpect; n > 0 {
		s.Expect = slices.Delete(s.Expect, 0, n)
	}
}

// Stale reports whether a read contradicts a transition an operation confirmed, and which.
func (s *State) Stale(sub marketplace.Subscription) (bool, string) {
	for _, e := range s.Expect {
		if !e.met(sub) {
			return true, fmt.Sprintf("operation %s not yet shown (read: %s, plan %q, quantity %d)", e.OperationID, sub.Status, sub.PlanID, sub.Quantity)
		}
	}
	return false, ""
}

// CaughtUp drops the expectations a read meets; with all, it drops every one (the read is taken as
// the truth however it disagrees: drift, after bounded re-reads).
func (s *State) CaughtUp(sub marketplace.Subscription, all bool) {
	s.Expect = slices.DeleteFunc(s.Expect, func(e Expectation) bool { return all || e.met(sub) })
}

// ApplyOperation takes a Succeeded operation as the truth for the transition it carries, before
// Microsoft's subscription record shows it, and expects the record to follow. An operation older than
// the one that last set the status does not move the status back. It reports whether the state moved.
func (s *State) ApplyOperation(op marketplace.Operation, now time.Time) bool {
	if op.Status != marketplace.OperationSucceeded {
		return false
	}
	at := op.TimeStamp.Time
	if at.IsZero() {
		at = now
	}
	moved := false
	setStatus := func(to marketplace.SubscriptionStatus) {
		if at.Before(s.StatusAsOf) || s.Status == marketplace.StatusUnsubscribed {
			s.Record(now, "ignored", "", string(to), op.ID, "older than the operation that set "+string(s.Status))
			return
		}
		s.StatusAsOf = at
		s.Expecting(Expectation{OperationID: op.ID, Status: to})
		if s.Status != to {
			s.Record(now, "status", string(s.Status), string(to), op.ID, string(op.Action)+" succeeded")
			s.Status, moved = to, true
		}
	}
	switch op.Action {
	case marketplace.ActionChangePlan:
		if op.PlanID != "" {
			s.Expecting(Expectation{OperationID: op.ID, PlanID: op.PlanID})
			if op.PlanID != s.PlanID {
				s.Record(now, "plan", s.PlanID, op.PlanID, op.ID, "change succeeded")
				s.PlanID, moved = op.PlanID, true
			}
		}
	case marketplace.ActionChangeQuantity:
		if q := int64(op.Quantity); q > 0 {
			s.Expecting(Expectation{OperationID: op.ID, Quantity: q})
			if q != s.Quantity {
				s.Record(now, "quantity", fmt.Sprint(s.Quantity), fmt.Sprint(q), op.ID, "change succeeded")
				s.Quantity, moved = q, true
			}
		}
	case marketplace.ActionSuspend:
		setStatus(marketplace.StatusSuspended)
	case marketplace.ActionReinstate:
		setStatus(marketplace.StatusSubscribed)
	case marketplace.ActionUnsubscribe:
		if s.Status != marketplace.StatusUnsubscribed {
			s.Record(now, "status", string(s.Status), string(marketplace.StatusUnsubscribed), op.ID, "Unsubscribe succeeded")
			s.Status, moved = marketplace.StatusUnsubscribed, true
		}
		if s.UnsubscribedAt.IsZero() {
			s.UnsubscribedAt = now
		}
	}
	return moved
}
