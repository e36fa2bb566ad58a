package engine_test

import (
	"testing"
	"time"

	"saasengine/config"
	"saasengine/engine"
)

// A stopping worker must let running activities finish (worker.Options{} would cancel them at once).
func TestWorkerOptionsStopTimeout(t *testing.T) {
	w, err := config.WorkerFromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := engine.WorkerOptions(w).WorkerStopTimeout; got != 30*time.Second {
		t.Fatalf("WorkerStopTimeout %v, want the 30s default", got)
	}
}
