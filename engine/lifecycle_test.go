package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/workflows/subscription"
)

// Recording: RECORD_HISTORIES=<tag> go test -count=1 ./engine/ -run Lifecycle
// writes the histories of these runs to workflows/testdata as <tag>-<name>*.json, which workflows' replay
// test replays. Use a new tag for each workflow version (v5, v6, ...): the histories of earlier versions
// stay and keep being replayed, as workflows started by them keep running in production.
const recordEnv = "RECORD_HISTORIES"

// record writes a workflow's histories when RECORD_HISTORIES is set.
func record(t *testing.T, c client.Client, workflowID, name string) {
	t.Helper()
	if tag := os.Getenv(recordEnv); tag != "" {
		recordRunChain(t, c, workflowID, tag+"-"+name)
	}
}

// eventually polls cond until it holds, failing the test after limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settled waits until the workflow is idle (nothing polled, nothing pending) and cond holds.
func settled(t *testing.T, s *stacktest.Stack, id, what string, cond func(subscription.State) bool) subscription.State {
	t.Helper()
	return s.WaitState(t, id, what, func(st subscription.State) bool {
		return st.Phase == subscription.PhaseIdle && st.Pending == nil && !st.TenantBehind() && cond(st)
	})
}

// sidesAgree checks Microsoft's record (the emulator), the workflow's state and the ISV's tenant (the
// demo provisioner) against each other.
func sidesAgree(t *testing.T, s *stacktest.Stack, id, step string, st subscription.State) {
	t.Helper()
	sub, ok := s.Emu.Emulator.Subscription(id)
	if !ok {
		t.Fatalf("%s: the emulator does not know %s", step, id)
	}
	if sub.Status != st.Status || sub.PlanID != st.PlanID || int64(sub.Quantity) != st.Quantity {
		t.Fatalf("%s: Microsoft shows %s/%s/%d, the workflow %s/%s/%d", step, sub.Status, sub.PlanID, sub.Quantity, st.Status, st.PlanID, st.Quantity)
	}
	if !sub.Term.StartDate.Equal(st.Term.StartDate.Time) || !sub.Term.EndDate.Equal(st.Term.EndDate.Time) {
		t.Fatalf("%s: Microsoft's term %v–%v, the workflow's %v–%v", step, sub.Term.StartDate, sub.Term.EndDate, st.Term.StartDate, st.Term.EndDate)
	}
	tenant, ok := s.Provisioner.Tenant(id)
	if !ok {
		t.Fatalf("%s: no tenant", step)
	}
	want := provisioning.TenantActive
	switch {
	case st.Phase == subscription.PhaseDeprovisioned:
		want = provisioning.TenantDeprovisioned
	case st.TenantSuspended:
		want = provisioning.TenantSuspended
	}
	if tenant.Status != want || (want != provisioning.TenantDeprovisioned && (tenant.PlanID != st.PlanID || tenant.Quantity != st.Quantity)) {
		t.Fatalf("%s: tenant %+v, the workflow %s/%d suspended=%v phase %s", step, tenant, st.PlanID, st.Quantity, st.TenantSuspended, st.Phase)
	}
	if st.TenantSuspended != (sub.Status == marketplace.StatusSuspended) {
		t.Fatalf("%s: tenant suspended %v while Microsoft shows %s", step, st.TenantSuspended, sub.Status)
	}
}

// emulatorOp returns an operation as the emulator records it.
func emulatorOp(s *stacktest.Stack, subscriptionID, opID string) (marketplace.Operation, bool) {
	for _, op := range s.Emu.Emulator.Operations(subscriptionID) {
		if op.ID == opID {
			return op, true
		}
	}
	return marketplace.Operation{}, false
}

func waitOpStatus(t *testing.T, s *stacktest.Stack, id, opID string, want marketplace.OperationStatus) marketplace.Operation {
	t.Helper()
	var op marketplace.Operation
	defer func() {
		if t.Failed() {
			if st, err := s.Subs.State(context.Background(), id); err == nil {
				t.Logf("operation %s is %s; the workflow's audit: %+v", opID, op.Status, st.Audit)
			}
		}
	}()
	eventually(t, 30*time.Second, fmt.Sprintf("operation %s %s", opID, want), func() bool {
		var ok bool
		op, ok = emulatorOp(s, id, opID)
		return ok && op.Status == want
	})
	return op
}

func hasAudit(st subscription.State, kind, opID string) bool {
	return slices.ContainsFunc(st.Audit, func(e subscription.AuditEntry) bool {
		return e.Kind == kind && (opID == "" || e.OperationID == opID)
	})
}

