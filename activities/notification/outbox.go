package notification

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// Outbox sends a workflow's notices without holding the workflow up: Send starts the Notify activity and
// returns, the activity retries on its own, and a failure is logged, never the workflow's. Call Flush
// before the run ends (completes or continues as new), whose pending activities would be dropped.
type Outbox struct {
	pending int
}

// Send starts sending n. Its key is the workflow's ID and n.Event, so the same event sent by a later run
// (or again by this one) has the same key.
func (o *Outbox) Send(ctx workflow.Context, n Notice) {
	n.Key = Key(workflow.GetInfo(ctx).WorkflowExecution.ID, n.Event)
	if n.At.IsZero() {
		n.At = workflow.Now(ctx).UTC()
	}
	var a *Activities
	f := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, Options()), a.Notify, n)
	o.pending++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { o.pending-- }()
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("notification not sent", "kind", string(n.Kind), "key", n.Key, "error", err)
		}
	})
}

// Flush waits up to d for the notices still being sent; it issues nothing when none is.
func (o *Outbox) Flush(ctx workflow.Context, d time.Duration) {
	if o.pending == 0 {
		return
	}
	if ok, _ := workflow.AwaitWithTimeout(ctx, d, func() bool { return o.pending == 0 }); !ok {
		workflow.GetLogger(ctx).Warn("notifications still unsent as the run ends", "pending", o.pending)
	}
}

// FlushTimeout is how long a run that ends waits for its notices: long enough for a few retries of a
// briefly unreachable channel, short enough not to hold a subscription's next run.
const FlushTimeout = 2 * time.Minute
