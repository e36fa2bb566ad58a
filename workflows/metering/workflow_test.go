package metering_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	acts "saasengine/activities/metering"
	"saasengine/config"
	"saasengine/internal/promtest"
	"saasengine/marketplace"
	"saasengine/workflows/metering"
)

const subID = "5b4c9c1e-8f3a-4d2b-9e6f-1a2b3c4d5e6f"

// start is the workflow's start time in every test: 20 minutes into the 10:00 hour.
var start = time.Date(2026, 11, 25, 10, 20, 0, 0, time.UTC)

// fakeMarketplace answers batches as Microsoft does: one accepted event per dimension and hour, Duplicate
// for the rest, and whatever status refuse picks for an event.
type fakeMarketplace struct {
	mu       sync.Mutex
	plan     string
	accepted map[string]float64
	batches  [][]marketplace.UsageEvent
	gets     int
	// refuse returns a status other than Accepted for an event on its nth post (1-based), or "".
	refuse func(ev marketplace.UsageEvent, nth int) marketplace.UsageEventStatus
	posts  map[string]int
	// fail fails the next calls with these errors, one per call.
	fail []error
}

func newFake() *fakeMarketplace {
	return &fakeMarketplace{plan: "metered", accepted: map[string]float64{}, posts: map[string]int{}}
}

func key(dimension string, hour time.Time) string {
	return dimension + "|" + hour.UTC().Format(time.RFC3339)
}

func (f *fakeMarketplace) GetSubscription(context.Context, string) (*marketplace.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	return &marketplace.Subscription{ID: subID, PlanID: f.plan, Status: marketplace.StatusSubscribed}, nil
}

func (f *fakeMarketplace) PostBatchUsageEvents(_ context.Context, events []marketplace.UsageEvent) (*marketplace.BatchUsageEventResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(events) == 0 || len(events) > marketplace.MaxBatchSize {
		return nil, marketplace.ErrBatchSize
	}
	if len(f.fail) > 0 {
		err := f.fail[0]
		f.fail = f.fail[1:]
		return nil, err
	}
	f.batches = append(f.batches, append([]marketplace.UsageEvent(nil), events...))
	res := &marketplace.BatchUsageEventResult{Count: len(events)}
	for _, ev := range events {
		k := key(ev.Dimension, ev.EffectiveStartTime.Time)
		f.posts[k]++
		r := marketplace.UsageEventResult{Status: marketplace.UsageAccepted, ResourceID: ev.ResourceID, Quantity: ev.Quantity,
			Dimension: ev.Dimension, EffectiveStartTime: ev.EffectiveStartTime, PlanID: ev.PlanID}
		if s := f.refuseFor(ev, f.posts[k]); s != "" {
			r.Status = s
			r.Error = &marketplace.UsageEventConflict{Code: string(s), Message: "refused: " + string(s)}
		} else if q, dup := f.accepted[k]; dup {
			r.Status = marketplace.UsageDuplicate
			r.Error = &marketplace.UsageEventConflict{Code: "Conflict", Message: "This usage event already exist."}
			r.Error.AdditionalInfo.AcceptedMessage = &marketplace.UsageEventResult{UsageEventID: "earlier-" + k, Status: marketplace.UsageDuplicate, Quantity: q}
		} else {
			f.accepted[k] = ev.Quantity
			r.UsageEventID = "event-" + k
		}
		res.Result = append(res.Result, r)
	}
	return res, nil
}

func (f *fakeMarketplace) refuseFor(ev marketplace.UsageEvent, nth int) marketplace.UsageEventStatus {
	if f.refuse == nil {
		return ""
	}
	return f.refuse(ev, nth)
}

// posted returns every event posted, in order.
func (f *fakeMarketplace) posted() []marketplace.UsageEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []marketplace.UsageEvent
	for _, b := range f.batches {
		out = append(out, b...)
	}
	return out
}

func newEnv(t *testing.T, f *fakeMarketplace, suite *testsuite.WorkflowTestSuite) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	if suite == nil {
		suite = &testsuite.WorkflowTestSuite{}
	}
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(metering.MeteringWorkflow, workflow.RegisterOptions{Name: metering.WorkflowType})
	env.RegisterActivity(&acts.Activities{Marketplace: f})
	env.SetStartTime(start)
	env.SetTestTimeout(time.Minute)
	return env
}

