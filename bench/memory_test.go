package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	// The process's resident set at the end as the system sees it (no forced collection) and its peak.
	rss, peak uint64
}

type memTotals struct {
	runs                                 int
	cached                               int
	heapPerWF, rssPerWF, goroutinesPerWF float64
	rss, peak                            uint64
}

func (t *memTotals) add(m memSample) {
	t.runs++
	t.cached += m.cached
	t.heapPerWF += m.heapPerWF
	t.rssPerWF += m.rssPerWF
	t.goroutinesPerWF += m.goroutinesPerWF
	t.rss = max(t.rss, m.rss)
	t.peak = max(t.peak, m.peak)
}

func (t *memTotals) mean(v float64) float64 { return v / float64(t.runs) }

// BenchmarkWorkerMemory starts a worker process (this binary, configured from the environment as
// cmd/worker is), puts n subscriptions into it as idle workflows, and measures what the process holds
// per cached workflow; then does the same with a bare SDK worker whose workflow only answers a query and
// waits for signals (BareIdle), and with one whose workflow holds the subscription's contract and nothing
// else (BareContract), each with the same cache size. The three take turns going first.
//
// BENCH_HEAP_PROFILE=dir saves each worker's heap profile there, to read with go tool pprof.
// BENCH_SUBSCRIPTIONS (default 500) is n; WORKFLOW_CACHE_SIZE (default the engine's) the cache size, so
// n above it shows the bound. Run:
//
//	go test ./bench -run '^$' -bench WorkerMemory -benchtime 1x -timeout 2h
//	BENCH_SUBSCRIPTIONS=10000 go test ./bench -run '^$' -bench WorkerMemory -benchtime 1x -timeout 4h
func BenchmarkWorkerMemory(b *testing.B) {
	n := size(b, "BENCH_SUBSCRIPTIONS", 500)
	cache := workerConfig(b).WorkflowCacheSize
	s := stacktest.Start(b, stacktest.Options{NoWorker: true})
	totals := map[string]*memTotals{"engine": {}, "bare": {}, "contract": {}}
	b.ResetTimer()
	for i := range b.N {
		// Each iteration starts with the next role, so that none always runs first.
		roles := []string{"engine", "bare", "contract"}
		for k := range roles {
			role := roles[(i+k)%len(roles)]
			totals[role].add(measureMemory(b, s, role, fmt.Sprintf("bench-memory-%s-%d", role, i), n, cache))
		}
	}
	eng, bare, contract := totals["engine"], totals["bare"], totals["contract"]
	b.StopTimer()
	b.ReportMetric(float64(n), "subscriptions")
	b.ReportMetric(float64(cache), "cache-size")
	b.ReportMetric(float64(eng.cached)/float64(eng.runs), "engine-cached-wf")
	b.ReportMetric(eng.mean(eng.heapPerWF)/1024, "engine-heap-kB/wf")
	b.ReportMetric(bare.mean(bare.heapPerWF)/1024, "bare-heap-kB/wf")
	b.ReportMetric(eng.mean(eng.heapPerWF)/bare.mean(bare.heapPerWF), "heap-engine/bare")
	b.ReportMetric(contract.mean(contract.heapPerWF)/1024, "contract-heap-kB/wf")
	b.ReportMetric(eng.mean(eng.heapPerWF)/contract.mean(contract.heapPerWF), "heap-engine/contract")
	b.ReportMetric(eng.mean(eng.rssPerWF)/1024, "engine-rss-kB/wf")
	b.ReportMetric(bare.mean(bare.rssPerWF)/1024, "bare-rss-kB/wf")
	b.ReportMetric(eng.mean(eng.goroutinesPerWF), "engine-goroutines/wf")
	b.ReportMetric(bare.mean(bare.goroutinesPerWF), "bare-goroutines/wf")
	b.ReportMetric(contract.mean(contract.rssPerWF)/1024, "contract-rss-kB/wf")
	b.ReportMetric(contract.mean(contract.goroutinesPerWF), "contract-goroutines/wf")
	b.ReportMetric(float64(eng.rss)/(1<<20), "engine-rss-MB")
	b.ReportMetric(float64(eng.peak)/(1<<20), "engine-peak-rss-MB")
	b.ReportMetric(float64(bare.rss)/(1<<20), "bare-rss-MB")
	b.ReportMetric(float64(contract.rss)/(1<<20), "contract-rss-MB")
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
	case "bare", "contract":
		typ := map[string]string{"bare": BareIdleType, "contract": BareContractType}[role]
		each(tb, subs, 20, func(ctx context.Context, sub marketplace.Subscription) error {
			_, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "bench-" + role + "/" + taskQueue + "/" + sub.ID, TaskQueue: taskQueue},
				typ, BareInput{Subscription: sub})
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
		rssPerWF:        per(float64(after.RSS), float64(before.RSS)),
		goroutinesPerWF: per(float64(after.Goroutines), float64(before.Goroutines)),
		rss:             rss,
		peak:            peak,
	}
}
