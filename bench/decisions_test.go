package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/webhook/server"
	"saasengine/workflows/subscription"
)

const (
	// decisionWait is the webhook's wait for a decision, the production default (WEBHOOK_DECISION_WAIT);
	// the raw Update-With-Start waits as long.
	decisionWait = 5 * time.Second
	// patchWithin is how soon after the answer the PATCH must reach Microsoft.
	patchWithin = 10 * time.Second
	// patchGiveUp ends the wait for a PATCH; one that has not arrived by then counts as that late.
	patchGiveUp = 30 * time.Second
	// microsoftWindow is how long Microsoft waits for a webhook's answer.
	microsoftWindow = 10 * time.Second

	// Seats: subscriptions start with decisionSeats; the demo provisioner refuses more than maxSeats, so
	// every other change (to refuseSeats) is refused.
	decisionSeats = 10
	maxSeats      = 40
	acceptSeats   = 20
	refuseSeats   = 50
)

// BenchmarkDecisions sends customers' ChangeQuantity changes at stepped rates, every other one refused
// by the provisioner, and at each rate runs one step through the engine and one through a raw
// Update-With-Start, alternating which goes first. Each change is a real operation of the emulator
// (a fresh Subscribed subscription per change, so no change waits for another's): the emulator's signed
// webhook is posted to the engine's webhook server, which runs the subscription workflow's decision
// update (verify with Get operation and Get subscription, ask the provisioner) and answers 200 or 400;
// the raw side sends the same event to a bare workflow (BareDecide) whose update makes the same calls.
// Both PATCH the outcome after answering.
//
// Per change it measures the answer's latency, whether it was the decision inside the wait (a refusal
// answered 4xx, an acceptance 2xx; otherwise it is late), and the time from the answer to the PATCH's
// arrival at the emulator (late beyond 10 s). A rate is met when no answer and no PATCH of its step, or
// of any lower rate's, is late; max-rate is the highest rate met. Targets: engine-max-rate at least half
// raw-max-rate, engine p99 at most twice the raw p99.
//
// BENCH_DECISION_RATES (default "2,5,10,20") are the rates per second; BENCH_DECISION_COUNT (default 40)
// is how many changes each step sends. One iteration is one sweep. Run:
//
//	go test ./bench -run '^$' -bench Decisions -benchtime 1x -timeout 1h
func BenchmarkDecisions(b *testing.B) {
	rates := rateList(b, "BENCH_DECISION_RATES", "2,5,10,20")
	count := size(b, "BENCH_DECISION_COUNT", 40)
	s := stacktest.Start(b, stacktest.Options{NoWorker: true, DemoMaxQuantity: maxSeats,
		ConfigureServer: func(c *server.Config) { c.DecisionWait = decisionWait },
		// Only the publisher's PATCH decides an operation, so its arrival is what gets timed.
		ConfigureEmulator: func(c *emulator.Config) { c.AutoAcceptAfter = emulator.Duration(time.Hour) }})
	startWorker(b, s)
	rl := newRelay(b)
	s.Emu.Emulator.SetWebhookURL("", rl.url)
	toEngine, toRaw := engineDecider(s), rawDecider(s)

	engine := make([][]decision, len(rates))
	raw := make([][]decision, len(rates))
	adopted := 0
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		n := len(rates) * count
		engineSubs, rawSubs := decisionSubscriptions(b, s, n, adopted+n)
		adopted += n
		b.StartTimer()
		for j, rate := range rates {
			part := func(subs []marketplace.Subscription) []marketplace.Subscription { return subs[j*count : (j+1)*count] }
			runEngine := func() { engine[j] = append(engine[j], decisionStep(b, s, rl, rate, part(engineSubs), toEngine)...) }
			runRaw := func() { raw[j] = append(raw[j], decisionStep(b, s, rl, rate, part(rawSubs), toRaw)...) }
			if (i+j)%2 == 0 {
				runEngine()
				runRaw()
			} else {
				runRaw()
				runEngine()
			}
		}
	}
	b.StopTimer()

	engineMax, rawMax := 0, 0
	engineMet, rawMet := true, true
	for j, rate := range rates {
		e, r := summarize(engine[j]), summarize(raw[j])
		at := "@" + strconv.Itoa(rate) + "/s"
		b.ReportMetric(e.p50, "engine-p50-ms"+at)
		b.ReportMetric(e.p99, "engine-p99-ms"+at)
		b.ReportMetric(r.p50, "raw-p50-ms"+at)
		b.ReportMetric(r.p99, "raw-p99-ms"+at)
		if r.p99 > 0 {
			b.ReportMetric(e.p99/r.p99, "p99-engine/raw"+at)
		}
		b.ReportMetric(float64(e.late), "engine-late"+at)
		b.ReportMetric(float64(r.late), "raw-late"+at)
		b.ReportMetric(e.patchP99, "engine-patch-p99-ms"+at)
		b.ReportMetric(r.patchP99, "raw-patch-p99-ms"+at)
		b.ReportMetric(float64(e.patchLate), "engine-patch-late"+at)
		b.ReportMetric(float64(r.patchLate), "raw-patch-late"+at)
		// A rate counts only with every lower one met too: one lucky step is no maximum.
		engineMet = engineMet && e.met()
		rawMet = rawMet && r.met()
		if engineMet {
			engineMax = rate
		}
		if rawMet {
			rawMax = rate
		}
	}
	b.ReportMetric(float64(engineMax), "engine-max-rate/s")
	b.ReportMetric(float64(rawMax), "raw-max-rate/s")
	if rawMax > 0 {
		b.ReportMetric(float64(engineMax)/float64(rawMax), "max-rate-engine/raw")
	}
}

