package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// memSample is one worker process's cost of n idle workflows.
type memSample struct {
	cached int
	// Per cached workflow: growth of the heap (after a collection), of the RSS (after a collection that
	// returned free memory) and of the goroutines, from the worker idle to the worker holding them.
	heapPerWF, rssPerWF, goroutinesPerWF float64
	// liveHeapPerWF counts the bytes of live objects alone; heapPerWF also counts the free space in the
	// heap's spans that hold them.
	liveHeapPerWF float64
	// The process's resident set at the end as the system sees it (no forced collection) and its peak.
	rss, peak uint64
}

type memTotals struct {
	runs                                                int
	cached                                              int
	heapPerWF, liveHeapPerWF, rssPerWF, goroutinesPerWF float64
	rss, peak                                           uint64
}

func (t *memTotals) add(m memSample) {
	t.runs++
	t.cached += m.cached
	t.heapPerWF += m.heapPerWF
	t.liveHeapPerWF += m.liveHeapPerWF
	t.rssPerWF += m.rssPerWF
	t.goroutinesPerWF += m.goroutinesPerWF
	t.rss = max(t.rss, m.rss)
	t.peak = max(t.peak, m.peak)
}

func (t *memTotals) mean(v float64) float64 { return v / float64(t.runs) }

// BenchmarkWorkerMemory starts a worker process (cmd/benchworker, configured from the environment as
// cmd/worker is), puts n subscriptions into it as idle workflows (adopted: each read from Microsoft and
// provisioned once), and measures what the process holds per cached workflow. Then it does the same with
// Temporal-only workflows in the same worker, each with the same cache size:
//   - "bare": BareIdle, which only answers a query and waits for signals;
//   - "bare-adopt": BareIdle after the same two activity calls as an adoption;
//   - "contract": BareContract (the subscription's contract with Temporal and nothing else) after them.
//
// The roles take turns going first.
//
// BENCH_HEAP_PROFILE=dir saves each worker's heap profile there, to read with go tool pprof;
// BENCH_MEMORY_ROLES (say "engine") measures only the roles it lists, comma-separated, for profiling.
// BENCH_SUBSCRIPTIONS (default 500) is n; WORKFLOW_CACHE_SIZE (default the engine's) the cache size, so
// n above it shows the bound. Run:
//
//	go test ./bench -run '^$' -bench WorkerMemory -benchtime 1x -timeout 2h
//	BENCH_SUBSCRIPTIONS=10000 go test ./bench -run '^$' -bench WorkerMemory -benchtime 1x -timeout 4h
func BenchmarkWorkerMemory(b *testing.B) {
	n := size(b, "BENCH_SUBSCRIPTIONS", 500)
	cache := workerConfig(b).WorkflowCacheSize
	s := stacktest.Start(b, stacktest.Options{NoWorker: true})
	totals := map[string]*memTotals{"engine": {}, "bare": {}, "bare-adopt": {}, "contract": {}}
	roles := []string{"engine", "bare", "bare-adopt", "contract"}
	if v := os.Getenv("BENCH_MEMORY_ROLES"); v != "" {
		roles = strings.Split(v, ",")
		for _, role := range roles {
			if totals[role] == nil {
				b.Fatalf("BENCH_MEMORY_ROLES: unknown role %q (want engine, bare, bare-adopt, contract)", role)
			}
		}
	}
	b.ResetTimer()
	for i := range b.N {
		// Each iteration starts with the next role, so that none always runs first.
		for k := range roles {
			role := roles[(i+k)%len(roles)]
			totals[role].add(measureMemory(b, s, role, fmt.Sprintf("bench-memory-%s-%d", role, i), n, cache))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n), "subscriptions")
	b.ReportMetric(float64(cache), "cache-size")
	for _, role := range roles {
		t := totals[role]
		if role == "engine" {
			b.ReportMetric(float64(t.cached)/float64(t.runs), "engine-cached-wf")
			b.ReportMetric(float64(t.peak)/(1<<20), "engine-peak-rss-MB")
		}
		b.ReportMetric(t.mean(t.heapPerWF)/1024, role+"-heap-kB/wf")
		b.ReportMetric(t.mean(t.liveHeapPerWF)/1024, role+"-live-kB/wf")
		b.ReportMetric(t.mean(t.rssPerWF)/1024, role+"-rss-kB/wf")
		b.ReportMetric(t.mean(t.goroutinesPerWF), role+"-goroutines/wf")
		b.ReportMetric(float64(t.rss)/(1<<20), role+"-rss-MB")
	}
	eng := totals["engine"]
	for _, floor := range []string{"bare", "bare-adopt", "contract"} {
		if t := totals[floor]; t.runs > 0 && eng.runs > 0 {
			b.ReportMetric(eng.mean(eng.heapPerWF)/t.mean(t.heapPerWF), "heap-engine/"+floor)
			b.ReportMetric(eng.mean(eng.liveHeapPerWF)/t.mean(t.liveHeapPerWF), "live-engine/"+floor)
		}
	}
}

func measureMemory(tb testing.TB, s *stacktest.Stack, role, taskQueue string, n, cache int) memSample {
	tb.Helper()
	p := startWorkerProc(tb, workerBinary(tb), s, role, taskQueue, cache)
	defer p.stop()
	before := p.stats(tb)
	subs := seed(tb, s.Emu.Emulator, n, marketplace.StatusSubscribed)
	switch role {
	case "engine":
		// Adoption's own path: the snapshot reconciliation sends for a subscription it does not know.
		eng := subscription.New(s.Client, taskQueue, subscription.Options{})
		each(tb, subs, 20, func(ctx context.Context, sub marketplace.Subscription) error { return eng.Snapshot(ctx, sub) })
		waitCount(tb, s.Client, idleQuery(subscription.WorkflowType, taskQueue), int64(n), time.Duration(n)*100*time.Millisecond+5*time.Minute)
	case "bare", "bare-adopt", "contract":
		typ := map[string]string{"bare": BareIdleType, "bare-adopt": BareIdleType, "contract": BareContractType}[role]
		adopt := role != "bare"
		each(tb, subs, 20, func(ctx context.Context, sub marketplace.Subscription) error {
			_, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "bench-" + role + "/" + taskQueue + "/" + sub.ID, TaskQueue: taskQueue},
				typ, BareInput{Subscription: sub, Read: adopt, Provision: adopt})
			return err
		})
		waitCount(tb, s.Client, idleQuery(typ, taskQueue), int64(n), time.Duration(n)*100*time.Millisecond+5*time.Minute)
	}
	p.settle(tb, 10*time.Minute)
	if dir := os.Getenv("BENCH_HEAP_PROFILE"); dir != "" {
		p.saveHeapProfile(tb, filepath.Join(dir, taskQueue+".pb.gz"))
	}
	rss, peak := p.memory(tb)
	after := p.stats(tb)
	if after.Cached <= 0 {
		tb.Fatalf("%s worker reports no cached workflow (stats %+v)", role, after)
	}
	per := func(a, b float64) float64 { return (a - b) / float64(after.Cached) }
	return memSample{
		cached:          after.Cached,
		heapPerWF:       per(float64(after.HeapInuse), float64(before.HeapInuse)),
		liveHeapPerWF:   per(float64(after.HeapAlloc), float64(before.HeapAlloc)),
		rssPerWF:        per(float64(after.RSS), float64(before.RSS)),
		goroutinesPerWF: per(float64(after.Goroutines), float64(before.Goroutines)),
		rss:             rss,
		peak:            peak,
	}
}
