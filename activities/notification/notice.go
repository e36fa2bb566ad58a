// Package notification tells people and other systems about subscription events that need them: a
// subscription waiting for approval, a failure that needs attention, a refused change, a suspension,
// rejected usage, reconciliation drift. A workflow hands a Notice to the Notify activity, which sends it
// to the channels configured for its kind (e-mail over SMTP, a signed JSON webhook, Slack, Microsoft
// Teams), each at most once as far as the channel allows: every notice carries one idempotency key,
// derived from its workflow's ID and the event, which the webhook sends as Idempotency-Key and the e-mail
// as its Message-ID.
//
// A notice says what happened and what to do, with links to the admin API and the Temporal UI. It
// carries nothing secret and no e-mail address of a buyer.
package notification

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kind is what a notice is about; channels are routed by kind.
type Kind string

// The kinds of notices.
const (
	// ApprovalPending: a subscription waits for an operator's approval before activation.
	ApprovalPending Kind = "approval-pending"
	// Attention: activation, deprovisioning or a tenant sync failed and needs a person.
	Attention Kind = "attention"
	// ChangeRefused: the ISV's provisioning refused a customer's plan or seat change.
	ChangeRefused Kind = "change-refused"
	// Suspended, Reinstated, Unsubscribed: Microsoft's lifecycle events, once the tenant follows them.
	Suspended    Kind = "suspended"
	Reinstated   Kind = "reinstated"
	Unsubscribed Kind = "unsubscribed"
	// UsageRejected, UsageExpired: metered usage Microsoft refused, or that left its 24-hour window.
	UsageRejected Kind = "usage-rejected"
	UsageExpired  Kind = "usage-expired"
	// ReconcileDrift, ReconcileErrors: a reconciliation run found differences, or could not check some.
	ReconcileDrift  Kind = "reconcile-drift"
	ReconcileErrors Kind = "reconcile-errors"
)

// Kinds lists every kind, in the order the README documents them.
func Kinds() []Kind {
	return []Kind{ApprovalPending, Attention, ChangeRefused, Suspended, Reinstated, Unsubscribed,
		UsageRejected, UsageExpired, ReconcileDrift, ReconcileErrors}
}

// ParseKinds reads a comma-separated list of kinds; "all" (or nothing) is every kind, returned as nil.
func ParseKinds(s string) ([]Kind, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return nil, nil
	}
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		if k == "" {
			continue
		}
		if !slices.Contains(Kinds(), k) {
			return nil, fmt.Errorf("unknown notification kind %q (want all, or some of %s)", k, kindList())
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no notification kind in %q", s)
	}
	return out, nil
}

func kindList() string {
	names := make([]string, 0, len(Kinds()))
	for _, k := range Kinds() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// Notice is one event to tell about. Workflows build it; the activity adds the links.
type Notice struct {
	// Key identifies the event for good: the same event always has the same key, and a key is sent at
	// most once per channel. Build it with Key; empty, the activity derives it from its workflow's ID
	// and Event.
	Key  string `json:"key"`
	Kind Kind   `json:"kind"`
	// Event names the event within its workflow (e.g. "attention/activation/2"): part of the key.
	Event          string `json:"event"`
	SubscriptionID string `json:"subscriptionId,omitempty"`
	// Summary says what happened, in one line.
	Summary string `json:"summary"`
	// Detail is the cause or Microsoft's reason, when there is one. Never a token or an e-mail address.
	Detail string `json:"detail,omitempty"`
	// Action says what to do; empty takes the kind's usual advice.
	Action string `json:"action,omitempty"`
	// Facts are short labelled values (plan, seats, operation, dimension, hour).
	Facts map[string]string `json:"facts,omitempty"`
	At    time.Time         `json:"at"`
}

// Key is the idempotency key of an event of a workflow: its workflow ID and the event's name.
func Key(workflowID, event string) string { return workflowID + "/" + event }

// messageID is the e-mail Message-ID of a key: the same key always gives the same ID, so a mail sent
// twice (a retry after a lost answer) is recognised as one message by servers and mail clients.
func messageID(key, domain string) string {
	sum := sha256.Sum256([]byte(key))
	if domain == "" {
		domain = "saasengine.invalid"
	}
	return hex.EncodeToString(sum[:16]) + "@" + domain
}

// advice is what to do about a kind, when the workflow gives no more precise advice.
func advice(k Kind) string {
	switch k {
	case ApprovalPending:
		return "Check the purchase, then approve its activation (starter approve <id>, or POST /admin/subscriptions/{id}/approve). Activation starts billing."
	case Attention:
		return "Read the cause, fix what failed (your provisioning service, Microsoft's answer, the credentials), then retry (starter retry <id>, or POST /admin/subscriptions/{id}/retry). The subscription waits until then."
	case ChangeRefused:
		return "Your provisioning refused the customer's change and Microsoft was told so; the subscription keeps its plan and seats. Nothing to do unless the refusal was a mistake: then the customer can make the change again."
	case Suspended:
		return "Microsoft suspended the subscription (usually unpaid); the tenant is restricted and its data kept. Nothing to do: Microsoft reinstates or ends it."
	case Reinstated:
		return "The tenant is restored. Nothing to do."
	case Unsubscribed:
		return "The subscription has ended and the tenant was deprovisioned. Nothing to do, unless your data retention asks for a step of yours."
	case UsageRejected:
		return "Microsoft refused this usage for good; it is not posted again. Check the dimension against the plan and that the subscription was active; usage of that hour cannot be billed otherwise."
	case UsageExpired:
		return "This usage left Microsoft's 24-hour window before it could be posted and cannot be billed. Check that the worker and Microsoft's metering API were reachable."
	case ReconcileDrift:
		return "The engine and Microsoft differed; the differences were passed to the subscriptions' workflows to heal. Look at the run's report in the Temporal UI if one keeps coming back."
	case ReconcileErrors:
		return "Reconciliation could not check some subscriptions; the next run tries again. Look at the run's errors in the Temporal UI if they persist."
	}
	return ""
}
