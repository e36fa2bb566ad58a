package subscription

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	subacts "saasengine/activities/subscription"
	"saasengine/marketplace"
	"saasengine/provisioning"
)

const subID = "sub-1"

func subscription(status marketplace.SubscriptionStatus) marketplace.Subscription {
	return marketplace.Subscription{ID: subID, OfferID: "offer-1", PlanID: "basic", Quantity: 5, Status: status,
		Beneficiary: marketplace.AADIdentifier{TenantID: "tenant-b", EmailID: "buyer@example.com"},
		Term:        marketplace.Term{TermUnit: "P1Y", StartDate: marketplace.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), EndDate: marketplace.NewTime(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))}}
}

type harness struct {
	t    *testing.T
	s    testsuite.WorkflowTestSuite
	env  *testsuite.TestWorkflowEnvironment
	fake *fakeMarket
	demo *provisioning.Demo
	prov *flakyProvisioner
}

// flakyProvisioner is the demo provisioner with scripted failures.
type flakyProvisioner struct {
	*provisioning.Demo
	mu                           sync.Mutex
	failApply, failDeprovision   int
	applyCalls, deprovisionCalls int
}

func (p *flakyProvisioner) ApplyChange(ctx context.Context, r provisioning.ChangeRequest) error {
	p.mu.Lock()
	p.applyCalls++
	fail := p.failApply > 0
	if fail {
		p.failApply--
	}
	p.mu.Unlock()
	if fail {
		return &provisioning.PermanentError{StatusCode: 422, Message: "tenant refused the change"}
	}
	return p.Demo.ApplyChange(ctx, r)
}

func (p *flakyProvisioner) Deprovision(ctx context.Context, r provisioning.Request) error {
	p.mu.Lock()
	p.deprovisionCalls++
	fail := p.failDeprovision > 0
	if fail {
		p.failDeprovision--
	}
	p.mu.Unlock()
	if fail {
		return &provisioning.PermanentError{StatusCode: 500, Message: "tenant could not be removed"}
	}
	return p.Demo.Deprovision(ctx, r)
}

func (p *flakyProvisioner) calls() (apply, deprovision int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applyCalls, p.deprovisionCalls
}

func newHarness(t *testing.T, subs ...marketplace.Subscription) *harness {
	h := &harness{t: t, fake: newFake(subs...)}
	h.s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	var err error
	h.demo, err = provisioning.NewDemo(filepath.Join(t.TempDir(), "tenants.json"))
	require.NoError(t, err)
	h.env = h.s.NewTestWorkflowEnvironment()
	h.env.RegisterWorkflowWithOptions(SubscriptionWorkflow, workflow.RegisterOptions{Name: WorkflowType})
	h.prov = &flakyProvisioner{Demo: h.demo}
	h.env.RegisterActivity(&subacts.Activities{Marketplace: h.fake, Provisioner: h.prov})
	h.fake.now = h.env.Now
	return h
}

// at runs fn at a point of workflow time.
func (h *harness) at(d time.Duration, fn func()) { h.env.RegisterDelayedCallback(fn, d) }

func (h *harness) state() State {
	v, err := h.env.QueryWorkflow(QueryState)
	require.NoError(h.t, err)
	var st State
	require.NoError(h.t, v.Get(&st))
	return st
}

// update sends an update and records its answer into out; a rejection goes into rejected, and fails the
// test when rejected is nil (a test that expects none must not have one hidden).
func (h *harness) update(name string, out any, rejected *error, args ...any) {
	h.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) {
			if rejected == nil {
				h.t.Errorf("update %s rejected: %v", name, err)
				return
			}
			*rejected = err
		},
		OnComplete: func(v any, err error) {
			require.NoError(h.t, err)
			if out != nil {
				switch o := out.(type) {
				case *CommandResult:
					*o = v.(CommandResult)
				case *ChangeDecision:
					*o = v.(ChangeDecision)
				case *State:
					*o = v.(State)
				}
			}
		},
	}, args...)
}

func (h *harness) signal(ev marketplace.WebhookEvent) { h.env.SignalWorkflow(SignalWebhook, ev) }

// decide is the webhook server's decide-change request: the answer is due within 5 s.
func (h *harness) decide(ev marketplace.WebhookEvent) DecideRequest {
	return DecideRequest{Event: ev, Deadline: h.env.Now().Add(5 * time.Second)}
}

