package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// BenchmarkActivation activates k new purchases at once through the engine (the landing page's
// confirmation, Update-With-Start, then provisioning, Activate and the confirming Get subscription in
// the subscription workflow) and k through a bare workflow that runs the same activities in sequence,
// alternating which goes first; each batch is timed until the server shows every activation done. One
// iteration is one batch of each. BENCH_ACTIVATIONS (default 20) is k. Run:
//
//	go test ./bench -run '^$' -bench Activation -benchtime 5x
func BenchmarkActivation(b *testing.B) {
	k := size(b, "BENCH_ACTIVATIONS", 20)
	s := stacktest.Start(b, stacktest.Options{NoWorker: true})
	startWorker(b, s)
	engineDone := fmt.Sprintf("WorkflowType = %q AND %s = %q AND %s = %q", subscription.WorkflowType,
		subscription.SaaSPhase.GetName(), subscription.PhaseIdle, subscription.SaaSStatus.GetName(), marketplace.StatusSubscribed)
	bareDone := fmt.Sprintf("WorkflowType = %q AND ExecutionStatus = 'Completed'", BareActivationType)
	var engineTime, bareTime time.Duration
	var engineN, bareN int64
	within := time.Duration(k)*2*time.Second + 5*time.Minute
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		forEngine, forBare := purchases(b, s, k), purchases(b, s, k)
		b.StartTimer()
		runEngine := func() {
			start := time.Now()
			each(b, forEngine, k, func(ctx context.Context, sub marketplace.Subscription) error {
				_, err := s.Subs.Confirm(ctx, sub)
				return err
			})
			engineN += int64(k)
			waitCount(b, s.Client, engineDone, engineN, within)
			engineTime += time.Since(start)
		}
		runBare := func() {
			start := time.Now()
			each(b, forBare, k, func(ctx context.Context, sub marketplace.Subscription) error {
				_, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "bench-bare-activation/" + sub.ID, TaskQueue: s.TaskQueue},
					BareActivationType, sub)
				return err
			})
			bareN += int64(k)
			waitCount(b, s.Client, bareDone, bareN, within)
			bareTime += time.Since(start)
		}
		if i%2 == 0 {
			runEngine()
			runBare()
		} else {
			runBare()
			runEngine()
		}
	}
	b.StopTimer()
	engineRate := float64(engineN) / engineTime.Seconds()
	bareRate := float64(bareN) / bareTime.Seconds()
	b.ReportMetric(engineRate, "engine-activations/s")
	b.ReportMetric(bareRate, "bare-activations/s")
	b.ReportMetric(engineRate/bareRate, "engine/bare")
}

// purchases buys k subscriptions in the emulator and resolves their tokens, as the landing page does
// before the buyer confirms.
func purchases(tb testing.TB, s *stacktest.Stack, k int) []marketplace.Subscription {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := make([]marketplace.Subscription, 0, k)
	for range k {
		p := s.Emu.Purchase(tb, "basic", 0)
		res, err := s.Emu.Client.Resolve(ctx, p.Token)
		if err != nil {
			tb.Fatalf("resolve: %v", err)
		}
		out = append(out, res.Subscription)
	}
	return out
}
