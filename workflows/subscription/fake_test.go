package subscription

import (
	"context"
	"fmt"
	"sync"
	"time"

	"saasengine/marketplace"
)

// fakeMarket is an in-memory Marketplace with scripted failures. Operations the publisher starts stay
// InProgress for polls reads of Get operation, then end as outcome.
type fakeMarket struct {
	mu      sync.Mutex
	now     func() time.Time
	subs    map[string]*marketplace.Subscription
	ops     map[string]*marketplace.Operation
	left    map[string]int // reads before a publisher operation ends
	end     map[string]marketplace.OperationStatus
	plans   []marketplace.Plan
	errs    map[string][]error // next errors per method
	calls   map[string][]time.Time
	polls   int
	outcome marketplace.OperationStatus
	nextID  int
	// lose makes the next writes of a method create their operation, then fail as if the answer was lost.
	lose map[string]int
	// completeLost makes an operation whose answer was lost succeed at once (no longer outstanding).
	completeLost bool
	// lag delays what Get subscription shows after a change, as Microsoft's reads lag its operations.
	lag   time.Duration
	shown map[string][]shownAt
}

// shownAt is a subscription record that reads show from a point of time on.
type shownAt struct {
	from time.Time
	sub  marketplace.Subscription
}

// publish makes the subscription's current record visible to reads after the lag; the caller holds f.mu.
func (f *fakeMarket) publish(id string) {
	if s, ok := f.subs[id]; ok {
		f.shown[id] = append(f.shown[id], shownAt{from: f.now().Add(f.lag), sub: *s})
	}
}

// read is what Get subscription shows now: the newest record published at least lag ago.
func (f *fakeMarket) read(id string) (marketplace.Subscription, bool) {
	recs := f.shown[id]
	now := f.now()
	for i := len(recs) - 1; i >= 0; i-- {
		if !recs[i].from.After(now) {
			return recs[i].sub, true
		}
	}
	if len(recs) > 0 {
		return recs[0].sub, true
	}
	return marketplace.Subscription{}, false
}

func newFake(subs ...marketplace.Subscription) *fakeMarket {
	f := &fakeMarket{subs: map[string]*marketplace.Subscription{}, ops: map[string]*marketplace.Operation{},
		left: map[string]int{}, end: map[string]marketplace.OperationStatus{}, errs: map[string][]error{},
		calls: map[string][]time.Time{}, lose: map[string]int{}, shown: map[string][]shownAt{}, outcome: marketplace.OperationSucceeded, polls: 2, now: time.Now,
		plans: []marketplace.Plan{{PlanID: "basic", IsPricePerSeat: true, MinQuantity: 1, MaxQuantity: 100}, {PlanID: "gold"}, {PlanID: "platinum"}}}
	for _, s := range subs {
		s := s
		f.subs[s.ID] = &s
		f.shown[s.ID] = []shownAt{{sub: s}}
	}
	return f
}

func (f *fakeMarket) fail(method string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = append(f.errs[method], errs...)
}

// enter records a call and pops its scripted error; the caller holds f.mu.
func (f *fakeMarket) enter(method string) error {
	f.calls[method] = append(f.calls[method], f.now())
	if q := f.errs[method]; len(q) > 0 {
		f.errs[method] = q[1:]
		return q[0]
	}
	return nil
}

func (f *fakeMarket) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls[method])
}

func (f *fakeMarket) times(method string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls[method]...)
}

func (f *fakeMarket) sub(id string) marketplace.Subscription {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.subs[id]
}

func (f *fakeMarket) op(id string) marketplace.Operation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.ops[id]
}

func (f *fakeMarket) setStatus(id string, s marketplace.SubscriptionStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[id].Status = s
	f.publish(id)
}

// announce creates an operation Microsoft initiated and returns its webhook. Notify-only actions are
// already in effect (Microsoft changes state first); decidable ones wait InProgress.
func (f *fakeMarket) announce(subID string, action marketplace.Action, planID string, qty int64) marketplace.WebhookEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	op := &marketplace.Operation{ID: fmt.Sprintf("op-%d", f.nextID), SubscriptionID: subID, Action: action, PlanID: planID,
		Quantity: marketplace.Quantity(qty), Status: marketplace.OperationInProgress, OperationRequestSource: marketplace.SourceAzure,
		TimeStamp: marketplace.NewTime(f.now())}
	switch action {
	case marketplace.ActionSuspend, marketplace.ActionUnsubscribe, marketplace.ActionRenew:
		op.Status = marketplace.OperationSucceeded
		f.apply(op)
	}
	f.ops[op.ID] = op
	sub := *f.subs[subID]
	return marketplace.WebhookEvent{ID: op.ID, SubscriptionID: subID, Action: action, PlanID: planID,
		Quantity: marketplace.Quantity(qty), Status: op.Status, OperationRequestSource: op.OperationRequestSource, Subscription: &sub}
}

