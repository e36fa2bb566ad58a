package subscription

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"saasengine/marketplace"
	"saasengine/provisioning"
)

// These tests run the workflow against a Marketplace whose subscription reads lag its operations, as
// Microsoft's do, and deliver inputs at the awkward moments the real service chooses.

const lag = 2 * time.Second

func countAudit(st State, kind, from, to string) int {
	n := 0
	for _, a := range st.Audit {
		if a.Kind == kind && (from == "" || a.From == from) && (to == "" || a.To == to) {
			n++
		}
	}
	return n
}

// A customer's plan change that succeeded is not reverted by the read that follows it.
func TestCustomerChangeNotRevertedByLaggingRead(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.fake.lag = lag
	var dec ChangeDecision
	var ev marketplace.WebhookEvent
	h.at(time.Minute, func() {
		ev = h.fake.announce(subID, marketplace.ActionChangePlan, "gold", 0)
		h.update(UpdateDecideChange, &dec, nil, h.decide(ev))
	})
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.True(t, dec.Accepted)
	assert.Equal(t, "gold", st.PlanID)
	assert.Equal(t, "gold", st.TenantPlanID)
	assert.Equal(t, "gold", h.tenant().PlanID)
	apply, _ := h.prov.calls()
	assert.Equal(t, 1, apply, "the tenant got the change once and was never moved back")
	assert.Zero(t, countAudit(st, "plan", "gold", "basic"), "no stale read moved the plan back")
	assert.Empty(t, st.Expect)
}

// A publisher's seat change that succeeded is not reverted by the read that follows it.
func TestPublisherChangeNotRevertedByLaggingRead(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.fake.lag = lag
	var res CommandResult
	h.at(time.Minute, func() { h.update(UpdateChangeQuantity, &res, nil, ChangeQuantityRequest{Quantity: 9}) })
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.Equal(t, "Succeeded", res.Status, res.Message)
	assert.Equal(t, int64(9), st.Quantity)
	assert.Equal(t, int64(9), h.tenant().Quantity)
	apply, _ := h.prov.calls()
	assert.Equal(t, 1, apply)
	assert.Zero(t, countAudit(st, "quantity", "9", "5"))
}

