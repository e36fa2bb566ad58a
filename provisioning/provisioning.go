// Package provisioning is the ISV's side of a SaaS subscription: creating, changing, suspending and
// removing the tenant that a Marketplace subscription pays for. The engine calls it through the
// activities package; Demo keeps tenants in a JSON file for local runs and tests, HTTP calls the ISV's own
// service.
//
// Every call carries an idempotency key (IdempotencyKey of the subscription and the Marketplace operation
// that caused it; DecideKey for the decision on a change, which is a step of its own before the change is
// applied under IdempotencyKey): a provisioner must apply a key once and answer repeats with the first
// result, because Temporal retries activities and Microsoft redelivers webhooks.
package provisioning

import (
	"errors"
	"fmt"
	"time"

	"saasengine/marketplace"
)

// TenantStatus is the state of a tenant on the ISV's side.
type TenantStatus string

// Tenant statuses.
const (
	TenantActive        TenantStatus = "active"
	TenantSuspended     TenantStatus = "suspended"
	TenantDeprovisioned TenantStatus = "deprovisioned"
)

// Tenant is what the ISV provisioned for one subscription.
type Tenant struct {
	SubscriptionID      string       `json:"subscriptionId"`
	OfferID             string       `json:"offerId,omitempty"`
	PlanID              string       `json:"planId,omitempty"`
	Quantity            int64        `json:"quantity,omitempty"`
	BeneficiaryTenantID string       `json:"beneficiaryTenantId,omitempty"`
	Status              TenantStatus `json:"status"`
}

// Request asks for a lifecycle step (provision, suspend, reinstate, deprovision) of one subscription.
// OperationID is Microsoft's operation that caused it, or an engine-chosen name (such as "activate") when
// there is none; with SubscriptionID it forms the idempotency key.
type Request struct {
	SubscriptionID string                   `json:"subscriptionId"`
	OperationID    string                   `json:"operationId"`
	Subscription   marketplace.Subscription `json:"subscription"`
}

// Key returns the request's idempotency key.
func (r Request) Key() string { return IdempotencyKey(r.SubscriptionID, r.OperationID) }

// ChangeRequest asks to decide on or apply a plan or quantity change.
type ChangeRequest struct {
	SubscriptionID string             `json:"subscriptionId"`
	OperationID    string             `json:"operationId"`
	Action         marketplace.Action `json:"action"`
	PlanID         string             `json:"planId,omitempty"`
	Quantity       int64              `json:"quantity,omitempty"`
	// Source is Microsoft's operationRequestSource ("Azure" or "Partner") or "Publisher" for the engine's
	// own commands.
	Source string `json:"source,omitempty"`
}

// Key returns the idempotency key of applying the change.
func (r ChangeRequest) Key() string { return IdempotencyKey(r.SubscriptionID, r.OperationID) }

// DecideKey returns the idempotency key of deciding on the change. It differs from Key: a service that
// stores the decision's answer under the key would otherwise answer the apply that follows with it, and
// never apply the change.
func (r ChangeRequest) DecideKey() string { return DecideKey(r.SubscriptionID, r.OperationID) }

// Decision is the ISV's answer to a change Microsoft announced.
type Decision struct {
	Accept bool   `json:"accept"`
	Reason string `json:"reason,omitempty"`
}

// IdempotencyKey names one logical provisioning step: the subscription and the operation behind it.
func IdempotencyKey(subscriptionID, operationID string) string {
	return subscriptionID + "/" + operationID
}

// DecideKey names the decision on a change: "<subscriptionId>/<operationId>/decide".
func DecideKey(subscriptionID, operationID string) string {
	return IdempotencyKey(subscriptionID, operationID) + "/decide"
}

// PermanentError is a refusal that retrying will not change (a 4xx from the ISV's service, a request
// that makes no sense). Other errors are taken as transient.
type PermanentError struct {
	StatusCode int
	Message    string
}

func (e *PermanentError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("provisioning: %d: %s", e.StatusCode, e.Message)
	}
	return "provisioning: " + e.Message
}

// RetryableError is a failure worth retrying that says when: a 408, 429 or 5xx from the ISV's service,
// with its Retry-After.
type RetryableError struct {
	StatusCode int
	Message    string
	// RetryAfter is the service's Retry-After, or 0.
	RetryAfter time.Duration
}

func (e *RetryableError) Error() string {
	return fmt.Sprintf("provisioning: %d: %s", e.StatusCode, e.Message)
}

// IsPermanent reports whether err is, or wraps, a *PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}
