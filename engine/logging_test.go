package engine_test

import (
	"fmt"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"saasengine/config"
	"saasengine/emulator"
	"saasengine/engine"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
)

// A throttled Marketplace call that Temporal retries is one warning per attempt, with Microsoft's request
// and correlation IDs, from the production wiring (config.TemporalLogger, the Marketplace client's logger,
// engine.NewWorker): not a second line from the activity, nor the SDK's error-level line with a stack
// trace.
func TestRetriedThrottlingIsOneWarning(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(core)
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	c := s.Temporal.NewClientWithOptions(client.Options{Logger: config.TemporalLogger(logger)})
	defer c.Close()
	api, err := marketplace.NewClient(s.Emu.Emulator.APIBaseURL(), s.Emu.Tokens, marketplace.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	w := engine.NewWorker(c, s.TaskQueue, engine.Deps{Marketplace: api, Provisioner: s.Provisioner, Logger: logger}, worker.Options{})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := s.Emu.Emulator.AddFault(emulator.Fault{Endpoint: emulator.EndpointGetSubscription, Status: 429, RetryAfter: 1, Count: 2}); err != nil {
		t.Fatal(err)
	}
	s.Activated(t, "basic", 0)

	var warnings, sdkLines int
	for _, e := range logs.All() {
		if e.Stack != "" {
			t.Errorf("a stack trace was logged: %s %s", e.Message, e.Stack)
		}
		if e.Level >= zapcore.ErrorLevel {
			t.Errorf("logged at %s: %s %v", e.Level, e.Message, e.ContextMap())
		}
		if e.Message == "Activity error." {
			sdkLines++
			if e.Level != zapcore.DebugLevel {
				t.Errorf("the SDK's line for a logged failure is %s", e.Level)
			}
		}
		if e.Level == zapcore.WarnLevel && strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), "429") {
			warnings++
			f := e.ContextMap()
			if f["requestId"] == "" || f["requestId"] == nil || f["correlationId"] == "" || f["op"] != "get subscription" {
				t.Errorf("the warning lacks the call's IDs: %v", f)
			}
		}
	}
	if warnings != 2 || sdkLines != 2 {
		t.Fatalf("%d warnings and %d SDK lines for two throttled attempts, want 2 and 2:\n%s", warnings, sdkLines, dump(logs.All()))
	}
}

func dump(entries []observer.LoggedEntry) string {
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&b, "%s %s %v\n", e.Level, e.Message, e.ContextMap())
	}
	return b.String()
}
