// Package reconciliation holds reconciliation's activities: reading pages of Microsoft's subscriptions and
// comparing each with its workflow (through the Engine it is given), and the Report they add up to.
package reconciliation

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"

	"saasengine/activities"
	"saasengine/marketplace"
)

// Marketplace is what reconciliation reads from Microsoft.
type Marketplace interface {
	ListSubscriptionsPage(ctx context.Context, nextLink string) (*marketplace.SubscriptionsPage, error)
	ListOperations(ctx context.Context, subscriptionID string) ([]marketplace.Operation, error)
}

// Ours is the engine's view of one subscription, as its workflow reports it.
type Ours struct {
	Status   marketplace.SubscriptionStatus
	PlanID   string
	Quantity int64
	TermEnd  time.Time
	// PendingOperationIDs are the operations the workflow is already handling.
	PendingOperationIDs []string
	// Closed is true once the workflow ended (after Unsubscribe).
	Closed bool
	// Tenant is what the ISV's provisioning last applied, when the tenant exists.
	Tenant *Tenant
	// NeedsAttention is true while a failed phase waits for a retry.
	NeedsAttention bool
}

// Tenant is the tenant's side of a subscription, as the workflow last applied it.
type Tenant struct {
	PlanID    string
	Quantity  int64
	Suspended bool
}

// Engine is what reconciliation asks of the subscription workflows.
type Engine interface {
	// Ours returns the workflow's view; found is false when no workflow exists for the subscription, or
	// only one that ended without the subscription ending (failed, terminated), which adoption replaces.
	Ours(ctx context.Context, subscriptionID string) (ours Ours, found bool, err error)
	// Snapshot hands Microsoft's view to the subscription's workflow, starting it when there is none.
	Snapshot(ctx context.Context, sub marketplace.Subscription) error
}

// Activities are reconciliation's activities.
type Activities struct {
	Marketplace Marketplace
	Engine      Engine
	// Concurrency bounds how many subscriptions of a page are checked at once; default 10.
	Concurrency int
	// CheckTimeout bounds the check of one subscription (reads and a snapshot); default a minute. A
	// check past it is counted as an error and the page goes on.
	CheckTimeout time.Duration
}

// heartbeatEvery is how often a page reports it is alive, whatever its checks are doing: a page of hung
// checks must not look dead to Temporal (its heartbeat timeout is a minute) and be run again every hour.
const heartbeatEvery = 10 * time.Second

// Page is one page of Microsoft's subscriptions.
type Page struct {
	Subscriptions []marketplace.Subscription `json:"subscriptions"`
	NextLink      string                     `json:"nextLink,omitempty"`
}

// FetchPage reads one page of List subscriptions.
func (a *Activities) FetchPage(ctx context.Context, nextLink string) (Page, error) {
	p, err := a.Marketplace.ListSubscriptionsPage(ctx, nextLink)
	if err != nil {
		// Classified as for every other Marketplace call: a 403 or a refused credential stops the run at
		// once, throttling waits for Retry-After.
		return Page{}, activities.MapError(ctx, err)
	}
	return Page{Subscriptions: p.Subscriptions, NextLink: p.NextLink}, nil
}

// ReconcilePage compares each subscription with its workflow and sends snapshots where they differ.
// Errors on one subscription are counted, not fatal: the next run tries again.
func (a *Activities) ReconcilePage(ctx context.Context, subs []marketplace.Subscription) (Report, error) {
	conc := a.Concurrency
	if conc <= 0 {
		conc = 10
	}
	checkTimeout := a.CheckTimeout
	if checkTimeout <= 0 {
		checkTimeout = time.Minute
	}
	var dispatched atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, dispatched.Load())
			}
		}
	}()
	var (
		mu     sync.Mutex
		report = Report{Drift: map[string]int{}}
		wg     sync.WaitGroup
		sem    = make(chan struct{}, conc)
	)
	for i, sub := range subs {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			out, kinds, err := a.reconcileOne(cctx, sub)
			mu.Lock()
			defer mu.Unlock()
			report.Seen++
			// Drift found is counted even when acting on it failed: it is there all the same.
			for _, k := range kinds {
				report.Drift[k]++
			}
			if err != nil {
				report.Errors++
				if len(report.ErrorSamples) < maxErrorSamples {
					report.ErrorSamples = append(report.ErrorSamples, fmt.Sprintf("%s: %v", sub.ID, err))
				}
				return
			}
			switch out {
			case outInSync:
				report.InSync++
			case outAdopted:
				report.Adopted++
			case outHealed:
				report.Healed++
			case outIgnored:
				report.Ignored++
			}
		}()
		dispatched.Store(int64(i + 1))
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return report, err
	}
	return report, nil
}

