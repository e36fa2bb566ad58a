// Package chaos drives the engine as a hostile world would and checks that nothing was lost, doubled,
// left stuck or falsely reported: subscriptions go through purchase, activation, a change, suspension,
// reinstatement and (half of them) cancellation, against the emulator with Marketplace calls failing at a
// rate, answers lost after the write took effect, read lag, and duplicated, reordered and dropped webhooks,
// while the worker, the webhook server and the Temporal host, each a process of its own, are killed and
// restarted. After a reconciliation run it compares every subscription across Microsoft (the emulator),
// its workflow and its tenant (the demo provisioner's database), and counts every Activate, PATCH, DELETE
// and provisioning key.
//
// cmd/chaos runs it at scale; the test in this package runs it small, as CI does.
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"saasengine/emulator"
	"saasengine/encryption"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// Config is one chaos run.
type Config struct {
	// N is how many subscriptions go through the lifecycle.
	N int
	// Kills is how often each process kind (worker, webhook server, Temporal host) is killed.
	Kills int
	// Seed seeds every rate fault, so that a run's faults can be drawn again.
	Seed uint64
	// FailRate is the fraction of Marketplace API calls answered 500, 503 or 429 (a third each, the last two
	// with Retry-After).
	FailRate float64
	// LostRate is the fraction of Activate, PATCH and DELETE calls whose answer is lost (500) after
	// Microsoft applied them.
	LostRate float64
	// DropRate, DuplicateRate and ReorderRate are the fractions of webhook deliveries dropped, sent twice
	// and held back until a later one overtook them.
	DropRate, DuplicateRate, ReorderRate float64
	// ReadLag is how long Microsoft's reads lag its operations.
	ReadLag time.Duration
	// Concurrency bounds how many subscriptions are driven at once.
	Concurrency int
	// Dir is the run's folder: state files, process logs, and the binaries unless BinDir is set.
	Dir string
	// BinDir holds binaries built by Build; empty builds them into Dir/bin.
	BinDir string
	// Settle bounds the wait, after reconciliation, for every subscription to agree everywhere.
	Settle time.Duration
	// StepTimeout bounds each wait of one subscription for the engine to show a step.
	StepTimeout time.Duration
	// Progress receives one line per phase and kill; nil discards them.
	Progress io.Writer
}

// Defaults are the hostile world of issue 13: a fifth of Marketplace calls failing, lost answers,
// read lag, and webhooks duplicated, reordered and dropped.
func Defaults() Config {
	return Config{
		N: 1000, Kills: 2, Seed: 1,
		FailRate: 0.2, LostRate: 0.05,
		DropRate: 0.05, DuplicateRate: 0.1, ReorderRate: 0.1,
		ReadLag:     2 * time.Second,
		Concurrency: 64,
		Settle:      5 * time.Minute,
		StepTimeout: 45 * time.Second,
	}
}

// AdminToken is the admin API's bearer token in a chaos run.
const AdminToken = "chaos-admin-token"

// payloadKeys encrypt the run's workflow payloads (a fixed key: the run's data is thrown away).
const payloadKeys = "chaos=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// tokenSecret signs the engine's development tokens for the emulator.
const tokenSecret = "chaos-token-secret"

// env is a running set of processes and the clients to reach them.
type env struct {
	cfg Config
	// patchedBeforeAnswer is the emulator's count at the last collection.
	patchedBeforeAnswer int
	temporal            *proc
	emu                 *proc
	worker              *proc
	webhook             *proc

	emuURL     string
	webhookURL string
	hostPort   string
	tenantsDB  string

	tc   client.Client
	subs *subscription.Client
	mkt  *marketplace.Client

	logMu sync.Mutex
}