// report signals reports after d of workflow time.
func report(env *testsuite.TestWorkflowEnvironment, d time.Duration, reports ...metering.Usage) {
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(metering.SignalUsage, reports) }, d)
}

func query(t *testing.T, env *testsuite.TestWorkflowEnvironment) metering.State {
	t.Helper()
	v, err := env.QueryWorkflow(metering.QueryState)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	var st metering.State
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func result(t *testing.T, env *testsuite.TestWorkflowEnvironment) metering.State {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var st metering.State
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func at(hh, mm int) time.Time { return time.Date(2026, 11, 25, hh, mm, 0, 0, time.UTC) }

func usage(dimension string, q float64, t time.Time) metering.Usage {
	return metering.Usage{Dimension: dimension, Quantity: q, Time: t}
}

// outcomes indexes the recent outcomes by dimension and hour.
func outcomes(st metering.State) map[string]metering.Outcome {
	out := map[string]metering.Outcome{}
	for _, o := range st.Recent {
		out[key(o.Dimension, o.Hour)] = o
	}
	return out
}

func TestReportsAddUpToOneEventPerDimensionAndHourPostedOnceTheHourCloses(t *testing.T) {
	f := newFake()
	env := newEnv(t, f, nil)
	report(env, time.Minute, usage("api_calls", 2, at(10, 5)), usage("storage_gb", 1.5, at(10, 10)))
	report(env, 5*time.Minute, usage("api_calls", 3, at(10, 24)))
	// A closed hour: posted once its grace has passed, in its own event.
	report(env, 6*time.Minute, usage("api_calls", 4, at(9, 30)), metering.Usage{Dimension: "api_calls", Quantity: 1, Time: at(9, 45), PlanID: "metered-v2"})
	report(env, 30*time.Minute, usage("api_calls", 0.25, at(10, 49)))
	// 10:59: the 10:00 hour is still open; only the 9:00 one went out.
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if len(st.Open) != 2 || st.Open[0].Dimension != "api_calls" || st.Open[0].Quantity != 5.25 || st.Open[0].Reports != 3 || st.Open[1].Quantity != 1.5 {
			t.Errorf("open buckets at 10:59: %+v", st.Open)
		}
		if p := f.posted(); len(p) != 1 || p[0].Dimension != "api_calls" || !p[0].EffectiveStartTime.Equal(at(9, 0)) || p[0].Quantity != 5 || p[0].PlanID != "metered-v2" {
			t.Errorf("posted by 10:59: %+v", p)
		}
	}, 39*time.Minute)
	env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID})
	st := result(t, env)

	posted := f.posted()
	want := map[string]float64{key("api_calls", at(9, 0)): 5, key("api_calls", at(10, 0)): 5.25, key("storage_gb", at(10, 0)): 1.5}
	if len(posted) != len(want) {
		t.Fatalf("posted %d events, want %d: %+v", len(posted), len(want), posted)
	}
	for _, ev := range posted {
		k := key(ev.Dimension, ev.EffectiveStartTime.Time)
		if q, ok := want[k]; !ok || q != ev.Quantity || ev.ResourceID != subID {
			t.Errorf("posted %s quantity %v for %s", k, ev.Quantity, ev.ResourceID)
		}
		if ev.EffectiveStartTime.Hour() == 10 && ev.PlanID != "metered" {
			t.Errorf("%s: plan %q, want the subscription's current plan", k, ev.PlanID)
		}
	}
	byKey := outcomes(st)
	for k := range want {
		o := byKey[k]
		if o.Outcome != metering.OutcomeAccepted || o.UsageEventID != "event-"+k {
			t.Errorf("%s: outcome %+v", k, o)
		}
		// Never before the hour closed and the grace passed.
		if o.Settled.Before(o.Hour.Add(time.Hour + 5*time.Minute)) {
			t.Errorf("%s settled at %s, before its hour closed", k, o.Settled)
		}
	}
	if st.Totals.Accepted != 3 || len(st.Open) != 0 {
		t.Errorf("state %+v", st)
	}
}

