package chaos

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"

	reconacts "saasengine/activities/reconciliation"
	"saasengine/emulator"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/workflows/reconciliation"
	"saasengine/workflows/subscription"
)

// reconcile runs reconciliation to its end, starting it again if Temporal was not reachable, and runs
// it again (at most three runs) while a run could not check every subscription: under a fifth of
// Marketplace calls failing some of its reads fail, and the hourly schedule would run it again too.
func (e *env) reconcile(ctx context.Context, out *Report) error {
	var err error
	for attempt := 0; attempt < 10 && ctx.Err() == nil; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		var run reconciliation.Run
		run, err = reconciliation.Start(rctx, e.tc, subscription.DefaultTaskQueue)
		if err == nil {
			var rep reconacts.Report
			err = e.tc.GetWorkflow(rctx, run.WorkflowID, run.RunID).Get(rctx, &rep)
			if err == nil {
				cancel()
				out.Reconciliations = append(out.Reconciliations, rep)
				e.logf("reconciliation %s: seen %d, in sync %d, adopted %d, healed %d, errors %d %v",
					run.WorkflowID, rep.Seen, rep.InSync, rep.Adopted, rep.Healed, rep.Errors, rep.ErrorSamples)
				if rep.Errors == 0 || len(out.Reconciliations) == 3 {
					return nil
				}
				continue
			}
		}
		cancel()
		e.logf("reconciliation: %v", err)
		e.pause(ctx, time.Second)
	}
	return err
}

// views are one subscription's three views and the calls made about it.
type views struct {
	ms     *marketplace.Subscription
	ops    []marketplace.Operation
	wf     *subscription.State
	wfErr  error
	tenant *provisioning.Tenant
}

// check waits for every subscription to agree across Microsoft, its workflow and its tenant (or for
// Settle to pass), then counts what is lost, doubled, stuck and falsely reported.
func (e *env) check(ctx context.Context, rep *Report, outs []*outcome) error {
	demo, err := provisioning.NewDemo(e.tenantsDB)
	if err != nil {
		return err
	}
	defer demo.Close()

	deadline := time.Now().Add(e.cfg.Settle)
	var all map[string]*views
	var disagree map[string]string
	for {
		if all, err = e.collect(ctx, demo, outs); err != nil {
			return err
		}
		disagree = map[string]string{}
		for _, o := range outs {
			if o.ID == "" {
				continue
			}
			if why := settled(all[o.ID]); why != "" {
				disagree[o.ID] = why
			}
		}
		if len(disagree) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		e.logf("%d subscriptions do not agree yet", len(disagree))
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}

	var calls []emulator.CallCount
	if err := e.control(ctx, "GET", "/control/calls", nil, &calls); err != nil {
		return err
	}
	applied := map[string]int{}
	for _, c := range calls {
		switch c.Endpoint {
		case "Activate", "UpdateSubscription", "DeleteSubscription":
			applied[c.Endpoint+"|"+c.SubscriptionID] += c.Applied
			rep.Calls = append(rep.Calls, c)
		}
	}
	keys, err := demo.Keys()
	if err != nil {
		return err
	}
	// method -> subscription -> keys it was applied under
	byMethod := map[string]map[string]int{}
	for _, k := range keys {
		sub, rest, _ := strings.Cut(k.Key, "/")
		rep.Keys++
		for _, m := range k.Done {
			if m == "apply" && isOperationID(rest) {
				m = "apply-op"
			}
			if byMethod[m] == nil {
				byMethod[m] = map[string]int{}
			}
			byMethod[m][sub]++
			rep.KeysApplied[m]++
		}
	}

	for _, o := range outs {
		rep.Subscriptions++
		if o.ID == "" {
			rep.Lost++
			rep.finding("a purchase never happened: %s", strings.Join(o.Notes, "; "))
			continue
		}
		id := o.ID
		v := all[id]
		for _, n := range o.Notes {
			rep.note("%s: %s", id, n)
		}
		if why, ok := disagree[id]; ok {
			if v.wf != nil && !idle(v.wf) {
				rep.Stuck++
				rep.finding("%s stuck: %s", id, why)
			} else {
				rep.Lost++
				rep.finding("%s lost: %s", id, why)
			}
		}

		// Doubled effects: at Microsoft and at the tenant.
		if n := applied["Activate|"+strings.ToLower(id)]; n > 1 {
			rep.Doubled++
			rep.finding("%s activated %d times", id, n)
		}
		partner := map[marketplace.Action]int{}
		succeeded := map[marketplace.Action]int{}
		changesSucceeded := 0
		for _, op := range v.ops {
			if op.OperationRequestSource == marketplace.SourcePartner {
				partner[op.Action]++
				if op.Status == marketplace.OperationSucceeded {
					succeeded[op.Action]++
				}
			}
			if (op.Action == marketplace.ActionChangePlan || op.Action == marketplace.ActionChangeQuantity) && op.Status == marketplace.OperationSucceeded {
				changesSucceeded++
			}
		}
		if n := partner[marketplace.ActionChangePlan] + partner[marketplace.ActionChangeQuantity]; n > 1 {
			rep.Doubled++
			rep.finding("%s: %d publisher PATCHes took effect for one change", id, n)
		}
		if n := partner[marketplace.ActionUnsubscribe]; n > 1 {
			rep.Doubled++
			rep.finding("%s: %d DELETEs took effect", id, n)
		}
		for _, m := range []string{"provision", "deprovision"} {
			if n := byMethod[m][id]; n > 1 {
				rep.Doubled++
				rep.finding("%s: tenant %sed under %d keys", id, m, n)
			}
		}
		// Tenant changes made for Microsoft's operations (keys named by the operation; the engine's own
		// tenant syncs, "sync-N", follow a difference and are not counted here).
		if n := byMethod["apply-op"][id]; n > changesSucceeded {
			rep.Doubled++
			rep.finding("%s: %d operations' changes applied to the tenant for %d that Microsoft made", id, n, changesSucceeded)
		}
		if v.wf != nil && len(v.wf.Expect) > 0 {
			rep.LingeringExpectations++
		}

		// Falsely reported: the admin API's answer against Microsoft's operations.
		changed := succeeded[marketplace.ActionChangePlan] + succeeded[marketplace.ActionChangeQuantity]
		if f := falseReport(o.ChangeReport, changed > 0); f != "" {
			rep.FalselyReported++
			rep.finding("%s: change (%s) reported %s %s", id, o.Change, o.ChangeReport, f)
		}
		if o.Cancel {
			if f := falseReport(o.CancelReport, succeeded[marketplace.ActionUnsubscribe] > 0); f != "" {
				rep.FalselyReported++
				rep.finding("%s: cancel reported %s %s", id, o.CancelReport, f)
			}
		}
		rep.count(o)
	}

	nd, panics, failed, err := e.historyFailures(ctx, outs)
	if err != nil {
		return err
	}
	rep.NonDeterminism += nd
	rep.WorkflowPanics += panics
	rep.PatchedBeforeAnswer = e.patchedBeforeAnswer
	for _, f := range failed {
		rep.Stuck++
		rep.finding("%s", f)
	}
	return nil
}