// rateList reads a comma-separated list of positive rates per second from the environment, ascending.
func rateList(tb testing.TB, name, def string) []int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			tb.Fatalf("%s=%q: want positive numbers separated by commas", name, v)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// decisionSubscriptions seeds n Subscribed per-seat subscriptions for each side: the engine's adopted
// (their workflows provisioned and Idle: idle is how many engine workflows should then be), the raw
// side's with their bare workflows running, so that both sides' updates find a running workflow.
func decisionSubscriptions(tb testing.TB, s *stacktest.Stack, n, idle int) (engine, raw []marketplace.Subscription) {
	tb.Helper()
	engine = seedPlan(tb, s.Emu.Emulator, n, marketplace.StatusSubscribed, "team", decisionSeats)
	raw = seedPlan(tb, s.Emu.Emulator, n, marketplace.StatusSubscribed, "team", decisionSeats)
	each(tb, engine, 20, func(ctx context.Context, sub marketplace.Subscription) error { return s.Subs.Snapshot(ctx, sub) })
	each(tb, raw, 20, func(ctx context.Context, sub marketplace.Subscription) error {
		_, err := s.Client.ExecuteWorkflow(ctx, bareDecideOptions(s, sub.ID), BareDecideType, sub.ID)
		return err
	})
	waitCount(tb, s.Client, idleQuery(subscription.WorkflowType, s.TaskQueue), int64(idle), time.Duration(n)*200*time.Millisecond+5*time.Minute)
	return engine, raw
}

func bareDecideOptions(s *stacktest.Stack, subscriptionID string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{ID: "bench-bare-decide/" + subscriptionID, TaskQueue: s.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING}
}

// decision is what one change measured.
type decision struct {
	answer  time.Duration // from sending the webhook (or the update) to its answer
	inWait  bool          // answered with its decision inside the wait
	patch   time.Duration // from the answer to the PATCH's arrival at the emulator
	patched bool
}

// decider sends one change, as the emulator delivered it, and reports whether the answer was its
// decision inside the wait (and if not, why).
type decider func(ctx context.Context, call relayed, refuse bool) (ok bool, why string)

// engineDecider posts the emulator's signed webhook to the engine's webhook server, as Microsoft does.
func engineDecider(s *stacktest.Stack) decider {
	hc := &http.Client{Timeout: microsoftWindow, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	return func(ctx context.Context, call relayed, refuse bool) (bool, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.HTTP.URL+"/webhook", bytes.NewReader(call.body))
		if err != nil {
			return false, err.Error()
		}
		req.Header.Set("Authorization", call.authorization)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return false, err.Error()
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if refuse && resp.StatusCode/100 == 4 || !refuse && resp.StatusCode/100 == 2 {
			return true, ""
		}
		return false, fmt.Sprintf("answered %d", resp.StatusCode)
	}
}

// rawDecider sends the event to the subscription's bare workflow as an Update-With-Start with the
// webhook's wait and deadline, as the engine's client does.
func rawDecider(s *stacktest.Stack) decider {
	return func(ctx context.Context, call relayed, refuse bool) (bool, string) {
		ev := call.event
		wctx, cancel := context.WithTimeout(ctx, decisionWait)
		defer cancel()
		deadline, _ := wctx.Deadline()
		start := s.Client.NewWithStartWorkflowOperation(bareDecideOptions(s, ev.SubscriptionID), BareDecideType, ev.SubscriptionID)
		h, err := s.Client.UpdateWithStartWorkflow(wctx, client.UpdateWithStartWorkflowOptions{
			StartWorkflowOperation: start,
			UpdateOptions: client.UpdateWorkflowOptions{
				UpdateID:     "decide-change/" + ev.ID,
				UpdateName:   subscription.UpdateDecideChange,
				Args:         []any{subscription.DecideRequest{Event: ev, Deadline: deadline}},
				WaitForStage: client.WorkflowUpdateStageCompleted,
			},
		})
		var d subscription.ChangeDecision
		if err == nil {
			err = h.Get(wctx, &d)
		}
		switch {
		case err != nil:
			return false, err.Error()
		case d.Decided && d.Accepted != refuse:
			return true, ""
		}
		return false, fmt.Sprintf("decided %v, accepted %v: %s", d.Decided, d.Accepted, d.Reason)
	}
}

