package notification

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"
)

// Message is a notice as the channels send it: the notice with its key, the workflow it came from and
// links for the people who read it.
type Message struct {
	Notice
	Namespace  string `json:"namespace,omitempty"`
	WorkflowID string `json:"workflowId,omitempty"`
	RunID      string `json:"runId,omitempty"`
	// AdminURL is the subscription in the admin API (needs the admin bearer token).
	AdminURL string `json:"adminUrl,omitempty"`
	// WorkflowURL is the workflow in the Temporal UI.
	WorkflowURL string `json:"workflowUrl,omitempty"`
}

// Title is a message's one-line headline.
func (m Message) Title() string { return m.Summary }

// Advice is what to do: the notice's own advice, or its kind's.
func (m Message) Advice() string {
	if m.Action != "" {
		return m.Action
	}
	return strings.ReplaceAll(advice(m.Kind), "<id>", m.SubscriptionID)
}

// FactList is the facts in a stable order.
func (m Message) FactList() [][2]string {
	keys := make([]string, 0, len(m.Facts))
	for k := range m.Facts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([][2]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, [2]string{k, m.Facts[k]})
	}
	return out
}

// Sender delivers a message on one channel. A *PermanentError is not retried.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Channel is a sender and the kinds routed to it.
type Channel struct {
	Name   string // "email", "webhook", "slack", "teams": recorded once delivered
	Sender Sender
	Kinds  []Kind // nil: every kind
}

func (c Channel) wants(k Kind) bool { return c.Kinds == nil || slices.Contains(c.Kinds, k) }

// Links build the links of a message.
type Links struct {
	// AdminBaseURL is where the admin API is (https://host); the link is <base>/admin/subscriptions/{id}.
	AdminBaseURL string
	// TemporalUIURL is the Temporal Web UI (http://127.0.0.1:8233, https://cloud.temporal.io).
	TemporalUIURL string
}

func (l Links) admin(subscriptionID string) string {
	if l.AdminBaseURL == "" || subscriptionID == "" {
		return ""
	}
	return strings.TrimRight(l.AdminBaseURL, "/") + "/admin/subscriptions/" + url.PathEscape(subscriptionID)
}

func (l Links) workflow(namespace, workflowID, runID string) string {
	if l.TemporalUIURL == "" || workflowID == "" {
		return ""
	}
	u := strings.TrimRight(l.TemporalUIURL, "/") + "/namespaces/" + url.PathEscape(namespace) + "/workflows/" + url.PathEscape(workflowID)
	if runID != "" {
		u += "/" + url.PathEscape(runID) + "/history"
	}
	return u
}

// PermanentError is a refusal that sending again would not change (a 4xx from a webhook, a rejected
// recipient).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// ErrNotifyFailed is the application error type of a delivery that failed for good.
const ErrNotifyFailed = "NotificationFailed"

// Activities sends notices; register it with a worker. With no channel it does nothing.
type Activities struct {
	Channels []Channel
	Links    Links
	// Logger may be nil. Only kinds, keys and subscription IDs are logged, never recipients.
	Logger *zap.Logger
}

// Notify sends a notice to every channel routed its kind, once each: the channels already delivered
// are kept in the activity's heartbeat details, so a retry after one channel failed does not send to
// the others again. It fails (and is retried) while a channel fails for a reason that may pass.
func (a *Activities) Notify(ctx context.Context, n Notice) error {
	log := a.Logger
	if log == nil {
		log = zap.NewNop()
	}
	info := activity.GetInfo(ctx)
	if n.Key == "" {
		n.Key = Key(info.WorkflowExecution.ID, n.Event)
	}
	if n.At.IsZero() {
		n.At = info.ScheduledTime
	}
	log = log.With(zap.String("kind", string(n.Kind)), zap.String("key", n.Key), zap.String("subscriptionId", n.SubscriptionID))
	var routed []Channel
	for _, c := range a.Channels {
		if c.wants(n.Kind) {
			routed = append(routed, c)
		}
	}
	if len(routed) == 0 {
		log.Debug("notification not sent: no channel configured for its kind")
		return nil
	}
	var delivered []string
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &delivered)
	}
	m := Message{Notice: n, Namespace: info.Namespace, WorkflowID: info.WorkflowExecution.ID, RunID: info.WorkflowExecution.RunID}
	m.AdminURL = a.Links.admin(n.SubscriptionID)
	m.WorkflowURL = a.Links.workflow(m.Namespace, m.WorkflowID, m.RunID)

	var errs []error
	permanent := true
	for _, c := range routed {
		if slices.Contains(delivered, c.Name) {
			continue
		}
		if err := c.Sender.Send(ctx, m); err != nil {
			var pe *PermanentError
			if !errors.As(err, &pe) {
				permanent = false
			}
			log.Warn("notification not delivered", zap.String("channel", c.Name), zap.Int32("attempt", info.Attempt), zap.Error(err))
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
			continue
		}
		delivered = append(delivered, c.Name)
		activity.RecordHeartbeat(ctx, delivered)
		log.Info("notification delivered", zap.String("channel", c.Name))
	}
	if len(errs) == 0 {
		return nil
	}
	err := errors.Join(errs...)
	if permanent {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrNotifyFailed, nil)
	}
	return err
}

// Options are the activity options of Notify: retried with backoff for up to six hours (a mail server or
// a receiver being down for a while is no reason to lose the notice); a permanent refusal stops at once.
func Options() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 6 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        2 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Minute,
			NonRetryableErrorTypes: []string{ErrNotifyFailed},
		},
	}
}
