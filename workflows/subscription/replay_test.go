package subscription

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Recorded histories live in testdata, written by the engine's integration tests from real runs against
// Temporal and the emulator:
//
//	RECORD_HISTORIES=<tag> go test -count=1 ./engine/ -run Lifecycle
//
// <tag>-full-lifecycle-lag*.json are whole lives at Microsoft's read lags of 0, 2 and 5 s;
// <tag>-change-heavy-*.json and <tag>-lifecycle-*.json are lives spread over several continue-as-new
// runs. The baseline's are tagged "baseline"; CI replays every committed file.

func recordedHistories(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories under workflows/testdata")
	}
	return files
}

// TestReplayRecordedHistories replays every recorded history with today's workflow code. A change that
// would break running workflows fails here: put it behind workflow.GetVersion instead.
func TestReplayRecordedHistories(t *testing.T) {
	for _, f := range recordedHistories(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(SubscriptionWorkflow, workflow.RegisterOptions{Name: WorkflowType})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replaying %s: %v", f, err)
			}
		})
	}
}
