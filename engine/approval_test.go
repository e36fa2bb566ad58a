package engine_test

import (
	"context"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// A pending subscription that reconciliation finds first is neither activated on sight nor, with
// REQUIRE_APPROVAL, once the buyer confirms: the worker hands its workflow options (engine.Deps.Workflow)
// to the workflows reconciliation starts, so an operator's approve is still needed.
func TestReconciliationKeepsApprovalAndConfirmation(t *testing.T) {
	// stacktest's worker is built by engine.NewWorker with the stack's workflow options as Deps.Workflow.
	s := stacktest.Start(t, stacktest.Options{Workflow: subscription.Options{RequireApproval: true}})
	id := s.Emu.Purchase(t, "basic", 0).SubscriptionID
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s.Reconcile(t, 2*time.Minute)
	s.WaitState(t, id, "waiting for confirmation", func(st subscription.State) bool {
		return st.Phase == subscription.PhaseAwaitingConfirmation
	})

	sub, _ := s.Emu.Emulator.Subscription(id)
	if _, err := s.Subs.Confirm(ctx, sub); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	s.WaitState(t, id, "waiting for approval", func(st subscription.State) bool { return st.Phase == subscription.PhaseAwaitingApproval })
	if n := s.Emu.Emulator.Calls(emulator.EndpointActivate, id); n != 0 {
		t.Fatalf("Activate called %d times before the operator's approval", n)
	}
	if _, err := s.Subs.Approve(ctx, id, 0); err != nil {
		t.Fatalf("approve: %v", err)
	}
	s.WaitState(t, id, "Subscribed", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed && st.Phase == subscription.PhaseIdle
	})
}