func seenOutcome(st subscription.State, opID string) string {
	for _, s := range st.SeenOperations {
		if s.ID == opID {
			return s.Outcome
		}
	}
	return ""
}

// finalState waits for the workflow (following continue-as-new) to complete and returns its result.
func finalState(t *testing.T, s *stacktest.Stack, id string) subscription.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var st subscription.State
	if err := s.Client.GetWorkflow(ctx, subscription.WorkflowID(id), "").Get(ctx, &st); err != nil {
		t.Fatalf("workflow of %s did not complete: %v", id, err)
	}
	d, err := s.Client.DescribeWorkflowExecution(ctx, subscription.WorkflowID(id), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.GetWorkflowExecutionInfo().GetStatus(); got != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Fatalf("workflow of %s ended %s", id, got)
	}
	return st
}

// appliedOnce fails unless the demo provisioner made exactly one state change under each key.
func appliedOnce(t *testing.T, s *stacktest.Stack, id string, ops ...string) {
	t.Helper()
	for _, op := range ops {
		if n := s.Provisioner.Applied(provisioning.IdempotencyKey(id, op)); n != 1 {
			t.Errorf("key %s applied %d times (%d calls), want once", op, n, s.Provisioner.Calls(provisioning.IdempotencyKey(id, op)))
		}
	}
}

// One subscription through its whole life: purchase, landing confirmation, activation, a customer seat
// change the ISV accepts, one over the ISV's 40-seat limit it refuses, a customer plan change it refuses,
// a publisher plan change, suspension, reinstatement, renewal and the customer's cancellation. At every
// step Microsoft's record, the workflow's state and the ISV's tenant agree, and every provisioning key is
// applied once.
//
// It runs with Microsoft's reads lagging its operations by 0, 2 (the emulator's default, as Microsoft's)
// and 5 seconds: the workflow never waits for reconciliation to agree. Without lag the workflow also
// continues as new every 4 inputs, so the life spreads over several runs.
func TestLifecycleBothSidesAgree(t *testing.T) {
	for _, lag := range []time.Duration{0, 2 * time.Second, 5 * time.Second} {
		maxEvents := 0
		if lag == 0 {
			maxEvents = 4
		}
		t.Run(fmt.Sprintf("read lag %s", lag), func(t *testing.T) { lifecycleBothSidesAgree(t, lag, maxEvents) })
	}
}