// continued returns the input the run continued as new with.
func (h *harness) continued() Input {
	h.t.Helper()
	require.True(h.t, h.env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(h.t, h.env.GetWorkflowError(), &can)
	var next Input
	require.NoError(h.t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(h.t, next.Carried)
	return next
}

// run starts the workflow; if it is still running at stopAt it is cancelled (long-lived workflows).
func (h *harness) run(in Input, stopAt time.Duration) {
	h.at(stopAt, func() { h.env.CancelWorkflow() })
	h.env.ExecuteWorkflow(WorkflowType, in)
	require.True(h.t, h.env.IsWorkflowCompleted())
}

func (h *harness) tenant() provisioning.Tenant {
	tn, ok := h.demo.Tenant(subID)
	require.True(h.t, ok, "tenant exists")
	return tn
}

func key(op string) string { return provisioning.IdempotencyKey(subID, op) }

// adopted is the Input of a workflow that finds an active subscription (reconciliation).
func adopted(opts Options) Input {
	s := subscription(marketplace.StatusSubscribed)
	return Input{SubscriptionID: subID, Source: SourceReconcile, Subscription: &s, Options: opts}
}

func TestLandingConfirmActivates(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusPendingFulfillmentStart))
	var before State
	var confirmed State
	activationsBefore := -1
	h.at(time.Minute, func() {
		before = h.state()
		activationsBefore = h.fake.count("Activate")
		h.update(UpdateConfirm, &confirmed, nil, ConfirmRequest{Subscription: subscription(marketplace.StatusPendingFulfillmentStart)})
	})
	var after State
	h.at(time.Hour, func() { after = h.state() })
	h.run(LandingInput(subscription(marketplace.StatusPendingFulfillmentStart), Options{}), 2*time.Hour)

	assert.Equal(t, PhaseAwaitingConfirmation, before.Phase)
	assert.Equal(t, 0, activationsBefore, "no activation before confirmation")
	assert.True(t, confirmed.Confirmed)
	assert.Equal(t, marketplace.StatusSubscribed, after.Status)
	assert.Equal(t, PhaseIdle, after.Phase)
	assert.False(t, after.ActivatedAt.IsZero())
	assert.Equal(t, 1, h.fake.count("Activate"))
	assert.Equal(t, provisioning.TenantActive, h.tenant().Status)
	assert.Equal(t, 1, h.demo.Applied(key(keyActivate)))
	assert.Equal(t, "buyer@example.com", after.Beneficiary.EmailID, "state keeps the e-mail")
}

// A confirmation the workflow did not take as an update in time comes as SignalConfirm: handled the same
// way, once, however often it came; one for another subscription is dropped.
func TestConfirmationBySignalActivates(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusPendingFulfillmentStart))
	pending := subscription(marketplace.StatusPendingFulfillmentStart)
	other := pending
	other.ID = "00000000-0000-0000-0000-000000000000"
	var before, after State
	h.at(time.Minute, func() {
		h.env.SignalWorkflow(SignalConfirm, ConfirmRequest{Subscription: other})
	})
	h.at(10*time.Minute, func() {
		before = h.state()
		h.env.SignalWorkflow(SignalConfirm, ConfirmRequest{Subscription: pending})
		h.update(UpdateConfirm, nil, nil, ConfirmRequest{Subscription: pending})
	})
	h.at(time.Hour, func() { after = h.state() })
	h.run(LandingInput(pending, Options{}), 2*time.Hour)

	assert.Equal(t, PhaseAwaitingConfirmation, before.Phase, "another subscription's confirmation is dropped")
	assert.False(t, before.Confirmed)
	assert.True(t, after.Confirmed)
	assert.Equal(t, marketplace.StatusSubscribed, after.Status)
	assert.Equal(t, 1, h.fake.count("Activate"))
	assert.Equal(t, 1, h.demo.Applied(key(keyActivate)))
}

func TestApprovalRequired(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusPendingFulfillmentStart))
	var waiting, done State
	h.at(time.Minute, func() {
		h.update(UpdateConfirm, nil, nil, ConfirmRequest{})
	})
	h.at(10*time.Minute, func() {
		waiting = h.state()
		h.update(UpdateApprove, nil, nil)
	})
	h.at(time.Hour, func() { done = h.state() })
	h.run(LandingInput(subscription(marketplace.StatusPendingFulfillmentStart), Options{RequireApproval: true}), 2*time.Hour)

	assert.Equal(t, PhaseAwaitingApproval, waiting.Phase)
	assert.Equal(t, marketplace.StatusPendingFulfillmentStart, waiting.Status)
	assert.Equal(t, marketplace.StatusSubscribed, done.Status)
	assert.True(t, done.Approved)
	assert.Equal(t, 1, h.fake.count("Activate"))
}

// confirmAt has the buyer confirm on the landing page at d: activation waits for it.
func (h *harness) confirmAt(d time.Duration) {
	h.at(d, func() { h.update(UpdateConfirm, nil, nil, ConfirmRequest{}) })
}