func (e *env) logf(format string, args ...any) {
	if e.cfg.Progress == nil {
		return
	}
	e.logMu.Lock()
	defer e.logMu.Unlock()
	fmt.Fprintf(e.cfg.Progress, "%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// Run performs one chaos run and returns its report. An error means the run itself could not be carried
// out (a process would not start); what the run found is in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.N <= 0 || cfg.Dir == "" {
		return nil, errors.New("chaos: want N > 0 and a folder")
	}
	d := Defaults()
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = d.Concurrency
	}
	if cfg.Settle <= 0 {
		cfg.Settle = d.Settle
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = d.StepTimeout
	}
	started := time.Now()
	if cfg.BinDir == "" {
		cfg.BinDir = filepath.Join(cfg.Dir, "bin")
		if err := Build(ctx, cfg.BinDir); err != nil {
			return nil, err
		}
	}
	e := &env{cfg: cfg}
	superCtx, stopSupervising := context.WithCancel(ctx)
	defer stopSupervising()
	if err := e.startAll(ctx); err != nil {
		e.stopAll()
		return nil, err
	}
	defer e.stopAll()
	defer stopSupervising()
	superErr := make(chan error, 4)
	for _, p := range []*proc{e.temporal, e.emu, e.worker, e.webhook} {
		go p.supervise(superCtx, func(err error) { superErr <- err })
	}
	if err := e.injectFaults(ctx); err != nil {
		return nil, err
	}

	rep := &Report{Config: cfg, Started: started.UTC(), KeysApplied: map[string]int{}, Reports: map[string]int{}}
	e.logf("driving %d subscriptions (%d at a time), killing each process kind %d times", cfg.N, cfg.Concurrency, cfg.Kills)
	driveStart := time.Now()
	outcomes := e.drive(ctx)
	select {
	case err := <-superErr:
		return nil, err
	default:
	}
	rep.Driven = time.Since(driveStart)

	e.logf("reconciling")
	if err := e.reconcile(ctx, rep); err != nil {
		rep.finding("reconciliation: %v", err)
		rep.Stuck++
	}
	e.logf("waiting up to %s for every subscription to agree", cfg.Settle)
	if err := e.check(ctx, rep, outcomes); err != nil {
		return nil, err
	}
	if err := e.control(ctx, "GET", "/control/faults", nil, &rep.Faults); err != nil {
		return nil, err
	}
	for _, p := range []*proc{e.temporal, e.worker, e.webhook, e.emu} {
		k, u := p.counts()
		rep.Kills = append(rep.Kills, ProcessCount{Name: p.name, Kills: k, UnexpectedExits: u})
	}
	rep.Duration = time.Since(started)
	return rep, nil
}