func TestAReportIDIsCountedOnce(t *testing.T) {
	f := newFake()
	env := newEnv(t, f, nil)
	r := metering.Usage{ID: "job-42", Dimension: "api_calls", Quantity: 2, Time: at(10, 5)}
	report(env, time.Minute, r)
	report(env, 2*time.Minute, r, usage("api_calls", 1, at(10, 6)))
	env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID})
	st := result(t, env)
	if p := f.posted(); len(p) != 1 || p[0].Quantity != 3 {
		t.Fatalf("posted %+v, want one event of 3", p)
	}
	if st.Totals.IgnoredReports != 1 {
		t.Errorf("ignored %d reports, want 1", st.Totals.IgnoredReports)
	}
}

func TestMoreThan25ClosedBucketsGoInBatchesOf25(t *testing.T) {
	f := newFake()
	env := newEnv(t, f, nil)
	var rs []metering.Usage
	for i := range 30 {
		rs = append(rs, usage(fmt.Sprintf("dim_%02d", i), 1, at(8, 30)))
	}
	report(env, time.Minute, rs...)
	env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID})
	st := result(t, env)
	if len(f.batches) != 2 || len(f.batches[0]) != 25 || len(f.batches[1]) != 5 {
		sizes := []int{}
		for _, b := range f.batches {
			sizes = append(sizes, len(b))
		}
		t.Fatalf("batch sizes %v, want [25 5]", sizes)
	}
	if st.Totals.Accepted != 30 {
		t.Errorf("accepted %d", st.Totals.Accepted)
	}
	if f.gets != 2 {
		t.Errorf("read the plan %d times, want once per batch", f.gets)
	}
}

func TestADuplicateIsDoneAndRecordsWhatMicrosoftHas(t *testing.T) {
	f := newFake()
	f.accepted[key("api_calls", at(9, 0))] = 7 // an earlier post whose answer was lost, or another sender
	env := newEnv(t, f, nil)
	report(env, time.Minute, usage("api_calls", 5, at(9, 10)))
	env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID})
	st := result(t, env)
	o := outcomes(st)[key("api_calls", at(9, 0))]
	if o.Outcome != metering.OutcomeDuplicate || o.AcceptedQuantity != 7 || !o.QuantityDiffers || o.UsageEventID == "" {
		t.Fatalf("outcome %+v", o)
	}
	if n := len(f.posted()); n != 1 {
		t.Errorf("posted %d times, want once", n)
	}
	if st.Totals.Duplicate != 1 || st.Totals.Errors != 0 {
		t.Errorf("totals %+v", st.Totals)
	}
}

func TestAPermanentRefusalIsRecordedAndNotRetried(t *testing.T) {
	m, err := config.NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	var suite testsuite.WorkflowTestSuite
	suite.SetMetricsHandler(m.Handler)
	f := newFake()
	f.refuse = func(ev marketplace.UsageEvent, _ int) marketplace.UsageEventStatus {
		if ev.Dimension == "gpu_hours" {
			return marketplace.UsageInvalidDimension
		}
		return ""
	}
	env := newEnv(t, f, &suite)
	report(env, time.Minute, usage("gpu_hours", 3, at(9, 10)), usage("api_calls", 1, at(9, 10)))
	env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID})
	st := result(t, env)
	o := outcomes(st)[key("gpu_hours", at(9, 0))]
	if o.Outcome != metering.OutcomeRejected || o.Status != "InvalidDimension" || o.Reason == "" {
		t.Fatalf("outcome %+v", o)
	}
	if f.posts[key("gpu_hours", at(9, 0))] != 1 {
		t.Errorf("the refused event was posted %d times", f.posts[key("gpu_hours", at(9, 0))])
	}
	if st.Totals.Rejected != 1 || st.Totals.Accepted != 1 {
		t.Errorf("totals %+v", st.Totals)
	}

	page := promtest.Scrape(t, m.HTTPHandler())
	for outcome, want := range map[string]float64{"accepted": 1, "rejected": 1} {
		if got, ok := promtest.Value(page, metering.MetricEvents+"_total", map[string]string{"outcome": outcome}); !ok || got != want {
			t.Errorf("saas_metering_events_total{outcome=%q}: got %v (found %v), want %v\n%s", outcome, got, ok, want, page)
		}
	}
}

