package metering

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"saasengine/marketplace"
)

// Plans is what the dimension check reads at Microsoft; *marketplace.Client is one.
type Plans interface {
	GetSubscription(ctx context.Context, subscriptionID string) (*marketplace.Subscription, error)
	ListAvailablePlans(ctx context.Context, subscriptionID, planID string) ([]marketplace.Plan, error)
}

var _ Plans = (*marketplace.Client)(nil)

// Dimensions tells which metering dimensions a subscription's plan has, from Get subscription (its current
// plan) and List available plans, so that usage of a dimension the plan lacks is refused when it is
// reported instead of an hour later by Microsoft. Answers are cached for TTL to spare Microsoft's rate
// limits; a refusal is always checked against a fresh read, so a plan changed meanwhile refuses nothing
// wrongly. Safe for concurrent use; share one between copies of a Client.
type Dimensions struct {
	Marketplace Plans
	// TTL is how long answers are kept; default 5 minutes.
	TTL time.Duration
	// Now defaults to time.Now.
	Now func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	plan string   // the current plan, for a subscription's entry
	dims []string // the plan's dimensions, for a plan's entry
	ok   bool     // the plan was listed
	at   time.Time
}

// check refuses the first report whose dimension its plan lacks. It refuses only what it knows: when
// Microsoft cannot be read, or does not list the plan, the reports go through unchecked and the meter
// learns Microsoft's answer when it posts them.
func (d *Dimensions) check(ctx context.Context, subscriptionID string, reports []Usage) error {
	for i, u := range reports {
		for _, fresh := range []bool{false, true} {
			plan, dims, known := d.lookup(ctx, subscriptionID, u.PlanID, fresh)
			if !known || slices.Contains(dims, u.Dimension) {
				break
			}
			if fresh {
				if len(dims) == 0 {
					return &InvalidUsageError{Index: i, Reason: fmt.Sprintf("plan %q has no metering dimensions", plan)}
				}
				return &InvalidUsageError{Index: i, Reason: fmt.Sprintf("dimension %q is not one of plan %q's (%s)", u.Dimension, plan, strings.Join(dims, ", "))}
			}
		}
	}
	return nil
}

// lookup returns the plan a report bills (its own, or the subscription's current one) and its dimensions;
// known is false when either could not be learnt.
func (d *Dimensions) lookup(ctx context.Context, subscriptionID, planID string, fresh bool) (plan string, dims []string, known bool) {
	if planID == "" {
		e, ok := d.get("sub|"+subscriptionID, fresh, func() (cached, bool) {
			sub, err := d.Marketplace.GetSubscription(ctx, subscriptionID)
			if err != nil {
				return cached{}, false
			}
			return cached{plan: sub.PlanID, ok: sub.PlanID != ""}, true
		})
		if !ok || !e.ok {
			return "", nil, false
		}
		planID = e.plan
	}
	e, ok := d.get("plan|"+subscriptionID+"|"+planID, fresh, func() (cached, bool) {
		plans, err := d.Marketplace.ListAvailablePlans(ctx, subscriptionID, planID)
		if err != nil {
			return cached{}, false
		}
		for _, p := range plans {
			if p.PlanID != planID {
				continue
			}
			c := cached{ok: true, dims: []string{}}
			for _, m := range p.PlanComponents.MeteringDimensions {
				c.dims = append(c.dims, m.ID)
			}
			return c, true
		}
		return cached{}, true
	})
	if !ok || !e.ok {
		return planID, nil, false
	}
	return planID, e.dims, true
}

// get returns the cached entry for key, reading it with read when it is missing, stale or fresh is asked
// for; a failed read is not cached.
func (d *Dimensions) get(key string, fresh bool, read func() (cached, bool)) (cached, bool) {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	ttl := d.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	d.mu.Lock()
	e, hit := d.cache[key]
	d.mu.Unlock()
	if hit && !fresh && now().Sub(e.at) < ttl {
		return e, true
	}
	e, ok := read()
	if !ok {
		return cached{}, false
	}
	e.at = now()
	d.mu.Lock()
	if d.cache == nil {
		d.cache = map[string]cached{}
	}
	d.cache[key] = e
	d.mu.Unlock()
	return e, true
}
