package subscription_test

import (
	"context"
	"testing"

	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/workflows/subscription"
)

// With no worker to take the landing page's update in time, the buyer's confirmation is recorded as a
// signal all the same (an update that was never accepted is not durable): once a worker runs, the
// subscription activates without the buyer pressing again.
func TestConfirmationOutlastsABusyWorker(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	p := s.Emu.Purchase(t, "team", 5)
	ctx := context.Background()
	res, err := s.Emu.Client.Resolve(ctx, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Subs.Confirm(ctx, res.Subscription)
	if err != nil || st != nil {
		t.Fatalf("confirm with no worker: state %v, error %v; want it taken (nil, nil)", st, err)
	}
	s.StartWorker(t)
	got := s.WaitState(t, p.SubscriptionID, "activated", func(st subscription.State) bool {
		return st.Confirmed && st.Status == marketplace.StatusSubscribed && st.Phase == subscription.PhaseIdle
	})
	if got.ActivatedAt.IsZero() {
		t.Fatalf("state: %+v", got)
	}
	if n := s.Provisioner.Applied(provisioning.IdempotencyKey(p.SubscriptionID, "activate")); n != 1 {
		t.Errorf("provisioned %d times, want once", n)
	}
}
