package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/webhook/server"
	"saasengine/workflows/subscription"
)

// The worst case of a decision: Microsoft's Get operation is slow, the ISV decides slowly, and the
// subscription's workflow is in the middle of a long step. The refusal still reaches Microsoft as a 4xx
// inside the webhook's wait: the deadline travels with the update, verifying and deciding share it, and
// the decision does not queue behind the long step.
func TestRefusalAnsweredInsideTheWaitInTheWorstCase(t *testing.T) {
	s, a := stackWithAuthority(t, stacktest.Options{DemoMaxQuantity: 40, DecideDelay: 1500 * time.Millisecond,
		ConfigureServer:   func(c *server.Config) { c.DecisionWait = 5 * time.Second },
		ConfigureEmulator: func(c *emulator.Config) { c.AutoAcceptAfter = emulator.Duration(time.Hour) }})
	emu := s.Emu.Emulator
	sub := adoptedTeamOf10(t, s)

	// The long step: a snapshot whose Get subscription takes 20 s.
	if err := emu.AddFault(emulator.Fault{Endpoint: emulator.EndpointGetSubscription, Latency: emulator.Duration(20 * time.Second), Count: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Subs.Snapshot(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the workflow inside its slow read", func() (bool, string) {
		d, err := s.Client.DescribeWorkflowExecution(context.Background(), subscription.WorkflowID(sub.ID), "")
		if err != nil {
			return false, err.Error()
		}
		for _, pa := range d.GetPendingActivities() {
			if pa.GetActivityType().GetName() == "GetSubscription" && pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
				return true, ""
			}
		}
		return false, "no Get subscription running"
	})

	// Microsoft's Get operation is slow too, and the ISV takes 1.5 s to refuse 50 seats.
	if err := emu.AddFault(emulator.Fault{Endpoint: emulator.EndpointGetOperation, Latency: emulator.Duration(time.Second), Count: 1}); err != nil {
		t.Fatal(err)
	}
	op, err := emu.CustomerChangeQuantity(sub.ID, 50)
	if err != nil {
		t.Fatal(err)
	}
	got := post(t, s.HTTP.URL+"/webhook", signRS256(t, genuineClaims(s), a.key, a.kid), "application/json", changeEvent(sub.ID, op.ID, 50))
	if got.status != http.StatusBadRequest {
		t.Fatalf("a refusal decided in the worst case was answered %d (%s), not 400 inside the wait", got.status, got.code)
	}
	st := s.WaitState(t, sub.ID, "refusal acknowledged", func(st subscription.State) bool {
		o, ok := st.Seen(op.ID)
		return ok && o.Outcome == subscription.OutcomeRejected && hasAuditKind(st, "change-not-applied", op.ID)
	})
	if st.Quantity != 10 || st.TenantQuantity != 10 {
		t.Fatalf("refused change applied: workflow %d seats, tenant %d", st.Quantity, st.TenantQuantity)
	}
}

// adoptedTeamOf10 is a Subscribed subscription (team, 10 seats) that the engine has adopted, with the
// emulator's webhooks dropped from then on: the test delivers changes itself.
func adoptedTeamOf10(t *testing.T, s *stacktest.Stack) marketplace.Subscription {
	t.Helper()
	emu := s.Emu.Emulator
	p, err := emu.Purchase(emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: "team", Quantity: 10, Status: marketplace.StatusSubscribed})
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := emu.Subscription(p.SubscriptionID)
	if err := s.Subs.Snapshot(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "adopted", func(st subscription.State) bool { return st.Provisioned && st.Phase == subscription.PhaseIdle })
	if err := emu.AddFault(emulator.Fault{Webhook: emulator.WebhookDrop}); err != nil {
		t.Fatal(err)
	}
	return sub
}

func hasAuditKind(st subscription.State, kind, opID string) bool {
	for _, e := range st.Audit {
		if e.Kind == kind && e.OperationID == opID {
			return true
		}
	}
	return false
}

// Once the webhook's answer has gone, the server tells the workflow, which then PATCHes: the
// acknowledgement neither overtakes the answer (the emulator flags that) nor waits for its time to pass.
func TestWorkflowHearsTheWebhookWasAnswered(t *testing.T) {
	s, a := stackWithAuthority(t, stacktest.Options{ConfigureEmulator: func(c *emulator.Config) { c.AutoAcceptAfter = emulator.Duration(time.Hour) }})
	emu := s.Emu.Emulator
	sub := adoptedTeamOf10(t, s)
	op, err := emu.CustomerChangeQuantity(sub.ID, 12)
	if err != nil {
		t.Fatal(err)
	}
	if got := post(t, s.HTTP.URL+"/webhook", signRS256(t, genuineClaims(s), a.key, a.kid), "application/json", changeEvent(sub.ID, op.ID, 12)); got.status != http.StatusOK {
		t.Fatalf("change answered %+v", got)
	}
	st := s.WaitState(t, sub.ID, "change acknowledged", func(st subscription.State) bool { return hasAuditKind(st, "ack", op.ID) })
	if hasAuditKind(st, "answer-unseen", op.ID) {
		t.Fatalf("the workflow acknowledged without word of the answer; audit %+v", st.Audit)
	}
}