// decisionStep makes one change per subscription at rate per second, each sent through decide as soon as
// the emulator delivered its webhook, and waits for every answer and PATCH.
func decisionStep(tb testing.TB, s *stacktest.Stack, rl *relay, rate int, subs []marketplace.Subscription, decide decider) []decision {
	tb.Helper()
	out := make([]decision, len(subs))
	whys := make([]string, len(subs))
	errs := make([]error, len(subs))
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i, sub := range subs {
		if i > 0 {
			<-tick.C
		}
		wg.Go(func() { out[i], whys[i], errs[i] = oneDecision(s, rl, sub, i%2 == 1, decide) })
	}
	wg.Wait()
	logged := 0
	for i, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
		if whys[i] != "" && logged < 3 {
			logged++
			tb.Logf("%d/s: subscription %s: %s", rate, subs[i].ID, whys[i])
		}
	}
	return out
}

// oneDecision changes a subscription's seats as its customer would, sends the change once the emulator
// delivered it, and waits for its PATCH. err is the benchmark's own failure, why an answer that was not
// the decision.
func oneDecision(s *stacktest.Stack, rl *relay, sub marketplace.Subscription, refuse bool, decide decider) (d decision, why string, err error) {
	seats := int64(acceptSeats)
	if refuse {
		seats = refuseSeats
	}
	op, err := s.Emu.Emulator.CustomerChangeQuantity(sub.ID, seats)
	if err != nil {
		return d, "", fmt.Errorf("changing the seats of %s: %w", sub.ID, err)
	}
	call, err := rl.await(op.ID, time.Minute)
	if err != nil {
		return d, "", err
	}
	sent := time.Now()
	d.inWait, why = decide(context.Background(), call, refuse)
	answered := time.Now()
	d.answer = answered.Sub(sent)
	d.patch = patchGiveUp
	for {
		if at, ok := s.Emu.Emulator.PatchedAt(op.ID); ok {
			// The PATCH may overtake the answer on its way back; it is then on time.
			d.patch, d.patched = max(at.Sub(answered), 0), true
			break
		}
		if time.Since(answered) > patchGiveUp {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d, why, nil
}

// stepSummary are one side's figures at one rate.
type stepSummary struct {
	p50, p99        float64 // answer, ms
	patchP99        float64 // ms
	late, patchLate int
}

func (s stepSummary) met() bool { return s.late == 0 && s.patchLate == 0 }

func summarize(ds []decision) stepSummary {
	var sum stepSummary
	answers := make([]float64, 0, len(ds))
	patches := make([]float64, 0, len(ds))
	for _, d := range ds {
		answers = append(answers, ms(d.answer))
		patches = append(patches, ms(d.patch))
		if !d.inWait {
			sum.late++
		}
		if !d.patched || d.patch > patchWithin {
			sum.patchLate++
		}
	}
	sum.p50, sum.p99 = percentile(answers, 0.50), percentile(answers, 0.99)
	sum.patchP99 = percentile(patches, 0.99)
	return sum
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the nearest-rank percentile p of xs (0 when empty).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[max(int(math.Ceil(p*float64(len(xs))))-1, 0)]
}

// relay is the publisher's webhook URL as the emulator knows it: it answers each delivery 200 at once and
// hands the signed call to whoever awaits its operation, to be sent at the load generator's pace. The
// emulator delivers one call at a time, so delivering straight to the engine would measure its delivery
// loop; and since the emulator never sees the engine's answer, only the PATCH decides the operation.
type relay struct {
	url   string
	mu    sync.Mutex
	calls map[string]chan relayed
}

// relayed is one delivery: the emulator's Authorization header (its signed token), body and event.
type relayed struct {
	authorization string
	body          []byte
	event         marketplace.WebhookEvent
}

func newRelay(tb testing.TB) *relay {
	tb.Helper()
	rl := &relay{calls: map[string]chan relayed{}}
	srv := httptest.NewServer(rl)
	tb.Cleanup(srv.Close)
	rl.url = srv.URL
	return rl
}

func (rl *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var ev marketplace.WebhookEvent
	if err == nil {
		err = json.Unmarshal(body, &ev)
	}
	if err != nil {
		http.Error(w, "not a webhook call", http.StatusBadRequest)
		return
	}
	select {
	case rl.slot(ev.ID) <- relayed{authorization: r.Header.Get("Authorization"), body: body, event: ev}:
	default: // a redelivery of a call still waiting to be taken
	}
	w.WriteHeader(http.StatusOK)
}

func (rl *relay) slot(operationID string) chan relayed {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	ch := rl.calls[operationID]
	if ch == nil {
		ch = make(chan relayed, 1)
		rl.calls[operationID] = ch
	}
	return ch
}

// await returns the delivery of an operation's webhook.
func (rl *relay) await(operationID string, within time.Duration) (relayed, error) {
	ch := rl.slot(operationID)
	defer func() {
		rl.mu.Lock()
		delete(rl.calls, operationID)
		rl.mu.Unlock()
	}()
	select {
	case c := <-ch:
		return c, nil
	case <-time.After(within):
		return relayed{}, fmt.Errorf("operation %s: no webhook delivered within %v", operationID, within)
	}
}
