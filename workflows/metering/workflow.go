package metering

import (
	"fmt"
	"math"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	acts "saasengine/activities/metering"
	"saasengine/activities/notification"
	"saasengine/marketplace"
)

// MeteringWorkflow is one subscription's meter (type WorkflowType). It counts the reports it is
// signalled into buckets per dimension and clock hour, posts each bucket once its hour has closed (plus a
// grace for late reports) in batches of at most 25, and settles it by Microsoft's answer for that event:
// accepted or duplicate are done, permanent refusals and expired hours are recorded and dropped,
// anything else is posted again later.
// It continues as new after Options.SignalsPerRun signals and ends after Options.IdleTimeout without
// open buckets; the next report starts it again.
func MeteringWorkflow(ctx workflow.Context, in Input) (State, error) {
	m := newMeter(ctx, in)
	// An hour holds at most MaxQuantity. Runs that began before that cap keep summing as they did, up to
	// the largest finite quantity: a sum past it (+Inf) never completed a workflow task, so refusing it
	// replays, and heals a meter it had wedged.
	m.limit = math.MaxFloat64
	if workflow.GetVersion(ctx, "quantity-cap", workflow.DefaultVersion, 1) >= 1 {
		m.limit = MaxQuantity
	}
	return m.run(ctx)
}

type bucketKey struct {
	dimension string
	hour      int64
}

func keyOf(b *Bucket) bucketKey { return bucketKey{b.Dimension, b.Hour.Unix()} }

type meter struct {
	subscriptionID string
	opts           Options
	open           map[bucketKey]*Bucket
	seen           map[string]bool
	seenOrder      []string
	recent         []Outcome
	totals         Totals
	idleSince      *time.Time
	signals        int
	// limit is the most units a bucket may hold.
	limit float64
	// ctx is the workflow's root context, for its logger and metrics handler.
	ctx workflow.Context
	// outbox sends notices of usage not billed (notify.go).
	outbox notification.Outbox
}

func newMeter(ctx workflow.Context, in Input) *meter {
	m := &meter{
		subscriptionID: in.SubscriptionID,
		opts:           in.Options.withDefaults(),
		open:           map[bucketKey]*Bucket{},
		seen:           map[string]bool{},
		recent:         in.Recent,
		totals:         in.Totals,
		idleSince:      in.IdleSince,
		ctx:            ctx,
	}
	for i := range in.Buckets {
		b := in.Buckets[i]
		m.open[keyOf(&b)] = &b
	}
	for _, id := range in.SeenIDs {
		m.remember(id)
	}
	if len(m.open) == 0 && m.idleSince == nil {
		now := workflow.Now(ctx).UTC()
		m.idleSince = &now
	}
	return m
}

// activityOptions retry a batch that got no item-by-item answer (throttling after its Retry-After, 5xx,
// timeouts) for a while; past that, the buckets stay open and are posted again at the next wake-up.
func activityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 30 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
	}
}

func (m *meter) run(ctx workflow.Context) (State, error) {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return m.state(), nil }); err != nil {
		return State{}, err
	}
	if err := workflow.SetQueryHandler(ctx, QueryCounted, func(ids []string) ([]string, error) {
		counted := []string{}
		for _, id := range ids {
			if m.seen[id] {
				counted = append(counted, id)
			}
		}
		return counted, nil
	}); err != nil {
		return State{}, err
	}
	ch := workflow.GetSignalChannel(ctx, SignalUsage)
	actx := workflow.WithActivityOptions(ctx, activityOptions())
	var (
		timer       workflow.Future
		timerAt     time.Time
		cancelTimer workflow.CancelFunc
	)
	for {
		// Count every report already delivered before posting, so that a bucket goes out with all of them.
		m.drain(ctx, ch)
		m.postDue(actx)
		if m.signals >= m.opts.SignalsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			m.outbox.Flush(ctx, notification.FlushTimeout)
			m.drain(ctx, ch)
			return State{}, workflow.NewContinueAsNewError(ctx, WorkflowType, m.carry())
		}
		now := workflow.Now(ctx).UTC()
		next, ok := m.nextDue()
		if !ok {
			if m.idleSince == nil {
				m.idleSince = &now
			}
			end := m.idleSince.Add(m.opts.IdleTimeout)
			if !now.Before(end) {
				m.outbox.Flush(ctx, notification.FlushTimeout)
				// Reports that arrived meanwhile keep the meter running.
				if m.drain(ctx, ch) {
					continue
				}
				workflow.GetLogger(ctx).Info("metering idle; ending", "subscriptionId", m.subscriptionID)
				return m.state(), nil
			}
			next = end
		}
		if !next.After(now) {
			continue
		}
		if timer == nil || !timerAt.Equal(next) {
			if cancelTimer != nil {
				cancelTimer()
			}
			tctx, cancel := workflow.WithCancel(ctx)
			timer, timerAt, cancelTimer = workflow.NewTimer(tctx, next.Sub(now)), next, cancel
		}
		fired := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
			var reports []Usage
			c.Receive(ctx, &reports)
			m.add(workflow.Now(ctx).UTC(), reports)
		})
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.Select(ctx)
		if fired {
			timer, cancelTimer = nil, nil
		}
	}
}