// falseReport says how a command's answer contradicts Microsoft, or "" when it does not (or was no
// answer: the driver lost it to a kill).
func falseReport(report string, happened bool) string {
	switch {
	case report == "" || report == "Unanswered" || report == "InProgress" || report == "NoAnswer":
		return ""
	case report == string(marketplace.OperationSucceeded):
		if !happened {
			return "while Microsoft shows no Succeeded operation"
		}
	default:
		if happened {
			return "while Microsoft shows it Succeeded"
		}
	}
	return ""
}

// idle: nothing in flight. An expectation left over is not work in flight: the workflow confirms it at
// its next read of Microsoft (counted apart, as LingeringExpectations).
func idle(st *subscription.State) bool {
	if st.Status == marketplace.StatusUnsubscribed {
		return st.Attention == ""
	}
	return st.Phase == subscription.PhaseIdle && st.Pending == nil && st.Attention == ""
}

// isOperationID reports whether an idempotency key's tail is a Microsoft operation ID (a GUID).
func isOperationID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil
}

// settled says how the three views of a subscription disagree, or "" when they agree and nothing is in
// flight.
func settled(v *views) string {
	switch {
	case v == nil || v.ms == nil:
		return "Microsoft does not know it"
	case v.wf == nil:
		return fmt.Sprintf("no workflow state: %v", v.wfErr)
	}
	ms, wf := v.ms, v.wf
	if !idle(wf) {
		return fmt.Sprintf("workflow busy: phase %s, pending %v, attention %q, last error %q", wf.Phase, wf.Pending != nil, wf.Attention, wf.LastError)
	}
	if ms.Status != wf.Status {
		return fmt.Sprintf("Microsoft %s, workflow %s", ms.Status, wf.Status)
	}
	t := v.tenant
	if ms.Status == marketplace.StatusUnsubscribed {
		if t != nil && t.Status != provisioning.TenantDeprovisioned {
			return fmt.Sprintf("Unsubscribed at Microsoft, tenant %s", t.Status)
		}
		if wf.DeprovisionedAt.IsZero() {
			return "Unsubscribed, never deprovisioned"
		}
		return ""
	}
	if ms.PlanID != wf.PlanID || int64(ms.Quantity) != wf.Quantity {
		return fmt.Sprintf("Microsoft %s×%d, workflow %s×%d", ms.PlanID, ms.Quantity, wf.PlanID, wf.Quantity)
	}
	if ms.Status == marketplace.StatusPendingFulfillmentStart {
		return "never activated"
	}
	if t == nil {
		return "no tenant"
	}
	want := provisioning.TenantActive
	if ms.Status == marketplace.StatusSuspended {
		want = provisioning.TenantSuspended
	}
	if t.Status != want {
		return fmt.Sprintf("Microsoft %s, tenant %s", ms.Status, t.Status)
	}
	if t.PlanID != ms.PlanID || t.Quantity != int64(ms.Quantity) {
		return fmt.Sprintf("Microsoft %s×%d, tenant %s×%d", ms.PlanID, ms.Quantity, t.PlanID, t.Quantity)
	}
	return ""
}

