package emulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/emulator/emulatortest"
	"saasengine/marketplace"
)

func statusOf(err error) int {
	var me *marketplace.Error
	if errors.As(err, &me) {
		return me.StatusCode
	}
	return 0
}

// failures returns which of n reads of one subscription failed under a rate fault, and their statuses.
func failures(t *testing.T, f emulator.Fault, n int) []int {
	t.Helper()
	env := emulatortest.Start(t, emulatortest.Options{})
	id := activated(t, env, "basic", 0)
	if err := env.Emulator.AddFault(f); err != nil {
		t.Fatal(err)
	}
	var failed []int
	for i := range n {
		_, err := env.Client.GetSubscription(context.Background(), id)
		if err == nil {
			continue
		}
		if statusOf(err) != f.Status {
			t.Fatalf("read %d: %v, want status %d", i, err, f.Status)
		}
		var me *marketplace.Error
		if errors.As(err, &me) && me.RetryAfter <= 0 {
			t.Fatalf("read %d: a %d without Retry-After", i, f.Status)
		}
		failed = append(failed, i)
	}
	return failed
}

func TestRateFaultsFailAFractionOfCallsReproducibly(t *testing.T) {
	f := emulator.Fault{Endpoint: "GetSubscription", Status: http.StatusServiceUnavailable, RetryAfter: 1, Rate: 0.3, Seed: 42}
	const n = 200
	a := failures(t, f, n)
	b := failures(t, f, n)
	if len(a) < n/6 || len(a) > n/2 {
		t.Fatalf("%d of %d reads failed at rate 0.3", len(a), n)
	}
	if jsonOf(a) != jsonOf(b) {
		t.Fatalf("the same seed failed other calls:\n%v\n%v", a, b)
	}
	f.Seed = 43
	if c := failures(t, f, n); jsonOf(c) == jsonOf(a) {
		t.Fatalf("another seed failed the very same calls")
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestLostAnswersApplyTheWrite(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) { c.OperationDelay = emulator.Duration(time.Hour) }})
	ctx := context.Background()
	lose := func(endpoint string) {
		t.Helper()
		if err := env.Emulator.AddFault(emulator.Fault{Endpoint: endpoint, LostAnswer: true, Count: 1}); err != nil {
			t.Fatal(err)
		}
	}

	// Activate: answered 500, yet the subscription is Subscribed, and a retry is refused as already active.
	p := env.Purchase(t, "team", 10)
	id := p.SubscriptionID
	lose("Activate")
	if err := env.Client.Activate(ctx, id, marketplace.SubscriberPlan{}); statusOf(err) != http.StatusInternalServerError {
		t.Fatalf("activate with a lost answer: %v", err)
	}
	if s, _ := env.Emulator.Subscription(id); s.Status != marketplace.StatusSubscribed {
		t.Fatalf("after a lost activation: %s", s.Status)
	}
	if err := env.Client.Activate(ctx, id, marketplace.SubscriberPlan{}); statusOf(err) != http.StatusBadRequest {
		t.Fatalf("activate again: %v", err)
	}
	if got := env.Emulator.Applied("Activate", id); got != 1 {
		t.Fatalf("Activate applied %d times, want 1", got)
	}
	if got := env.Emulator.Calls("Activate", id); got != 2 {
		t.Fatalf("Activate called %d times, want 2", got)
	}

	// PATCH: answered 500 without Operation-Location, yet the operation exists; the retry finds it pending.
	lose("UpdateSubscription")
	if _, err := env.Client.ChangeQuantity(ctx, id, 20); statusOf(err) != http.StatusInternalServerError {
		t.Fatalf("PATCH with a lost answer: %v", err)
	}
	ops := env.Emulator.Operations(id)
	if len(ops) != 1 || ops[0].Action != marketplace.ActionChangeQuantity || ops[0].Quantity != 20 {
		t.Fatalf("operations after a lost PATCH: %+v", ops)
	}
	if _, err := env.Client.ChangeQuantity(ctx, id, 20); statusOf(err) != http.StatusBadRequest {
		t.Fatalf("PATCH again while the first is pending: %v", err)
	}
	if got := env.Emulator.Applied("UpdateSubscription", id); got != 1 {
		t.Fatalf("PATCH applied %d times, want 1", got)
	}

	// DELETE: on a fresh subscription, answered 500, yet the Unsubscribe operation exists.
	id2 := activated(t, env, "basic", 0)
	lose("DeleteSubscription")
	if _, err := env.Client.DeleteSubscription(ctx, id2); statusOf(err) != http.StatusInternalServerError {
		t.Fatalf("DELETE with a lost answer: %v", err)
	}
	ops = env.Emulator.Operations(id2)
	if len(ops) != 1 || ops[0].Action != marketplace.ActionUnsubscribe {
		t.Fatalf("operations after a lost DELETE: %+v", ops)
	}
	if got := env.Emulator.Applied("DeleteSubscription", id2); got != 1 {
		t.Fatalf("DELETE applied %d times, want 1", got)
	}

	// A refused write under a lost-answer fault keeps its own answer: nothing was applied.
	lose("DeleteSubscription")
	if _, err := env.Client.DeleteSubscription(ctx, id2); statusOf(err) != http.StatusConflict {
		t.Fatalf("DELETE while pending: %v, want its 409", err)
	}
	if got := env.Emulator.Applied("DeleteSubscription", id2); got != 1 {
		t.Fatalf("DELETE applied %d times, want 1", got)
	}

	if err := env.Emulator.AddFault(emulator.Fault{Endpoint: "GetSubscription", LostAnswer: true}); err == nil {
		t.Fatal("a lost answer on a read was accepted")
	}
	if err := env.Emulator.AddFault(emulator.Fault{Endpoint: "*", Status: 500, Rate: 1.5}); err == nil {
		t.Fatal("a rate above 1 was accepted")
	}
}

func TestWebhookFaultsAtARate(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	rc := newReceiver(t, env)
	id := activated(t, env, "basic", 0)
	if err := env.Emulator.AddFault(emulator.Fault{Webhook: emulator.WebhookDrop, Action: "Renew", Rate: 0.5, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for range n {
		if _, err := env.Emulator.Renew(id); err != nil {
			t.Fatal(err)
		}
	}
	dropped := 0
	for _, d := range env.Emulator.Deliveries() {
		if d.State == emulator.DeliveryDropped {
			dropped++
		}
	}
	if dropped == 0 || dropped == n {
		t.Fatalf("%d of %d Renew webhooks dropped at rate 0.5", dropped, n)
	}
	eventually(t, "the others delivered", func() bool { return len(rc.received()) == n-dropped })
}