func TestAnErrorIsPostedAgainAtTheNextWake(t *testing.T) {
	f := newFake()
	f.refuse = func(ev marketplace.UsageEvent, nth int) marketplace.UsageEventStatus {
		if nth == 1 {
			return marketplace.UsageError
		}
		return ""
	}
	env := newEnv(t, f, nil)
	report(env, time.Minute, usage("api_calls", 2, at(9, 10)))
	// Between the two posts the bucket is open with the error.
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if len(st.Open) != 1 || st.Open[0].Attempts != 1 || st.Open[0].LastError == "" {
			t.Errorf("open after the error: %+v", st.Open)
		}
	}, 10*time.Minute)
	env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID})
	st := result(t, env)
	o := outcomes(st)[key("api_calls", at(9, 0))]
	if o.Outcome != metering.OutcomeAccepted || f.posts[key("api_calls", at(9, 0))] != 2 {
		t.Fatalf("outcome %+v after %d posts", o, f.posts[key("api_calls", at(9, 0))])
	}
	if st.Totals.Errors != 1 {
		t.Errorf("totals %+v", st.Totals)
	}
}

func TestAFailedCallKeepsTheBucketsForLater(t *testing.T) {
	f := newFake()
	// A 403 will not fix itself within the activity's retries; the buckets wait for the next wake-up.
	f.fail = []error{&marketplace.Error{Op: "post usage batch", StatusCode: 403, Code: "Forbidden"}}
	env := newEnv(t, f, nil)
	report(env, time.Minute, usage("api_calls", 2, at(9, 10)))
	env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID})
	st := result(t, env)
	if o := outcomes(st)[key("api_calls", at(9, 0))]; o.Outcome != metering.OutcomeAccepted || st.Totals.Errors != 1 {
		t.Fatalf("outcome %+v, totals %+v", o, st.Totals)
	}
}

func TestUsageOlderThanTheWindowIsRecordedExpired(t *testing.T) {
	f := newFake()
	f.refuse = func(ev marketplace.UsageEvent, _ int) marketplace.UsageEventStatus {
		if ev.Dimension == "late" {
			return marketplace.UsageExpired // Microsoft's clock disagrees with ours
		}
		return ""
	}
	env := newEnv(t, f, nil)
	report(env, time.Minute, usage("api_calls", 2, start.Add(-26*time.Hour)), usage("late", 1, at(9, 0)))
	env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID})
	st := result(t, env)
	old := outcomes(st)[key("api_calls", hour(start.Add(-26*time.Hour)))]
	if old.Outcome != metering.OutcomeExpired || f.posts[key("api_calls", hour(start.Add(-26*time.Hour)))] != 0 {
		t.Fatalf("old usage: %+v, posted %d times", old, f.posts[key("api_calls", hour(start.Add(-26*time.Hour)))])
	}
	if o := outcomes(st)[key("late", at(9, 0))]; o.Outcome != metering.OutcomeExpired || f.posts[key("late", at(9, 0))] != 1 {
		t.Fatalf("Microsoft's Expired: %+v", o)
	}
	if len(f.posted()) != 1 || st.Totals.Expired != 2 {
		t.Errorf("posted %+v, totals %+v", f.posted(), st.Totals)
	}
}

func hour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

func TestContinueAsNewCarriesBucketsAndSignals(t *testing.T) {
	f := newFake()
	env := newEnv(t, f, nil)
	report(env, time.Minute, metering.Usage{ID: "a", Dimension: "api_calls", Quantity: 1, Time: at(10, 1)}, usage("old", 1, at(9, 0)))
	// Two more signals arrive while the workflow waits for Microsoft: they are still in the channel when
	// the run reaches its limit of two signals, and must not be lost.
	var once sync.Once
	env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) {
		once.Do(func() {
			env.SignalWorkflow(metering.SignalUsage, []metering.Usage{{ID: "b", Dimension: "api_calls", Quantity: 2, Time: at(10, 2)}})
			env.SignalWorkflow(metering.SignalUsage, []metering.Usage{{ID: "c", Dimension: "storage_gb", Quantity: 4, Time: at(10, 3)}})
		})
	})
	env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID, Options: metering.Options{SignalsPerRun: 2}})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new, got %v", err)
	}
	var next metering.Input
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if len(next.Buckets) != 2 || next.Buckets[0].Quantity != 3 || next.Buckets[1].Quantity != 4 || len(next.SeenIDs) != 3 {
		t.Fatalf("carried %+v", next)
	}
	if p := f.posted(); len(p) != 1 || p[0].Dimension != "old" {
		t.Fatalf("posted in the first run: %+v", p)
	}

	// The next run posts what the first counted and still knows the IDs.
	env2 := newEnv(t, f, nil)
	report(env2, time.Minute, metering.Usage{ID: "b", Dimension: "api_calls", Quantity: 2, Time: at(10, 2)})
	env2.ExecuteWorkflow(metering.WorkflowType, next)
	st := result(t, env2)
	posted := f.posted()
	if len(posted) != 3 || st.Totals.Accepted != 3 || st.Totals.IgnoredReports != 1 {
		t.Fatalf("posted %+v, totals %+v", posted, st.Totals)
	}
	for _, ev := range posted {
		if want := map[string]float64{"old": 1, "api_calls": 3, "storage_gb": 4}[ev.Dimension]; ev.Quantity != want {
			t.Errorf("%s: %v, want %v", ev.Dimension, ev.Quantity, want)
		}
	}
}