// A pending subscription found by reconciliation is not activated (billed) until the buyer confirms.
func TestPendingFoundByReconciliationWaitsForConfirmation(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusPendingFulfillmentStart))
	var waiting, done State
	activationsBefore, provisionedBefore := -1, -1
	h.at(time.Hour, func() {
		waiting = h.state()
		activationsBefore = h.fake.count("Activate")
		provisionedBefore = h.demo.Applied(key(keyActivate))
		h.update(UpdateConfirm, nil, nil, ConfirmRequest{})
	})
	h.at(2*time.Hour, func() { done = h.state() })
	s := subscription(marketplace.StatusPendingFulfillmentStart)
	h.run(Input{SubscriptionID: subID, Source: SourceReconcile, Subscription: &s}, 3*time.Hour)

	assert.Equal(t, PhaseAwaitingConfirmation, waiting.Phase)
	assert.Equal(t, 0, activationsBefore, "no activation without a confirmation")
	assert.Equal(t, 0, provisionedBefore, "nothing provisioned before the confirmation")
	assert.Equal(t, marketplace.StatusSubscribed, done.Status)
	assert.Equal(t, PhaseIdle, done.Phase)
	assert.Equal(t, 1, h.fake.count("Activate"))
}

// A pending subscription first seen by a webhook, with REQUIRE_APPROVAL: the operator's approve alone
// activates it (the buyer never came back to the landing page).
func TestPendingFoundByWebhookActivatedByApprove(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusPendingFulfillmentStart))
	var waiting, approved, done State
	h.at(time.Hour, func() {
		waiting = h.state()
		h.update(UpdateApprove, &approved, nil)
	})
	h.at(2*time.Hour, func() { done = h.state() })
	h.run(Input{SubscriptionID: subID, Source: SourceWebhook, Options: Options{RequireApproval: true}}, 3*time.Hour)

	assert.Equal(t, PhaseAwaitingConfirmation, waiting.Phase)
	assert.Equal(t, marketplace.StatusPendingFulfillmentStart, waiting.Status)
	assert.True(t, approved.Confirmed, "approve counts as confirmation")
	assert.Equal(t, marketplace.StatusSubscribed, done.Status)
	assert.Equal(t, PhaseIdle, done.Phase)
	assert.Equal(t, 1, h.fake.count("Activate"))
}

func TestActivationForbiddenFailsThenRetriesOnApprove(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusPendingFulfillmentStart))
	h.fake.fail("Activate", &marketplace.Error{Op: "activate", StatusCode: 403, Code: "Forbidden", Message: "publisher not allowed"})
	h.confirmAt(time.Minute)
	var failed, retried State
	h.at(time.Hour, func() {
		failed = h.state()
		h.update(UpdateApprove, nil, nil)
	})
	h.at(2*time.Hour, func() { retried = h.state() })
	s := subscription(marketplace.StatusPendingFulfillmentStart)
	h.run(Input{SubscriptionID: subID, Source: SourceReconcile, Subscription: &s}, 3*time.Hour)

	assert.Equal(t, PhaseActivationFailed, failed.Phase)
	assert.Contains(t, failed.LastError, "403")
	assert.Contains(t, failed.LastError, "publisher not allowed")
	assert.Equal(t, marketplace.StatusPendingFulfillmentStart, failed.Status)
	// One attempt, then nothing until an operator acts (no loop); the approve retries it.
	assert.Equal(t, 2, h.fake.count("Activate"))
	assert.Equal(t, marketplace.StatusSubscribed, retried.Status)
	assert.Equal(t, PhaseIdle, retried.Phase)
}

func TestActivateThrottledHonoursRetryAfter(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusPendingFulfillmentStart))
	h.fake.fail("Activate", &marketplace.Error{Op: "activate", StatusCode: 429, Retryable: true, RetryAfter: 7 * time.Second})
	h.confirmAt(time.Minute)
	var st State
	h.at(time.Hour, func() { st = h.state() })
	s := subscription(marketplace.StatusPendingFulfillmentStart)
	h.run(Input{SubscriptionID: subID, Source: SourceReconcile, Subscription: &s}, 2*time.Hour)

	ts := h.fake.times("Activate")
	require.Len(t, ts, 2)
	gap := ts[1].Sub(ts[0])
	assert.GreaterOrEqual(t, gap, 7*time.Second, "retry waited for Retry-After")
	assert.Less(t, gap, 8*time.Second)
	assert.Equal(t, marketplace.StatusSubscribed, st.Status)
}

