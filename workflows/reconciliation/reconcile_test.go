package reconciliation_test

import (
	"context"
	"testing"
	"time"

	acts "saasengine/activities/reconciliation"
	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/workflows/subscription"
)

func runReconciliation(t testing.TB, s *stacktest.Stack) acts.Report {
	t.Helper()
	return s.Reconcile(t, 5*time.Minute)
}

// agrees reports whether the workflow's view matches Microsoft's on what reconciliation compares.
func agrees(st subscription.State, sub marketplace.Subscription) bool {
	return st.Status == sub.Status && st.PlanID == sub.PlanID && st.Quantity == int64(sub.Quantity) && st.Term.EndDate.Equal(sub.Term.EndDate.Time)
}

// Webhooks lost for good (Microsoft gives up after 8 hours): one reconciliation later every workflow
// agrees with Microsoft and every operation the customer started has been decided.
func TestReconciliationHealsMissedWebhooks(t *testing.T) {
	// The customer's changes stay outstanding (undecided) until reconciliation finds them.
	s := stacktest.Start(t, stacktest.Options{ConfigureEmulator: func(c *emulator.Config) { c.AutoAcceptAfter = emulator.Duration(time.Hour) }})
	emu := s.Emu.Emulator
	changeQty := s.Activated(t, "team", 10)
	changePlan := s.Activated(t, "team", 10)
	suspend := s.Activated(t, "basic", 0)
	cancel := s.Activated(t, "basic", 0)
	renew := s.Activated(t, "basic", 0)
	untouched := s.Activated(t, "basic", 0)

	if err := emu.AddFault(emulator.Fault{Webhook: emulator.WebhookDrop}); err != nil {
		t.Fatal(err)
	}
	qtyOp, err := emu.CustomerChangeQuantity(changeQty, 30)
	if err != nil {
		t.Fatal(err)
	}
	planOp, err := emu.CustomerChangePlan(changePlan, "enterprise")
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(string) (marketplace.Operation, error){emu.Suspend} {
		if _, err := step(suspend); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := emu.Unsubscribe(cancel); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.Renew(renew); err != nil {
		t.Fatal(err)
	}
	// Nothing reached the engine.
	for _, d := range emu.Deliveries() {
		if d.Event.Action != "" && d.State != emulator.DeliveryDropped && d.Event.OperationRequestSource == marketplace.SourceAzure &&
			(d.Event.SubscriptionID == suspend || d.Event.SubscriptionID == cancel) {
			t.Fatalf("a webhook was delivered despite the drop fault: %+v", d)
		}
	}
	if st, _ := s.Subs.State(context.Background(), suspend); st.Status != marketplace.StatusSubscribed {
		t.Fatalf("the engine learned of the suspension without a webhook: %s", st.Status)
	}
	emu.ClearFaults()
	// Microsoft's List subscriptions lags its operations too: reconcile once it shows them.
	caughtUp(t, s, suspend, func(sub marketplace.Subscription) bool { return sub.Status == marketplace.StatusSuspended })
	caughtUp(t, s, cancel, func(sub marketplace.Subscription) bool { return sub.Status == marketplace.StatusUnsubscribed })
	renewed, _ := emu.Subscription(renew)
	caughtUp(t, s, renew, func(sub marketplace.Subscription) bool { return sub.Term.EndDate.Equal(renewed.Term.EndDate.Time) })

	rep := runReconciliation(t, s)
	if rep.Seen != 6 || rep.Healed != 5 || rep.InSync != 1 || rep.Errors != 0 {
		t.Fatalf("report %s %+v", rep, rep.ErrorSamples)
	}
	// The suspended subscription's tenant is not suspended either: the third side's drift.
	if rep.Drift[acts.DriftOutstanding] != 2 || rep.Drift[acts.DriftStatus] != 2 || rep.Drift[acts.DriftTerm] != 1 || rep.Drift[acts.DriftTenant] != 1 {
		t.Fatalf("drift kinds %v", rep.Drift)
	}

	for _, id := range []string{changeQty, changePlan, suspend, cancel, renew, untouched} {
		s.WaitState(t, id, "agreement with Microsoft and no undecided operation", func(st subscription.State) bool {
			sub, _ := emu.Subscription(id)
			ops, err := s.Emu.Client.ListOperations(context.Background(), id)
			return agrees(st, sub) && st.Phase != subscription.PhaseChanging && err == nil && len(ops) == 0
		})
	}
	// The customer's changes were decided (accepted by the demo provisioner) and applied on both sides.
	if sub, _ := emu.Subscription(changeQty); sub.Quantity != 30 {
		t.Errorf("seat change not applied at Microsoft: %d", sub.Quantity)
	}
	if sub, _ := emu.Subscription(changePlan); sub.PlanID != "enterprise" {
		t.Errorf("plan change not applied at Microsoft: %s", sub.PlanID)
	}
	for _, op := range []marketplace.Operation{qtyOp, planOp} {
		got, _ := s.Emu.Client.GetOperation(context.Background(), op.SubscriptionID, op.ID)
		if got == nil || got.Status != marketplace.OperationSucceeded {
			t.Errorf("operation %s: %+v", op.ID, got)
		}
	}
	// The tenant follows: suspended, and deprovisioned once.
	st := s.WaitState(t, suspend, "tenant suspended", func(st subscription.State) bool { return st.TenantSuspended })
	if st.Status != marketplace.StatusSuspended {
		t.Fatalf("suspend: %+v", st)
	}
	s.WaitState(t, cancel, "deprovisioned", func(st subscription.State) bool { return !st.DeprovisionedAt.IsZero() })

	// A second run finds nothing to do.
	again := runReconciliation(t, s)
	if again.Healed != 0 || again.Adopted != 0 || len(again.Drift) != 0 || again.InSync != 6 {
		t.Fatalf("second run: %s", again)
	}
}

// An ISV moving to the engine with existing customers: on an empty Temporal, the first reconciliation
// adopts every subscription Microsoft lists (three pages), without activating a Subscribed one again or
// provisioning anything twice; a second run finds no drift.
func TestAdoptionOfExistingSubscriptions(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	emu := s.Emu.Emulator
	seed := emulator.SeedRequest{}
	mix := []struct {
		status marketplace.SubscriptionStatus
		plan   string
		qty    int64
		count  int
	}{
		{marketplace.StatusSubscribed, "team", 12, 110},
		{marketplace.StatusSubscribed, "basic", 0, 60},
		{marketplace.StatusSuspended, "basic", 0, 40},
		{marketplace.StatusUnsubscribed, "basic", 0, 40},
	}
	for _, m := range mix {
		item := seed.Subscriptions
		seed.Subscriptions = append(item, struct {
			emulator.PurchaseRequest
			Count int `json:"count"`
		}{emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: m.plan, Quantity: m.qty, Status: m.status}, m.count})
	}
	ids, err := emu.Seed(seed)
	if err != nil || len(ids) != 250 {
		t.Fatalf("seed: %d %v", len(ids), err)
	}

	rep := runReconciliation(t, s)
	if rep.Pages != 3 || rep.Seen != 250 || rep.Adopted != 210 || rep.Ignored != 40 || rep.Errors != 0 {
		t.Fatalf("first run: %s (pages %d) %v", rep, rep.Pages, rep.ErrorSamples)
	}
	for _, id := range ids {
		sub, _ := emu.Subscription(id)
		if sub.Status == marketplace.StatusUnsubscribed {
			continue
		}
		// Idle comes a step before a suspended subscription's tenant is suspended (the loop's tenant sync
		// right after adoption): wait for both.
		s.WaitState(t, id, "adopted as Microsoft reports it, a suspended one with its tenant suspended", func(st subscription.State) bool {
			return agrees(st, sub) && st.Provisioned && st.Phase == subscription.PhaseIdle &&
				st.TenantSuspended == (st.Status == marketplace.StatusSuspended)
		})
		if n := emu.Calls(emulator.EndpointActivate, id); n != 0 {
			t.Errorf("%s: Activate called %d times on a subscription Microsoft reports %s", id, n, sub.Status)
		}
		if n := s.Provisioner.Applied(provisioning.IdempotencyKey(id, "activate")); n > 1 {
			t.Errorf("%s: provisioned %d times", id, n)
		}
	}
	if n := tenants(t, s); n != 210 {
		t.Fatalf("%d tenants provisioned, want 210", n)
	}

	again := runReconciliation(t, s)
	if again.Adopted != 0 || again.Healed != 0 || len(again.Drift) != 0 || again.InSync != 210 || again.Ignored != 40 {
		t.Fatalf("second run found drift: %s %v", again, again.ErrorSamples)
	}
	if n := tenants(t, s); n != 210 {
		t.Fatalf("second run changed provisioning: %d tenants", n)
	}
}

