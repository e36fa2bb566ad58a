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
	"sync"
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
	// proc is one run of the command; done delivers its exit.
	type proc struct {
		cmd  *exec.Cmd
		out  *lockedBuffer
		done chan error
	}
	start := func() proc {
		p := proc{cmd: exec.Command(bin, args...), out: &lockedBuffer{}, done: make(chan error, 1)}
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
		p.cmd.Env = append(os.Environ(), "METRICS_ADDR=off", "LOG_LEVEL=warn", "RECONCILE_INTERVAL=off",
			"EMULATOR_READ_LAG=0s") // read lag pinned to 0 until the lag-tolerant workflow lands
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill() })
		go func() { p.done <- p.cmd.Wait() }()
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(p.out.String(), "saasengine is running") {
			select {
			case err := <-p.done:
				t.Fatalf("allinone exited (%v) before it came up:\n%s", err, p.out.String())
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("allinone did not come up:\n%s", p.out.String())
			}
		}
		return p
	}
	stop := func(p proc) {
		if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-p.done:
			if err != nil {
				t.Fatalf("Ctrl-C did not stop cleanly: %v\n%s", err, p.out.String())
			}
		case <-time.After(time.Minute):
			t.Fatalf("still running a minute after Ctrl-C:\n%s", p.out.String())
		}
	}

	first := start()
	if banner := first.out.String(); !strings.Contains(banner, "Temporal Web UI") || !strings.Contains(banner, "Marketplace (buy)") {
		t.Fatalf("banner does not say where to go:\n%s", banner)
	}
	stack := &Stack{EmulatorURL: "http://" + emuAddr, HTTPURL: "http://" + httpAddr, AdminToken: "dev-admin-token"}
	e := e2e{t: t, stack: stack}
	id := e.buy("team", 7)
	stop(first)

	second := start()
	defer stop(second)
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

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