func TestActivateAlreadyActiveCountsAsSuccess(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusPendingFulfillmentStart))
	// Our state says pending, Microsoft already activated it (a repeat after a lost answer).
	h.fake.setStatus(subID, marketplace.StatusSubscribed)
	h.confirmAt(time.Minute)
	var st State
	h.at(time.Hour, func() { st = h.state() })
	s := subscription(marketplace.StatusPendingFulfillmentStart)
	in := Input{SubscriptionID: subID, Source: SourceReconcile, Subscription: &s}
	h.run(in, 2*time.Hour)
	// With a fresh snapshot saying pending the workflow activates; the 400 resolves through Get.
	assert.Equal(t, 1, h.fake.count("Activate"))
	assert.Equal(t, marketplace.StatusSubscribed, st.Status)
	assert.Equal(t, PhaseIdle, st.Phase)
	assert.Empty(t, st.LastError)
}

func TestAdoptSubscribedWithoutActivate(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var st State
	h.at(time.Minute, func() { h.env.SignalWorkflow(SignalSnapshot, subscription(marketplace.StatusSubscribed)) })
	h.at(time.Hour, func() { st = h.state() })
	h.run(Input{SubscriptionID: subID, Source: SourceReconcile}, 2*time.Hour)
	assert.Equal(t, 0, h.fake.count("Activate"))
	assert.True(t, st.Provisioned)
	assert.Equal(t, PhaseIdle, st.Phase)
	assert.Equal(t, 1, h.demo.Applied(key(keyActivate)))
}

func TestWebhookUnknownSubscriptionStartsWorkflow(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	ev := h.fake.announce(subID, marketplace.ActionSuspend, "", 0)
	h.at(0, func() { h.signal(ev) })
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(Input{SubscriptionID: subID, Source: SourceWebhook}, 2*time.Hour)
	assert.Equal(t, marketplace.StatusSuspended, st.Status)
	assert.True(t, st.Provisioned)
	assert.Equal(t, provisioning.TenantSuspended, h.tenant().Status)
	assert.Equal(t, 0, h.fake.count("Activate"))
}

func TestSuspendDuplicateDeliveriesOneEffect(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var ev marketplace.WebhookEvent
	h.at(time.Minute, func() {
		ev = h.fake.announce(subID, marketplace.ActionSuspend, "", 0)
		h.signal(ev)
		h.signal(ev)
	})
	h.at(10*time.Minute, func() { h.signal(ev) })
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.Equal(t, marketplace.StatusSuspended, st.Status)
	assert.True(t, st.TenantSuspended)
	assert.Equal(t, provisioning.TenantSuspended, h.tenant().Status)
	assert.Equal(t, 1, h.demo.Applied(key(ev.ID)))
	assert.Equal(t, 1, h.demo.Calls(key(ev.ID)), "duplicates never reach provisioning")
	assert.Equal(t, 1, h.fake.count("GetOperation"), "duplicates are dropped before verification")
}

func TestSuspendThenReinstate(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var reinstate marketplace.WebhookEvent
	h.at(time.Minute, func() { h.signal(h.fake.announce(subID, marketplace.ActionSuspend, "", 0)) })
	var suspended, st State
	h.at(10*time.Minute, func() {
		suspended = h.state()
		reinstate = h.fake.announce(subID, marketplace.ActionReinstate, "", 0)
		h.signal(reinstate)
	})
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.True(t, suspended.TenantSuspended)
	assert.Equal(t, marketplace.StatusSubscribed, st.Status)
	assert.False(t, st.TenantSuspended)
	assert.Equal(t, provisioning.TenantActive, h.tenant().Status)
	assert.Equal(t, 1, h.fake.count("UpdateOperation:Success"), "Reinstate acknowledged")
	assert.Equal(t, marketplace.OperationSucceeded, h.fake.op(reinstate.ID).Status)
}

func TestReinstateBeforeSuspend(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var susp, rein marketplace.WebhookEvent
	h.at(time.Minute, func() {
		// Microsoft suspended and reinstated; the webhooks arrive reversed.
		susp = h.fake.announce(subID, marketplace.ActionSuspend, "", 0)
		rein = h.fake.announce(subID, marketplace.ActionReinstate, "", 0)
		h.fake.mu.Lock()
		h.fake.ops[rein.ID].Status = marketplace.OperationSucceeded
		h.fake.ops[rein.ID].TimeStamp = marketplace.NewTime(h.env.Now().Add(time.Second))
		h.fake.subs[subID].Status = marketplace.StatusSubscribed
		h.fake.publish(subID)
		h.fake.mu.Unlock()
		h.signal(rein)
		h.signal(susp)
	})
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.Equal(t, marketplace.StatusSubscribed, st.Status)
	assert.False(t, st.TenantSuspended)
	assert.Equal(t, provisioning.TenantActive, h.tenant().Status)
	assert.Equal(t, 0, h.demo.Applied(key(susp.ID)), "a Suspend older than the Reinstate does not suspend")
	assert.Equal(t, 0, h.fake.count("UpdateOperation:Success"))
}