func tenants(t testing.TB, s *stacktest.Stack) int {
	t.Helper()
	n := 0
	for _, tn := range s.Provisioner.Tenants() {
		if tn.Status != provisioning.TenantDeprovisioned {
			n++
		}
	}
	return n
}

// A subscription whose workflow ended without the subscription ending (terminated by an operator, or
// failed because Microsoft did not know the subscription yet) is adopted again from Microsoft's state,
// without a second Activate or a second provisioning.
func TestReconciliationRestartsAnEndedWorkflow(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	emu := s.Emu.Emulator
	id := s.Activated(t, "team", 10)
	if err := s.Client.TerminateWorkflow(context.Background(), subscription.WorkflowID(id), "", "an operator's mistake"); err != nil {
		t.Fatal(err)
	}

	rep := runReconciliation(t, s)
	if rep.Adopted != 1 || rep.Errors != 0 {
		t.Fatalf("report %s %v", rep, rep.ErrorSamples)
	}
	sub, _ := emu.Subscription(id)
	s.WaitState(t, id, "adopted again", func(st subscription.State) bool {
		return agrees(st, sub) && st.Provisioned && st.Phase == subscription.PhaseIdle
	})
	if n := emu.Calls(emulator.EndpointActivate, id); n != 1 {
		t.Errorf("Activate called %d times", n)
	}
	if n := s.Provisioner.Applied(provisioning.IdempotencyKey(id, "activate")); n != 1 {
		t.Errorf("provisioned %d times", n)
	}
	if again := runReconciliation(t, s); again.InSync != 1 || again.Adopted != 0 {
		t.Fatalf("second run: %s", again)
	}
}

// caughtUp waits until Microsoft's record of a subscription, as its API reads it, satisfies cond.
func caughtUp(t *testing.T, s *stacktest.Stack, id string, cond func(marketplace.Subscription) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sub, err := s.Emu.Client.GetSubscription(context.Background(), id)
		if err == nil && cond(*sub) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Microsoft's record of %s never caught up (last read %+v, %v)", id, sub, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
