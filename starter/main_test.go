package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"saasengine/internal/stacktest"
	"saasengine/metering"
	"saasengine/workflows"
)

// cliOn runs the CLI in process against the stack's Temporal, as a shell would: exit code, stdout, stderr.
func cliOn(s *stacktest.Stack) func(args ...string) (int, string, string) {
	env := map[string]string{"TEMPORAL_NAMESPACE": s.Temporal.GetDefaultNamespace()}
	return func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		code := run(ctx, args, &out, &errb, func(k string) string { return env[k] }, s.Client)
		return code, out.String(), errb.String()
	}
}

func TestCLIAgainstTheEngine(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{DemoMaxQuantity: 100})
	cli := cliOn(s)
	id := s.Activated(t, "team", 10)

	if code, out, _ := cli("--help"); code != exitOK || !strings.Contains(out, "change-quantity") {
		t.Fatalf("--help: %d %s", code, out)
	}
	if code, _, _ := cli("frobnicate"); code != exitUsage {
		t.Fatalf("unknown command: exit %d", code)
	}
	if code, _, _ := cli("change-quantity", id, "many"); code != exitUsage {
		t.Fatalf("bad quantity: exit %d", code)
	}

	code, out, errs := cli("show", id, "--json")
	var st workflows.State
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || st.Status != "Subscribed" || st.Quantity != 10 {
		t.Fatalf("show: %d %s %s", code, out, errs)
	}
	if code, out, _ := cli("show", id); code != exitOK || !strings.Contains(out, "history:") {
		t.Fatalf("show (text): %d %s", code, out)
	}
	if code, _, errs := cli("show", "a1b2c3d4-0000-4000-8000-000000000000"); code != exitNotFound {
		t.Fatalf("show unknown: %d %s", code, errs)
	}

	code, out, errs = cli("change-quantity", id, "25", "--json")
	var res workflows.CommandResult
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || res.Status != "Succeeded" {
		t.Fatalf("change-quantity: %d %s %s", code, out, errs)
	}
	if sub, _ := s.Emu.Emulator.Subscription(id); sub.Quantity != 25 {
		t.Fatalf("emulator has %d seats", sub.Quantity)
	}
	// Refused by the workflow's validation: the same quantity again.
	if code, _, errs := cli("change-quantity", id, "25"); code != exitRefused {
		t.Fatalf("same quantity: %d %s", code, errs)
	}
	// Refused by Microsoft: more seats than the plan allows.
	if code, out, errs := cli("change-quantity", id, "900"); code != exitRefused {
		t.Fatalf("quantity above the plan's maximum: %d %s %s", code, out, errs)
	}

	// Listing goes through visibility, which catches up asynchronously.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, _ = cli("list", "--status", "Subscribed", "--plan", "team", "--json")
		if code == exitOK && strings.Contains(out, id) && strings.Contains(out, `"quantity": 25`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list never showed the subscription with 25 seats: %d %s", code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, out, _ := cli("list", "--status", "Suspended"); code != exitOK || strings.Contains(out, id) {
		t.Fatalf("status filter ignored: %s", out)
	}

	if code, out, errs := cli("setup", "--reconcile-interval", "2h", "--json"); code != exitOK || !strings.Contains(out, "SaaSStatus") {
		t.Fatalf("setup: %d %s %s", code, out, errs)
	}
	if code, out, errs := cli("reconcile", "--wait", "--json"); code != exitOK || !strings.Contains(out, `"inSync": 1`) {
		t.Fatalf("reconcile: %d %s %s", code, out, errs)
	}

	if code, out, errs := cli("cancel", id); code != exitOK || !strings.HasPrefix(out, "Succeeded") {
		t.Fatalf("cancel: %d %s %s", code, out, errs)
	}
	if sub, _ := s.Emu.Emulator.Subscription(id); sub.Status != "Unsubscribed" {
		t.Fatalf("emulator shows %s after cancel", sub.Status)
	}
}

func TestCLIReportsUsage(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Metering: metering.Options{Grace: time.Second}})
	cli := cliOn(s)
	if code, out, _ := cli("--help"); code != exitOK || !strings.Contains(out, "report-usage <id> <dimension> <quantity>") {
		t.Fatalf("--help: %d %s", code, out)
	}
	id := s.Activated(t, "metered", 0)
	hour := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Hour)
	when := hour.Add(10 * time.Minute).Format(time.RFC3339)
	for _, args := range [][]string{
		{"report-usage", id, "api_calls"},
		{"report-usage", id, "api_calls", "many"},
		{"report-usage", id, "api_calls", "0"},
		{"report-usage", id, "api_calls", "1", "--time", "yesterday"},
		{"report-usage", id, "api_calls", "1", "--time", time.Now().Add(time.Hour).Format(time.RFC3339)},
		{"report-usage", "not-a-guid", "api_calls", "1"},
	} {
		if code, _, _ := cli(args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, errs := cli("show-usage", id); code != exitNotFound {
		t.Fatalf("show-usage before any report: %d %s", code, errs)
	}
	// The Go API starts the meter with the stack's short grace; the CLI's reports join it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Meter.Report(ctx, id, metering.Usage{Dimension: "storage_gb", Quantity: 1, Time: hour.Add(5 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	// The same report twice (its ID makes the repeat harmless), and one more for the same hour.
	for _, args := range [][]string{
		{"report-usage", id, "api_calls", "2.5", "--time", when, "--id", "job-1"},
		{"report-usage", id, "api_calls", "2.5", "--time", when, "--id", "job-1", "--json"},
		{"report-usage", id, "api_calls", "1", "--time", when, "--plan", "metered"},
	} {
		if code, out, errs := cli(args...); code != exitOK || !strings.Contains(out, "Accepted") {
			t.Fatalf("%v: %d %s %s", args, code, out, errs)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		code, out, _ := cli("show-usage", id, "--json")
		var st metering.State
		if code == exitOK && json.Unmarshal([]byte(out), &st) == nil && st.Totals.Accepted == 2 {
			for _, o := range st.Recent {
				if want := map[string]float64{"api_calls": 3.5, "storage_gb": 1}[o.Dimension]; o.Quantity != want || o.Outcome != metering.OutcomeAccepted || !o.Hour.Equal(hour) {
					t.Errorf("outcome %+v", o)
				}
			}
			if st.Totals.IgnoredReports != 1 {
				t.Errorf("totals %+v", st.Totals)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the usage was never accepted: %d %s", code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
