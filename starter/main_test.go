package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/emulator/emulatortest"
	"saasengine/internal/stacktest"
	"saasengine/workflows/metering"
	"saasengine/workflows/subscription"
)

// cliOn runs the CLI in process against the stack's Temporal, as a shell would: exit code, stdout, stderr.
// The Marketplace variables point at the stack's emulator.
func cliOn(s *stacktest.Stack) func(args ...string) (int, string, string) {
	env := map[string]string{
		"TEMPORAL_NAMESPACE":           s.Temporal.GetDefaultNamespace(),
		"MARKETPLACE_BASE_URL":         s.Emu.Emulator.APIBaseURL(),
		"MARKETPLACE_TENANT_ID":        emulator.DemoTenantID,
		"MARKETPLACE_CLIENT_ID":        emulator.DemoAppID,
		"MARKETPLACE_DEV_TOKEN_SECRET": emulatortest.TokenSecret,
	}
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
	var st subscription.State
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || st.Status != "Subscribed" || st.Quantity != 10 {
		t.Fatalf("show: %d %s %s", code, out, errs)
	}
	if code, out, _ := cli("show", id); code != exitOK || !strings.Contains(out, "history:") || !regexp.MustCompile(`(?m)^seats +10$`).MatchString(out) {
		t.Fatalf("show (text): %d %s", code, out)
	}
	if code, _, errs := cli("show", "a1b2c3d4-0000-4000-8000-000000000000"); code != exitNotFound {
		t.Fatalf("show unknown: %d %s", code, errs)
	}

	code, out, errs = cli("change-quantity", id, "25", "--json")
	var res subscription.CommandResult
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
	if code, _, errs := cli("list", "--status", "Nope"); code == exitOK || !strings.Contains(errs, "Subscribed") {
		t.Fatalf("unknown status: %d %s", code, errs)
	}

	// An operator approves a purchase whose buyer never confirmed; approve waits for the activation.
	p := s.Emu.Purchase(t, "basic", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resolved, err := s.Emu.Client.Resolve(ctx, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subs.Land(ctx, resolved.Subscription); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "awaiting confirmation", func(st subscription.State) bool { return st.Phase == subscription.PhaseAwaitingConfirmation })
	code, out, errs = cli("approve", p.SubscriptionID)
	if code != exitOK || !regexp.MustCompile(`(?m)^status +Subscribed$`).MatchString(out) || !regexp.MustCompile(`(?m)^phase +Idle$`).MatchString(out) {
		t.Fatalf("approve: %d %s %s", code, out, errs)
	}
	// A flat-rate plan has no seats to show, in the listing as in the state.
	if strings.Contains(out, "seats") {
		t.Fatalf("approve shows seats of a flat-rate plan: %s", out)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, out, _ = cli("list", "--plan", "basic")
		if code == exitOK && strings.Contains(out, p.SubscriptionID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list never showed the approved subscription: %d %s", code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if row := regexp.MustCompile(p.SubscriptionID + `.*`).FindString(out); !regexp.MustCompile(`basic +true$`).MatchString(row) {
		t.Fatalf("listing row of a flat-rate plan: %q", row)
	}

	// Text unless --json.
	if code, out, errs := cli("setup", "--reconcile-interval", "2h"); code != exitOK || !strings.Contains(out, "SaaSStatus") || strings.Contains(out, "{") {
		t.Fatalf("setup: %d %s %s", code, out, errs)
	}
	if code, out, errs := cli("setup", "--reconcile-interval", "2h", "--json"); code != exitOK || !strings.Contains(out, `"SaaSStatus"`) {
		t.Fatalf("setup --json: %d %s %s", code, out, errs)
	}
	if code, out, errs := cli("reconcile", "--wait", "--json"); code != exitOK || !strings.Contains(out, `"inSync": 2`) {
		t.Fatalf("reconcile: %d %s %s", code, out, errs)
	}
	if code, out, errs := cli("reconcile", "--wait"); code != exitOK || !strings.Contains(out, "2 in sync") || strings.Contains(out, "{") {
		t.Fatalf("reconcile (text): %d %s %s", code, out, errs)
	}
	if code, out, errs := cli("reconcile"); code != exitOK || !strings.HasPrefix(out, "Reconciliation started: workflow ") {
		t.Fatalf("reconcile (no wait): %d %s %s", code, out, errs)
	}

	if code, out, errs := cli("cancel", id); code != exitOK || !regexp.MustCompile(`^Succeeded \(operation [0-9a-f-]{36}\)`).MatchString(out) {
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
	// A dimension the plan does not have is refused when reported, not when the hour is posted.
	if code, _, errs := cli("report-usage", id, "gpu_hours", "1", "--time", when); code != exitUsage || !strings.Contains(errs, "api_calls, storage_gb") {
		t.Fatalf("unknown dimension: %d %s", code, errs)
	}
	// A report, the same again (the CLI says its ID was counted and sends nothing), and one more for the
	// same hour.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report-usage", id, "api_calls", "2.5", "--time", when, "--id", "job-1"}, "Accepted by the meter"},
		{[]string{"report-usage", id, "api_calls", "2.5", "--time", when, "--id", "job-1"}, `Already counted: the meter has counted usage ID "job-1" before`},
		{[]string{"report-usage", id, "api_calls", "2.5", "--time", when, "--id", "job-1", "--json"}, `"status": "AlreadyCounted"`},
		{[]string{"report-usage", id, "api_calls", "1", "--time", when, "--plan", "metered"}, "Accepted by the meter"},
	} {
		if code, out, errs := cli(c.args...); code != exitOK || !strings.Contains(out, c.want) {
			t.Fatalf("%v: %d %s %s", c.args, code, out, errs)
		}
	}
	// A sender that does not ask first: the meter itself ignores the counted ID.
	if err := s.Meter.Report(ctx, id, metering.Usage{ID: "job-1", Dimension: "api_calls", Quantity: 2.5, Time: hour.Add(10 * time.Minute)}); err != nil {
		t.Fatal(err)
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
			if code, out, _ := cli("show-usage", id); code != exitOK || !strings.Contains(out, "2 accepted") || !strings.Contains(out, "api_calls") || strings.Contains(out, "{") {
				t.Errorf("show-usage (text): %d %s", code, out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the usage was never accepted: %d %s", code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