// apply makes an operation's effect on its subscription; the caller holds f.mu.
func (f *fakeMarket) apply(op *marketplace.Operation) {
	s := f.subs[op.SubscriptionID]
	switch op.Action {
	case marketplace.ActionChangePlan:
		s.PlanID = op.PlanID
	case marketplace.ActionChangeQuantity:
		s.Quantity = op.Quantity
	case marketplace.ActionSuspend:
		s.Status = marketplace.StatusSuspended
	case marketplace.ActionReinstate:
		s.Status = marketplace.StatusSubscribed
	case marketplace.ActionUnsubscribe:
		s.Status = marketplace.StatusUnsubscribed
	case marketplace.ActionRenew:
		s.Term.StartDate = s.Term.EndDate
		s.Term.EndDate = marketplace.NewTime(s.Term.EndDate.AddDate(1, 0, 0))
	}
	f.publish(op.SubscriptionID)
}

func notFound(op string) error {
	return &marketplace.Error{Op: op, StatusCode: 404, Code: "EntityNotFound", Message: "not found"}
}

func (f *fakeMarket) GetSubscription(ctx context.Context, id string) (*marketplace.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetSubscription"); err != nil {
		return nil, err
	}
	c, ok := f.read(id)
	if !ok {
		return nil, notFound("get subscription")
	}
	return &c, nil
}

func (f *fakeMarket) Activate(ctx context.Context, id string, plan marketplace.SubscriberPlan) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Activate"); err != nil {
		return err
	}
	s, ok := f.subs[id]
	if !ok {
		return notFound("activate")
	}
	if s.Status != marketplace.StatusPendingFulfillmentStart {
		return &marketplace.Error{Op: "activate", StatusCode: 400, Code: "BadRequest", Message: "subscription is " + string(s.Status)}
	}
	s.Status = marketplace.StatusSubscribed
	s.PlanID, s.Quantity = plan.PlanID, plan.Quantity
	f.publish(id)
	return nil
}

func (f *fakeMarket) GetOperation(ctx context.Context, subID, opID string) (*marketplace.Operation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("GetOperation"); err != nil {
		return nil, err
	}
	op, ok := f.ops[opID]
	if !ok || op.SubscriptionID != subID {
		return nil, notFound("get operation")
	}
	if n, ok := f.left[opID]; ok && op.Status == marketplace.OperationInProgress {
		if n <= 0 {
			op.Status = f.end[opID]
			if op.Status == marketplace.OperationSucceeded {
				f.apply(op)
			}
		} else {
			f.left[opID] = n - 1
		}
	}
	c := *op
	return &c, nil
}

func (f *fakeMarket) ListOperations(ctx context.Context, subID string) ([]marketplace.Operation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListOperations"); err != nil {
		return nil, err
	}
	var out []marketplace.Operation
	for i := 1; i <= f.nextID; i++ {
		if op, ok := f.ops[fmt.Sprintf("op-%d", i)]; ok && op.SubscriptionID == subID && op.Status == marketplace.OperationInProgress {
			out = append(out, *op)
		}
	}
	return out, nil
}

func (f *fakeMarket) UpdateOperation(ctx context.Context, subID, opID string, u marketplace.OperationUpdate) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("UpdateOperation:" + string(u.Status)); err != nil {
		return err
	}
	op, ok := f.ops[opID]
	if !ok {
		return notFound("update operation")
	}
	if op.Status != marketplace.OperationInProgress {
		return &marketplace.Error{Op: "update operation", StatusCode: 409, Code: "Conflict", Message: "operation already " + string(op.Status)}
	}
	if u.Status == marketplace.UpdateSuccess {
		op.Status = marketplace.OperationSucceeded
		f.apply(op)
	} else {
		op.Status = marketplace.OperationFailed
	}
	return nil
}

func (f *fakeMarket) ListAvailablePlans(ctx context.Context, subID, planID string) ([]marketplace.Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("ListAvailablePlans"); err != nil {
		return nil, err
	}
	return append([]marketplace.Plan(nil), f.plans...), nil
}

func (f *fakeMarket) start(method, subID string, action marketplace.Action, planID string, qty int64) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter(method); err != nil {
		return "", err
	}
	f.nextID++
	op := &marketplace.Operation{ID: fmt.Sprintf("op-%d", f.nextID), SubscriptionID: subID, Action: action, PlanID: planID,
		Quantity: marketplace.Quantity(qty), Status: marketplace.OperationInProgress, OperationRequestSource: marketplace.SourcePartner,
		TimeStamp: marketplace.NewTime(f.now())}
	f.ops[op.ID] = op
	f.left[op.ID] = f.polls
	f.end[op.ID] = f.outcome
	if f.lose[method] > 0 {
		f.lose[method]--
		if f.completeLost {
			op.Status = marketplace.OperationSucceeded
			f.apply(op)
		}
		return "", &marketplace.Error{Op: method, StatusCode: 503, Retryable: true, Message: "answer lost"}
	}
	return op.ID, nil
}

func (f *fakeMarket) ChangePlan(ctx context.Context, subID, planID string) (string, error) {
	return f.start("ChangePlan", subID, marketplace.ActionChangePlan, planID, 0)
}

func (f *fakeMarket) ChangeQuantity(ctx context.Context, subID string, qty int64) (string, error) {
	return f.start("ChangeQuantity", subID, marketplace.ActionChangeQuantity, "", qty)
}

func (f *fakeMarket) DeleteSubscription(ctx context.Context, subID string) (string, error) {
	return f.start("DeleteSubscription", subID, marketplace.ActionUnsubscribe, "", 0)
}