type outcome int

const (
	outInSync outcome = iota
	outAdopted
	outHealed
	outIgnored
)

func (a *Activities) reconcileOne(ctx context.Context, theirs marketplace.Subscription) (outcome, []string, error) {
	ours, found, err := a.Engine.Ours(ctx, theirs.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("reading our state: %w", err)
	}
	if !found {
		if theirs.Status == marketplace.StatusUnsubscribed {
			return outIgnored, nil, nil
		}
		if err := a.Engine.Snapshot(ctx, theirs); err != nil {
			return 0, nil, fmt.Errorf("adopting: %w", err)
		}
		return outAdopted, []string{DriftUnknown}, nil
	}
	if ours.Closed && theirs.Status == marketplace.StatusUnsubscribed {
		// Ended on both sides: nothing is left to heal, whatever else Microsoft's record still says.
		return outInSync, nil, nil
	}
	if ours.Closed {
		// Unsubscribed is terminal on both sides; a closed workflow facing anything else is a real
		// inconsistency an operator must look at (its plan and seats are not compared: it has none left).
		return 0, []string{DriftStatus}, fmt.Errorf("workflow has ended but Microsoft reports %s", theirs.Status)
	}
	kinds := Compare(theirs, ours)
	if theirs.Status == marketplace.StatusSubscribed || theirs.Status == marketplace.StatusSuspended {
		ops, err := listOperations(ctx, a.Marketplace, theirs.ID)
		if err != nil {
			return 0, nil, fmt.Errorf("listing outstanding operations: %w", err)
		}
		if unhandled(ops, ours.PendingOperationIDs) {
			kinds = append(kinds, DriftOutstanding)
		}
	}
	if len(kinds) == 0 {
		return outInSync, nil, nil
	}
	if err := a.Engine.Snapshot(ctx, theirs); err != nil {
		return 0, kinds, fmt.Errorf("sending snapshot: %w", err)
	}
	return outHealed, kinds, nil
}

// listOperations reads a subscription's outstanding operations, trying a throttled or failed read again a
// few times within the page's activity: one transient failure would otherwise leave the subscription
// unchecked until the next run, an hour later.
func listOperations(ctx context.Context, m Marketplace, subscriptionID string) ([]marketplace.Operation, error) {
	const attempts = 4
	wait := 500 * time.Millisecond
	for i := 1; ; i++ {
		ops, err := m.ListOperations(ctx, subscriptionID)
		if err == nil || i == attempts || !marketplace.IsRetryable(err) {
			return ops, err
		}
		d := wait
		if me, ok := marketplace.AsError(err); ok && me.RetryAfter > d {
			d = min(me.RetryAfter, maxReadRetryWait)
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(d):
		}
		wait *= 2
	}
}

// maxReadRetryWait caps a Retry-After honoured inside a page, so that one throttled read cannot hold the
// page past its heartbeat.
const maxReadRetryWait = 10 * time.Second

// Compare lists how Microsoft's view of a subscription differs from ours.
func Compare(theirs marketplace.Subscription, ours Ours) []string {
	var kinds []string
	if theirs.Status != ours.Status {
		kinds = append(kinds, DriftStatus)
	}
	if theirs.PlanID != ours.PlanID {
		kinds = append(kinds, DriftPlan)
	}
	// Microsoft drops the quantity of a per-seat subscription once it is Unsubscribed: no quantity there
	// says nothing about the seats.
	quantityDropped := theirs.Status == marketplace.StatusUnsubscribed && theirs.Quantity == 0
	if int64(theirs.Quantity) != ours.Quantity && !quantityDropped {
		kinds = append(kinds, DriftQuantity)
	}
	if !theirs.Term.EndDate.IsZero() && !theirs.Term.EndDate.Time.Equal(ours.TermEnd) {
		kinds = append(kinds, DriftTerm)
	}
	// The third side: the tenant must follow Microsoft too, and a failed phase waits for a retry that a
	// snapshot gives.
	if t := ours.Tenant; (t != nil && (t.PlanID != theirs.PlanID || t.Quantity != int64(theirs.Quantity) ||
		t.Suspended != (theirs.Status == marketplace.StatusSuspended))) || ours.NeedsAttention {
		kinds = append(kinds, DriftTenant)
	}
	return kinds
}

func unhandled(ops []marketplace.Operation, pending []string) bool {
	for _, op := range ops {
		known := false
		for _, id := range pending {
			if id == op.ID {
				known = true
			}
		}
		if !known {
			return true
		}
	}
	return false
}
