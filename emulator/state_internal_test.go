package emulator

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"saasengine/marketplace"
)

// New refuses a state that does not match the configuration, but the handlers must not rely on it: a
// subscription whose plan, offer or publisher is unknown gets Microsoft's 500, never a panic.
func TestOrphanedStateIsServedWithoutPanic(t *testing.T) {
	e, err := New(Options{Config: DemoConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tok, err := (&marketplace.DevTokenSource{TenantID: DemoTenantID, ClientID: DemoAppID, Secret: []byte("any")}).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pending, err := e.Purchase(PurchaseRequest{OfferID: DemoOfferID, PlanID: "team", Quantity: 10})
	if err != nil {
		t.Fatal(err)
	}
	live, err := e.Purchase(PurchaseRequest{OfferID: DemoOfferID, PlanID: "team", Quantity: 10, Status: marketplace.StatusSubscribed})
	if err != nil {
		t.Fatal(err)
	}
	noOffer, err := e.Purchase(PurchaseRequest{OfferID: DemoOfferID, PlanID: "basic", Status: marketplace.StatusSubscribed})
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.st.Subscriptions[pending.SubscriptionID].Sub.PlanID = "retired"
	e.st.Subscriptions[live.SubscriptionID].Sub.PlanID = "retired"
	e.st.Subscriptions[noOffer.SubscriptionID].Sub.OfferID = "retired-offer"
	e.st.Subscriptions[noOffer.SubscriptionID].Publisher = "gone"
	e.mu.Unlock()

	call := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path+"?api-version="+marketplace.APIVersion, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		return w
	}
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"activate, plan gone", "POST", "/api/saas/subscriptions/" + pending.SubscriptionID + "/activate", `{"planId":"retired"}`, 500},
		{"change quantity, plan gone", "PATCH", "/api/saas/subscriptions/" + live.SubscriptionID, `{"quantity":12}`, 500},
		{"plans, plan gone", "GET", "/api/saas/subscriptions/" + live.SubscriptionID + "/listAvailablePlans", ``, 200},
		// Moving off a retired plan to a configured one is fine (and locks the subscription, so it comes last).
		{"change plan, plan gone", "PATCH", "/api/saas/subscriptions/" + live.SubscriptionID, `{"planId":"basic"}`, 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := call(tc.method, tc.path, tc.body); w.Code != tc.status || (w.Code >= 400 && !strings.Contains(w.Body.String(), `"error"`)) {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tc.status)
			}
		})
	}
	e.mu.Lock()
	e.st.Subscriptions[live.SubscriptionID].Sub.OfferID = "retired-offer"
	e.mu.Unlock()
	if w := call("GET", "/api/saas/subscriptions/"+live.SubscriptionID+"/listAvailablePlans", ""); w.Code != 500 {
		t.Fatalf("plans of an unknown offer: %d %s", w.Code, w.Body)
	}
	if _, err := e.NewToken(noOffer.SubscriptionID, 0); err != nil {
		t.Fatalf("token for a subscription of an unknown publisher: %v", err)
	}

	// An operation whose subscription is gone ends Failed instead of being applied to nothing.
	e.mu.Lock()
	op := e.newOperationLocked(e.st.Subscriptions[pending.SubscriptionID], marketplace.ActionChangeQuantity, marketplace.SourcePartner, "", 12)
	op.CompleteAt = e.now()
	delete(e.st.Subscriptions, pending.SubscriptionID)
	e.advanceOperationsLocked()
	status := op.Op.Status
	e.mu.Unlock()
	if status != marketplace.OperationFailed {
		t.Fatalf("orphaned operation: %s", status)
	}
}
