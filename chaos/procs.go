package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The binaries a run builds once and starts as processes of their own.
var binaries = map[string]string{
	"temporal": "saasengine/cmd/temporal",
	"emulator": "saasengine/cmd/emulator",
	"worker":   "saasengine/worker",
	"webhook":  "saasengine/webhook",
}

// Build compiles the run's binaries into dir with the go command.
func Build(ctx context.Context, dir string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the chaos run builds its processes with the go command: %w", err)
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, pkg := range binaries {
		args = append(args, pkg)
	}
	out, err := exec.CommandContext(ctx, goTool, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w: %s", err, out)
	}
	return nil
}

// proc is one supervised process: started, killed (SIGKILL, as a crash) and restarted on demand, and
// restarted when it dies on its own (counted: an unexpected exit is a finding).
type proc struct {
	name  string
	path  string
	args  []string
	env   []string
	log   string
	ready func(ctx context.Context) error
	// after is waited for before a restart: the worker cannot start while Temporal is down.
	after *proc

	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{}
	stopping   bool
	kills      int
	unexpected int
	up         chan struct{} // closed while the process is running and ready
}

func (p *proc) start(ctx context.Context) error {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.stopping = cmd, exited, false
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	if err := p.waitReady(ctx, exited); err != nil {
		return err
	}
	p.mu.Lock()
	p.up = make(chan struct{})
	close(p.up)
	p.mu.Unlock()
	return nil
}

// waitReady polls the process's readiness until it holds, the process exits or ctx ends.
func (p *proc) waitReady(ctx context.Context, exited <-chan struct{}) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := p.ready(rctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before it was ready (log: %s)", p.name, p.log)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last: %v)", p.name, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// supervise restarts the process whenever it exits without being told to, until ctx ends.
func (p *proc) supervise(ctx context.Context, report func(error)) {
	for {
		p.mu.Lock()
		exited := p.exited
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-exited:
		}
		p.mu.Lock()
		stopping := p.stopping
		if !stopping {
			p.unexpected++
		}
		p.mu.Unlock()
		if stopping {
			// kill restarts it itself; wait for the new process.
			p.waitRestarted(ctx, exited)
			continue
		}
		if err := p.restart(ctx); err != nil && ctx.Err() == nil {
			report(err)
			return
		}
	}
}

// waitRestarted waits until the process's exit channel is not old any more.
func (p *proc) waitRestarted(ctx context.Context, old chan struct{}) {
	for ctx.Err() == nil {
		p.mu.Lock()
		cur := p.exited
		p.mu.Unlock()
		if cur != old {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *proc) restart(ctx context.Context) error {
	if p.after != nil {
		if err := p.after.waitUp(ctx); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		err := p.start(ctx)
		if err == nil || ctx.Err() != nil || attempt == 5 {
			return err
		}
	}
}

func (p *proc) waitUp(ctx context.Context) error {
	for {
		p.mu.Lock()
		up := p.up
		p.mu.Unlock()
		if up != nil {
			select {
			case <-up:
				if p.running() {
					return nil
				}
			default:
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill crashes the process (SIGKILL: no clean shutdown) and starts it again once it is gone.
func (p *proc) kill(ctx context.Context) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.stopping = true
	p.kills++
	p.up = nil
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}
	select {
	case <-exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.restart(ctx)
}

// stop ends the process cleanly (SIGTERM, then SIGKILL after a while).
func (p *proc) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.stopping = true
	p.up = nil
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

func (p *proc) counts() (kills, unexpected int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kills, p.unexpected
}

// httpReady is ready once GET url answers 200.
func httpReady(url string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// freePort returns a loopback port nobody listens on now, chosen below the system's ephemeral range:
// a process restarted later binds the same port again, and the OS never hands such a port to an
// outgoing connection in between (one that did once made a restarted worker fail to start).
func freePort() (int, error) {
	hi := ephemeralStart()
	lo := max(hi-12000, 1024)
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d", lo, hi)
}

// ephemeralStart is where the OS's ephemeral ports begin (Linux's setting, else its default).
func ephemeralStart() int {
	const linuxDefault = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return linuxDefault
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 2048 {
		return linuxDefault
	}
	return n
}

// freePortBlock returns a port with the next span ports free too: the Temporal dev server puts its
// internal services next to its frontend, the same ones on every restart.
func freePortBlock(span int) (int, error) {
	for range 50 {
		base, err := freePort()
		if err != nil {
			return 0, err
		}
		if base+span >= ephemeralStart() {
			continue
		}
		ok := true
		for p := base + 1; p <= base+span && ok; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, errors.New("no block of free ports for Temporal")
}
