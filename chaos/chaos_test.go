package chaos_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"saasengine/chaos"
)

// testWriter sends progress lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestChaosSmall is the chaos run at CI's scale: a few dozen subscriptions through the whole lifecycle
// under every kind of fault, with one kill of each process kind, and every count must be 0. It also
// checks that the chaos happened: each kind of fault fired and each process was killed.
func TestChaosSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs four processes")
	}
	cfg := chaos.Defaults()
	cfg.N = 24
	cfg.Kills = 1
	cfg.Concurrency = 24
	// A higher lost-answer rate than the default, so that a run this small surely loses some.
	cfg.LostRate = 0.1
	cfg.Settle = 2 * time.Minute
	cfg.StepTimeout = 40 * time.Second
	cfg.Dir = t.TempDir()
	cfg.Progress = testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		dumpLogs(t, cfg.Dir)
		t.Fatal(err)
	}
	var out strings.Builder
	rep.Write(&out)
	t.Log("\n" + out.String())
	if !rep.OK() {
		dumpLogs(t, cfg.Dir)
		t.Fatalf("lost %d, doubled %d, stuck %d, falsely reported %d, non-determinism %d, workflow panics %d: want all 0",
			rep.Lost, rep.Doubled, rep.Stuck, rep.FalselyReported, rep.NonDeterminism, rep.WorkflowPanics)
	}
	if rep.Subscriptions != cfg.N {
		t.Errorf("%d subscriptions checked, want %d", rep.Subscriptions, cfg.N)
	}
	for _, k := range rep.Kills {
		if k.Name != "emulator" && k.Kills < cfg.Kills {
			t.Errorf("%s killed %d times, want %d", k.Name, k.Kills, cfg.Kills)
		}
	}
	fired := map[string]int{}
	for _, f := range rep.Faults {
		switch {
		case f.LostAnswer:
			fired["lost answer"] += f.Fired
		case f.Webhook != "":
			fired["webhook "+f.Webhook] += f.Fired
		default:
			fired["status"] += f.Fired
		}
	}
	for _, kind := range []string{"lost answer", "status", "webhook drop", "webhook duplicate", "webhook reorder"} {
		if fired[kind] == 0 {
			t.Errorf("no %s fault fired: the run did not test what it claims", kind)
		}
	}
}

// dumpLogs shows the end of each process's log.
func dumpLogs(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("--- %s (end)\n%s", filepath.Base(f), b)
	}
}
