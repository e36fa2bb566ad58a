package emulator

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// Reads serve, at each moment, the newest version of a subscription whose read lag is over, also when a
// second operation changed it before the first one's lag ended.
func TestReadServesTheNewestVisibleVersion(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	lag := 2 * time.Second
	s := &subscription{Sub: marketplace.Subscription{ID: "s", PlanID: "a"}}
	change := func(at time.Time, plan string, lag time.Duration) {
		before := s.Sub
		s.Sub.PlanID = plan
		s.lag(before, at, lag)
	}
	change(t0, "b", lag)
	change(t0.Add(time.Second), "c", lag)
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{
		{0, "a"},
		{1999 * time.Millisecond, "a"},
		{2 * time.Second, "b"},
		{2999 * time.Millisecond, "b"},
		{3 * time.Second, "c"},
	} {
		if got := s.read(t0.Add(tc.at)).PlanID; got != tc.want {
			t.Errorf("read at +%v: plan %s, want %s", tc.at, got, tc.want)
		}
	}
	// Once everything is visible, the next change keeps only what reads can still show.
	change(t0.Add(10*time.Second), "d", lag)
	if len(s.Earlier) != 1 || s.Earlier[0].Sub.PlanID != "c" {
		t.Fatalf("versions kept: %+v", s.Earlier)
	}
	if got := s.read(t0.Add(11 * time.Second)).PlanID; got != "c" {
		t.Fatalf("read inside the last lag: %s", got)
	}
	// No lag: the change shows at once.
	change(t0.Add(11*time.Second), "e", 0)
	if got := s.read(t0.Add(11 * time.Second)).PlanID; got != "e" || len(s.Earlier) != 0 {
		t.Fatalf("with no lag: read %s, versions %+v", got, s.Earlier)
	}
}

// The read lag is Microsoft's 2 s unless the configuration says otherwise, 0 included; a negative one is
// refused.
func TestReadLagConfiguration(t *testing.T) {
	for _, tc := range []struct {
		json string
		want time.Duration
		bad  bool
	}{
		{`{}`, 2 * time.Second, false},
		{`{"readLag":"0s"}`, 0, false},
		{`{"readLag":5}`, 5 * time.Second, false},
		{`{"readLag":"-1s"}`, 0, true},
	} {
		c := DemoConfig()
		if err := json.Unmarshal([]byte(tc.json), &c); err != nil {
			t.Fatal(err)
		}
		err := c.validate()
		if tc.bad {
			if err == nil {
				t.Errorf("%s: accepted", tc.json)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.json, err)
		}
		c.withDefaults()
		if got := c.ReadLag.D(); got != tc.want {
			t.Errorf("%s: read lag %v, want %v", tc.json, got, tc.want)
		}
	}
}
