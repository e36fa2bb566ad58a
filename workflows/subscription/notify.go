package subscription

import (
	"strconv"
	"time"

	"go.temporal.io/sdk/workflow"

	"saasengine/activities/notification"
)

// changeNotify guards the notifications to operators (see versions.go): histories recorded before it
// replay without them.
const changeNotify = "notify-operators"

// notify tells operators about an event of this subscription (activities/notification), without
// waiting: the loop goes on, and a notice that cannot be sent is logged, never the workflow's failure.
// event names it within the workflow, so the same event always has the same key.
func (r *runner) notify(ctx workflow.Context, kind notification.Kind, event, summary, detail string, facts map[string]string) {
	if workflow.GetVersion(ctx, changeNotify, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	if facts == nil {
		facts = map[string]string{}
	}
	//workflowcheck:ignore fills a map: the order does not matter
	for k, v := range map[string]string{"offer": r.st.OfferID, "plan": r.st.PlanID, "status": string(r.st.Status)} {
		if v != "" {
			facts[k] = v
		}
	}
	//workflowcheck:ignore deletes from the map: the order does not matter
	for k, v := range facts {
		if v == "" {
			delete(facts, k)
		}
	}
	if r.st.Quantity > 0 {
		facts["seats"] = strconv.FormatInt(r.st.Quantity, 10)
	}
	r.outbox.Send(ctx, notification.Notice{Kind: kind, Event: event, SubscriptionID: r.st.SubscriptionID,
		Summary: summary, Detail: detail, Facts: facts})
}

// stamp makes an event name unique within the workflow by the workflow's time.
func stamp(ctx workflow.Context, name string) string {
	return name + "/" + workflow.Now(ctx).UTC().Format(time.RFC3339Nano)
}

// attentionSummaries say what failed, by attention kind.
var attentionSummaries = map[string]string{
	AttentionActivation:     "Activation failed",
	AttentionDeprovisioning: "Deprovisioning failed",
	AttentionTenantSync:     "The tenant could not be brought in step with Microsoft",
}
