package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// reconcileConcurrency is reconciliation's default number of subscriptions checked at once per page; the
// raw walks use the same.
const reconcileConcurrency = 10

// BenchmarkReconcile adopts n subscriptions (set-up), then times full reconciliation runs over them,
// each alternating with a raw walk: the same List pages read through @nextLink and, for each
// subscription, the same reads from a plain loop (describe its workflow, query its state, list its
// outstanding operations), with reconciliation's concurrency, and no workflow or activity around them.
// One iteration is one run of each. BENCH_RECONCILE_SUBSCRIPTIONS (default 500) is n. Run:
//
//	go test ./bench -run '^$' -bench 'Reconcile$' -benchtime 3x -timeout 2h
//	BENCH_RECONCILE_SUBSCRIPTIONS=10000 go test ./bench -run '^$' -bench 'Reconcile$' -benchtime 3x -timeout 4h
func BenchmarkReconcile(b *testing.B) {
	n := size(b, "BENCH_RECONCILE_SUBSCRIPTIONS", 500)
	s := stacktest.Start(b, stacktest.Options{NoWorker: true})
	startWorker(b, s)
	seed(b, s.Emu.Emulator, n, marketplace.StatusSubscribed)
	// Adopting n (the set-up) shares two cores with the worker provisioning them: allow 250 ms each.
	within := time.Duration(n)*250*time.Millisecond + 10*time.Minute
	if rep := s.Reconcile(b, within); rep.Adopted != n {
		b.Fatalf("adoption: %s", rep)
	}
	waitCount(b, s.Client, idleQuery(subscription.WorkflowType, s.TaskQueue), int64(n), within)
	var engineTime, rawTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		runEngine := func() {
			start := time.Now()
			rep := s.Reconcile(b, within)
			engineTime += time.Since(start)
			if rep.InSync != n {
				b.Fatalf("run %d: %s", i, rep)
			}
		}
		runRaw := func() {
			start := time.Now()
			seen := rawWalk(b, s, subscription.WorkflowID, nil)
			rawTime += time.Since(start)
			if seen != n {
				b.Fatalf("raw walk %d saw %d of %d", i, seen, n)
			}
		}
		if i%2 == 0 {
			runEngine()
			runRaw()
		} else {
			runRaw()
			runEngine()
		}
	}
	b.StopTimer()
	runs := float64(b.N)
	b.ReportMetric(engineTime.Seconds()/runs, "engine-s/run")
	b.ReportMetric(rawTime.Seconds()/runs, "raw-s/run")
	b.ReportMetric(float64(engineTime.Microseconds())/(runs*float64(n)), "engine-µs/sub")
	b.ReportMetric(float64(rawTime.Microseconds())/(runs*float64(n)), "raw-µs/sub")
	// Throughput of the engine relative to the raw walk (target ≥ 0.5).
	b.ReportMetric(rawTime.Seconds()/engineTime.Seconds(), "engine/raw")
}

// rawWalk lists every page and, for each subscription, describes its workflow (named by workflowID); when
// it runs, it queries its state and lists the subscription's outstanding operations, as reconciliation
// does. With adopt set, a subscription without a workflow is handed to adopt instead. It returns the
// subscriptions seen.
func rawWalk(tb testing.TB, s *stacktest.Stack, workflowID func(subscriptionID string) string, adopt func(ctx context.Context, sub marketplace.Subscription) error) int {
	tb.Helper()
	ctx := context.Background()
	var seen atomic.Int64
	next := ""
	for {
		page, err := s.Emu.Client.ListSubscriptionsPage(ctx, next)
		if err != nil {
			tb.Fatalf("list: %v", err)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(reconcileConcurrency)
		for _, sub := range page.Subscriptions {
			g.Go(func() error {
				seen.Add(1)
				return rawCheck(gctx, s, workflowID(sub.ID), sub, adopt)
			})
		}
		if err := g.Wait(); err != nil {
			tb.Fatal(err)
		}
		if page.NextLink == "" {
			return int(seen.Load())
		}
		next = page.NextLink
	}
}

func rawCheck(ctx context.Context, s *stacktest.Stack, id string, sub marketplace.Subscription, adopt func(ctx context.Context, sub marketplace.Subscription) error) error {
	d, err := s.Client.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) && adopt != nil {
		return adopt(ctx, sub)
	}
	if err != nil {
		return fmt.Errorf("describe %s: %w", sub.ID, err)
	}
	if d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return nil
	}
	v, err := s.Client.QueryWorkflow(ctx, id, "", subscription.QueryState)
	if err != nil {
		return fmt.Errorf("query %s: %w", sub.ID, err)
	}
	var st subscription.State
	if err := v.Get(&st); err != nil {
		return err
	}
	if st.Status != sub.Status {
		return fmt.Errorf("subscription %s: ours %s, Microsoft's %s", sub.ID, st.Status, sub.Status)
	}
	if _, err := s.Emu.Client.ListOperations(ctx, sub.ID); err != nil {
		return fmt.Errorf("list operations of %s: %w", sub.ID, err)
	}
	return nil
}