// collect reads every subscription's three views.
func (e *env) collect(ctx context.Context, demo *provisioning.Demo, outs []*outcome) (map[string]*views, error) {
	var snap emulator.Snapshot
	if err := e.control(ctx, "GET", "/control/state", nil, &snap); err != nil {
		return nil, err
	}
	all := map[string]*views{}
	for i := range snap.Subscriptions {
		s := snap.Subscriptions[i]
		all[s.ID] = &views{ms: &s}
	}
	e.patchedBeforeAnswer = len(snap.PatchesBeforeAnswer)
	for _, op := range snap.Operations {
		if v := all[op.SubscriptionID]; v != nil {
			v.ops = append(v.ops, op)
		}
	}
	for _, t := range demo.Tenants() {
		if v := all[t.SubscriptionID]; v != nil {
			t := t
			v.tenant = &t
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, o := range outs {
		if o.ID == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// A query needs a worker: one that times out on a machine this loaded is asked again before
			// the subscription is called lost.
			var st *subscription.State
			var err error
			for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
				qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				st, err = e.subs.State(qctx, o.ID)
				cancel()
				if err == nil || errors.Is(err, subscription.ErrNotFound) {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			v := all[o.ID]
			if v == nil {
				v = &views{}
				all[o.ID] = v
			}
			v.wf, v.wfErr = st, err
		}()
	}
	wg.Wait()
	return all, nil
}

// historyFailures reads every subscription workflow's history (every run) and counts workflow tasks that
// failed on non-determinism or a panic, and workflows that failed or were terminated.
func (e *env) historyFailures(ctx context.Context, outs []*outcome) (nondeterminism, panics int, failed []string, err error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, o := range outs {
		if o.ID == "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			nd, pn, end, herr := e.history(ctx, subscription.WorkflowID(o.ID))
			mu.Lock()
			defer mu.Unlock()
			if herr != nil {
				failed = append(failed, fmt.Sprintf("%s: history: %v", o.ID, herr))
				return
			}
			nondeterminism += nd
			panics += pn
			if end != "" {
				failed = append(failed, fmt.Sprintf("%s: workflow %s", o.ID, end))
			}
		}()
	}
	wg.Wait()
	sort.Strings(failed)
	return nondeterminism, panics, failed, nil
}

// history scans one workflow's runs, newest first, following continue-as-new back to the first.
func (e *env) history(ctx context.Context, workflowID string) (nondeterminism, panics int, end string, err error) {
	runID := ""
	for range 100 {
		hctx, cancel := context.WithTimeout(ctx, time.Minute)
		it := e.tc.GetWorkflowHistory(hctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		prev := ""
		first := true
		for it.HasNext() {
			ev, nerr := it.Next()
			if nerr != nil {
				cancel()
				return 0, 0, "", nerr
			}
			if first {
				first = false
				prev = ev.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
			}
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED:
				switch ev.GetWorkflowTaskFailedEventAttributes().GetCause() {
				case enumspb.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR:
					nondeterminism++
				case enumspb.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE:
					panics++
				}
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
				if runID == "" {
					end = "failed: " + ev.GetWorkflowExecutionFailedEventAttributes().GetFailure().GetMessage()
				}
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
				if runID == "" {
					end = "terminated"
				}
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
				if runID == "" {
					end = "timed out"
				}
			}
		}
		cancel()
		if prev == "" {
			return nondeterminism, panics, end, nil
		}
		runID = prev
	}
	return nondeterminism, panics, end, nil
}
