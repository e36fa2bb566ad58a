package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"saasengine/emulator"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// Plan of the lifecycle: every subscription is bought on the per-seat plan, then either its seats or its
// plan change (publisher-initiated PATCH through the admin API); half are cancelled (publisher DELETE).
const (
	startPlan    = "team"
	startSeats   = 10
	changedPlan  = "enterprise"
	stepsPerLife = 6
)

// outcome is what the driver did to one subscription and what it was told.
type outcome struct {
	ID string
	// Change is "quantity" or "plan", with its target.
	Change   string
	Quantity int64
	PlanID   string
	// ChangeReport and CancelReport are the admin API's last definitive answers: the command result's
	// status (Succeeded, Failed, Rejected, ...), "InProgress" for a 202, or "refused:<code>" for a 4xx.
	ChangeReport string
	Cancel       bool
	CancelReport string
	// Notes are what went wrong while driving (a step the engine never showed in time).
	Notes []string
}

func (o *outcome) note(format string, args ...any) {
	o.Notes = append(o.Notes, fmt.Sprintf(format, args...))
}

// drive runs every subscription through its lifecycle, killing processes as progress passes milestones.
func (e *env) drive(ctx context.Context) []*outcome {
	n := e.cfg.N
	outs := make([]*outcome, n)
	var progress atomic.Int64
	total := int64(n * stepsPerLife)
	stepped := make(chan struct{}, 1)
	step := func() {
		progress.Add(1)
		select {
		case stepped <- struct{}{}:
		default:
		}
	}

	killCtx, stopKilling := context.WithCancel(ctx)
	killsDone := make(chan struct{})
	go func() {
		defer close(killsDone)
		e.killOnMilestones(killCtx, &progress, total, stepped)
	}()

	sem := make(chan struct{}, e.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			outs[i] = e.life(ctx, i, step)
		}()
	}
	wg.Wait()
	stopKilling()
	<-killsDone
	return outs
}

// killOnMilestones kills worker, webhook server and Temporal host in turn, each Kills times, spread evenly
// over the run's progress: a kill happens when the driven steps pass its milestone.
func (e *env) killOnMilestones(ctx context.Context, progress *atomic.Int64, total int64, stepped <-chan struct{}) {
	order := []*proc{e.worker, e.webhook, e.temporal}
	kills := e.cfg.Kills * len(order)
	for k := range kills {
		milestone := total * int64(k+1) / int64(kills+1)
		for progress.Load() < milestone {
			select {
			case <-ctx.Done():
				return
			case <-stepped:
			}
		}
		p := order[k%len(order)]
		e.logf("kill %d/%d: %s (at %d of %d steps)", k+1, kills, p.name, progress.Load(), total)
		if err := p.kill(ctx); err != nil {
			e.logf("restarting %s: %v", p.name, err)
			return
		}
		e.logf("%s is back", p.name)
	}
}

