package allinone

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"saasengine/marketplace"
)

// What a newcomer does: `go run ./cmd/allinone`, buy, confirm, Ctrl-C, run it again. The command runs as
// a real process so that Ctrl-C is a real SIGINT and the restart a real new process on the same data.
func TestCtrlCAndRunAgainKeepsEverything(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "allinone")
	build := exec.Command("go", "build", "-o", bin, "saasengine/cmd/allinone")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	emuAddr, httpAddr := freeAddr(t), freeAddr(t)
	args := []string{"-data", dir, "-temporal-port", fmt.Sprint(port(freeAddr(t))), "-ui-port", fmt.Sprint(port(freeAddr(t))),
		"-emulator-addr", emuAddr, "-http-addr", httpAddr}
	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Env = append(os.Environ(), "METRICS_ADDR=off", "LOG_LEVEL=warn", "RECONCILE_INTERVAL=off")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(out.String(), "saasengine is running") {
			if time.Now().After(deadline) || cmd.ProcessState != nil {
				t.Fatalf("allinone did not come up:\n%s", out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		return cmd, &out
	}
	stop := func(cmd *exec.Cmd, out *bytes.Buffer) {
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Ctrl-C did not stop cleanly: %v\n%s", err, out.String())
			}
		case <-time.After(time.Minute):
			t.Fatalf("still running a minute after Ctrl-C:\n%s", out.String())
		}
	}

	cmd, out := start()
	if !strings.Contains(out.String(), "Temporal Web UI") || !strings.Contains(out.String(), "Marketplace (buy)") {
		t.Fatalf("banner does not say where to go:\n%s", out.String())
	}
	stack := &Stack{EmulatorURL: "http://" + emuAddr, HTTPURL: "http://" + httpAddr, AdminToken: "dev-admin-token"}
	e := e2e{t: t, stack: stack}
	id := e.buy("team", 7)
	stop(cmd, out)

	cmd, out = start()
	defer stop(cmd, out)
	restarted := time.Now()
	e.waitFor("state after restart", func() bool {
		st := e.state(id)
		return st.Status == marketplace.StatusSubscribed && st.Quantity == 7 && st.Provisioned
	})
	if ms := e.microsoft(id); ms.Status != marketplace.StatusSubscribed {
		t.Fatalf("the emulator forgot the subscription: %+v", ms)
	}
	// And it still works: a change after the restart goes through.
	e.customer(id, "change-quantity", `{"quantity":9}`)
	e.waitFor("change after restart", func() bool { return e.state(id).Quantity == 9 })
	t.Logf("state and a change went through %v after the restart", time.Since(restarted))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, stack.HTTPURL+"/readyz", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz after restart: %v", err)
	}
}