// A Renew records the new term, then the run continues as new (so fixes reach yearly subscriptions).
func TestRenewRecordsTermAndContinuesAsNew(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.fake.lag = 2 * time.Second
	h.at(time.Minute, func() { h.signal(h.fake.announce(subID, marketplace.ActionRenew, "", 0)) })
	h.env.ExecuteWorkflow(WorkflowType, adopted(Options{}))
	st := h.continued().Carried.State
	assert.Equal(t, 2028, st.Term.EndDate.Year(), "the lagging read was read again until it showed the new term")
	assert.Equal(t, marketplace.StatusSubscribed, st.Status)
	assert.Empty(t, st.Expect)
}

func TestUnsubscribeEndsAndIgnoresLaterChangePlan(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var unsub marketplace.WebhookEvent
	h.at(time.Minute, func() {
		change := h.fake.announce(subID, marketplace.ActionChangePlan, "gold", 0)
		unsub = h.fake.announce(subID, marketplace.ActionUnsubscribe, "", 0)
		h.signal(unsub)
		h.signal(change)
	})
	h.env.ExecuteWorkflow(WorkflowType, adopted(Options{}))
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var st State
	require.NoError(t, h.env.GetWorkflowResult(&st))

	assert.Equal(t, marketplace.StatusUnsubscribed, st.Status)
	assert.Equal(t, PhaseDeprovisioned, st.Phase)
	assert.False(t, st.DeprovisionedAt.IsZero())
	assert.Equal(t, provisioning.TenantDeprovisioned, h.tenant().Status)
	assert.Equal(t, "basic", h.tenant().PlanID)
	assert.Equal(t, 1, h.demo.Applied(key(keyDeprovision)))
	assert.Equal(t, 0, h.fake.count("UpdateOperation:Success"))
	assert.Equal(t, 0, h.fake.count("UpdateOperation:Failure"))
}

func TestDecideChangeAccept(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var dec ChangeDecision
	var ev marketplace.WebhookEvent
	h.at(time.Minute, func() {
		ev = h.fake.announce(subID, marketplace.ActionChangeQuantity, "basic", 8)
		h.update(UpdateDecideChange, &dec, nil, h.decide(ev))
	})
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.Equal(t, ChangeDecision{Accepted: true, Decided: true}, dec)
	assert.Equal(t, 1, h.fake.count("UpdateOperation:Success"))
	assert.Equal(t, int64(8), st.Quantity)
	assert.Equal(t, int64(8), h.tenant().Quantity)
	assert.Equal(t, 1, h.demo.Applied(key(ev.ID)))
}

func TestDecideChangeReject(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.demo.RejectPlans = []string{"platinum"}
	var dec ChangeDecision
	var ev marketplace.WebhookEvent
	h.at(time.Minute, func() {
		ev = h.fake.announce(subID, marketplace.ActionChangePlan, "platinum", 0)
		h.update(UpdateDecideChange, &dec, nil, h.decide(ev))
	})
	var dup ChangeDecision
	h.at(10*time.Minute, func() { h.update(UpdateDecideChange, &dup, nil, h.decide(ev)) })
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.True(t, dec.Decided)
	assert.False(t, dec.Accepted)
	assert.Contains(t, dec.Reason, "platinum")
	assert.Equal(t, 1, h.fake.count("UpdateOperation:Failure"))
	assert.Equal(t, 0, h.fake.count("UpdateOperation:Success"))
	assert.Equal(t, marketplace.OperationFailed, h.fake.op(ev.ID).Status)
	assert.Equal(t, "basic", st.PlanID)
	assert.Equal(t, "basic", h.tenant().PlanID)
	assert.Equal(t, 0, h.demo.Applied(key(ev.ID)))
	assert.Equal(t, ChangeDecision{Accepted: false, Decided: true, Reason: "decided before"}, dup)
}

func TestChangePlanBySignalIsDecided(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var ev marketplace.WebhookEvent
	h.at(time.Minute, func() {
		ev = h.fake.announce(subID, marketplace.ActionChangePlan, "gold", 0)
		h.signal(ev)
		h.signal(ev)
	})
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)
	assert.Equal(t, "gold", st.PlanID)
	assert.Equal(t, "gold", h.tenant().PlanID)
	assert.Equal(t, 1, h.fake.count("UpdateOperation:Success"))
	assert.Equal(t, 1, h.demo.Applied(key(ev.ID)))
}

