package subscription

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"saasengine/marketplace"
	"saasengine/provisioning"
)

// A decided change is PATCHed only after the webhook server says its answer went out, however soon the
// decision was made.
func TestPatchFollowsTheWebhookAnswer(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var dec ChangeDecision
	var ev marketplace.WebhookEvent
	start := h.env.Now()
	h.at(time.Minute, func() {
		ev = h.fake.announce(subID, marketplace.ActionChangeQuantity, "", 9)
		h.update(UpdateDecideChange, &dec, nil, h.decide(ev))
	})
	h.at(time.Minute+3*time.Second, func() { h.env.SignalWorkflow(SignalAnswered, ev.ID) })
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	require.True(t, dec.Accepted)
	patches := h.fake.times("UpdateOperation:Success")
	require.Len(t, patches, 1)
	assert.False(t, patches[0].Before(start.Add(time.Minute+3*time.Second)), "PATCH at %v, before the answer", patches[0].Sub(start))
	assert.True(t, patches[0].Before(start.Add(time.Minute+5*time.Second)), "PATCH at %v, not right after the answer", patches[0].Sub(start))
	assert.Zero(t, countAudit(st, "answer-unseen", "", ""))
	assert.Equal(t, int64(9), st.Quantity)
}

// Without word from the webhook server (an older server, a lost signal), the PATCH waits only until
// the answer's time has surely passed, and says so in the audit trail.
func TestPatchWithoutWordOfTheAnswerWaitsOnlyUntilItsTime(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	var dec ChangeDecision
	var req DecideRequest
	h.at(time.Minute, func() {
		ev := h.fake.announce(subID, marketplace.ActionChangeQuantity, "", 9)
		req = h.decide(ev)
		h.update(UpdateDecideChange, &dec, nil, req)
	})
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	require.True(t, dec.Accepted)
	patches := h.fake.times("UpdateOperation:Success")
	require.Len(t, patches, 1)
	assert.False(t, patches[0].Before(req.Deadline.Add(answerAfterDeadline)), "PATCH before the answer's time had passed")
	assert.True(t, patches[0].Before(req.Deadline.Add(answerAfterDeadline+time.Second)), "PATCH waited past the answer's time")
	assert.Equal(t, 1, countAudit(st, "answer-unseen", "", ""))
	assert.Equal(t, int64(9), st.Quantity)
}

// A Reinstate that came by webhook is acknowledged after its answer too; word of the answer that
// arrives before the loop takes the webhook is kept.
func TestReinstatePatchFollowsTheAnswerSentEarly(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSuspended))
	var ev marketplace.WebhookEvent
	start := h.env.Now()
	h.at(time.Minute, func() {
		ev = h.fake.announce(subID, marketplace.ActionReinstate, "", 0)
		h.signal(ev)
		h.env.SignalWorkflow(SignalAnswered, ev.ID)
	})
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	patches := h.fake.times("UpdateOperation:Success")
	require.Len(t, patches, 1)
	assert.True(t, patches[0].Before(start.Add(time.Minute+answerAfterSignal)), "PATCH at %v waited although the answer was known", patches[0].Sub(start))
	assert.Zero(t, countAudit(st, "answer-unseen", "", ""))
	assert.Equal(t, marketplace.StatusSubscribed, st.Status)
}

// The loop is deciding a change it found through List operations when the change's webhook arrives: the
// webhook is answered "decided before", and the PATCH waits for that answer too.
func TestPatchOfAChangeFoundByListWaitsForItsWebhookAnswer(t *testing.T) {
	h := newHarness(t, subscription(marketplace.StatusSubscribed))
	// The provisioner takes three seconds to decide, so the webhook arrives in the middle.
	h.env.OnActivity(acts.DecideChange, mock.Anything, mock.Anything).After(3*time.Second).Return(provisioning.Decision{Accept: true}, nil)
	var ev marketplace.WebhookEvent
	start := h.env.Now()
	h.at(time.Minute, func() {
		ev = h.fake.announce(subID, marketplace.ActionChangeQuantity, "", 9)
		h.env.SignalWorkflow(SignalSnapshot, h.fake.sub(subID))
	})
	var dec ChangeDecision
	h.at(time.Minute+time.Second, func() { h.update(UpdateDecideChange, &dec, nil, h.decide(ev)) })
	answered := time.Minute + 6*time.Second
	h.at(answered, func() { h.env.SignalWorkflow(SignalAnswered, ev.ID) })
	var st State
	h.at(time.Hour, func() { st = h.state() })
	h.run(adopted(Options{}), 2*time.Hour)

	assert.True(t, dec.Decided && dec.Accepted, "%+v", dec)
	patches := h.fake.times("UpdateOperation:Success")
	require.Len(t, patches, 1)
	assert.False(t, patches[0].Before(start.Add(answered)), "PATCH at %v, before the webhook's answer at %v", patches[0].Sub(start), answered)
	assert.Equal(t, int64(9), st.Quantity)
}
