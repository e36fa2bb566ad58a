package bench

import (
	"context"
	"testing"
	"time"

	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// WORKFLOW_CACHE_SIZE bounds how many subscription workflows a worker process keeps in memory: a worker
// configured as cmd/worker is (this binary as a worker process) adopts more subscriptions than its cache
// holds, and the SDK reports at most the cache size cached.
func TestWorkflowCacheSizeBoundsWorkerProcess(t *testing.T) {
	const cache, n = 4, 12
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	const taskQueue = "bench-cache-test"
	p := startWorkerProc(t, testBinary(t), s, "engine", taskQueue, cache)
	subs := seed(t, s.Emu.Emulator, n, marketplace.StatusSubscribed)
	eng := subscription.New(s.Client, taskQueue, subscription.Options{})
	each(t, subs, n, func(ctx context.Context, sub marketplace.Subscription) error { return eng.Snapshot(ctx, sub) })
	waitCount(t, s.Client, idleQuery(subscription.WorkflowType, taskQueue), n, 2*time.Minute)
	st := p.stats(t)
	if st.Cached < 1 || st.Cached > cache {
		t.Fatalf("%d workflows cached with WORKFLOW_CACHE_SIZE=%d after %d adoptions (stats %+v)", st.Cached, cache, n, st)
	}
}
