package emulator_test

import (
	"context"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/emulator/emulatortest"
	"saasengine/marketplace"
)

// readLag is long next to one local HTTP call, so a read right after an operation ended is inside it.
const readLag = 2 * time.Second

// Microsoft's Get and List subscription lag a finished operation while Get operation already shows its
// terminal status. An emulator configured without a lag must behave the same, with Microsoft's 2 s.
func TestReadsLagFinishedOperationsByDefault(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) { c.ReadLag = nil }})
	ctx := context.Background()
	id := activated(t, env, "team", 10)
	quantity := func() marketplace.Quantity {
		s, err := env.Client.GetSubscription(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return s.Quantity
	}
	listed := func() marketplace.Subscription {
		subs, err := env.Client.ListSubscriptions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range subs {
			if s.ID == id {
				return s
			}
		}
		t.Fatalf("List subscriptions lacks %s", id)
		return marketplace.Subscription{}
	}

	// A publisher PATCH: the operation ends Succeeded, the subscription record follows a lag later.
	opID, err := env.Client.ChangeQuantity(ctx, id, 12)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "ChangeQuantity Succeeded", func() bool {
		o, err := env.Client.GetOperation(ctx, id, opID)
		return err == nil && o.Status == marketplace.OperationSucceeded
	})
	if q := quantity(); q != 10 {
		t.Fatalf("Get subscription shows quantity %d right after the operation ended; want the old 10 for the read lag", q)
	}
	if s := listed(); s.Quantity != 10 {
		t.Fatalf("List subscriptions shows quantity %d right after the operation ended; want the old 10", s.Quantity)
	}
	if s, _ := env.Emulator.Subscription(id); s.Quantity != 12 {
		t.Fatalf("the emulator's own record did not take the change: %d", s.Quantity)
	}
	eventually(t, "Get subscription shows 12", func() bool { return quantity() == 12 })
	if s := listed(); s.Quantity != 12 {
		t.Fatalf("List subscriptions still shows %d once Get shows the change", s.Quantity)
	}

	// A notify-only action: the returned operation is Succeeded at once, the status follows later.
	if _, err := env.Emulator.Suspend(id); err != nil {
		t.Fatal(err)
	}
	if s, err := env.Client.GetSubscription(ctx, id); err != nil || s.Status != marketplace.StatusSubscribed {
		t.Fatalf("Get subscription right after Suspend: %+v %v; want still Subscribed", s, err)
	}
	eventually(t, "Get subscription shows Suspended", func() bool {
		s, err := env.Client.GetSubscription(ctx, id)
		return err == nil && s.Status == marketplace.StatusSuspended
	})
}

// A customer's change the publisher accepted leaves List operations at once (only outstanding operations
// are listed) while Get subscription still shows the old plan.
func TestListOperationsShowsOnlyOutstandingWhileReadsLag(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) {
		c.ReadLag = emulator.NewDuration(readLag)
		c.AutoAcceptAfter = emulator.Duration(time.Minute) // the publisher decides, not the clock
	}})
	ctx := context.Background()
	id := activated(t, env, "team", 10)
	op, err := env.Emulator.CustomerChangePlan(id, "enterprise")
	if err != nil {
		t.Fatal(err)
	}
	ops, err := env.Client.ListOperations(ctx, id)
	if err != nil || len(ops) != 1 || ops[0].ID != op.ID {
		t.Fatalf("outstanding before the decision: %+v %v", ops, err)
	}
	if err := env.Client.UpdateOperation(ctx, id, op.ID, marketplace.OperationUpdate{Status: marketplace.UpdateSuccess}); err != nil {
		t.Fatal(err)
	}
	if o, err := env.Client.GetOperation(ctx, id, op.ID); err != nil || o.Status != marketplace.OperationSucceeded {
		t.Fatalf("Get operation after the PATCH: %+v %v", o, err)
	}
	if ops, err := env.Client.ListOperations(ctx, id); err != nil || len(ops) != 0 {
		t.Fatalf("a finished operation is still listed as outstanding: %+v %v", ops, err)
	}
	if s, err := env.Client.GetSubscription(ctx, id); err != nil || s.PlanID != "team" {
		t.Fatalf("Get subscription right after the change succeeded: %+v %v; want the old plan for the read lag", s, err)
	}
	eventually(t, "Get subscription shows the new plan", func() bool {
		s, err := env.Client.GetSubscription(ctx, id)
		return err == nil && s.PlanID == "enterprise"
	})
}

// With the lag set to 0 a read right after the operation ended shows its change.
func TestReadLagZeroReadsAtOnce(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) { c.ReadLag = emulator.NewDuration(0) }})
	ctx := context.Background()
	id := activated(t, env, "team", 10)
	opID, err := env.Client.ChangeQuantity(ctx, id, 12)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "ChangeQuantity Succeeded", func() bool {
		o, err := env.Client.GetOperation(ctx, id, opID)
		return err == nil && o.Status == marketplace.OperationSucceeded
	})
	if s, err := env.Client.GetSubscription(ctx, id); err != nil || s.Quantity != 12 {
		t.Fatalf("Get subscription with no read lag: %+v %v", s, err)
	}
}

// A publisher's PATCH (plan or quantity) and DELETE each end in a webhook from the Partner side, sent
// once the operation succeeded, naming the operation of the Operation-Location.
// Each PATCH follows the previous one within the read lag: Microsoft checks it against its own record,
// not against what reads still show.
func TestPublisherOperationsSendWebhooks(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) { c.ReadLag = emulator.NewDuration(readLag) }})
	rc := newReceiver(t, env)
	ctx := context.Background()
	id := activated(t, env, "team", 10)
	for _, step := range []struct {
		action marketplace.Action
		call   func() (string, error)
		check  func(marketplace.WebhookEvent) bool
	}{
		{marketplace.ActionChangeQuantity, func() (string, error) { return env.Client.ChangeQuantity(ctx, id, 20) },
			func(ev marketplace.WebhookEvent) bool { return ev.Quantity == 20 }},
		{marketplace.ActionChangePlan, func() (string, error) { return env.Client.ChangePlan(ctx, id, "enterprise") },
			func(ev marketplace.WebhookEvent) bool { return ev.PlanID == "enterprise" }},
		{marketplace.ActionUnsubscribe, func() (string, error) { return env.Client.DeleteSubscription(ctx, id) },
			func(ev marketplace.WebhookEvent) bool {
				return ev.Subscription.Status == marketplace.StatusUnsubscribed
			}},
	} {
		before := len(rc.received())
		opID, err := step.call()
		if err != nil {
			t.Fatalf("%s: %v", step.action, err)
		}
		eventually(t, string(step.action)+" webhook", func() bool { return len(rc.received()) > before })
		ev := rc.received()[before]
		if ev.ID != opID || ev.Action != step.action || ev.OperationRequestSource != marketplace.SourcePartner ||
			ev.Status != marketplace.OperationSucceeded || ev.Subscription == nil || !step.check(ev) {
			t.Fatalf("%s webhook: %+v", step.action, ev)
		}
		if o, err := env.Client.GetOperation(ctx, id, opID); err != nil || o.Status != marketplace.OperationSucceeded {
			t.Fatalf("%s webhook sent before its operation succeeded: %+v %v", step.action, o, err)
		}
	}
}