// life drives subscription i through purchase, activation, a change, suspension, reinstatement and, for
// half of them, cancellation.
func (e *env) life(ctx context.Context, i int, step func()) *outcome {
	o := &outcome{}
	var p emulator.Purchase
	if err := e.retry(ctx, "purchase", func(ctx context.Context) error {
		return e.control(ctx, "POST", "/control/purchases", emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: startPlan, Quantity: startSeats}, &p)
	}); err != nil {
		o.note("purchase: %v", err)
		return o
	}
	o.ID = p.SubscriptionID
	step()

	// Landing: resolve the purchase token and confirm, as the landing page does (Update-With-Start).
	var sub marketplace.Subscription
	if err := e.retry(ctx, "resolve", func(ctx context.Context) error {
		r, err := e.mkt.Resolve(ctx, p.Token)
		if err == nil {
			sub = r.Subscription
		}
		return err
	}); err != nil {
		o.note("resolve: %v", err)
		return o
	}
	// The landing page bounds its wait for the workflow to take the confirmation (10 s) and the buyer
	// presses again; a confirmation taken but unanswered shows in the workflow's state.
	if err := e.retry(ctx, "confirm", func(ctx context.Context) error {
		_, err := e.subs.Confirm(ctx, sub)
		if err != nil {
			if st, qerr := e.subs.State(ctx, o.ID); qerr == nil && st.Confirmed {
				return nil
			}
		}
		return err
	}); err != nil {
		o.note("confirm: %v", err)
		return o
	}
	// Activation under a fifth of calls failing can take a while; the lifecycle goes on either way (a
	// command the engine is not ready for is answered so, and counted).
	e.waitEngineLong(ctx, o, "Subscribed", subscribedIdle, 3)
	step()

	// A publisher change through the admin API.
	if i%2 == 0 {
		o.Change, o.Quantity = "quantity", startSeats+1+int64(i%40)
		o.ChangeReport = e.command(ctx, o, "quantity", map[string]int64{"quantity": o.Quantity}, func(st subscription.State) bool { return st.Quantity == o.Quantity })
	} else {
		o.Change, o.PlanID = "plan", changedPlan
		o.ChangeReport = e.command(ctx, o, "plan", map[string]string{"planId": o.PlanID}, func(st subscription.State) bool { return st.PlanID == o.PlanID })
	}
	e.waitEngine(ctx, o, "idle after the change", subscribedIdle)
	step()

	// Payment fails, then is fixed: Microsoft suspends and reinstates; the engine hears by webhook (or by
	// reconciliation, when the webhook was dropped).
	if err := e.retry(ctx, "suspend", func(ctx context.Context) error {
		return e.control(ctx, "POST", "/control/subscriptions/"+o.ID+"/suspend", nil, nil)
	}); err != nil {
		o.note("suspend: %v", err)
		return o
	}
	e.waitEngineQuiet(ctx, o.ID, func(st subscription.State) bool { return st.Status == marketplace.StatusSuspended })
	step()
	if err := e.retry(ctx, "reinstate", func(ctx context.Context) error {
		return e.control(ctx, "POST", "/control/subscriptions/"+o.ID+"/reinstate", nil, nil)
	}); err != nil {
		o.note("reinstate: %v", err)
		return o
	}
	e.waitMicrosoft(ctx, o, marketplace.StatusSubscribed)
	e.waitEngineQuiet(ctx, o.ID, subscribedIdle)
	step()

	if (i/2)%2 == 0 {
		o.Cancel = true
		o.CancelReport = e.command(ctx, o, "cancel", nil, func(st subscription.State) bool { return st.Status == marketplace.StatusUnsubscribed })
	}
	step()
	return o
}

func subscribedIdle(st subscription.State) bool {
	return st.Status == marketplace.StatusSubscribed && st.Phase == subscription.PhaseIdle && st.Pending == nil
}

// command sends a publisher command through the admin API until it gets a definitive answer. A request
// that never reached the server (connection refused) is sent again at once. One whose answer was lost
// (the webhook server was killed mid-request, Temporal was down) may have been taken: the workflow runs
// commands one at a time and would refuse a second copy once the first succeeded, so it is sent again
// only if the engine does not show its effect within the step's time.
func (e *env) command(ctx context.Context, o *outcome, name string, body any, done func(subscription.State) bool) string {
	deadline := time.Now().Add(3 * e.cfg.StepTimeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		status, code, res, err := e.admin(ctx, "POST", "/admin/subscriptions/"+o.ID+"/"+name, body)
		switch {
		case err != nil && errors.Is(err, syscall.ECONNREFUSED):
			e.pause(ctx, 200*time.Millisecond)
			continue
		case err != nil, status >= 500,
			status == http.StatusConflict && (code == "ChangePending" || code == "CommandQueued" || code == "Conflict"):
			// Taken or not, running or not: wait for the effect before deciding to send it again.
			if _, ok := e.waitEngineQuietState(ctx, o.ID, func(st subscription.State) bool { return done(st) && st.Pending == nil }); ok {
				o.note("%s: answer lost (%v %d %s); the engine shows it done", name, err, status, code)
				return "Unanswered"
			}
			continue
		case status == http.StatusOK:
			return res.Status
		case status == http.StatusAccepted:
			return "InProgress"
		default:
			return "refused:" + code
		}
	}
	o.note("%s: no answer in %s", name, 3*e.cfg.StepTimeout)
	return "NoAnswer"
}

