// Package subscription holds the subscription workflow: one long-lived workflow per SaaS subscription that
// follows Microsoft's view of it, drives activation, answers webhooks and carries out operators' changes.
// This file and client.go are the package's contract: every name a caller needs (workflow type, IDs, signals, updates,
// query, search attributes) and the payloads they carry.
//
// Callers (the webhook server, reconciliation, the operator CLI) start or reach a workflow with
// Signal-With-Start or Update-With-Start on WorkflowID(subscriptionID), task queue DefaultTaskQueue and
// WorkflowIDConflictPolicy USE_EXISTING, so that every start path is idempotent.
package subscription

import (
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"saasengine/marketplace"
)

// Names of the workflow, its task queue and its ID.
const (
	WorkflowType     = "SaaSSubscription"
	DefaultTaskQueue = "saas-subscriptions"
	workflowIDPrefix = "saas-subscription/"
)

// WorkflowID is the ID of a subscription's workflow.
func WorkflowID(subscriptionID string) string { return workflowIDPrefix + subscriptionID }

// SubscriptionIDFromWorkflowID is WorkflowID's inverse; ok is false for other IDs.
func SubscriptionIDFromWorkflowID(id string) (string, bool) {
	return strings.CutPrefix(id, workflowIDPrefix)
}

// Signals.
const (
	// SignalWebhook carries a marketplace.WebhookEvent Microsoft delivered (already authenticated).
	SignalWebhook = "webhook"
	// SignalSnapshot carries a marketplace.Subscription seen by reconciliation; the workflow re-reads
	// Microsoft and catches up.
	SignalSnapshot = "snapshot"
	// SignalConfirm carries a ConfirmRequest the workflow did not take as UpdateConfirm in time (a busy
	// or restarting worker): the buyer's confirmation is durable all the same, and handled as the update.
	SignalConfirm = "confirm-landing"
	// SignalAnswered carries the ID of an operation whose webhook the HTTP server has answered (the
	// response written and flushed). The workflow PATCHes such an operation only after it, because
	// Microsoft expects no PATCH before the webhook's response has been sent.
	SignalAnswered = "webhook-answered"
)

// Updates.
const (
	// UpdateConfirm records the buyer's confirmation on the landing page: ConfirmRequest → State.
	UpdateConfirm = "confirm"
	// UpdateApprove records an operator's approval of an activation (Options.RequireApproval), which also
	// counts as the purchase's confirmation, or retries a failed activation: no payload → State.
	UpdateApprove = "approve"
	// UpdateDecideChange decides a ChangePlan/ChangeQuantity webhook within Microsoft's window:
	// DecideRequest → ChangeDecision. It runs beside whatever the workflow is doing (a long poll, a
	// provisioning call that retries for a day), so the answer never waits for another step.
	UpdateDecideChange = "decide-change"
	// UpdateRetry retries whatever failed and waits for a person (State.Attention: activation,
	// deprovisioning, a tenant sync): no payload → State.
	UpdateRetry = "retry"
	// UpdateChangePlan asks Microsoft for a plan change: ChangePlanRequest → CommandResult.
	UpdateChangePlan = "change-plan"
	// UpdateChangeQuantity asks Microsoft for a seat change: ChangeQuantityRequest → CommandResult.
	UpdateChangeQuantity = "change-quantity"
	// UpdateCancel cancels the subscription at Microsoft (DELETE): no payload → CommandResult.
	UpdateCancel = "cancel"
)

// ErrSubscriptionNotFound is the type of the application error a workflow fails with when Microsoft does
// not know its subscription (its final State is the error's detail). Failing, rather than completing,
// lets a later sighting start the workflow again.
const ErrSubscriptionNotFound = "SubscriptionNotFound"

// QueryState returns the workflow's State.
const QueryState = "state"

// Sources of a workflow start (Input.Source).
const (
	SourceLanding   = "landing"
	SourceWebhook   = "webhook"
	SourceReconcile = "reconcile"
	SourceOperator  = "operator"
)

// Search attributes kept current by the workflow. No e-mail addresses or tokens ever go here.
var (
	SaaSStatus            = temporal.NewSearchAttributeKeyKeyword("SaaSStatus")
	SaaSPhase             = temporal.NewSearchAttributeKeyKeyword("SaaSPhase")
	SaaSOffer             = temporal.NewSearchAttributeKeyKeyword("SaaSOffer")
	SaaSPlan              = temporal.NewSearchAttributeKeyKeyword("SaaSPlan")
	SaaSQuantity          = temporal.NewSearchAttributeKeyInt64("SaaSQuantity")
	SaaSBeneficiaryTenant = temporal.NewSearchAttributeKeyKeyword("SaaSBeneficiaryTenant")
	// SaaSPurchaserTenant is the tenant of who bought it: a CSP partner's, for a subscription bought for a
	// customer; the partner's manage page lists it.
	SaaSPurchaserTenant = temporal.NewSearchAttributeKeyKeyword("SaaSPurchaserTenant")
	SaaSIsTest          = temporal.NewSearchAttributeKeyBool("SaaSIsTest")
	SaaSIsFreeTrial     = temporal.NewSearchAttributeKeyBool("SaaSIsFreeTrial")
	// SaaSNeedsAttention is true while a failed phase waits for a person (State.Attention), so operators
	// filter for it in the Temporal UI: SaaSNeedsAttention=true.
	SaaSNeedsAttention = temporal.NewSearchAttributeKeyBool("SaaSNeedsAttention")
)

