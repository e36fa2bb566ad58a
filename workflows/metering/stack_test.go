package metering_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/metering"
)

// postUsage sends reports through the admin API.
func postUsage(t *testing.T, s *stacktest.Stack, subscriptionID string, body any) (int, string) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, out := s.Admin(t, http.MethodPost, "/admin/subscriptions/"+subscriptionID+"/usage", stacktest.AdminToken, string(b))
	return resp.StatusCode, string(out)
}

// waitMeter polls the meter's query until cond holds, failing the test after a minute.
func waitMeter(t *testing.T, s *stacktest.Stack, subscriptionID, what string, cond func(metering.State) bool) metering.State {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last metering.State
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := s.Meter.State(ctx, subscriptionID)
		cancel()
		if err == nil && cond(st) {
			return st
		}
		last, lastErr = st, err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("meter of %s never %s; last state %+v, error %v", subscriptionID, what, last, lastErr)
	return metering.State{}
}

// accepted sums the emulator's accepted usage of one subscription by dimension and hour.
func accepted(s *stacktest.Stack, subscriptionID string) (map[string]float64, int) {
	sums := map[string]float64{}
	n := 0
	for _, u := range s.Emu.Emulator.State().Usage {
		if strings.EqualFold(u.ResourceID, subscriptionID) && u.Status == marketplace.UsageAccepted {
			sums[key(u.Dimension, u.EffectiveStartTime.Time)] += u.Quantity
			n++
		}
	}
	return sums, n
}

// The whole path: admin API → Temporal signal → the meter on the engine's worker → the emulator's Metering
// API over HTTP, with its rules (one event per dimension and hour, known dimensions, Subscribed only).
func TestMeteringThroughTheAdminAPIReachesTheEmulator(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Metering: metering.Options{Grace: time.Second}})
	id := s.Activated(t, "metered", 0)
	now := time.Now().UTC()
	h3, h2 := now.Add(-3*time.Hour).Truncate(time.Hour), now.Add(-2*time.Hour).Truncate(time.Hour)
	minute := func(h time.Time, m int) time.Time { return h.Add(time.Duration(m) * time.Minute) }
	reports := []metering.Usage{
		{Dimension: "api_calls", Quantity: 1.5, Time: minute(h3, 1)},
		{Dimension: "api_calls", Quantity: 2, Time: minute(h3, 30)},
		{Dimension: "api_calls", Quantity: 0.5, Time: minute(h3, 59)},
		{Dimension: "storage_gb", Quantity: 10, Time: minute(h3, 10)},
		{Dimension: "storage_gb", Quantity: 5, Time: minute(h3, 20)},
		{ID: "batch-7", Dimension: "api_calls", Quantity: 7, Time: minute(h2, 5)},
		{Dimension: "api_calls", Quantity: 3, Time: minute(h2, 6)},
		{Dimension: "storage_gb", Quantity: 1, Time: minute(h2, 1)},
	}
	gpu := metering.Usage{Dimension: "gpu_hours", Quantity: 4, Time: minute(h2, 2)}
	// A dimension the plan does not have is refused when it is reported, with the plan's dimensions
	// (from List available plans), and nothing of the call is recorded.
	if code, body := postUsage(t, s, id, append(reports, gpu)); code != http.StatusBadRequest ||
		!strings.Contains(body, "InvalidUsage") || !strings.Contains(body, "gpu_hours") || !strings.Contains(body, "api_calls") {
		t.Fatalf("report of an unknown dimension: %d %s", code, body)
	}
	if code, body := postUsage(t, s, id, reports); code != http.StatusAccepted {
		t.Fatalf("report: %d %s", code, body)
	}
	// A Go service reporting without the check reaches the meter, and Microsoft refuses the dimension.
	unchecked := metering.Client{Temporal: s.Client, TaskQueue: s.TaskQueue, Options: metering.Options{Grace: time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := unchecked.Report(ctx, id, gpu); err != nil {
		t.Fatal(err)
	}
	// Sent again by a caller that did not hear the answer: counted once.
	if code, body := postUsage(t, s, id, reports[5]); code != http.StatusAccepted {
		t.Fatalf("report again: %d %s", code, body)
	}

	st := waitMeter(t, s, id, "settled every bucket", func(st metering.State) bool {
		return len(st.Open) == 0 && st.Totals.Accepted+st.Totals.Rejected == 5
	})
	sums, n := accepted(s, id)
	want := map[string]float64{key("api_calls", h3): 4, key("storage_gb", h3): 15, key("api_calls", h2): 10, key("storage_gb", h2): 1}
	if n != len(want) {
		t.Fatalf("the emulator accepted %d events, want %d: %v", n, len(want), sums)
	}
	for k, q := range want {
		if sums[k] != q {
			t.Errorf("%s: emulator has %v, want %v", k, sums[k], q)
		}
	}
	// The admin API shows the same state.
	resp, body := s.Admin(t, http.MethodGet, "/admin/subscriptions/"+id+"/usage", stacktest.AdminToken, "")
	var shown metering.State
	_ = json.Unmarshal(body, &shown)
	if resp.StatusCode != http.StatusOK || shown.Totals != st.Totals || len(shown.Recent) != len(st.Recent) {
		t.Errorf("GET usage: %d %+v", resp.StatusCode, shown)
	}
	if o := outcomes(st)[key("gpu_hours", h2)]; o.Outcome != metering.OutcomeRejected || o.Status != string(marketplace.UsageInvalidDimension) {
		t.Errorf("unknown dimension: %+v", o)
	}
	if st.Totals.Accepted != 4 || st.Totals.Rejected != 1 || st.Totals.IgnoredReports != 1 || st.Totals.Errors != 0 {
		t.Errorf("totals %+v", st.Totals)
	}
	for _, o := range st.Recent {
		if o.Outcome == metering.OutcomeAccepted && (o.UsageEventID == "" || o.PlanID != "metered") {
			t.Errorf("accepted outcome without its event ID or plan: %+v", o)
		}
	}

	// Usage of a suspended subscription is refused by Microsoft for good.
	sus := s.Activated(t, "metered", 0)
	if _, err := s.Emu.Emulator.Suspend(sus); err != nil {
		t.Fatal(err)
	}
	if code, body := postUsage(t, s, sus, metering.Usage{Dimension: "api_calls", Quantity: 2, Time: minute(h2, 10)}); code != http.StatusAccepted {
		t.Fatalf("report (suspended): %d %s", code, body)
	}
	st = waitMeter(t, s, sus, "refused the suspended subscription's usage", func(st metering.State) bool { return st.Totals.Rejected == 1 })
	if o := outcomes(st)[key("api_calls", h2)]; o.Status != string(marketplace.UsageResourceNotActive) || len(st.Open) != 0 {
		t.Errorf("suspended: %+v (open %+v)", o, st.Open)
	}
	if _, n := accepted(s, sus); n != 0 {
		t.Errorf("the emulator accepted %d events of a suspended subscription", n)
	}

	// The recorded history replays: the workflow's code is deterministic over a real run.
	replayer := worker.NewWorkflowReplayer()
	replayer.RegisterWorkflowWithOptions(metering.MeteringWorkflow, workflow.RegisterOptions{Name: metering.WorkflowType})
	var events []*historypb.HistoryEvent
	it := s.Client.GetWorkflowHistory(ctx, metering.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	if err := replayer.ReplayWorkflowHistory(nil, &historypb.History{Events: events}); err != nil {
		t.Fatalf("replaying the meter's history: %v", err)
	}
}