func (e *env) pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

type commandResult struct {
	Status string `json:"status"`
	Error  struct {
		Code string `json:"code"`
	} `json:"error"`
	Code string `json:"code"`
}

// admin calls the webhook server's admin API; code is the error code of a 4xx/5xx answer.
func (e *env) admin(ctx context.Context, method, path string, body any) (int, string, subscription.CommandResult, error) {
	var res subscription.CommandResult
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", res, err
		}
		rd = bytes.NewReader(b)
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, method, e.webhookURL+path, rd)
	if err != nil {
		return 0, "", res, err
	}
	req.Header.Set("Authorization", "Bearer "+AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", res, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", res, err
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &res); err != nil {
			return resp.StatusCode, "", res, fmt.Errorf("admin answer: %w", err)
		}
		return resp.StatusCode, "", res, nil
	}
	var cr commandResult
	_ = json.Unmarshal(b, &cr)
	code := cr.Error.Code
	if code == "" {
		code = cr.Code
	}
	if code == "" {
		code = strings.TrimSpace(string(b))
		if len(code) > 80 {
			code = code[:80]
		}
	}
	return resp.StatusCode, code, res, nil
}

// waitEngine polls the workflow's state until cond holds or the step's time is up (noted).
func (e *env) waitEngine(ctx context.Context, o *outcome, what string, cond func(subscription.State) bool) (subscription.State, bool) {
	st, ok := e.waitEngineQuietState(ctx, o.ID, cond)
	if !ok {
		o.note("engine never showed %q within %s (last: status %s, phase %s)", what, e.cfg.StepTimeout, st.Status, st.Phase)
	}
	return st, ok
}

// waitEngineLong is waitEngine with times step timeouts.
func (e *env) waitEngineLong(ctx context.Context, o *outcome, what string, cond func(subscription.State) bool, times int) {
	for i := range times {
		if _, ok := e.waitEngineQuietState(ctx, o.ID, cond); ok {
			if i > 0 {
				o.note("engine showed %q only after %d step timeouts", what, i)
			}
			return
		}
	}
	e.waitEngine(ctx, o, what, cond)
}

// waitEngineQuiet is waitEngine for a step the engine may legitimately learn of only at reconciliation
// (its webhook was dropped): not reaching it in time is not a finding.
func (e *env) waitEngineQuiet(ctx context.Context, id string, cond func(subscription.State) bool) {
	e.waitEngineQuietState(ctx, id, cond)
}

func (e *env) waitEngineQuietState(ctx context.Context, id string, cond func(subscription.State) bool) (subscription.State, bool) {
	deadline := time.Now().Add(e.cfg.StepTimeout)
	var last subscription.State
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := e.subs.State(qctx, id)
		cancel()
		if err == nil {
			last = *st
			if cond(*st) {
				return *st, true
			}
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	return last, false
}

// waitMicrosoft polls the emulator until the subscription has status.
func (e *env) waitMicrosoft(ctx context.Context, o *outcome, status marketplace.SubscriptionStatus) {
	deadline := time.Now().Add(e.cfg.StepTimeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		var got struct {
			Subscription marketplace.Subscription `json:"subscription"`
		}
		if err := e.control(ctx, "GET", "/control/subscriptions/"+o.ID, nil, &got); err == nil && got.Subscription.Status == status {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	o.note("Microsoft never showed %s within %s", status, e.cfg.StepTimeout)
}

// retry calls fn until it succeeds or twice the step's time is up: the driver's own calls meet the same faults
// and outages as the engine's.
func (e *env) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	deadline := time.Now().Add(2 * e.cfg.StepTimeout)
	var err error
	for ctx.Err() == nil {
		// Longer than the engine's own bounded waits, so that their answers arrive.
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		var me *marketplace.Error
		if errors.As(err, &me) && !me.Retryable {
			return err
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	return fmt.Errorf("%s: %w", what, err)
}

// control calls the emulator's control API.
func (e *env) control(ctx context.Context, method, path string, in, out any) error {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.emuURL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
