package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/emulator/emulatortest"
	"saasengine/internal/stacktest"
)

// buildDir holds the worker binary the memory benchmark builds; TestMain removes it.
var buildDir string

var benchworker = struct {
	once sync.Once
	path string
	err  error
}{}

// workerBinary builds cmd/benchworker once per test process: a worker binary that links what cmd/worker
// links, so its resident set is a worker's (this test binary also carries a Temporal server).
func workerBinary(tb testing.TB) string {
	tb.Helper()
	benchworker.once.Do(func() {
		dir, err := os.MkdirTemp("", "benchworker-")
		if err != nil {
			benchworker.err = err
			return
		}
		buildDir = dir
		goTool, err := exec.LookPath("go")
		if err != nil {
			benchworker.err = fmt.Errorf("the memory benchmark builds its worker with the go command: %w", err)
			return
		}
		path := filepath.Join(dir, "benchworker")
		out, err := exec.Command(goTool, "build", "-o", path, "saasengine/bench/cmd/benchworker").CombinedOutput()
		if err != nil {
			benchworker.err = fmt.Errorf("go build: %w: %s", err, out)
			return
		}
		benchworker.path = path
	})
	if benchworker.err != nil {
		tb.Fatal(benchworker.err)
	}
	return benchworker.path
}

// testBinary is this test binary, which TestMain turns into a worker process: quicker to start than a
// build, for tests that count workflows rather than bytes.
func testBinary(tb testing.TB) string {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	return exe
}

// workerProc is a running worker process.
type workerProc struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	statsURL string
	stderr   *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startWorkerProc starts exe (workerBinary or testBinary) as a worker process of role on taskQueue,
// against the stack's Temporal server and emulator, with the given workflow cache size.
func startWorkerProc(tb testing.TB, exe string, s *stacktest.Stack, role, taskQueue string, cacheSize int) *workerProc {
	tb.Helper()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(),
		EnvWorkerRole+"="+role,
		"TEMPORAL_ADDRESS="+s.Temporal.GetFrontendHostPort(),
		"TEMPORAL_NAMESPACE="+s.Temporal.GetDefaultNamespace(),
		"TEMPORAL_TASK_QUEUE="+taskQueue,
		"MARKETPLACE_BASE_URL="+s.Emu.Emulator.APIBaseURL(),
		"MARKETPLACE_TENANT_ID="+emulator.DemoTenantID,
		"MARKETPLACE_CLIENT_ID="+emulator.DemoAppID,
		"MARKETPLACE_DEV_TOKEN_SECRET="+emulatortest.TokenSecret,
		"PROVISIONING_MODE=demo",
		"PROVISIONING_DEMO_FILE="+filepath.Join(tb.TempDir(), "tenants.db"),
		"WORKFLOW_CACHE_SIZE="+strconv.Itoa(cacheSize),
		"LOG_LEVEL=warn",
		"LOG_FORMAT=console",
	)
	p := &workerProc{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.stop)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if url, ok := strings.CutPrefix(sc.Text(), "stats "); ok {
				lines <- url
			}
		}
		close(lines)
	}()
	select {
	case url, ok := <-lines:
		if !ok {
			_ = cmd.Wait()
			tb.Fatalf("%s worker exited: %s", role, p.stderr)
		}
		p.statsURL = url
	case <-time.After(2 * time.Minute):
		tb.Fatalf("%s worker did not start: %s", role, p.stderr)
	}
	return p
}

func (p *workerProc) stop() {
	if p.stdin == nil {
		return
	}
	_ = p.stdin.Close()
	p.stdin = nil
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// stats reads the process's stats (which collects its garbage first).
func (p *workerProc) stats(tb testing.TB) Stats {
	tb.Helper()
	resp, err := http.Get(p.statsURL)
	if err != nil {
		tb.Fatalf("worker stats: %v (%s)", err, p.stderr)
	}
	defer resp.Body.Close()
	var st Stats
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("worker stats: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		tb.Fatal(err)
	}
	return st
}

// saveHeapProfile writes the process's heap profile (after a collection) to file, for go tool pprof.
func (p *workerProc) saveHeapProfile(tb testing.TB, file string) {
	tb.Helper()
	resp, err := http.Get(strings.TrimSuffix(p.statsURL, "/stats") + "/debug/pprof/heap?gc=1")
	if err != nil {
		tb.Fatalf("heap profile: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("heap profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("heap profile of the %s worker: %s", filepath.Base(file), file)
}

// memory reads the process's resident set as the system sees it (no collection first) and its peak.
func (p *workerProc) memory(tb testing.TB) (rss, peak uint64) {
	tb.Helper()
	rss, peak, err := ProcMemory(p.cmd.Process.Pid)
	if err != nil {
		tb.Fatal(err)
	}
	return rss, peak
}

// settle waits until the process has run no task for a second: the workflows are idle.
func (p *workerProc) settle(tb testing.TB, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	last := p.stats(tb).Tasks
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		now := p.stats(tb).Tasks
		if now == last {
			return
		}
		last = now
	}
	tb.Fatalf("worker still busy after %v", within)
}
