package server

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"saasengine/marketplace"
)

// PlanLister reads the plans Microsoft offers a subscription (marketplace.Client's List available plans):
// their display names are what buyers call them.
type PlanLister interface {
	ListAvailablePlans(ctx context.Context, subscriptionID, planID string) ([]marketplace.Plan, error)
}

// planInfo is what the pages show of a plan.
type planInfo struct {
	Name      string
	FreeTrial bool
}

// plans remembers plans' display names per offer for an hour: they change when the vendor republishes the
// offer, rarely, and a page should not wait for Microsoft each time.
type plans struct {
	lister PlanLister
	log    *zap.Logger
	mu     sync.Mutex
	byKey  map[string]cachedPlan
}

type cachedPlan struct {
	info    planInfo
	fetched time.Time
}

const (
	planTTL  = time.Hour
	planWait = 3 * time.Second
)

// info returns a plan's display name, asking Microsoft through one of its subscriptions when not known; if
// Microsoft cannot say in time, the plan's ID stands in.
func (p *plans) info(ctx context.Context, subscriptionID, offerID, planID string) planInfo {
	fallback := planInfo{Name: planID}
	if p == nil || p.lister == nil || planID == "" {
		return fallback
	}
	key := offerID + "/" + planID
	p.mu.Lock()
	c, ok := p.byKey[key]
	p.mu.Unlock()
	if ok && time.Since(c.fetched) < planTTL {
		return c.info
	}
	ctx, cancel := context.WithTimeout(ctx, planWait)
	defer cancel()
	list, err := p.lister.ListAvailablePlans(ctx, subscriptionID, planID)
	if err != nil {
		p.log.Warn("plan names: List available plans failed; showing the plan ID", zap.String("subscriptionId", subscriptionID), zap.Error(err))
		if ok {
			return c.info
		}
		return fallback
	}
	for _, pl := range list {
		if pl.PlanID != planID {
			continue
		}
		info := planInfo{Name: pl.DisplayName, FreeTrial: pl.HasFreeTrials}
		if info.Name == "" {
			info.Name = planID
		}
		p.mu.Lock()
		p.byKey[key] = cachedPlan{info: info, fetched: time.Now()}
		p.mu.Unlock()
		return info
	}
	return fallback
}
