// Package stacktest runs the whole engine inside a test: a real Temporal server in process
// (temporaltest) with the engine's search attributes, the Marketplace emulator over real HTTP, the
// engine's worker (engine.NewWorker, the production wiring) with the demo provisioner, and the webhook /
// landing / admin server on a loopback port, validating the emulator's signed webhooks against its JWKS.
package stacktest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/server/temporaltest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"saasengine/activities/notification"
	reconacts "saasengine/activities/reconciliation"
	subacts "saasengine/activities/subscription"
	"saasengine/emulator"
	"saasengine/emulator/emulatortest"
	"saasengine/engine"
	"saasengine/entra"
	"saasengine/provisioning"
	"saasengine/tracing"
	"saasengine/webhook/server"
	"saasengine/workflows/metering"
	"saasengine/workflows/reconciliation"
	"saasengine/workflows/subscription"
)

// AdminToken is the admin API's bearer token in tests.
const AdminToken = "stacktest-admin"

// Options adjust the stack.
type Options struct {
	// Workflow options of workflows started by the HTTP side.
	Workflow subscription.Options
	// DemoMaxQuantity makes the demo provisioner refuse seat counts above it.
	DemoMaxQuantity int64
	// DecideDelay makes every decision of the provisioner take this long (a slow ISV service).
	DecideDelay time.Duration
	// ConfigureEmulator edits the emulator's configuration before it starts.
	ConfigureEmulator func(*emulator.Config)
	// ConfigureServer edits the HTTP server's configuration before it starts.
	ConfigureServer func(*server.Config)
	// Metering are the options of the metering workflows the HTTP side starts (a short Grace keeps tests
	// quick).
	Metering metering.Options
	// NoWorker leaves the worker stopped; call StartWorker.
	NoWorker bool
	// Logger defaults to the test's logger at info level.
	Logger *zap.Logger
	// Notify is the worker's notification activity (engine.Notifier); nil sends none.
	Notify *notification.Activities
}

// Stack is a running engine.
type Stack struct {
	Temporal    *temporaltest.TestServer
	Client      client.Client
	TaskQueue   string
	Emu         *emulatortest.Env
	Subs        *subscription.Client
	Meter       metering.Client
	Provisioner *provisioning.Demo
	HTTP        *httptest.Server
	Server      *server.Server
	Logger      *zap.Logger

	// workflow are the options of the workflows the worker itself starts (reconciliation's adoptions),
	// the same as the HTTP side's, as in production.
	workflow    subscription.Options
	notify      *notification.Activities
	decideDelay time.Duration
	mu          sync.Mutex
	worker      worker.Worker
}