func lifecycleBothSidesAgree(t *testing.T, lag time.Duration, maxEvents int) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true, DemoMaxQuantity: 40, Workflow: subscription.Options{MaxEvents: maxEvents},
		ConfigureEmulator: func(c *emulator.Config) { c.ReadLag = emulator.NewDuration(lag) }})
	// Set before any worker goroutine exists, so the provisioner reads it without a race.
	s.Provisioner.RejectPlans = []string{"basic"}
	s.StartWorker(t)
	emu := s.Emu.Emulator
	ctx := context.Background()

	// Purchase → landing confirmation → Subscribed, provisioned once.
	id := s.Activated(t, "team", 10)
	st := settled(t, s, id, "activated", func(st subscription.State) bool { return st.Status == marketplace.StatusSubscribed })
	if !st.Provisioned || !st.Confirmed || st.ActivatedAt.IsZero() {
		t.Fatalf("after activation: %+v", st)
	}
	sidesAgree(t, s, id, "activation", st)
	appliedOnce(t, s, id, "activate")

	// The customer adds seats; the ISV accepts.
	qty, err := emu.CustomerChangeQuantity(id, 20)
	if err != nil {
		t.Fatal(err)
	}
	st = settled(t, s, id, "20 seats", func(st subscription.State) bool { return st.Quantity == 20 })
	waitOpStatus(t, s, id, qty.ID, marketplace.OperationSucceeded)
	if seenOutcome(st, qty.ID) != subscription.OutcomeAccepted {
		t.Fatalf("seat change %s: outcome %q", qty.ID, seenOutcome(st, qty.ID))
	}
	sidesAgree(t, s, id, "customer seat change", st)
	appliedOnce(t, s, id, qty.ID)

	// The customer asks for more seats than the ISV allows: refused, nothing changes.
	tooMany, err := emu.CustomerChangeQuantity(id, 45)
	if err != nil {
		t.Fatal(err)
	}
	waitOpStatus(t, s, id, tooMany.ID, marketplace.OperationFailed)
	st = settled(t, s, id, "refused seat change settled", func(st subscription.State) bool {
		return hasAudit(st, "change-not-applied", tooMany.ID)
	})
	if seenOutcome(st, tooMany.ID) != subscription.OutcomeRejected || st.Quantity != 20 {
		t.Fatalf("refused seat change: outcome %q, seats %d", seenOutcome(st, tooMany.ID), st.Quantity)
	}
	if n := s.Provisioner.Applied(provisioning.IdempotencyKey(id, tooMany.ID)); n != 0 {
		t.Fatalf("refused seat change applied %d times", n)
	}
	sidesAgree(t, s, id, "refused seat change", st)

	// The customer moves to a plan the ISV refuses: the operation fails at Microsoft, nothing changes.
	refused, err := emu.CustomerChangePlan(id, "basic")
	if err != nil {
		t.Fatal(err)
	}
	waitOpStatus(t, s, id, refused.ID, marketplace.OperationFailed)
	st = settled(t, s, id, "refused plan change settled", func(st subscription.State) bool {
		return hasAudit(st, "change-not-applied", refused.ID)
	})
	if seenOutcome(st, refused.ID) != subscription.OutcomeRejected || st.PlanID != "team" {
		t.Fatalf("refused plan change: outcome %q, plan %s", seenOutcome(st, refused.ID), st.PlanID)
	}
	if sub, _ := emu.Subscription(id); sub.PlanID != "team" {
		t.Fatalf("Microsoft moved to %s despite the refusal", sub.PlanID)
	}
	if n := s.Provisioner.Applied(provisioning.IdempotencyKey(id, refused.ID)); n != 0 {
		t.Fatalf("refused change applied %d times", n)
	}
	if n := s.Provisioner.Calls(provisioning.DecideKey(id, refused.ID)); n < 1 {
		t.Fatal("the ISV was never asked about the plan change")
	}
	sidesAgree(t, s, id, "refused plan change", st)

	// The publisher moves the subscription to enterprise (its 50-seat minimum raises the seats).
	res, err := s.Subs.ChangePlan(ctx, id, "enterprise")
	if err != nil || res.Status != string(marketplace.OperationSucceeded) || res.OperationID == "" {
		t.Fatalf("publisher plan change: %+v %v", res, err)
	}
	st = settled(t, s, id, "enterprise", func(st subscription.State) bool { return st.PlanID == "enterprise" && st.Quantity == 50 })
	if op, _ := emulatorOp(s, id, res.OperationID); op.Status != marketplace.OperationSucceeded || op.OperationRequestSource != "Partner" {
		t.Fatalf("publisher operation at Microsoft: %+v", op)
	}
	sidesAgree(t, s, id, "publisher plan change", st)
	appliedOnce(t, s, id, res.OperationID)

	// Payment fails: suspended on both sides.
	susp, err := emu.Suspend(id)
	if err != nil {
		t.Fatal(err)
	}
	st = settled(t, s, id, "suspended", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSuspended && st.TenantSuspended
	})
	sidesAgree(t, s, id, "suspend", st)
	appliedOnce(t, s, id, susp.ID)

	// Payment fixed: the Reinstate operation is acknowledged and the tenant restored.
	rein, err := emu.Reinstate(id)
	if err != nil {
		t.Fatal(err)
	}
	waitOpStatus(t, s, id, rein.ID, marketplace.OperationSucceeded)
	st = settled(t, s, id, "reinstated", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed && !st.TenantSuspended
	})
	sidesAgree(t, s, id, "reinstate", st)
	appliedOnce(t, s, id, rein.ID)

	// Renewal: the new term is recorded.
	before := st.Term.EndDate
	renew, err := emu.Renew(id)
	if err != nil {
		t.Fatal(err)
	}
	st = settled(t, s, id, "renewed", func(st subscription.State) bool {
		return hasAudit(st, "renew", renew.ID) && st.Term.EndDate.After(before.Time)
	})
	sidesAgree(t, s, id, "renew", st)

	// The customer cancels: deprovisioned once and the workflow completes.
	if _, err := emu.Unsubscribe(id); err != nil {
		t.Fatal(err)
	}
	final := finalState(t, s, id)
	if final.Status != marketplace.StatusUnsubscribed || final.Phase != subscription.PhaseDeprovisioned || final.DeprovisionedAt.IsZero() || final.Provisioned {
		t.Fatalf("final state: %+v", final)
	}
	sidesAgree(t, s, id, "unsubscribe", final)
	appliedOnce(t, s, id, "activate", qty.ID, res.OperationID, susp.ID, rein.ID, "deprovision")
	if maxEvents == 0 && final.Runs != 2 {
		t.Errorf("runs %d, want 2 (the Renew continues as new; default MaxEvents)", final.Runs)
	}
	if maxEvents > 0 && final.Runs < 3 {
		t.Errorf("runs %d, want at least 3 (continued as new every %d inputs)", final.Runs, maxEvents)
	}
	if n := len(s.Provisioner.Tenants()); n != 1 {
		t.Errorf("%d tenants", n)
	}
	for _, d := range emu.Deliveries() {
		want := emulator.DeliveryDelivered
		if d.Event.ID == refused.ID || d.Event.ID == tooMany.ID {
			want = emulator.DeliveryRejected
		}
		if d.Event.SubscriptionID == id && d.State != want {
			t.Errorf("webhook %s (%s) ended %s, want %s", d.Event.ID, d.Event.Action, d.State, want)
		}
	}

	record(t, s.Client, subscription.WorkflowID(id), fmt.Sprintf("full-lifecycle-lag%ds", int(lag.Seconds())))
}