// SearchAttributes lists the custom search attributes to register on the namespace.
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		SaaSStatus.GetName():            enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SaaSPhase.GetName():             enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SaaSOffer.GetName():             enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SaaSPlan.GetName():              enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SaaSQuantity.GetName():          enumspb.INDEXED_VALUE_TYPE_INT,
		SaaSBeneficiaryTenant.GetName(): enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SaaSPurchaserTenant.GetName():   enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		SaaSIsTest.GetName():            enumspb.INDEXED_VALUE_TYPE_BOOL,
		SaaSIsFreeTrial.GetName():       enumspb.INDEXED_VALUE_TYPE_BOOL,
		SaaSNeedsAttention.GetName():    enumspb.INDEXED_VALUE_TYPE_BOOL,
	}
}

// DefaultMaxEvents bounds the inputs one run handles before it continues as new.
const DefaultMaxEvents = 500

// Input starts (or continues) a subscription's workflow.
type Input struct {
	SubscriptionID string `json:"subscriptionId"`
	// Source says who started it: SourceLanding, SourceWebhook, SourceReconcile or SourceOperator.
	Source string `json:"source,omitempty"`
	// Subscription is the starter's view of the subscription, when it has one (resolve, reconciliation).
	Subscription *marketplace.Subscription `json:"subscription,omitempty"`
	Options      Options                   `json:"options"`
	// Carried is set only by continue-as-new.
	Carried *Carried `json:"carried,omitempty"`
}

// LandingInput is the Input of a workflow started by the landing page: activation waits for the buyer's
// confirmation.
func LandingInput(sub marketplace.Subscription, opts Options) Input {
	opts.RequireConfirmation = true
	return Input{SubscriptionID: sub.ID, Source: SourceLanding, Subscription: &sub, Options: opts}
}

// Options shape a workflow's behaviour.
type Options struct {
	// RequireApproval holds activation until an operator sends UpdateApprove.
	RequireApproval bool `json:"requireApproval,omitempty"`
	// RequireConfirmation holds activation until the buyer confirms on the landing page (UpdateConfirm)
	// or an operator approves (UpdateApprove). The workflow implies it for every start, so a pending
	// subscription found by a webhook or reconciliation waits too instead of being activated (billed)
	// at once; LandingInput sets it to say so explicitly.
	RequireConfirmation bool `json:"requireConfirmation,omitempty"`
	// MaxEvents is the number of inputs after which the run continues as new; default DefaultMaxEvents.
	MaxEvents int `json:"maxEvents,omitempty"`
}

// Carried is what a run hands to the next across continue-as-new.
type Carried struct {
	State State `json:"state"`
	// Pending are the signals received but not yet handled, in order.
	Pending []Signal `json:"pending,omitempty"`
}

// Signal is one input kept for later: a webhook, a snapshot, or a decided change still to be
// acknowledged and settled (Name "settle").
type Signal struct {
	Name     string                    `json:"name"`
	Webhook  *marketplace.WebhookEvent `json:"webhook,omitempty"`
	Snapshot *marketplace.Subscription `json:"snapshot,omitempty"`
	Settle   *Settlement               `json:"settle,omitempty"`
}

// Settlement is a ChangePlan/ChangeQuantity whose decision was answered: the workflow still PATCHes
// the answer (when Patch) and applies the change once Microsoft shows it done.
type Settlement struct {
	Operation marketplace.Operation `json:"operation"`
	Accepted  bool                  `json:"accepted"`
	Patch     bool                  `json:"patch"`
}

// DecideRequest is a ChangePlan/ChangeQuantity webhook to decide by Deadline: the caller's wait ends
// then, so verifying the event and the ISV's decision share the time left until it.
type DecideRequest struct {
	Event    marketplace.WebhookEvent `json:"event"`
	Deadline time.Time                `json:"deadline,omitzero"`
}

// ConfirmRequest is the landing page's confirmation, with the subscription as Resolve returned it.
type ConfirmRequest struct {
	Subscription marketplace.Subscription `json:"subscription"`
}

// ChangePlanRequest is an operator's plan change.
type ChangePlanRequest struct {
	PlanID string `json:"planId"`
}

// ChangeQuantityRequest is an operator's seat change.
type ChangeQuantityRequest struct {
	Quantity int64 `json:"quantity"`
}

// ChangeDecision is the answer to UpdateDecideChange.
type ChangeDecision struct {
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
	// Decided is false when the workflow could not decide (the event did not verify, the provisioning
	// decision timed out, or it was decided before); the webhook then answers 200 and lets Microsoft's
	// default stand.
	Decided bool `json:"decided"`
}

// Command result statuses, besides Microsoft's operation statuses (Succeeded, Failed, Conflict).
const (
	// ResultRejected: Microsoft refused the request (400/403/404/409) or the workflow did before sending it.
	ResultRejected = "Rejected"
	// ResultUnknown: the request's outcome could not be established.
	ResultUnknown = "Unknown"
)

// CommandResult is the answer to UpdateChangePlan, UpdateChangeQuantity and UpdateCancel, given once the
// operation is terminal.
type CommandResult struct {
	OperationID string `json:"operationId,omitempty"`
	// Status is Succeeded, Failed or Conflict (Microsoft's), or ResultRejected / ResultUnknown.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// Poll intervals of publisher-initiated operations and of the activation check.
const (
	pollInitial = 2 * time.Second
	pollMax     = 30 * time.Second
)

// MaxRunAge bounds a run: every run continues as new at least this often (and after a Renew), so a
// fix released behind workflow.GetVersion reaches idle subscriptions within a month and old branches
// can be retired once no run older than that remains.
const MaxRunAge = 30 * 24 * time.Hour