// A Suspend whose operation Succeeded suspends the tenant although Get subscription still shows
// Subscribed; the Reinstate that follows restores it although the read still shows Suspended.
func TestSuspendAndReinstateTrustSucceededOperations(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.fake.lag = time.Minute // far longer than the workflow takes to act
	var susp, rein marketplace.WebhookEvent
	var suspended State
	h.at(time.Minute, func() {
		susp = h.fake.announce(subID, marketplace.ActionSuspend, "", 0)
		h.signal(susp)
	})
	h.at(time.Minute+20*time.Second, func() { suspended = h.state() })
	h.at(10*time.Minute, func() {
		rein = h.fake.announce(subID, marketplace.ActionReinstate, "", 0)
		h.fake.mu.Lock()
		h.fake.ops[rein.ID].Status = marketplace.OperationSucceeded
		h.fake.apply(h.fake.ops[rein.ID])
		h.fake.mu.Unlock()
		rein.Status = marketplace.OperationSucceeded
		h.signal(rein)
	})
	var reinstated State
	h.at(10*time.Minute+20*time.Second, func() { reinstated = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.Equal(t, marketplace.StatusSuspended, suspended.Status)
	assert.True(t, suspended.TenantSuspended, "suspended on the operation's word")
	assert.Equal(t, 1, h.demo.Applied(key(susp.ID)))
	assert.Equal(t, marketplace.StatusSubscribed, reinstated.Status)
	assert.False(t, reinstated.TenantSuspended, "reinstated on the operation's word")
	assert.Equal(t, 1, h.demo.Applied(key(rein.ID)))
	assert.Equal(t, provisioning.TenantActive, h.tenant().Status)
}

// A signal delivered on the very workflow task that carries the server's continue-as-new suggestion is
// handled or carried to the next run, never dropped.
func TestSignalOnTheContinueAsNewTaskIsNotLost(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var ev marketplace.WebhookEvent
	h.at(time.Minute, func() {
		ev = h.fake.announce(subID, marketplace.ActionSuspend, "", 0)
		// The webhook, the suggestion and a snapshot all reach the workflow on one task (the test
		// environment runs posted callbacks in order; only the last starts a workflow task).
		h.env.SignalWorkflowSkippingWorkflowTask(SignalWebhook, ev)
		h.env.RegisterDelayedCallback(func() { h.env.SetContinueAsNewSuggested(true) }, 0)
		h.env.SignalWorkflow(SignalSnapshot, h.fake.sub(subID))
	})
	h.env.ExecuteWorkflow(WorkflowType, adopted(Options{}))
	next := h.continued()
	_, handled := next.Carried.State.Seen(ev.ID)
	carried := false
	for _, p := range next.Carried.Pending {
		carried = carried || (p.Webhook != nil && p.Webhook.ID == ev.ID)
	}
	assert.True(t, handled || carried, "the webhook was neither handled nor carried")
	assert.Equal(t, 2, next.Carried.State.Events+len(next.Carried.Pending), "both signals handled or carried")
}

// A failed tenant sync leaves the tenant's plan apart from Microsoft's, needs attention, and is
// retried: by an operator's retry, and by a reconciliation snapshot.
func TestFailedTenantSyncIsKeptAndRetried(t *testing.T) {
	for _, via := range []string{"retry", "snapshot"} {
		t.Run(via, func(t *testing.T) {
			h := newHarness(t, subscription(marketplace.StatusSubscribed))
			h.prov.failApply = 1
			h.at(time.Minute, func() {
				ev := h.fake.announce(subID, marketplace.ActionChangePlan, "gold", 0)
				h.update(UpdateDecideChange, nil, nil, h.decide(ev))
			})
			var failed State
			h.at(10*time.Minute, func() { failed = h.state() })
			h.at(20*time.Minute, func() {
				if via == "retry" {
					h.update(UpdateRetry, nil, nil)
				} else {
					h.env.SignalWorkflow(SignalSnapshot, h.fake.sub(subID))
				}
			})
			var st State
			h.at(time.Hour, func() { st = h.state() })
			h.run(adopted(Options{}), 2*time.Hour)

			assert.Equal(t, "gold", failed.PlanID, "the workflow follows Microsoft")
			assert.Equal(t, "basic", failed.TenantPlanID, "the tenant did not take the change")
			assert.Equal(t, AttentionTenantSync, failed.Attention)
			assert.NotEmpty(t, failed.LastError)
			assert.Equal(t, "gold", st.TenantPlanID)
			assert.Equal(t, "gold", h.tenant().PlanID)
			assert.Empty(t, st.Attention)
			assert.Empty(t, st.LastError)
		})
	}
}

// A failed deprovisioning is not a dead end: it needs attention, and a retry removes the tenant and
// ends the workflow.
func TestFailedDeprovisioningIsRetried(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.prov.failDeprovision = 1
	h.at(time.Minute, func() { h.signal(h.fake.announce(subID, marketplace.ActionUnsubscribe, "", 0)) })
	var failed State
	h.at(10*time.Minute, func() { failed = h.state() })
	var retried State
	h.at(20*time.Minute, func() { h.update(UpdateRetry, &retried, nil) })
	h.env.ExecuteWorkflow(WorkflowType, adopted(Options{}))
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var st State
	require.NoError(t, h.env.GetWorkflowResult(&st))

	assert.Equal(t, PhaseDeprovisionFailed, failed.Phase)
	assert.Equal(t, AttentionDeprovisioning, failed.Attention)
	assert.Equal(t, PhaseDeprovisioned, st.Phase)
	assert.Empty(t, st.Attention)
	assert.Equal(t, provisioning.TenantDeprovisioned, h.tenant().Status)
	_, deprovisions := h.prov.calls()
	assert.Equal(t, 2, deprovisions)
}

// Retry is refused when nothing failed.
func TestRetryRefusedWhenNothingFailed(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var refused error
	h.at(time.Minute, func() { h.update(UpdateRetry, nil, &refused) })
	h.run(adopted(Options{}), time.Hour)
	require.Error(t, refused)
	assert.Contains(t, refused.Error(), "nothing failed")
}

// A change announced for a subscription Microsoft already shows Unsubscribed (its Unsubscribe webhook
// lost) is refused and never reaches the tenant; the subscription ends.
func TestChangeOfAnUnsubscribedSubscriptionIsRefused(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var dec ChangeDecision
	h.at(time.Minute, func() {
		ev := h.fake.announce(subID, marketplace.ActionChangePlan, "gold", 0)
		h.fake.setStatus(subID, marketplace.StatusUnsubscribed)
		h.update(UpdateDecideChange, &dec, nil, h.decide(ev))
	})
	h.env.ExecuteWorkflow(WorkflowType, adopted(Options{}))
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())

	assert.True(t, dec.Decided)
	assert.False(t, dec.Accepted)
	apply, _ := h.prov.calls()
	assert.Zero(t, apply, "the change never reached the tenant")
	assert.Equal(t, "basic", h.tenant().PlanID)
	assert.Equal(t, provisioning.TenantDeprovisioned, h.tenant().Status)
	assert.Equal(t, 1, h.fake.count("UpdateOperation:Failure"))
}

// A publisher write whose first attempt succeeded with its answer lost, and whose retry is refused,
// leaves no outstanding operation to find: the subscription itself, once its lagging record shows the
// change, says it succeeded.
func TestRetriedWriteThatSucceededIsFoundInTheSubscription(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.fake.lag = lag
	h.fake.lose["ChangePlan"], h.fake.completeLost = 1, true
	h.fake.fail("ChangePlan", nil, &marketplace.Error{Op: "change plan", StatusCode: 400, Code: "BadRequest", Message: "already on plan gold"})
	var res CommandResult
	h.at(time.Minute, func() { h.update(UpdateChangePlan, &res, nil, ChangePlanRequest{PlanID: "gold"}) })
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.Equal(t, 2, h.fake.count("ChangePlan"))
	assert.Equal(t, string(marketplace.OperationSucceeded), res.Status, res.Message)
	assert.Equal(t, "gold", st.PlanID)
	assert.Equal(t, "gold", h.tenant().PlanID)
}

// A decide-change that arrives with no time left is not decided in the handler; the loop decides it
// and Microsoft gets the PATCH.
func TestDecisionWithNoTimeLeftFallsToTheLoop(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var dec ChangeDecision
	h.at(time.Minute, func() {
		ev := h.fake.announce(subID, marketplace.ActionChangeQuantity, "basic", 8)
		h.update(UpdateDecideChange, &dec, nil, DecideRequest{Event: ev, Deadline: h.env.Now().Add(100 * time.Millisecond)})
	})
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.False(t, dec.Decided)
	assert.Contains(t, dec.Reason, "no time left")
	assert.Equal(t, 1, h.fake.count("UpdateOperation:Success"))
	assert.Equal(t, int64(8), st.Quantity)
	assert.Equal(t, int64(8), h.tenant().Quantity)
}

// An idle subscription's run continues as new after MaxRunAge, so released fixes reach it.
func TestIdleRunContinuesAsNewAfterMaxRunAge(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	h.at(MaxRunAge+time.Hour, func() { h.env.CancelWorkflow() })
	h.env.ExecuteWorkflow(WorkflowType, adopted(Options{}))
	next := h.continued()
	assert.Equal(t, 1, next.Carried.State.Runs)
	assert.True(t, next.Carried.State.Provisioned)
}