func TestUnverifiedWebhookIgnored(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.at(time.Minute, func() {
		h.signal(marketplace.WebhookEvent{ID: "forged", SubscriptionID: subID, Action: marketplace.ActionUnsubscribe})
	})
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)
	assert.Equal(t, marketplace.StatusSubscribed, st.Status)
	assert.Equal(t, provisioning.TenantActive, h.tenant().Status)
	found := false
	for _, a := range st.Audit {
		if a.Kind == "webhook-unverified" && a.OperationID == "forged" {
			found = true
		}
	}
	assert.True(t, found, "the ignored webhook is recorded")
}

func TestPublisherChangePlanOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outcome marketplace.OperationStatus
		patch   error
		want    string
		plan    string
	}{
		{"succeeded", marketplace.OperationSucceeded, nil, "Succeeded", "gold"},
		{"failed", marketplace.OperationFailed, nil, "Failed", "basic"},
		{"conflict", marketplace.OperationConflict, nil, "Conflict", "basic"},
		{"rejected by Microsoft", "", &marketplace.Error{Op: "change plan", StatusCode: 400, Code: "BadArgument", Message: "plan not allowed"}, ResultRejected, "basic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, subscription(marketplace.StatusSubscribed))
			h.fake.outcome = tc.outcome
			if tc.patch != nil {
				h.fake.fail("ChangePlan", tc.patch)
			}
			var res CommandResult
			var during State
			h.at(time.Minute, func() { h.update(UpdateChangePlan, &res, nil, ChangePlanRequest{PlanID: "gold"}) })
			h.at(time.Minute+3*time.Second, func() { during = h.state() })
			var st State
			h.at(time.Hour, func() { st = h.state() })
			h.run(adopted(Options{}), 2*time.Hour)

			assert.Equal(t, tc.want, res.Status)
			assert.Equal(t, tc.plan, st.PlanID)
			assert.Equal(t, tc.plan, h.tenant().PlanID)
			assert.Nil(t, st.Pending)
			if tc.patch == nil {
				assert.NotEmpty(t, res.OperationID)
				assert.Equal(t, PhaseChanging, during.Phase)
				require.NotNil(t, during.Pending)
				assert.Equal(t, res.OperationID, during.Pending.ID)
				assert.GreaterOrEqual(t, h.fake.count("GetOperation"), 3, "polled until terminal")
			} else {
				assert.Contains(t, res.Message, "plan not allowed")
				assert.Equal(t, 1, h.fake.count("ChangePlan"), "a refused write is not repeated")
			}
		})
	}
}

func TestPublisherCommandValidation(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var samePlan, zeroQty, unknownPlan error
	var unknown CommandResult
	h.at(time.Minute, func() {
		h.update(UpdateChangePlan, nil, &samePlan, ChangePlanRequest{PlanID: "basic"})
		h.update(UpdateChangeQuantity, nil, &zeroQty, ChangeQuantityRequest{Quantity: 0})
	})
	h.at(2*time.Minute, func() { h.update(UpdateChangePlan, &unknown, &unknownPlan, ChangePlanRequest{PlanID: "diamond"}) })
	h.run(adopted(Options{}), time.Hour)
	assert.ErrorContains(t, samePlan, "already on plan")
	assert.ErrorContains(t, zeroQty, "positive")
	assert.NoError(t, unknownPlan, "plan availability is checked by the handler")
	assert.Equal(t, ResultRejected, unknown.Status)
	assert.Contains(t, unknown.Message, "not available")
	assert.Equal(t, 0, h.fake.count("ChangePlan"))
}

func TestPublisherChangeQuantity(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var res CommandResult
	h.at(time.Minute, func() { h.update(UpdateChangeQuantity, &res, nil, ChangeQuantityRequest{Quantity: 12}) })
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)
	assert.Equal(t, "Succeeded", res.Status)
	assert.Equal(t, int64(12), st.Quantity)
	assert.Equal(t, int64(12), h.tenant().Quantity)
}

func TestPublisherChangeQuantityOutsidePlanBounds(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var res CommandResult
	h.at(time.Minute, func() { h.update(UpdateChangeQuantity, &res, nil, ChangeQuantityRequest{Quantity: 500}) })
	h.run(adopted(Options{}), 2*time.Hour)
	assert.Equal(t, ResultRejected, res.Status)
	assert.Contains(t, res.Message, "1 to 100")
	assert.Equal(t, 0, h.fake.count("ChangeQuantity"), "nothing was sent to Microsoft")
}

