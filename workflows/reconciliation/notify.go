package reconciliation

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"saasengine/activities/notification"
	acts "saasengine/activities/reconciliation"
)

// changeNotify guards the notifications of a run's drift and errors: histories recorded before it
// replay without them.
const changeNotify = "notify-operators"

// notify tells operators what a finished run found, when it found drift or errors, and waits a little for
// the notices to go out (the run ends right after); a notice that cannot be sent is logged, never the
// run's failure.
func notify(ctx workflow.Context, report acts.Report) {
	drift := 0
	//workflowcheck:ignore a sum: the order does not matter
	for _, n := range report.Drift {
		drift += n
	}
	if drift == 0 && report.Errors == 0 {
		return
	}
	if workflow.GetVersion(ctx, changeNotify, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	facts := map[string]string{"seen": strconv.Itoa(report.Seen), "healed": strconv.Itoa(report.Healed),
		"adopted": strconv.Itoa(report.Adopted), "errors": strconv.Itoa(report.Errors)}
	kinds := make([]string, 0, len(report.Drift))
	//workflowcheck:ignore sorted below
	for k, n := range report.Drift {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(kinds)
	if len(kinds) > 0 {
		facts["drift"] = strings.Join(kinds, " ")
	}
	started := report.Started.UTC().Format(time.RFC3339Nano)
	var out notification.Outbox
	if drift > 0 {
		out.Send(ctx, notification.Notice{Kind: notification.ReconcileDrift, Event: "reconcile-drift/" + started,
			Summary: fmt.Sprintf("Reconciliation found %d differences with Microsoft", drift), Detail: report.String(), Facts: facts})
	}
	if report.Errors > 0 {
		out.Send(ctx, notification.Notice{Kind: notification.ReconcileErrors, Event: "reconcile-errors/" + started,
			Summary: fmt.Sprintf("Reconciliation could not check %d subscriptions", report.Errors), Detail: report.String(), Facts: facts})
	}
	out.Flush(ctx, notification.FlushTimeout)
}