// Many changes from both sides in a workflow that continues as new every three inputs, ended by the
// publisher's cancellation: the state survives the runs, and each change is applied once.
func TestLifecycleChangeHeavyAcrossRuns(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Workflow: subscription.Options{MaxEvents: 3}})
	emu := s.Emu.Emulator
	ctx := context.Background()
	id := s.Activated(t, "team", 10)
	keys := []string{"activate"}

	for i, n := range []int64{12, 14, 16, 18} {
		if i%2 == 0 {
			op, err := emu.CustomerChangeQuantity(id, n)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, op.ID)
		} else {
			res, err := s.Subs.ChangeQuantity(ctx, id, n)
			if err != nil || res.Status != string(marketplace.OperationSucceeded) {
				t.Fatalf("publisher seat change to %d: %+v %v", n, res, err)
			}
			keys = append(keys, res.OperationID)
		}
		st := settled(t, s, id, fmt.Sprintf("%d seats", n), func(st subscription.State) bool { return st.Quantity == n })
		sidesAgree(t, s, id, fmt.Sprintf("change %d", i), st)
	}
	// Reconciliation's nudge: nothing differs, nothing is applied.
	sub, _ := emu.Subscription(id)
	if err := s.Subs.Snapshot(ctx, sub); err != nil {
		t.Fatal(err)
	}
	st := settled(t, s, id, "snapshot handled", func(st subscription.State) bool { return st.Events >= 7 })
	sidesAgree(t, s, id, "snapshot", st)

	res, err := s.Subs.Cancel(ctx, id)
	if err != nil || res.Status != string(marketplace.OperationSucceeded) {
		t.Fatalf("cancel: %+v %v", res, err)
	}
	final := finalState(t, s, id)
	if final.Status != marketplace.StatusUnsubscribed || final.Phase != subscription.PhaseDeprovisioned || final.Quantity != 18 {
		t.Fatalf("final state: %+v", final)
	}
	if final.Runs < 3 {
		t.Errorf("runs %d: with MaxEvents 3 the workflow should have continued as new at least twice", final.Runs)
	}
	sidesAgree(t, s, id, "cancel", final)
	appliedOnce(t, s, id, append(keys, "deprovision")...)

	record(t, s.Client, subscription.WorkflowID(id), "change-heavy")
}

// recordRunChain writes every run of a workflow, oldest first, to workflows/testdata as <name>.json (one
// run) or <name>-a.json, <name>-b.json, … in the protojson form the SDK's replayer reads. It follows
// the continue-as-new chain back from the latest run, so it does not depend on visibility.
func recordRunChain(t *testing.T, c client.Client, workflowID, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		t.Fatal(err)
	}
	var runs []*historypb.History
	for runID := d.GetWorkflowExecutionInfo().GetExecution().GetRunId(); runID != ""; {
		var events []*historypb.HistoryEvent
		it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
		if len(events) == 0 {
			t.Fatalf("run %s has no history", runID)
		}
		runs = append([]*historypb.History{{Events: events}}, runs...)
		runID = events[0].GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
	}

	dir := filepath.Join("..", "workflows", "testdata")
	stale, _ := filepath.Glob(filepath.Join(dir, name+"-?.json"))
	for _, f := range append(stale, filepath.Join(dir, name+".json")) {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	for i, h := range runs {
		file := name + ".json"
		if len(runs) > 1 {
			file = fmt.Sprintf("%s-%c.json", name, 'a'+i)
		}
		b, err := protojson.MarshalOptions{Indent: " "}.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, file)
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("recorded %s (%d events)", path, len(h.Events))
	}
}