// Start brings the stack up; everything stops when the test ends.
func Start(t testing.TB, opts Options) *Stack {
	t.Helper()
	logger := opts.Logger
	if logger == nil {
		logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	tt, ok := t.(*testing.T)
	var ts *temporaltest.TestServer
	if ok {
		ts = temporaltest.NewServer(temporaltest.WithT(tt))
	} else {
		ts = temporaltest.NewServer()
		t.Cleanup(ts.Stop)
	}
	c := ts.GetDefaultClient()
	if tracing.Active() {
		// As config.Dial does: the client, and the worker made from it, trace.
		ics, err := tracing.Interceptors()
		if err != nil {
			t.Fatal(err)
		}
		c = ts.NewClientWithOptions(client.Options{Namespace: ts.GetDefaultNamespace(), Interceptors: ics})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := subscription.RegisterSearchAttributes(ctx, c.OperatorService(), ts.GetDefaultNamespace()); err != nil {
		t.Fatalf("search attributes: %v", err)
	}

	s := &Stack{Temporal: ts, Client: c, TaskQueue: subscription.DefaultTaskQueue, Logger: logger, workflow: opts.Workflow, notify: opts.Notify, decideDelay: opts.DecideDelay}
	s.Emu = emulatortest.Start(t, emulatortest.Options{Configure: opts.ConfigureEmulator})
	// Every test of the whole engine also checks that no operation was PATCHed before the response to
	// its webhook had been sent, which Microsoft expects never to happen.
	t.Cleanup(func() {
		if early := s.Emu.Emulator.PatchesBeforeAnswer(); len(early) > 0 {
			t.Errorf("operations PATCHed before the response to their webhook: %v; their deliveries: %s", early, deliveriesOf(s.Emu.Emulator, early))
		}
	})
	demo, err := provisioning.NewDemo(filepath.Join(t.TempDir(), "tenants.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = demo.Close() })
	demo.MaxQuantity = opts.DemoMaxQuantity
	s.Provisioner = demo
	s.Subs = subscription.New(c, s.TaskQueue, opts.Workflow)
	s.Meter = metering.Client{Temporal: c, TaskQueue: s.TaskQueue, Options: opts.Metering, Dimensions: &metering.Dimensions{Marketplace: s.Emu.Client}}

	validator, err := entra.NewValidator(entra.Config{Authority: s.Emu.Emulator.Authority(), TenantID: emulator.DemoTenantID, Audience: emulator.DemoAppID})
	if err != nil {
		t.Fatal(err)
	}
	validator.Prefetch() // as webhook/frontend does
	t.Cleanup(validator.Close)
	// The server's address is known before it serves, so that its sign-in redirect URL can name it.
	s.HTTP = httptest.NewUnstartedServer(nil)
	httpURL := "http://" + s.HTTP.Listener.Addr().String()
	cfg := server.Config{
		Validator:     validator,
		Subscriptions: server.Temporal{Client: s.Subs},
		Meter:         s.Meter,
		Resolver:      s.Emu.Client,
		Plans:         s.Emu.Client,
		AdminToken:    AdminToken,
		Ready: func(ctx context.Context) error {
			_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
		Logger: logger.Named("http"),
		// Buyers sign in on the emulator's Entra, with its demo users (emulator.DemoBuyers).
		SignIn: &server.SignInConfig{
			Authority: s.Emu.Emulator.Authority(), ClientID: emulator.DemoSignInClientID,
			ClientSecret: emulator.DemoSignInSecret, RedirectURL: httpURL + "/landing/signin",
		},
	}
	if opts.ConfigureServer != nil {
		opts.ConfigureServer(&cfg)
	}
	s.Server, err = server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.HTTP.Config.Handler = s.Server
	s.HTTP.Start()
	t.Cleanup(s.HTTP.Close)
	s.Emu.Emulator.SetWebhookURL("", s.HTTP.URL+"/webhook")
	s.Emu.Emulator.SetLandingURL("", s.HTTP.URL+"/landing")

	if !opts.NoWorker {
		s.StartWorker(t)
	}
	t.Cleanup(s.StopWorker)
	return s
}

// StartWorker starts the engine's worker (again).
func (s *Stack) StartWorker(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.worker != nil {
		return
	}
	var prov subacts.Provisioner = s.Provisioner
	if s.decideDelay > 0 {
		prov = slowDecider{Demo: s.Provisioner, delay: s.decideDelay}
	}
	w := engine.NewWorker(s.Client, s.TaskQueue, engine.Deps{Marketplace: s.Emu.Client, Provisioner: prov, Logger: s.Logger.Named("worker"), Workflow: s.workflow, Notify: s.notify}, worker.Options{})
	if err := w.Start(); err != nil {
		t.Fatalf("worker: %v", err)
	}
	s.worker = w
}

// StopWorker stops the worker, as a crash or a deployment would.
func (s *Stack) StopWorker() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.worker != nil {
		s.worker.Stop()
		s.worker = nil
	}
}

// WaitState polls the subscription's workflow until cond holds, failing the test after a minute.
func (s *Stack) WaitState(t testing.TB, subscriptionID string, what string, cond func(subscription.State) bool) subscription.State {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last *subscription.State
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := s.Subs.State(ctx, subscriptionID)
		cancel()
		if err == nil && cond(*st) {
			return *st
		}
		last, lastErr = st, err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("subscription %s never reached %q; last state %+v, error %v", subscriptionID, what, last, lastErr)
	return subscription.State{}
}

// Activated purchases a plan in the emulator and runs it through landing, confirmation and activation
// the way the landing page does, returning the subscription ID once the workflow reports Subscribed.
func (s *Stack) Activated(t testing.TB, planID string, quantity int64) string {
	t.Helper()
	p := s.Emu.Purchase(t, planID, quantity)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.Emu.Client.Resolve(ctx, p.Token)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if _, err := s.Subs.Confirm(ctx, res.Subscription); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	s.WaitState(t, p.SubscriptionID, "Subscribed", func(st subscription.State) bool {
		return st.Status == "Subscribed" && st.Phase == subscription.PhaseIdle
	})
	return p.SubscriptionID
}

// Reconcile runs one reconciliation to its end, failing the test if it fails or takes longer than within.
func (s *Stack) Reconcile(t testing.TB, within time.Duration) reconacts.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	run, err := reconciliation.Start(ctx, s.Client, s.TaskQueue)
	if err != nil {
		t.Fatal(err)
	}
	var rep reconacts.Report
	if err := s.Client.GetWorkflow(ctx, run.WorkflowID, run.RunID).Get(ctx, &rep); err != nil {
		t.Fatalf("reconciliation: %v; %s", err, s.whereIs(run.WorkflowID))
	}
	return rep
}

// whereIs says what a workflow's latest run is doing: its pending activities and its last events, so
// that a run that did not finish in time can be understood from the failure alone.
func (s *Stack) whereIs(workflowID string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := s.Client.DescribeWorkflowExecution(ctx, workflowID, "")
	if err != nil {
		return "describe: " + err.Error()
	}
	var b strings.Builder
	info := d.GetWorkflowExecutionInfo()
	fmt.Fprintf(&b, "run %s is %s, history length %d", info.GetExecution().GetRunId(), info.GetStatus(), info.GetHistoryLength())
	for _, pa := range d.GetPendingActivities() {
		fmt.Fprintf(&b, "; pending %s %s attempt %d, last failure %q", pa.GetActivityType().GetName(), pa.GetState(), pa.GetAttempt(), pa.GetLastFailure().GetMessage())
	}
	var last []string
	it := s.Client.GetWorkflowHistory(ctx, workflowID, info.GetExecution().GetRunId(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			break
		}
		last = append(last, fmt.Sprintf("%d %s %s", ev.GetEventId(), ev.GetEventTime().AsTime().Format(time.TimeOnly), ev.GetEventType()))
		if len(last) > 12 {
			last = last[1:]
		}
	}
	fmt.Fprintf(&b, "; last events: %s", strings.Join(last, ", "))
	return b.String()
}

// Admin calls the HTTP server's admin API with token as bearer (none when empty) and a JSON body, and
// returns the answer with its body read.
func (s *Stack) Admin(t testing.TB, method, path, token, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.HTTP.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// slowDecider is the demo provisioner deciding slowly, as a remote ISV service under load may.
type slowDecider struct {
	*provisioning.Demo
	delay time.Duration
}

func (p slowDecider) DecideChange(ctx context.Context, r provisioning.ChangeRequest) (provisioning.Decision, error) {
	select {
	case <-time.After(p.delay):
	case <-ctx.Done():
		return provisioning.Decision{}, ctx.Err()
	}
	return p.Demo.DecideChange(ctx, r)
}

// deliveriesOf describes the webhook deliveries of the given operations, for a failure message.
func deliveriesOf(emu *emulator.Emulator, operationIDs []string) string {
	var b strings.Builder
	for _, d := range emu.Deliveries() {
		if slices.Contains(operationIDs, d.Event.ID) {
			posted, answered, patched := emu.AnswerTimes(d.Event.ID)
			fmt.Fprintf(&b, "[%s %s: %s after %d attempts, last status %d %s; PATCH %v after the post, answer %v after it] ",
				d.Event.ID, d.Event.Action, d.State, d.Attempts, d.LastStatus, d.LastError, patched.Sub(posted), answered.Sub(posted))
		}
	}
	return b.String()
}
