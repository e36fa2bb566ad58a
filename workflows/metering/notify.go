package metering

import (
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/workflow"

	"saasengine/activities/notification"
)

// changeNotify guards the notifications of usage not billed: histories recorded before it replay
// without them.
const changeNotify = "notify-operators"

// notify tells operators that usage was rejected or expired (activities/notification), without waiting;
// a notice that cannot be sent is logged, never the meter's failure.
func (m *meter) notify(o Outcome) {
	kind := notification.UsageRejected
	if o.Outcome == OutcomeExpired {
		kind = notification.UsageExpired
	}
	ctx := m.ctx
	if workflow.GetVersion(ctx, changeNotify, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	facts := map[string]string{"dimension": o.Dimension, "hour": o.Hour.UTC().Format(time.RFC3339),
		"quantity": strconv.FormatFloat(o.Quantity, 'f', -1, 64)}
	if o.PlanID != "" {
		facts["plan"] = o.PlanID
	}
	if o.Status != "" {
		facts["Microsoft's status"] = o.Status
	}
	m.outbox.Send(ctx, notification.Notice{Kind: kind, SubscriptionID: m.subscriptionID,
		Event:   fmt.Sprintf("usage-%s/%s/%s/%s", o.Outcome, o.Dimension, o.Hour.UTC().Format(time.RFC3339), o.Settled.UTC().Format(time.RFC3339Nano)),
		Summary: fmt.Sprintf("Usage of %s for %s was %s: subscription %s", o.Dimension, o.Hour.UTC().Format("2006-01-02 15:04 MST"), o.Outcome, m.subscriptionID),
		Detail:  o.Reason, Facts: facts})
}