func bareAdoptID(subscriptionID string) string { return "bench-bare-adopt/" + subscriptionID }

// BenchmarkAdoption adopts n and then 2n subscriptions, each size in a fresh stack, and reports the cost
// per subscription at both sizes and their ratio (1 when adoption is linear in n). The engine's adoption
// is a reconciliation run that finds the subscriptions unknown, timed until every workflow has
// provisioned its tenant and shows phase Idle. The baseline, in the same stack before or after it
// (alternating), walks the same pages and starts, for each subscription, a bare workflow that provisions
// and waits (Signal-With-Start, as adoption does). BENCH_ADOPT_SUBSCRIPTIONS (default 200) is n. Run:
//
//	go test ./bench -run '^$' -bench Adoption -benchtime 1x -timeout 2h
//	BENCH_ADOPT_SUBSCRIPTIONS=5000 go test ./bench -run '^$' -bench Adoption -benchtime 1x -timeout 4h
func BenchmarkAdoption(b *testing.B) {
	n := size(b, "BENCH_ADOPT_SUBSCRIPTIONS", 200)
	sizes := []int{n, 2 * n}
	engineTime := make([]time.Duration, len(sizes))
	bareTime := make([]time.Duration, len(sizes))
	b.ResetTimer()
	for i := range b.N {
		for j, m := range sizes {
			b.StopTimer()
			sc := &scope{TB: b}
			b.Cleanup(sc.close)
			s := stacktest.Start(sc, stacktest.Options{NoWorker: true})
			startWorker(sc, s)
			seed(sc, s.Emu.Emulator, m, marketplace.StatusSubscribed)
			b.StartTimer()
			within := time.Duration(m)*200*time.Millisecond + 10*time.Minute
			runEngine := func() {
				start := time.Now()
				if rep := s.Reconcile(sc, within); rep.Adopted != m {
					b.Fatalf("adoption of %d: %s", m, rep)
				}
				waitCount(sc, s.Client, idleQuery(subscription.WorkflowType, s.TaskQueue), int64(m), within)
				engineTime[j] += time.Since(start)
			}
			runBare := func() {
				start := time.Now()
				seen := rawWalk(sc, s, bareAdoptID, func(ctx context.Context, sub marketplace.Subscription) error {
					_, err := s.Client.SignalWithStartWorkflow(ctx, bareAdoptID(sub.ID), subscription.SignalSnapshot, sub,
						client.StartWorkflowOptions{TaskQueue: s.TaskQueue}, BareIdleType, BareInput{Subscription: sub, Provision: true})
					return err
				})
				if seen != m {
					b.Fatalf("bare adoption saw %d of %d", seen, m)
				}
				waitCount(sc, s.Client, idleQuery(BareIdleType, s.TaskQueue), int64(m), within)
				bareTime[j] += time.Since(start)
			}
			if i%2 == 0 {
				runEngine()
				runBare()
			} else {
				runBare()
				runEngine()
			}
			b.StopTimer()
			sc.close()
			b.StartTimer()
		}
	}
	b.StopTimer()
	perSub := func(d time.Duration, m int) float64 { return float64(d.Microseconds()) / float64(b.N*m) }
	e1, e2 := perSub(engineTime[0], sizes[0]), perSub(engineTime[1], sizes[1])
	r1, r2 := perSub(bareTime[0], sizes[0]), perSub(bareTime[1], sizes[1])
	b.ReportMetric(float64(n), "n")
	b.ReportMetric(e1, "engine-µs/sub@n")
	b.ReportMetric(e2, "engine-µs/sub@2n")
	b.ReportMetric(e2/e1, "engine-2n/n")
	b.ReportMetric(r1, "bare-µs/sub@n")
	b.ReportMetric(r2, "bare-µs/sub@2n")
	b.ReportMetric(r2/r1, "bare-2n/n")
	b.ReportMetric(r2/e2, "engine/bare@2n")
}
