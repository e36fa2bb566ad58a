package devserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestStateSurvivesRestart starts the server on a file, starts a workflow, stops, starts again on the same
// folder and finds the workflow and the search attributes still there; the UI answers meanwhile.
func TestStateSurvivesRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{
		DataDir:          t.TempDir(),
		Namespace:        "engine",
		FrontendPort:     freePort(t),
		UIPort:           freePort(t),
		SearchAttributes: map[string]enumspb.IndexedValueType{"DevserverProbe": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		CodecEndpoint:    "http://127.0.0.1:1/codec/the-path-key",
	}
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dial(ctx, s.HostPort(), s.Namespace())
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "probe", TaskQueue: "nobody-listens"}, "Probe")
	if err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, s.UIURL())
	// The UI is told where to decode encrypted payloads (its settings, which its pages read).
	resp, err := http.Get(s.UIURL() + "/api/v1/settings")
	if err != nil {
		t.Fatal(err)
	}
	settings, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(settings), cfg.CodecEndpoint) {
		t.Errorf("the UI's settings do not name the codec endpoint: %d %s", resp.StatusCode, settings)
	}
	c.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	s, err = Start(ctx, cfg)
	if err != nil {
		t.Fatalf("restart on the same folder: %v", err)
	}
	defer s.Stop()
	c, err = dial(ctx, s.HostPort(), s.Namespace())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, err := c.DescribeWorkflowExecution(ctx, "probe", run.GetRunID())
	if err != nil {
		t.Fatalf("the workflow did not survive the restart: %v", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("status %v", st)
	}
	sas, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "engine"})
	if err != nil {
		t.Fatal(err)
	}
	if sas.GetCustomAttributes()["DevserverProbe"] != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
		t.Fatalf("search attributes %v", sas.GetCustomAttributes())
	}
}

func TestTakenPortIsAClearError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Start(context.Background(), Config{DataDir: t.TempDir(), FrontendPort: l.Addr().(*net.TCPAddr).Port, UIPort: -1})
	if err == nil {
		t.Fatal("a taken port must fail the start")
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the UI at %s did not answer: %v", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
