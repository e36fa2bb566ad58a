package metering

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"saasengine/emulator/emulatortest"
	"saasengine/marketplace"
)

// countingPlans counts the reads the check makes at the emulator.
type countingPlans struct {
	Plans
	reads atomic.Int32
}

func (c *countingPlans) GetSubscription(ctx context.Context, id string) (*marketplace.Subscription, error) {
	c.reads.Add(1)
	return c.Plans.GetSubscription(ctx, id)
}

func (c *countingPlans) ListAvailablePlans(ctx context.Context, id, planID string) ([]marketplace.Plan, error) {
	c.reads.Add(1)
	return c.Plans.ListAvailablePlans(ctx, id, planID)
}

// The plan's dimensions come from the emulator's List available plans: a dimension the plan lacks is
// refused with the ones it has, a known one passes, answers are cached, a refusal is checked against a
// fresh read, and what cannot be read is let through for Microsoft to judge.
func TestDimensionsRefuseWhatThePlanLacks(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	metered := env.Purchase(t, "metered", 0).SubscriptionID
	basic := env.Purchase(t, "basic", 0).SubscriptionID
	plans := &countingPlans{Plans: env.Client}
	d := &Dimensions{Marketplace: plans}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	at := time.Now().UTC()

	if err := d.check(ctx, metered, []Usage{{Dimension: "api_calls", Quantity: 1, Time: at}}); err != nil {
		t.Fatalf("known dimension: %v", err)
	}
	if n := plans.reads.Load(); n != 2 {
		t.Fatalf("%d reads, want Get subscription and List available plans", n)
	}
	if err := d.check(ctx, metered, []Usage{{Dimension: "storage_gb", Quantity: 1, Time: at}}); err != nil || plans.reads.Load() != 2 {
		t.Fatalf("second known dimension: %v after %d reads; want it answered from the cache", err, plans.reads.Load())
	}

	err := d.check(ctx, metered, []Usage{{Dimension: "api_calls", Quantity: 1, Time: at}, {Dimension: "gpu_hours", Quantity: 1, Time: at}})
	var invalid *InvalidUsageError
	if !errors.As(err, &invalid) || invalid.Index != 1 || !strings.Contains(invalid.Reason, `"gpu_hours"`) ||
		!strings.Contains(invalid.Reason, "api_calls, storage_gb") || !strings.Contains(invalid.Reason, `"metered"`) {
		t.Fatalf("unknown dimension: %v", err)
	}
	if n := plans.reads.Load(); n != 4 {
		t.Fatalf("%d reads: a refusal must be checked against a fresh read of both", n)
	}
	// A report naming its plan is checked against that plan.
	if err := d.check(ctx, metered, []Usage{{Dimension: "api_calls", Quantity: 1, Time: at, PlanID: "basic"}}); !errors.As(err, &invalid) ||
		!strings.Contains(invalid.Reason, `plan "basic" has no metering dimensions`) {
		t.Fatalf("dimension of a flat-rate plan: %v", err)
	}
	if err := d.check(ctx, basic, []Usage{{Dimension: "api_calls", Quantity: 1, Time: at}}); !errors.As(err, &invalid) {
		t.Fatalf("usage of a flat-rate subscription: %v", err)
	}

	// Microsoft unreachable: nothing is refused on a guess.
	down := &Dimensions{Marketplace: env.Client}
	gone, stop := context.WithCancel(ctx)
	stop()
	if err := down.check(gone, metered, []Usage{{Dimension: "gpu_hours", Quantity: 1, Time: at}}); err != nil {
		t.Fatalf("with Microsoft unreadable: %v", err)
	}
	// A plan Microsoft does not list for the subscription is not judged either.
	if err := d.check(ctx, metered, []Usage{{Dimension: "gpu_hours", Quantity: 1, Time: at, PlanID: "no-such-plan"}}); err != nil {
		t.Fatalf("unlisted plan: %v", err)
	}
}