func (e *env) startAll(ctx context.Context) error {
	cfg := e.cfg
	bin := func(name string) string { return filepath.Join(cfg.BinDir, name) }
	logs := filepath.Join(cfg.Dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	state := filepath.Join(cfg.Dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return err
	}
	tport, err := freePortBlock(12)
	if err != nil {
		return err
	}
	eport, err := freePort()
	if err != nil {
		return err
	}
	wport, err := freePort()
	if err != nil {
		return err
	}
	mport, err := freePort()
	if err != nil {
		return err
	}
	e.hostPort = "127.0.0.1:" + strconv.Itoa(tport)
	e.emuURL = "http://127.0.0.1:" + strconv.Itoa(eport)
	e.webhookURL = "http://127.0.0.1:" + strconv.Itoa(wport)
	e.tenantsDB = filepath.Join(state, "tenants.db")

	emuCfg := emulator.DemoConfig()
	emuCfg.Publishers[0].TokenSecret = tokenSecret
	emuCfg.Publishers[0].WebhookURL = e.webhookURL + "/webhook"
	emuCfg.Publishers[0].LandingURL = e.webhookURL + "/landing"
	emuCfg.OperationDelay = emulator.Duration(time.Second)
	emuCfg.RedeliveryBase = emulator.Duration(time.Second)
	emuCfg.RedeliveryMax = emulator.Duration(5 * time.Second)
	emuCfg.ReorderHold = emulator.Duration(2 * time.Second)
	emuCfg.ReadLag = emulator.NewDuration(cfg.ReadLag)
	emuCfgFile := filepath.Join(state, "emulator.json")
	b, err := json.Marshal(emuCfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(emuCfgFile, b, 0o644); err != nil {
		return err
	}

	e.temporal = &proc{name: "temporal", path: bin("temporal"), log: filepath.Join(logs, "temporal.log"),
		args:  []string{"-data", filepath.Join(state, "temporal"), "-port", strconv.Itoa(tport), "-ui-port", "-1"},
		ready: e.temporalReady}
	e.emu = &proc{name: "emulator", path: bin("emulator"), log: filepath.Join(logs, "emulator.log"),
		args:  []string{"-addr", "127.0.0.1:" + strconv.Itoa(eport), "-config", emuCfgFile, "-state", filepath.Join(state, "emulator-state.json")},
		ready: httpReady(e.emuURL + "/control/clock")}
	common := []string{
		"TEMPORAL_ADDRESS=" + e.hostPort,
		"TEMPORAL_NAMESPACE=default",
		"MARKETPLACE_BASE_URL=" + e.emuURL + "/api",
		"MARKETPLACE_TENANT_ID=" + emulator.DemoTenantID,
		"MARKETPLACE_CLIENT_ID=" + emulator.DemoAppID,
		"MARKETPLACE_DEV_TOKEN_SECRET=" + tokenSecret,
		"LOG_LEVEL=warn",
		"LOG_FORMAT=console",
		// Payloads encrypted, as a deployment should run: the driver's client has the same key.
		"PAYLOAD_KEYS=" + payloadKeys,
	}
	e.worker = &proc{name: "worker", path: bin("worker"), log: filepath.Join(logs, "worker.log"), after: e.temporal,
		env: append(append([]string{}, common...),
			"PROVISIONING_MODE=demo",
			"PROVISIONING_DEMO_FILE="+e.tenantsDB,
			"RECONCILE_INTERVAL=off",
			"METRICS_ADDR=127.0.0.1:"+strconv.Itoa(mport),
			"WORKER_STOP_TIMEOUT=1s",
		),
		ready: httpReady("http://127.0.0.1:" + strconv.Itoa(mport) + "/healthz")}
	e.webhook = &proc{name: "webhook", path: bin("webhook"), log: filepath.Join(logs, "webhook.log"),
		env: append(append([]string{}, common...),
			"WEBHOOK_LISTEN_ADDR=127.0.0.1:"+strconv.Itoa(wport),
			"WEBHOOK_AUTH=entra",
			"WEBHOOK_ENTRA_AUTHORITY="+e.emuURL,
			"SIGNIN_MODE=none",
			"SIGNIN_INSECURE_NO_AUTH=true",
			"ADMIN_TOKEN="+AdminToken,
			"SESSION_KEY=chaos-session-key-of-at-least-32-bytes!",
			"METRICS_ADDR=off",
		),
		ready: httpReady(e.webhookURL + "/healthz")}

	e.logf("starting Temporal (%s), the emulator (%s), the worker and the webhook server (%s); logs in %s", e.hostPort, e.emuURL, e.webhookURL, logs)
	codec, err := encryption.Parse(payloadKeys, "")
	if err != nil {
		return err
	}
	e.tc, err = client.NewLazyClient(client.Options{HostPort: e.hostPort, Namespace: "default", Logger: quietLogger(), DataConverter: encryption.DataConverter(codec)})
	if err != nil {
		return err
	}
	e.subs = subscription.New(e.tc, subscription.DefaultTaskQueue, subscription.Options{})
	tokens := &marketplace.DevTokenSource{TenantID: emulator.DemoTenantID, ClientID: emulator.DemoAppID, Secret: []byte(tokenSecret)}
	if e.mkt, err = marketplace.NewClient(e.emuURL+"/api", tokens); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for _, p := range []*proc{e.temporal, e.emu, e.worker, e.webhook} {
		if err := p.start(sctx); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) stopAll() {
	for _, p := range []*proc{e.webhook, e.worker, e.emu, e.temporal} {
		if p != nil {
			p.stop()
		}
	}
	if e.tc != nil {
		e.tc.Close()
	}
}

func (e *env) temporalReady(ctx context.Context) error {
	if e.tc == nil {
		return errors.New("no client yet")
	}
	_, err := e.tc.CheckHealth(ctx, &client.CheckHealthRequest{})
	return err
}

// injectFaults sets the run's faults on the emulator through its control API, as for any separate
// emulator process.
func (e *env) injectFaults(ctx context.Context) error {
	cfg := e.cfg
	seed := cfg.Seed
	next := func() uint64 { seed++; return seed }
	var faults []emulator.Fault
	if cfg.FailRate > 0 {
		// Three faults drawn one after the other: each fires on a third of the rate's share of calls.
		third := 1 - math.Pow(1-cfg.FailRate, 1.0/3)
		faults = append(faults,
			emulator.Fault{Endpoint: "*", Status: 500, Rate: third, Seed: next()},
			emulator.Fault{Endpoint: "*", Status: 503, RetryAfter: 1, Rate: third, Seed: next()},
			emulator.Fault{Endpoint: "*", Status: 429, RetryAfter: 1, Rate: third, Seed: next()},
		)
	}
	if cfg.LostRate > 0 {
		for _, ep := range []string{"Activate", "UpdateSubscription", "DeleteSubscription"} {
			faults = append(faults, emulator.Fault{Endpoint: ep, LostAnswer: true, Rate: cfg.LostRate, Seed: next()})
		}
	}
	for kind, rate := range map[string]float64{emulator.WebhookDrop: cfg.DropRate, emulator.WebhookDuplicate: cfg.DuplicateRate, emulator.WebhookReorder: cfg.ReorderRate} {
		if rate > 0 {
			faults = append(faults, emulator.Fault{Webhook: kind, Rate: rate, Seed: next()})
		}
	}
	for _, f := range faults {
		if err := e.control(ctx, "POST", "/control/faults", f, nil); err != nil {
			return fmt.Errorf("injecting fault %+v: %w", f, err)
		}
	}
	return nil
}

func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}