func TestCancelWhileChangePending(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.fake.polls = 3
	var change, cancel CommandResult
	var changeDone, cancelSent time.Time
	h.at(time.Minute, func() { h.update(UpdateChangePlan, &change, nil, ChangePlanRequest{PlanID: "gold"}) })
	h.at(time.Minute+time.Second, func() {
		cancelSent = h.env.Now()
		h.update(UpdateCancel, &cancel, nil)
	})
	h.env.ExecuteWorkflow(WorkflowType, adopted(Options{}))
	require.NoError(t, h.env.GetWorkflowError())
	var st State
	require.NoError(t, h.env.GetWorkflowResult(&st))

	assert.Equal(t, "Succeeded", change.Status)
	assert.Equal(t, "Succeeded", cancel.Status)
	dels := h.fake.times("DeleteSubscription")
	require.Len(t, dels, 1)
	for _, a := range st.Audit {
		if a.Kind == "plan" && a.To == "gold" {
			changeDone = a.Time
		}
	}
	require.False(t, changeDone.IsZero())
	assert.True(t, dels[0].After(cancelSent))
	assert.False(t, dels[0].Before(changeDone), "the cancel waited for the change")
	assert.Equal(t, PhaseDeprovisioned, st.Phase)
	assert.Equal(t, provisioning.TenantDeprovisioned, h.tenant().Status)
	assert.Equal(t, "gold", h.tenant().PlanID)
}

func TestSnapshotCatchesUp(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var pending marketplace.WebhookEvent
	h.at(time.Minute, func() {
		// Missed webhooks: a seat change waiting for a decision and a suspension.
		pending = h.fake.announce(subID, marketplace.ActionChangeQuantity, "basic", 9)
		h.fake.setStatus(subID, marketplace.StatusSuspended)
		h.env.SignalWorkflow(SignalSnapshot, h.fake.sub(subID))
	})
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)
	assert.Equal(t, marketplace.StatusSuspended, st.Status)
	assert.True(t, st.TenantSuspended)
	assert.Equal(t, provisioning.TenantSuspended, h.tenant().Status)
	assert.Equal(t, 1, h.fake.count("UpdateOperation:Success"))
	assert.Equal(t, int64(9), h.tenant().Quantity)
	_, seen := st.Seen(pending.ID)
	assert.True(t, seen)
}

func TestContinueAsNewCarriesStateAndSignals(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var evs []marketplace.WebhookEvent
	h.at(time.Minute, func() {
		for range 4 {
			ev := h.fake.announce(subID, marketplace.ActionSuspend, "", 0)
			evs = append(evs, ev)
			h.signal(ev)
		}
	})
	h.env.ExecuteWorkflow(WorkflowType, adopted(Options{MaxEvents: 2}))
	next := h.continued()
	assert.Equal(t, 2, next.Carried.State.Events)
	assert.Equal(t, 1, next.Carried.State.Runs)
	assert.True(t, next.Carried.State.Provisioned)
	require.Len(t, next.Carried.Pending, 2)
	assert.Equal(t, evs[2].ID, next.Carried.Pending[0].Webhook.ID)
	assert.Equal(t, evs[3].ID, next.Carried.Pending[1].Webhook.ID)
	assert.Equal(t, 2, next.Options.MaxEvents)

	// The next run handles what was carried, without provisioning again.
	h2 := newHarness(t)
	h2.fake = h.fake
	h2.env.RegisterActivity(&subacts.Activities{Marketplace: h.fake, Provisioner: h.prov})
	h2.demo = h.demo
	next.Options.MaxEvents = 100
	var st State
	h2.at(time.Hour, func() { st = h2.state() })
	h2.run(next, 2*time.Hour)
	assert.Equal(t, 4, st.Events)
	assert.Equal(t, 2, st.Runs)
	for _, ev := range evs {
		_, seen := st.Seen(ev.ID)
		assert.True(t, seen, ev.ID)
	}
	assert.Equal(t, 1, h.demo.Applied(key(keyActivate)))
}