// A worker stopped while its Activate call to Microsoft is in flight (the call delayed three seconds),
// and a new worker started at once: the activity is retried on the new worker, the subscription ends up
// Subscribed at Microsoft and in the workflow, and the tenant is provisioned once.
func TestWorkerStoppedDuringActivateRestarts(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	emu := s.Emu.Emulator
	if err := emu.AddFault(emulator.Fault{Endpoint: emulator.EndpointActivate, Latency: emulator.Duration(3 * time.Second), Count: 1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := s.Emu.Purchase(t, "team", 8)
	resolved, err := s.Emu.Client.Resolve(ctx, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subs.Confirm(ctx, resolved.Subscription); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "Activate in flight at Microsoft", func() bool {
		return emu.Calls(emulator.EndpointActivate, p.SubscriptionID) == 1
	})
	if n := s.Provisioner.Applied(provisioning.IdempotencyKey(p.SubscriptionID, "activate")); n != 1 {
		t.Fatalf("provisioned %d times before Activate", n)
	}
	stopped := time.Now()
	s.StopWorker()
	s.StartWorker(t)

	st := settled(t, s, p.SubscriptionID, "Subscribed after the restart", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed
	})
	t.Logf("Subscribed %s after the worker was stopped; Activate reached Microsoft %d times; retry found it already active: %v",
		time.Since(stopped).Round(100*time.Millisecond), emu.Calls(emulator.EndpointActivate, p.SubscriptionID), hasAudit(st, "activate", ""))
	if !st.Provisioned || st.ActivatedAt.IsZero() || st.LastError != "" {
		t.Fatalf("state after the restart: %+v", st)
	}
	sidesAgree(t, s, p.SubscriptionID, "after the restart", st)
	if sub, _ := emu.Subscription(p.SubscriptionID); sub.Status != marketplace.StatusSubscribed || sub.Quantity != 8 || sub.PlanID != "team" {
		t.Fatalf("Microsoft: %+v", sub)
	}
	appliedOnce(t, s, p.SubscriptionID, "activate")
	// The interrupted attempt is retried rather than lost: a second Activate either activated (the first
	// never landed) or was answered 400 "already activated" and resolved with Get subscription.
	if n := emu.Calls(emulator.EndpointActivate, p.SubscriptionID); n < 2 {
		t.Errorf("Activate reached Microsoft %d times; the interrupted attempt was not retried", n)
	}
}

// Microsoft throttles Get subscription twice (429, Retry-After 3 s) while the workflow confirms an
// activation: the activity waits as told, then the subscription ends Subscribed on both sides.
func TestLifecycleActivationThrottled(t *testing.T) {
	const retryAfter = 3
	s := stacktest.Start(t, stacktest.Options{})
	emu := s.Emu.Emulator
	if err := emu.AddFault(emulator.Fault{Endpoint: emulator.EndpointGetSubscription, Status: 429, RetryAfter: retryAfter, Count: 2}); err != nil {
		t.Fatal(err)
	}
	id := s.Activated(t, "team", 6)
	st := settled(t, s, id, "Subscribed", func(st subscription.State) bool { return st.Status == marketplace.StatusSubscribed })
	sidesAgree(t, s, id, "throttled activation", st)
	appliedOnce(t, s, id, "activate")
	if n := emu.Calls(emulator.EndpointGetSubscription, id); n < 3 {
		t.Fatalf("Get subscription reached Microsoft %d times; the two 429s were not retried", n)
	}
	if n := emu.Calls(emulator.EndpointActivate, id); n != 1 {
		t.Errorf("Activate called %d times", n)
	}

	// The history shows the throttled read: third attempt, started no earlier than Retry-After allowed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	scheduled := map[int64]*historypb.HistoryEvent{}
	found := false
	it := s.Client.GetWorkflowHistory(ctx, subscription.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() && !found {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "GetSubscription" {
			scheduled[ev.GetEventId()] = ev
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			sch := scheduled[a.GetScheduledEventId()]
			if sch == nil {
				continue
			}
			found = true
			waited := ev.GetEventTime().AsTime().Sub(sch.GetEventTime().AsTime())
			if a.GetAttempt() != 3 || waited < 2*retryAfter*time.Second-500*time.Millisecond {
				t.Errorf("throttled Get subscription: attempt %d after %s; want attempt 3 after at least %ds", a.GetAttempt(), waited, 2*retryAfter)
			}
			if a.GetLastFailure() == nil {
				t.Error("the throttled attempt carries no last failure")
			}
		}
	}
	if !found {
		t.Fatal("no Get subscription activity in the history")
	}
}