func TestAnIdleMeterEndsAfter25Hours(t *testing.T) {
	f := newFake()
	env := newEnv(t, f, nil)
	report(env, time.Minute, usage("api_calls", 1, at(10, 1)))
	env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID})
	st := result(t, env)
	if st.IdleSince == nil || len(st.Open) != 0 || st.Totals.Accepted != 1 {
		t.Fatalf("state %+v", st)
	}
	// It ended 25 hours after its last bucket was settled, not before.
	if idle := env.Now().Sub(*st.IdleSince); idle < 25*time.Hour {
		t.Errorf("ended after %s idle", idle)
	}
}

// No report can wedge a meter: a quantity no hour can hold, sent past the client's checks, and a report
// that would take an hour's sum past MaxQuantity are recorded as rejected; the hour keeps what it had and
// the meter goes on posting, showing and ending as usual. (Two reports of 1e308 once summed to +Inf, which
// no JSON can carry: the workflow panicked on every task.)
func TestReportsThatWouldOverflowAnHourAreRefusedNotWedged(t *testing.T) {
	big := 0.75 * metering.MaxQuantity
	for name, c := range map[string]struct {
		version       workflow.Version
		posted        map[string]float64
		rejected, acc int
	}{
		// MaxQuantity caps an hour.
		"capped": {workflow.Version(1), map[string]float64{key("api_calls", at(9, 0)): 2, key("storage_gb", at(9, 0)): big}, 3, 2},
		// A run from before the cap sums up to the largest finite quantity: only +Inf is refused.
		"before the cap": {workflow.DefaultVersion, map[string]float64{key("api_calls", at(9, 0)): 1e308 + 2, key("storage_gb", at(9, 0)): 2 * big}, 1, 2},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake()
			env := newEnv(t, f, nil)
			env.OnGetVersion("quantity-cap", workflow.DefaultVersion, 1).Return(c.version)
			report(env, time.Minute, usage("api_calls", 1e308, at(9, 10)))
			report(env, 2*time.Minute, usage("api_calls", 1e308, at(9, 11)))
			report(env, 3*time.Minute, usage("api_calls", 2, at(9, 12)))
			report(env, 4*time.Minute, usage("storage_gb", big, at(9, 13)))
			report(env, 5*time.Minute, usage("storage_gb", big, at(9, 14)))
			env.RegisterDelayedCallback(func() {
				if st := query(t, env); len(st.Open) != 2 || st.Totals.Rejected != c.rejected {
					t.Errorf("state before posting: %+v", st)
				}
			}, 6*time.Minute)
			env.ExecuteWorkflow(metering.WorkflowType, metering.Input{SubscriptionID: subID})
			st := result(t, env)
			posted := f.posted()
			if len(posted) != len(c.posted) {
				t.Fatalf("posted %+v, want %v", posted, c.posted)
			}
			for _, ev := range posted {
				if q := c.posted[key(ev.Dimension, ev.EffectiveStartTime.Time)]; q != ev.Quantity {
					t.Errorf("posted %s %v, want %v", ev.Dimension, ev.Quantity, q)
				}
			}
			if st.Totals.Rejected != c.rejected || st.Totals.Accepted != c.acc {
				t.Errorf("totals %+v", st.Totals)
			}
			for _, o := range st.Recent {
				if o.Outcome == metering.OutcomeRejected && o.Reason == "" {
					t.Errorf("a refusal without its reason: %+v", o)
				}
			}
		})
	}
}