// drain counts every signal already delivered; it reports whether there was one.
func (m *meter) drain(ctx workflow.Context, ch workflow.ReceiveChannel) bool {
	got := false
	for {
		var reports []Usage
		if !ch.ReceiveAsync(&reports) {
			return got
		}
		got = true
		m.add(workflow.Now(ctx).UTC(), reports)
	}
}

// add counts one signal's reports into their buckets.
func (m *meter) add(now time.Time, reports []Usage) {
	m.signals++
	for _, u := range reports {
		if u.ID != "" {
			if m.seen[u.ID] {
				m.totals.IgnoredReports++
				continue
			}
			m.remember(u.ID)
		}
		if reason := malformed(u, m.limit); reason != "" {
			// Only a caller that skipped Client.Report's checks gets here; the report cannot be billed.
			m.record(Outcome{Dimension: u.Dimension, Hour: hourOf(u.Time), Quantity: u.Quantity, PlanID: u.PlanID,
				Outcome: OutcomeRejected, Reason: "malformed report: " + reason, Settled: now})
			continue
		}
		k := bucketKey{u.Dimension, hourOf(u.Time).Unix()}
		b := m.open[k]
		if b != nil && b.Quantity+u.Quantity > m.limit {
			// The door checks each call alone; only the meter knows what the hour holds already. The hour
			// keeps what it had and is posted as usual.
			m.record(Outcome{Dimension: u.Dimension, Hour: hourOf(u.Time), Quantity: u.Quantity, PlanID: u.PlanID,
				Outcome: OutcomeRejected, Reason: fmt.Sprintf("the hour holds %v already; with this report it would hold more than %v, the most one hour can hold", b.Quantity, m.limit), Settled: now})
			continue
		}
		if b == nil {
			b = &Bucket{Dimension: u.Dimension, Hour: hourOf(u.Time)}
			m.open[k] = b
		}
		b.Quantity += u.Quantity
		b.Reports++
		b.LastReport = now
		if u.PlanID != "" {
			b.PlanID = u.PlanID
		}
		m.idleSince = nil
	}
}

func malformed(u Usage, limit float64) string {
	switch {
	case u.Dimension == "":
		return "no dimension"
	case math.IsNaN(u.Quantity) || math.IsInf(u.Quantity, 0) || u.Quantity <= 0:
		return "quantity must be greater than 0"
	case u.Quantity > limit:
		return fmt.Sprintf("quantity %v is more than %v, the most one hour can hold", u.Quantity, limit)
	case u.Time.IsZero():
		return "no time"
	}
	return ""
}

func (m *meter) remember(id string) {
	if m.seen[id] {
		return
	}
	m.seen[id] = true
	m.seenOrder = append(m.seenOrder, id)
	for len(m.seenOrder) > m.opts.MaxSeenIDs {
		delete(m.seen, m.seenOrder[0])
		m.seenOrder = m.seenOrder[1:]
	}
}

// dueAt is when a bucket is posted: once its hour has closed and no report came for it for the grace
// period, but early enough to stay inside Microsoft's window; after an Error, not before the retry time.
func (m *meter) dueAt(b *Bucket) time.Time {
	due := b.Hour.Add(time.Hour)
	if b.LastReport.After(due) {
		due = b.LastReport
	}
	due = due.Add(m.opts.Grace)
	if limit := b.Hour.Add(Window - m.opts.Grace); due.After(limit) {
		due = limit
	}
	if b.NotBefore.After(due) {
		due = b.NotBefore
	}
	return due
}

// sorted returns the open buckets oldest first, then by dimension: commands go out in a stable order.
func (m *meter) sorted() []*Bucket {
	out := make([]*Bucket, 0, len(m.open))
	//workflowcheck:ignore sorted below
	for _, b := range m.open {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Hour.Equal(out[j].Hour) {
			return out[i].Hour.Before(out[j].Hour)
		}
		return out[i].Dimension < out[j].Dimension
	})
	return out
}

func (m *meter) nextDue() (time.Time, bool) {
	var next time.Time
	for _, b := range m.sorted() {
		if d := m.dueAt(b); next.IsZero() || d.Before(next) {
			next = d
		}
	}
	return next, !next.IsZero()
}