// A customer's seat change (decide-change, Microsoft's 10-second window) arriving while a publisher plan
// change is being polled is answered during the polling, not after the publisher operation ends.
func TestDecideChangeServedWhilePollingPublisherChange(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.fake.polls = 30 // the publisher operation stays InProgress for several minutes
	var change CommandResult
	changeDone := false
	var dec ChangeDecision
	answeredBeforeChangeDone := false
	var ev marketplace.WebhookEvent
	h.at(time.Minute, func() {
		h.env.UpdateWorkflow(UpdateChangePlan, "", &testsuite.TestUpdateCallback{
			OnAccept: func() {}, OnReject: func(err error) { t.Errorf("change-plan rejected: %v", err) },
			OnComplete: func(v any, err error) {
				require.NoError(t, err)
				change, changeDone = v.(CommandResult), true
			},
		}, ChangePlanRequest{PlanID: "gold"})
	})
	h.at(time.Minute+20*time.Second, func() {
		ev = h.fake.announce(subID, marketplace.ActionChangeQuantity, "basic", 8)
		h.env.UpdateWorkflow(UpdateDecideChange, "", &testsuite.TestUpdateCallback{
			OnAccept: func() {}, OnReject: func(err error) { t.Errorf("decide-change rejected: %v", err) },
			OnComplete: func(v any, err error) {
				require.NoError(t, err)
				dec, answeredBeforeChangeDone = v.(ChangeDecision), !changeDone
			},
		}, h.decide(ev))
	})
	var st State
	h.at(2*time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 3*time.Hour)

	assert.Equal(t, ChangeDecision{Accepted: true, Decided: true}, dec)
	assert.True(t, answeredBeforeChangeDone, "the decision was held until the publisher operation ended")
	assert.Equal(t, "Succeeded", change.Status)
	assert.Equal(t, 1, h.fake.count("UpdateOperation:Success"))
	assert.Equal(t, "gold", st.PlanID)
	assert.Equal(t, int64(8), st.Quantity)
	assert.Equal(t, 1, h.demo.Applied(key(ev.ID)))
}

// A publisher change whose first PATCH went through with its answer lost: the retry gets 409 (the
// operation is in progress). The workflow finds the operation instead of reporting the change Rejected.
func TestPublisherChangeRetriedWriteConflictFindsOperation(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.fake.lose["ChangePlan"] = 1
	h.fake.fail("ChangePlan", nil, &marketplace.Error{Op: "change plan", StatusCode: 409, Code: "Conflict", Message: "an operation is in progress"})
	var res CommandResult
	h.at(time.Minute, func() { h.update(UpdateChangePlan, &res, nil, ChangePlanRequest{PlanID: "gold"}) })
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.Equal(t, 2, h.fake.count("ChangePlan"))
	assert.Equal(t, "Succeeded", res.Status, res.Message)
	assert.Equal(t, "op-1", res.OperationID)
	assert.Equal(t, "gold", st.PlanID)
	assert.Equal(t, "gold", h.tenant().PlanID)
}

// A refusal of a retried write with nothing found stays Rejected.
func TestPublisherChangeRetriedWriteRefusedNothingFound(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.fake.fail("ChangeQuantity", &marketplace.Error{Op: "change quantity", StatusCode: 503, Retryable: true},
		&marketplace.Error{Op: "change quantity", StatusCode: 400, Code: "BadArgument", Message: "no"})
	var res CommandResult
	h.at(time.Minute, func() { h.update(UpdateChangeQuantity, &res, nil, ChangeQuantityRequest{Quantity: 9}) })
	h.run(adopted(Options{}), 2*time.Hour)
	assert.Equal(t, ResultRejected, res.Status)
	assert.Equal(t, 1, h.fake.count("ListOperations"), "looked for the operation first")
}

// A webhook for a subscription Microsoft does not know (yet) ends the workflow as failed, not completed:
// the start policy lets a later sighting (a redelivery, the landing page) start it again.
func TestWebhookForUnknownSubscriptionFailsWorkflow(t *testing.T) {
	h := newHarness(t)
	h.env.ExecuteWorkflow(WorkflowType, Input{SubscriptionID: subID, Source: SourceWebhook})
	require.True(t, h.env.IsWorkflowCompleted())
	err := h.env.GetWorkflowError()
	require.Error(t, err, "a NotFound workflow must not complete successfully")
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, ErrSubscriptionNotFound, ae.Type())
	var st State
	require.NoError(t, ae.Details(&st))
	assert.Equal(t, PhaseNotFound, st.Phase)
	assert.Equal(t, 0, h.fake.count("Activate"))
}

// A Suspend whose verification failed was not acted on: its redelivery is handled, not dropped as a
// duplicate.
func TestSuspendRedeliveredAfterFailedReadIsActedOn(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var ev marketplace.WebhookEvent
	var first State
	h.at(time.Minute, func() {
		ev = h.fake.announce(subID, marketplace.ActionSuspend, "", 0)
		h.fake.fail("GetOperation", &marketplace.Error{Op: "get operation", StatusCode: 403, Code: "Forbidden", Message: "token rejected"})
		h.signal(ev)
	})
	h.at(10*time.Minute, func() {
		first = h.state()
		h.signal(ev) // Microsoft redelivers
	})
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	_, seen := first.Seen(ev.ID)
	assert.False(t, seen, "an operation not acted on is not marked seen")
	assert.False(t, first.TenantSuspended)
	assert.True(t, st.TenantSuspended, "the redelivery suspended the tenant")
	assert.Equal(t, provisioning.TenantSuspended, h.tenant().Status)
	_, seen = st.Seen(ev.ID)
	assert.True(t, seen)
}
