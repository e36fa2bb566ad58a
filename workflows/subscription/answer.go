package subscription

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"saasengine/marketplace"
)

// Microsoft expects no PATCH of an operation before the HTTP response to its webhook has been sent. The
// workflow's own order is not enough: a decision's update completes before the webhook server writes
// its answer, and a signalled webhook is handled while the 200 may still be on its way. So an operation
// that arrived by webhook is PATCHed only once the server says it answered (SignalAnswered), or once
// the answer's time has surely passed if that signal never comes (an older server, a lost signal).

const (
	// answerAfterDeadline is how long past the webhook server's decision deadline its answer may take.
	answerAfterDeadline = 2 * time.Second
	// answerAfterSignal bounds the wait for the answer to a webhook that arrived as a signal: the server
	// answers as soon as Temporal has the signal.
	answerAfterSignal = 5 * time.Second
	// maxAnswerWaits bounds the remembered operations: the oldest is dropped first.
	maxAnswerWaits = 16
	// versionAwaitAnswer guards the wait (its timer and signal) in histories recorded before it.
	versionAwaitAnswer = "await-webhook-answer"
)

// mayPatch reports the webhooks whose operation the workflow may PATCH.
func mayPatch(a marketplace.Action) bool {
	return a == marketplace.ActionChangePlan || a == marketplace.ActionChangeQuantity || a == marketplace.ActionReinstate
}

// answerWait is an operation whose webhook answer is awaited until by, or was seen answered.
type answerWait struct {
	operationID string
	by          time.Time
	answered    bool
}

func (r *runner) answerWait(operationID string) *answerWait {
	for i := range r.answers {
		if r.answers[i].operationID == operationID {
			return &r.answers[i]
		}
	}
	r.answers = append(r.answers, answerWait{operationID: operationID})
	if n := len(r.answers) - maxAnswerWaits; n > 0 {
		r.answers = append(r.answers[:0:0], r.answers[n:]...)
	}
	return &r.answers[len(r.answers)-1]
}

// expectAnswer notes that the webhook of an operation is being answered, at the latest by.
func (r *runner) expectAnswer(operationID string, by time.Time) {
	if w := r.answerWait(operationID); w.by.IsZero() {
		w.by = by
	}
}

// takeAnswers takes every SignalAnswered waiting in its channel.
func (r *runner) takeAnswers() {
	for {
		var id string
		if !r.answeredCh.ReceiveAsync(&id) {
			return
		}
		r.answerWait(id).answered = true
	}
}

// awaitAnswer returns once the webhook of an operation has been answered, or could no longer be
// waiting; the operation is then forgotten. Operations that came by List operations return at once.
func (r *runner) awaitAnswer(ctx workflow.Context, operationID string) {
	defer r.forgetAnswer(operationID)
	r.takeAnswers()
	w := r.answerWait(operationID)
	left := w.by.Sub(workflow.Now(ctx))
	if w.answered || w.by.IsZero() || left <= 0 {
		return
	}
	if workflow.GetVersion(ctx, versionAwaitAnswer, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	timer := workflow.NewTimer(tctx, left)
	for {
		timedOut := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(r.answeredCh, func(c workflow.ReceiveChannel, _ bool) {
			var id string
			c.Receive(ctx, &id)
			r.answerWait(id).answered = true
		})
		sel.AddFuture(timer, func(workflow.Future) { timedOut = true })
		sel.Select(ctx)
		if timedOut {
			r.st.Record(r.now(ctx), "answer-unseen", "", "", operationID, "no word that the webhook was answered; acknowledging anyway")
			return
		}
		if w := r.answerWait(operationID); w.answered {
			return
		}
	}
}

func (r *runner) forgetAnswer(operationID string) {
	for i := range r.answers {
		if r.answers[i].operationID == operationID {
			r.answers = append(r.answers[:i:i], r.answers[i+1:]...)
			return
		}
	}
}