// postDue posts every bucket that is due, 25 to a batch, and settles each by its answer.
func (m *meter) postDue(ctx workflow.Context) {
	now := workflow.Now(ctx).UTC()
	var due []*Bucket
	for _, b := range m.sorted() {
		if m.dueAt(b).After(now) {
			continue
		}
		if b.Hour.Add(Window).Before(now) {
			// Microsoft would refuse it; folding it into a later hour would bill usage in the wrong hour.
			m.settle(b, Outcome{Outcome: OutcomeExpired, Status: string(marketplace.UsageExpired),
				Reason: "older than Microsoft's 24-hour window when it was due; not posted"}, now)
			continue
		}
		due = append(due, b)
	}
	var a *acts.Activities
	for start := 0; start < len(due); start += marketplace.MaxBatchSize {
		batch := due[start:min(start+marketplace.MaxBatchSize, len(due))]
		in := acts.PostInput{SubscriptionID: m.subscriptionID, Events: make([]acts.Event, len(batch))}
		for i, b := range batch {
			in.Events[i] = acts.Event{Dimension: b.Dimension, Hour: b.Hour, Quantity: b.Quantity, PlanID: b.PlanID}
		}
		var res []acts.ItemResult
		err := workflow.ExecuteActivity(ctx, a.PostUsage, in).Get(ctx, &res)
		now := workflow.Now(ctx).UTC()
		for i, b := range batch {
			switch {
			case err != nil:
				m.retryLater(b, "posting failed: "+err.Error(), now)
			case i >= len(res):
				m.retryLater(b, "no answer for this event", now)
			default:
				m.apply(b, res[i], now)
			}
		}
	}
}

// permanent are Microsoft's refusals that posting again cannot change.
var permanent = map[marketplace.UsageEventStatus]bool{
	marketplace.UsageResourceNotActive:     true,
	marketplace.UsageResourceNotFound:      true,
	marketplace.UsageResourceNotAuthorized: true,
	marketplace.UsageInvalidDimension:      true,
	marketplace.UsageInvalidQuantity:       true,
	marketplace.UsageBadArgument:           true,
}

func (m *meter) apply(b *Bucket, r acts.ItemResult, now time.Time) {
	o := Outcome{Status: string(r.Status), UsageEventID: r.UsageEventID, PlanID: r.PlanID, Reason: r.Message}
	switch {
	case r.Status == marketplace.UsageAccepted:
		o.Outcome, o.Reason = OutcomeAccepted, ""
	case r.Status == marketplace.UsageDuplicate:
		// Microsoft has this hour already (an earlier post whose answer was lost, or usage that came
		// after the hour was posted): nothing more can be billed for it; record whether it differs.
		o.Outcome, o.AcceptedQuantity = OutcomeDuplicate, r.AcceptedQuantity
		o.QuantityDiffers = math.Abs(r.AcceptedQuantity-b.Quantity) > 1e-9*math.Max(1, b.Quantity)
	case r.Status == marketplace.UsageExpired:
		o.Outcome = OutcomeExpired
	case permanent[r.Status]:
		o.Outcome = OutcomeRejected
	default:
		m.retryLater(b, string(r.Status)+": "+r.Message, now)
		return
	}
	m.settle(b, o, now)
}

// settle closes a bucket with its outcome.
func (m *meter) settle(b *Bucket, o Outcome, now time.Time) {
	o.Dimension, o.Hour, o.Quantity, o.Settled = b.Dimension, b.Hour, b.Quantity, now
	if o.PlanID == "" {
		o.PlanID = b.PlanID
	}
	delete(m.open, keyOf(b))
	m.record(o)
	if len(m.open) == 0 {
		m.idleSince = &now
	}
}

func (m *meter) record(o Outcome) {
	switch o.Outcome {
	case OutcomeAccepted:
		m.totals.Accepted++
	case OutcomeDuplicate:
		m.totals.Duplicate++
	case OutcomeRejected:
		m.totals.Rejected++
	case OutcomeExpired:
		m.totals.Expired++
	}
	m.count(o.Outcome)
	m.recent = append(m.recent, o)
	if len(m.recent) > maxRecent {
		m.recent = append([]Outcome(nil), m.recent[len(m.recent)-maxRecent:]...)
	}
	if o.Outcome != OutcomeAccepted && o.Outcome != OutcomeDuplicate {
		workflow.GetLogger(m.ctx).Warn("usage not billed", "subscriptionId", m.subscriptionID, "dimension", o.Dimension,
			"hour", o.Hour, "quantity", o.Quantity, "outcome", o.Outcome, "status", o.Status, "reason", o.Reason)
		m.notify(o)
	}
}

// retryLater keeps a bucket open for another post after RetryInterval.
func (m *meter) retryLater(b *Bucket, reason string, now time.Time) {
	b.Attempts++
	b.LastError = reason
	b.NotBefore = now.Add(m.opts.RetryInterval)
	m.totals.Errors++
	m.count(OutcomeError)
}

// count adds to the events metric; the SDK's handler records nothing during replay.
func (m *meter) count(outcome string) {
	workflow.GetMetricsHandler(m.ctx).WithTags(map[string]string{"outcome": outcome}).Counter(MetricEvents).Inc(1)
}

func (m *meter) state() State {
	st := State{SubscriptionID: m.subscriptionID, Open: []Bucket{}, Recent: append([]Outcome{}, m.recent...), Totals: m.totals, IdleSince: m.idleSince}
	for _, b := range m.sorted() {
		st.Open = append(st.Open, *b)
	}
	return st
}

// carry is the next run's input.
func (m *meter) carry() Input {
	st := m.state()
	return Input{
		SubscriptionID: m.subscriptionID, Options: m.opts, Buckets: st.Open, SeenIDs: append([]string(nil), m.seenOrder...),
		Recent: st.Recent, Totals: m.totals, IdleSince: m.idleSince,
	}
}
