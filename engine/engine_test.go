package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"saasengine/config"
	"saasengine/emulator"
	"saasengine/engine"
	"saasengine/internal/promtest"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/workflows/subscription"
)

// These tests run the production worker wiring (engine.NewWorker) on a real Temporal server against the
// emulator over HTTP.

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A worker stopped in the middle of an activity (its call to Microsoft in flight) and a new one started
// only once Microsoft has finished that call: activation completes, nothing is provisioned twice, and the
// second Activate (Microsoft answers "already activated") is taken for what it is. The restart at once,
// with the call still in flight, is TestWorkerStoppedDuringActivateRestarts.
func TestWorkerKilledMidActivity(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	emu := s.Emu.Emulator
	if err := emu.AddFault(emulator.Fault{Endpoint: emulator.EndpointActivate, Latency: emulator.Duration(2 * time.Second), Count: 1}); err != nil {
		t.Fatal(err)
	}
	p := s.Emu.Purchase(t, "team", 8)
	res, err := s.Emu.Client.Resolve(context.Background(), p.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subs.Confirm(context.Background(), res.Subscription); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "Activate in flight", func() bool { return emu.Calls(emulator.EndpointActivate, p.SubscriptionID) == 1 })
	s.StopWorker()
	time.Sleep(3 * time.Second) // Microsoft finishes the call the dead worker made
	s.StartWorker(t)

	st := s.WaitState(t, p.SubscriptionID, "Subscribed after the restart", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed && st.Phase == subscription.PhaseIdle
	})
	if !st.Provisioned || s.Provisioner.Applied(provisioning.IdempotencyKey(p.SubscriptionID, "activate")) != 1 {
		t.Fatalf("provisioning after the restart: %+v", st)
	}
	if sub, _ := emu.Subscription(p.SubscriptionID); sub.Status != marketplace.StatusSubscribed || sub.Quantity != 8 {
		t.Fatalf("Microsoft: %+v", sub)
	}
}

// Webhooks that arrive while no worker runs are kept by Temporal and handled when one starts.
func TestWebhooksWhileNoWorkerRuns(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	id := s.Activated(t, "basic", 0)
	s.StopWorker()
	emu := s.Emu.Emulator
	susp, _ := emu.Suspend(id)
	waitUntil(t, "Suspend delivered", func() bool {
		for _, d := range emu.Deliveries() {
			if d.Event.ID == susp.ID && d.State == emulator.DeliveryDelivered {
				return true
			}
		}
		return false
	})
	s.StartWorker(t)
	s.WaitState(t, id, "suspended", func(st subscription.State) bool { return st.TenantSuspended })
}

// The worker binary's Prometheus endpoint carries the Temporal SDK's metrics.
func TestSDKMetricsReachPrometheus(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	m, err := config.NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	c := s.Temporal.NewClientWithOptions(client.Options{MetricsHandler: m.Handler})
	defer c.Close()
	w := engine.NewWorker(c, s.TaskQueue, engine.Deps{Marketplace: s.Emu.Client, Provisioner: s.Provisioner}, worker.Options{})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	id := s.Emu.Purchase(t, "basic", 0).SubscriptionID
	sub, _ := s.Emu.Emulator.Subscription(id)
	if err := subscription.New(c, s.TaskQueue, subscription.Options{}).Snapshot(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "SDK metrics", func() bool {
		page := promtest.Scrape(t, m.HTTPHandler())
		return strings.Contains(page, "temporal_workflow_task_execution_latency") || strings.Contains(page, "temporal_activity_execution_latency")
	})
}
