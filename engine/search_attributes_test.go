package engine_test

import (
	"context"
	"strings"
	"testing"

	"go.temporal.io/sdk/converter"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// searchAttributes reads a workflow's search attributes as the Temporal UI shows them.
func searchAttributes(t *testing.T, s *stacktest.Stack, id string) map[string]any {
	t.Helper()
	d, err := s.Client.DescribeWorkflowExecution(context.Background(), subscription.WorkflowID(id), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for name, p := range d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields() {
		var v any
		if err := converter.GetDefaultDataConverter().FromPayload(p, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = v
	}
	return out
}

// Operators filter subscriptions in the Temporal UI by these attributes: they follow the subscription
// and never carry an e-mail address.
func TestSearchAttributesFollowTheSubscription(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	emu := s.Emu.Emulator
	p, err := emu.Purchase(emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: "team", Quantity: 12, IsTest: true, Status: marketplace.StatusSubscribed})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Subs.Snapshot(context.Background(), p.Subscription); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "adopted", func(st subscription.State) bool { return st.Provisioned })

	want := map[string]any{
		"SaaSStatus": "Subscribed", "SaaSPhase": string(subscription.PhaseIdle), "SaaSOffer": emulator.DemoOfferID, "SaaSPlan": "team",
		"SaaSQuantity": float64(12), "SaaSBeneficiaryTenant": p.Subscription.Beneficiary.TenantID, "SaaSIsTest": true, "SaaSIsFreeTrial": false,
	}
	check := func(what string) {
		t.Helper()
		var got map[string]any
		waitUntil(t, what, func() bool {
			got = searchAttributes(t, s, p.SubscriptionID)
			for k, v := range want {
				if got[k] != v {
					return false
				}
			}
			return true
		})
		for k, v := range got {
			if str, ok := v.(string); ok && strings.Contains(str, "@") {
				t.Errorf("%s carries an e-mail address: %q", k, str)
			}
		}
	}
	check("search attributes after adoption")

	if _, err := emu.CustomerChangeQuantity(p.SubscriptionID, 20); err != nil {
		t.Fatal(err)
	}
	want["SaaSQuantity"] = float64(20)
	check("search attributes after a seat change")

	if _, err := emu.Suspend(p.SubscriptionID); err != nil {
		t.Fatal(err)
	}
	want["SaaSStatus"] = "Suspended"
	check("search attributes after a suspension")
}
