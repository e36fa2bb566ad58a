package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"saasengine/config"
	"saasengine/engine"
)

// EnvWorkerRole names the worker RunWorker runs: the engine's worker, configured from the environment as
// cmd/worker is, with nothing else ("engine"), with the bare idle workflow ("bare", "bare-adopt") or with
// BareContract ("contract").
const EnvWorkerRole = "BENCH_WORKER_ROLE"

// Stats is what a worker process reports about itself, after a garbage collection.
type Stats struct {
	HeapInuse uint64 `json:"heapInuse"`
	// HeapAlloc is the bytes of live objects (the collection has just run).
	HeapAlloc  uint64 `json:"heapAlloc"`
	Goroutines int    `json:"goroutines"`
	// RSS after the collection returned free memory to the system.
	RSS uint64 `json:"rss"`
	// Cached is the SDK's sticky cache size: the workflows held in memory.
	Cached int `json:"cached"`
	// Tasks counts the workflow and activity tasks run so far.
	Tasks uint64 `json:"tasks"`
}

// RunWorker runs a worker of role (see EnvWorkerRole) until its standard input closes, serving its Stats
// on a loopback port it announces on standard output ("stats <url>"). Benchmarks run it as a process of
// its own (cmd/benchworker) so that its memory is the worker's alone.
func RunWorker(role string) error {
	if os.Getenv("BENCH_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 4096 // a profile fine enough to see a few kB per workflow
	}
	getenv := config.Getenv(os.Getenv)
	logger, err := config.NewLogger(config.ObservabilityFromEnv(getenv))
	if err != nil {
		return err
	}
	tc := config.TemporalFromEnv(getenv)
	wc, err := config.WorkerFromEnv(getenv)
	if err != nil {
		return err
	}
	metrics, err := config.NewMetrics()
	if err != nil {
		return err
	}
	ctx := context.Background()
	c, err := config.Dial(ctx, tc, logger, metrics)
	if err != nil {
		return err
	}
	defer c.Close()
	engine.SetWorkflowCacheSize(wc)
	pc, err := config.ProvisioningFromEnv(getenv)
	if err != nil {
		return err
	}
	api, err := config.MarketplaceFromEnv(getenv).NewClient(logger)
	if err != nil {
		return err
	}
	prov, err := engine.Provisioner(pc)
	if err != nil {
		return err
	}
	if closer, ok := prov.(io.Closer); ok {
		defer closer.Close()
	}
	// Every role is the engine's worker, so the baselines' processes hold what the engine's does and can
	// run its activities; they differ only in the workflow type that is started.
	w := engine.NewWorker(c, tc.TaskQueue, engine.Deps{Marketplace: api, Provisioner: prov, Logger: logger}, engine.WorkerOptions(wc))
	switch role {
	case "engine":
	case "bare", "bare-adopt":
		w.RegisterWorkflowWithOptions(BareIdle, workflow.RegisterOptions{Name: BareIdleType})
	case "contract":
		w.RegisterWorkflowWithOptions(BareContract, workflow.RegisterOptions{Name: BareContractType})
	default:
		return fmt.Errorf("%s=%q: want engine, bare, bare-adopt or contract", EnvWorkerRole, role)
	}
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	// Where a worker's memory goes: BENCH_HEAP_PROFILE makes the benchmark save this profile.
	mux.HandleFunc("/debug/pprof/heap", pprof.Index)
	mux.HandleFunc("/stats", func(rw http.ResponseWriter, r *http.Request) {
		st, err := readStats(metrics)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(rw).Encode(st)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	fmt.Printf("stats http://%s/stats\n", ln.Addr())
	// The parent closes standard input to stop the worker (or dies, which closes it too).
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func readStats(m *config.Metrics) (Stats, error) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := Stats{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, Goroutines: runtime.NumGoroutine()}
	rss, _, err := ProcMemory(os.Getpid())
	if err != nil {
		return st, err
	}
	st.RSS = rss
	families, err := m.Registry.Gather()
	if err != nil {
		return st, err
	}
	for _, f := range families {
		name := f.GetName()
		for _, mt := range f.GetMetric() {
			switch {
			case strings.Contains(name, "sticky_cache_size"):
				st.Cached += int(mt.GetGauge().GetValue())
			case strings.Contains(name, "workflow_task_execution_latency"), strings.Contains(name, "activity_execution_latency"):
				if h := mt.GetHistogram(); h != nil {
					st.Tasks += h.GetSampleCount()
				}
			}
		}
	}
	return st, nil
}

// ProcMemory reads a process's resident set and its peak from /proc (Linux).
func ProcMemory(pid int) (rss, peak uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n * 1024
		case "VmHWM":
			peak = n * 1024
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc status")
	}
	return rss, peak, nil
}
