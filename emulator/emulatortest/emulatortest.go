// Package emulatortest starts a Marketplace emulator on a real loopback HTTP server for tests, with a
// marketplace.Client for its demo publisher and, optionally, every exchange checked against Microsoft's
// OpenAPI files on both sides.
package emulatortest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/internal/apispec"
	"saasengine/marketplace"
	"saasengine/tracing"
)

// TokenSecret is the HS256 secret of the demo publisher's development tokens in tests.
const TokenSecret = "emulatortest-secret"

// Env is a running emulator and a client of its demo publisher.
type Env struct {
	Emulator *emulator.Emulator
	Server   *httptest.Server
	Client   *marketplace.Client
	Tokens   *marketplace.DevTokenSource
	// Conformance holds the OpenAPI checks of the client's requests and the emulator's responses when
	// Options.CheckConformance was set.
	Conformance *apispec.Recorder
}

// Options adjust the emulator under test.
type Options struct {
	// Configure edits the demo configuration (timings, webhook URL, more publishers).
	Configure func(*emulator.Config)
	// StateFile keeps state across Start calls in one test.
	StateFile string
	// SkipConformance turns off the OpenAPI checks, which are on by default: every request the Env's
	// client sends and every response the emulator gives to a conforming request is checked against
	// Microsoft's files, and the test fails at cleanup on a violation.
	SkipConformance bool
	// CheckConformance is ignored: the checks are on unless SkipConformance is set. Kept so that callers
	// written before that still compile.
	CheckConformance bool
}

// tally counts the operations checked by every Env of the process, so a test binary can assert that its
// tests exercised all of the files' operations (see CheckedOperations).
var tally = struct {
	sync.Mutex
	m map[string]int
}{m: map[string]int{}}

// CheckedOperations returns how many exchanges of each OpenAPI operation were checked by the Envs of this
// process whose tests have finished.
func CheckedOperations() map[string]int {
	tally.Lock()
	defer tally.Unlock()
	out := make(map[string]int, len(tally.m))
	for k, v := range tally.m {
		out[k] = v
	}
	return out
}

// Start runs an emulator until the test ends. Its demo publisher verifies the client's tokens with
// TokenSecret, and operations and auto-accept are quick (100 ms, 1 s) so tests stay fast; reads do not
// lag operations unless Configure sets ReadLag. Unless
// opts.SkipConformance, the traffic is checked against the OpenAPI files and violations fail the test.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	cfg := emulator.DemoConfig()
	cfg.Publishers[0].TokenSecret = TokenSecret
	cfg.OperationDelay = emulator.Duration(100 * time.Millisecond)
	cfg.AutoAcceptAfter = emulator.Duration(time.Second)
	cfg.RedeliveryBase = emulator.Duration(50 * time.Millisecond)
	cfg.RedeliveryMax = emulator.Duration(time.Second)
	cfg.ReorderHold = emulator.Duration(500 * time.Millisecond)
	// Buyers' sign-in checks the demo sign-in app's secret, as Entra would.
	cfg.SignIn.Apps = []emulator.SignInApp{{ClientID: emulator.DemoSignInClientID, ClientSecret: emulator.DemoSignInSecret}}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	emu, err := emulator.New(emulator.Options{Config: cfg, StateFile: opts.StateFile})
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	env := &Env{Emulator: emu}
	var handler http.Handler = emu
	transport := http.DefaultTransport
	if !opts.SkipConformance {
		spec, err := apispec.Default()
		if err != nil {
			t.Fatalf("openapi: %v", err)
		}
		env.Conformance = apispec.NewRecorder(spec)
		handler = env.Conformance.Middleware(emu)
		transport = env.Conformance.Transport(transport)
	}
	env.Server = httptest.NewServer(handler)
	emu.SetPublicURL(env.Server.URL)
	t.Cleanup(func() {
		// Close waits for requests in flight, so every exchange has been checked by now.
		env.Server.Close()
		if err := emu.Close(); err != nil {
			t.Errorf("closing emulator: %v", err)
		}
		if env.Conformance != nil {
			env.AssertConformance(t)
			tally.Lock()
			for op, n := range env.Conformance.Checked() {
				tally.m[op] += n
			}
			tally.Unlock()
		}
	})
	env.Tokens = &marketplace.DevTokenSource{TenantID: cfg.Publishers[0].TenantID, ClientID: cfg.Publishers[0].AppID, Secret: []byte(cfg.Publishers[0].TokenSecret)}
	// With tracing on (tracing.Use), calls are client spans, as config.Marketplace.NewClient makes them.
	transport = tracing.Transport(transport)
	env.Client, err = marketplace.NewClient(emu.APIBaseURL(), env.Tokens, marketplace.WithHTTPClient(&http.Client{Transport: transport, Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return env
}

// Purchase buys a plan of the demo offer and fails the test on error.
func (e *Env) Purchase(t testing.TB, planID string, quantity int64) emulator.Purchase {
	t.Helper()
	p, err := e.Emulator.Purchase(emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: planID, Quantity: quantity})
	if err != nil {
		t.Fatalf("purchase %s: %v", planID, err)
	}
	return p
}

// PurchaseAs buys a plan of the demo offer as demo buyers (emulator.BuyerPurchaser...): the purchaser
// buys for the beneficiary, who may be the same account. Their sign-in then matches the subscription.
func (e *Env) PurchaseAs(t testing.TB, planID string, quantity int64, purchaser, beneficiary string) emulator.Purchase {
	t.Helper()
	pur, ben := emulator.DemoBuyer(purchaser).Identity(), emulator.DemoBuyer(beneficiary).Identity()
	p, err := e.Emulator.Purchase(emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: planID, Quantity: quantity, Purchaser: &pur, Beneficiary: &ben})
	if err != nil {
		t.Fatalf("purchase %s: %v", planID, err)
	}
	return p
}

// AssertConformance fails the test if any exchange so far broke the OpenAPI contract. Start's cleanup
// calls it too; call it earlier to fail at a known point.
func (e *Env) AssertConformance(t testing.TB) {
	t.Helper()
	if e.Conformance == nil {
		return
	}
	for _, v := range e.Conformance.Violations() {
		t.Errorf("OpenAPI violation: %v", v)
	}
}
