package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/sync/errgroup"

	"saasengine/config"
	"saasengine/emulator"
	"saasengine/engine"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

func TestMain(m *testing.M) {
	// Tests that need a worker process of their own start this binary again (BenchmarkWorkerMemory builds
	// cmd/benchworker instead, which does not carry the Temporal server this binary links).
	if role := os.Getenv(EnvWorkerRole); role != "" {
		if err := RunWorker(role); err != nil {
			fmt.Fprintln(os.Stderr, "bench worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// size reads a benchmark size from the environment.
func size(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// scope runs a stack whose lifetime is shorter than the benchmark's: cleanups registered on it run at
// close, so two stacks of different sizes need not be alive at once. Register close with the benchmark
// too, for when it stops early.
type scope struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func (s *scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *scope) close() {
	s.mu.Lock()
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// workerConfig is the worker configuration of the in-process benchmarks: the engine's defaults, or what
// the environment says (WORKFLOW_CACHE_SIZE among them).
func workerConfig(tb testing.TB) config.Worker {
	tb.Helper()
	wc, err := config.WorkerFromEnv(os.Getenv)
	if err != nil {
		tb.Fatal(err)
	}
	return wc
}

// startWorker starts the engine's worker (production wiring and cache size) on the stack's task queue,
// with the baseline workflows registered beside the engine's so both share pollers, activities and cache.
func startWorker(tb testing.TB, s *stacktest.Stack) {
	tb.Helper()
	wc := workerConfig(tb)
	engine.SetWorkflowCacheSize(wc)
	w := engine.NewWorker(s.Client, s.TaskQueue, engine.Deps{Marketplace: s.Emu.Client, Provisioner: s.Provisioner, Logger: s.Logger.Named("worker")}, engine.WorkerOptions(wc))
	w.RegisterWorkflowWithOptions(BareIdle, workflow.RegisterOptions{Name: BareIdleType})
	w.RegisterWorkflowWithOptions(BareActivation, workflow.RegisterOptions{Name: BareActivationType})
	w.RegisterWorkflowWithOptions(BareDecide, workflow.RegisterOptions{Name: BareDecideType})
	if err := w.Start(); err != nil {
		tb.Fatalf("worker: %v", err)
	}
	tb.Cleanup(w.Stop)
}

// seed creates n subscriptions of the flat-rate plan in the emulator with the given status and returns
// them as Microsoft shows them.
func seed(tb testing.TB, emu *emulator.Emulator, n int, status marketplace.SubscriptionStatus) []marketplace.Subscription {
	tb.Helper()
	return seedPlan(tb, emu, n, status, "basic", 0)
}

// seedPlan is seed with a plan and seat count.
func seedPlan(tb testing.TB, emu *emulator.Emulator, n int, status marketplace.SubscriptionStatus, planID string, quantity int64) []marketplace.Subscription {
	tb.Helper()
	req := emulator.SeedRequest{}
	req.Subscriptions = append(req.Subscriptions, struct {
		emulator.PurchaseRequest
		Count int `json:"count"`
	}{emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: planID, Quantity: quantity, Status: status}, n})
	ids, err := emu.Seed(req)
	if err != nil {
		tb.Fatal(err)
	}
	subs := make([]marketplace.Subscription, 0, len(ids))
	for _, id := range ids {
		sub, ok := emu.Subscription(id)
		if !ok {
			tb.Fatalf("seeded subscription %s not found", id)
		}
		subs = append(subs, sub)
	}
	return subs
}

// each runs fn for every subscription, conc at a time, failing on the first error.
func each(tb testing.TB, subs []marketplace.Subscription, conc int, fn func(ctx context.Context, sub marketplace.Subscription) error) {
	tb.Helper()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(conc)
	for _, sub := range subs {
		g.Go(func() error { return fn(ctx, sub) })
	}
	if err := g.Wait(); err != nil {
		tb.Fatal(err)
	}
}

// waitCount polls the visibility store until query counts want workflows: the server's view, so waiting
// costs the worker nothing. It fails after within.
func waitCount(tb testing.TB, c client.Client, query string, want int64, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	var got int64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		cancel()
		if err == nil {
			got = resp.GetCount()
			if got >= want {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: %d of %d after %v (last error %v)", query, got, want, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// idleQuery counts the workflows of a type on a task queue that show phase Idle.
func idleQuery(workflowType, taskQueue string) string {
	return fmt.Sprintf("WorkflowType = %q AND TaskQueue = %q AND %s = %q", workflowType, taskQueue, subscription.SaaSPhase.GetName(), subscription.PhaseIdle)
}
