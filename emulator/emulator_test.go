package emulator_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/emulator/emulatortest"
	"saasengine/entra"
	"saasengine/marketplace"
)

// receiver is a publisher webhook endpoint that validates each call as production does and answers with
// a status the test chooses.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	valid  *entra.Validator
	mu     sync.Mutex
	events []marketplace.WebhookEvent
	answer func(marketplace.WebhookEvent) int
}

func newReceiver(t *testing.T, env *emulatortest.Env) *receiver {
	rc := &receiver{t: t, answer: func(marketplace.WebhookEvent) int { return http.StatusOK }}
	v, err := entra.NewValidator(entra.Config{Authority: env.Emulator.Authority(), TenantID: emulator.DemoTenantID, Audience: emulator.DemoAppID})
	if err != nil {
		t.Fatal(err)
	}
	rc.valid = v
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := rc.valid.Validate(r.Context(), r.Header.Get("Authorization")); err != nil {
			t.Errorf("webhook token does not validate against the emulator's JWKS: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev marketplace.WebhookEvent
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		rc.mu.Lock()
		rc.events = append(rc.events, ev)
		answer := rc.answer
		rc.mu.Unlock()
		w.WriteHeader(answer(ev))
	}))
	t.Cleanup(rc.srv.Close)
	env.Emulator.SetWebhookURL("", rc.srv.URL)
	return rc
}

func (rc *receiver) received() []marketplace.WebhookEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]marketplace.WebhookEvent(nil), rc.events...)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func activated(t *testing.T, env *emulatortest.Env, plan string, qty int64) string {
	t.Helper()
	p := env.Purchase(t, plan, qty)
	if err := env.Client.Activate(context.Background(), p.SubscriptionID, marketplace.SubscriberPlan{PlanID: plan, Quantity: marketplace.Quantity(qty)}); err != nil {
		t.Fatal(err)
	}
	return p.SubscriptionID
}

func TestWebhooksAreSignedAndFollowMicrosoftsRules(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	rc := newReceiver(t, env)
	id := activated(t, env, "team", 10)

	// Accepted by a 2xx answer: succeeds on its own after the window.
	op, err := env.Emulator.CustomerChangeQuantity(id, 15)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "ChangeQuantity webhook", func() bool { return len(rc.received()) == 1 })
	ev := rc.received()[0]
	if ev.ID != op.ID || ev.Action != marketplace.ActionChangeQuantity || ev.Status != marketplace.OperationInProgress || ev.Quantity != 15 || ev.Subscription.Quantity != 10 || ev.OperationRequestSource != marketplace.SourceAzure {
		t.Fatalf("payload %+v (subscription %+v)", ev, ev.Subscription)
	}
	eventually(t, "auto-accept", func() bool { s, _ := env.Emulator.Subscription(id); return s.Quantity == 15 })

	// Rejected by a 4xx answer: the operation fails, nothing changes.
	rc.answer = func(marketplace.WebhookEvent) int { return http.StatusBadRequest }
	op, _ = env.Emulator.CustomerChangePlan(id, "enterprise")
	eventually(t, "rejected change", func() bool {
		o, _ := env.Client.GetOperation(context.Background(), id, op.ID)
		return o != nil && o.Status == marketplace.OperationFailed
	})
	if s, _ := env.Emulator.Subscription(id); s.PlanID != "team" {
		t.Fatalf("rejected plan change applied: %s", s.PlanID)
	}

	// A 500 answer to a notify-only event is redelivered until it is accepted.
	var calls int
	rc.answer = func(marketplace.WebhookEvent) int {
		calls++
		if calls < 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	if _, err := env.Emulator.Suspend(id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "redelivered Suspend", func() bool {
		for _, d := range env.Emulator.Deliveries() {
			if d.Event.Action == marketplace.ActionSuspend && d.State == emulator.DeliveryDelivered && d.Attempts == 3 {
				return true
			}
		}
		return false
	})
	rc.answer = func(marketplace.WebhookEvent) int { return http.StatusOK }

	// Reinstate waits for the publisher, then succeeds after the window.
	if _, err := env.Emulator.Reinstate(id); err != nil {
		t.Fatal(err)
	}
	if s, _ := env.Emulator.Subscription(id); s.Status != marketplace.StatusSuspended {
		t.Fatalf("reinstated before the publisher answered: %s", s.Status)
	}
	eventually(t, "reinstated", func() bool { s, _ := env.Emulator.Subscription(id); return s.Status == marketplace.StatusSubscribed })

	// A publisher DELETE ends in an Unsubscribe webhook from the Partner side.
	if _, err := env.Client.DeleteSubscription(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Unsubscribe webhook", func() bool {
		evs := rc.received()
		last := evs[len(evs)-1]
		return last.Action == marketplace.ActionUnsubscribe && last.OperationRequestSource == marketplace.SourcePartner && last.Subscription.Status == marketplace.StatusUnsubscribed
	})
}

func TestWebhookFaults(t *testing.T) {
	// A long decision window: the dropped change must still be undecided when the test looks for it.
	env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) { c.AutoAcceptAfter = emulator.Duration(time.Minute) }})
	rc := newReceiver(t, env)
	id := activated(t, env, "basic", 0)
	must := func(f emulator.Fault) {
		if err := env.Emulator.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}

	// Dropped: never sent, and the customer's change stays outstanding, within its window, for
	// reconciliation to find.
	must(emulator.Fault{Webhook: emulator.WebhookDrop, Action: "ChangePlan", Count: 1})
	op, _ := env.Emulator.CustomerChangePlan(id, "metered")
	time.Sleep(1500 * time.Millisecond)
	if len(rc.received()) != 0 {
		t.Fatalf("dropped webhook arrived")
	}
	ops, _ := env.Client.ListOperations(context.Background(), id)
	if len(ops) != 1 || ops[0].ID != op.ID {
		t.Fatalf("outstanding after a dropped webhook: %+v", ops)
	}
	if err := env.Client.UpdateOperation(context.Background(), id, op.ID, marketplace.OperationUpdate{Status: marketplace.UpdateSuccess}); err != nil {
		t.Fatal(err)
	}

	// Duplicated: the same operation arrives twice.
	must(emulator.Fault{Webhook: emulator.WebhookDuplicate, Action: "Suspend", Count: 1})
	suspend, _ := env.Emulator.Suspend(id)
	eventually(t, "duplicate", func() bool { return len(rc.received()) == 2 })
	if evs := rc.received(); evs[0].ID != suspend.ID || evs[1].ID != suspend.ID {
		t.Fatalf("duplicates: %+v", evs)
	}

	// Reordered: the Reinstate's operation is decided, then a held Renew-less pair: Reinstate held, a
	// later Unsubscribe overtakes it.
	must(emulator.Fault{Webhook: emulator.WebhookReorder, Action: "Reinstate", Count: 1})
	reinstate, _ := env.Emulator.Reinstate(id)
	if err := env.Client.UpdateOperation(context.Background(), id, reinstate.ID, marketplace.OperationUpdate{Status: marketplace.UpdateSuccess}); err != nil {
		t.Fatal(err)
	}
	unsub, err := env.Emulator.Unsubscribe(id)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "both deliveries", func() bool { return len(rc.received()) == 4 })
	evs := rc.received()
	if evs[2].ID != unsub.ID || evs[3].ID != reinstate.ID {
		t.Fatalf("want Unsubscribe before the held Reinstate, got %s then %s", evs[2].Action, evs[3].Action)
	}
}

func TestOperationOutcomeFaults(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	id := activated(t, env, "team", 10)
	ctx := context.Background()
	for _, outcome := range []marketplace.OperationStatus{marketplace.OperationFailed, marketplace.OperationConflict} {
		if err := env.Emulator.AddFault(emulator.Fault{Outcome: outcome, Action: "ChangeQuantity", Count: 1}); err != nil {
			t.Fatal(err)
		}
		opID, err := env.Client.ChangeQuantity(ctx, id, 11)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, string(outcome), func() bool {
			o, _ := env.Client.GetOperation(ctx, id, opID)
			return o.Status == outcome
		})
		if s, _ := env.Emulator.Subscription(id); s.Quantity != 10 {
			t.Fatalf("%s operation applied its change", outcome)
		}
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	var id, token string
	var keys string
	{
		env := emulatortest.Start(t, emulatortest.Options{StateFile: state})
		id = activated(t, env, "team", 7)
		p, err := env.Emulator.NewToken(id, 0)
		if err != nil {
			t.Fatal(err)
		}
		token = p.Token
		keys = get(t, env.Server.URL+"/"+emulator.DemoTenantID+"/discovery/v2.0/keys")
		env.Server.Close()
		if err := env.Emulator.Close(); err != nil {
			t.Fatal(err)
		}
	}
	env := emulatortest.Start(t, emulatortest.Options{StateFile: state})
	res, err := env.Client.Resolve(context.Background(), token)
	if err != nil || res.ID != id || res.Subscription.Status != marketplace.StatusSubscribed || res.Quantity != 7 {
		t.Fatalf("after restart: %+v %v", res, err)
	}
	if again := get(t, env.Server.URL+"/"+emulator.DemoTenantID+"/discovery/v2.0/keys"); again != keys {
		t.Fatalf("signing key changed across restart")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestBadInputGetsMicrosoftsErrorShapes(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	tok, _ := env.Tokens.Token(context.Background())
	id := activated(t, env, "team", 10)
	base := env.Server.URL
	cases := []struct {
		name, method, path, body string
		auth                     bool
		status                   int
		code                     string
	}{
		{"no api-version", "GET", "/api/saas/subscriptions/" + id, "", true, 400, "ApiVersionUnspecified"},
		{"old mock api-version", "GET", "/api/saas/subscriptions/" + id + "?api-version=2018-09-15", "", true, 400, "UnsupportedApiVersion"},
		{"no token", "GET", "/api/saas/subscriptions/" + id + "?api-version=2018-08-31", "", false, 403, "Forbidden"},
		{"resolve without token header", "POST", "/api/saas/subscriptions/resolve?api-version=2018-08-31", "", true, 400, "BadArgument"},
		{"patch both fields", "PATCH", "/api/saas/subscriptions/" + id + "?api-version=2018-08-31", `{"planId":"enterprise","quantity":60}`, true, 400, "BadArgument"},
		{"patch garbage", "PATCH", "/api/saas/subscriptions/" + id + "?api-version=2018-08-31", `{"planId":`, true, 400, "BadArgument"},
		{"patch operation bad status", "PATCH", "/api/saas/subscriptions/" + id + "/operations/x?api-version=2018-08-31", `{"status":"Maybe"}`, true, 400, "BadArgument"},
		{"unknown path", "GET", "/api/saas/nothing?api-version=2018-08-31", "", true, 404, "NotFound"},
		{"bad continuation token", "GET", "/api/saas/subscriptions/?api-version=2018-08-31&continuationToken=bm90LWpzb24%3D", "", true, 400, "BadArgument"},
		{"control: unknown offer", "POST", "/control/purchases", `{"offerId":"nope","planId":"x"}`, false, 400, "BadArgument"},
		{"control: quantity out of range", "POST", "/control/purchases", `{"offerId":"contoso-analytics","planId":"team","quantity":1}`, false, 400, "BadArgument"},
		{"control: unknown subscription", "POST", "/control/subscriptions/nope/suspend", ``, false, 404, "EntityNotFound"},
		{"control: short beneficiary objectId", "POST", "/control/purchases", `{"offerId":"contoso-analytics","planId":"basic","beneficiary":{"objectId":"x"}}`, false, 201, ""},
		{"control: short purchaser objectId", "POST", "/control/purchases", `{"offerId":"contoso-analytics","planId":"basic","purchaser":{"objectId":""},"beneficiary":{"objectId":"ab"}}`, false, 201, ""},
		{"control: purchase not JSON", "POST", "/control/purchases", `{"offerId":`, false, 400, "BadArgument"},
		{"control: seed count too large", "POST", "/control/seed", `{"subscriptions":[{"offerId":"contoso-analytics","planId":"basic","count":1000000000}]}`, false, 400, "BadArgument"},
		{"control: seed negative count", "POST", "/control/seed", `{"subscriptions":[{"offerId":"contoso-analytics","planId":"basic","count":-1}]}`, false, 400, "BadArgument"},
		{"control: change quantity not a number", "POST", "/control/subscriptions/" + id + "/change-quantity", `{"quantity":"many"}`, false, 400, "BadArgument"},
		{"control: change plan unknown", "POST", "/control/subscriptions/" + id + "/change-plan", `{"planId":"nope"}`, false, 400, "BadArgument"},
		{"control: token bad ttl", "POST", "/control/subscriptions/" + id + "/token", `{"ttl":"forever"}`, false, 400, "BadArgument"},
		{"control: clock garbage", "POST", "/control/clock", `{"advance":-5}`, false, 400, "BadArgument"},
		{"control: bad fault", "POST", "/control/faults", `{"endpoint":"Resolve","status":200}`, false, 400, "BadArgument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if tc.auth {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if tc.status < 300 {
				// Odd but acceptable input: what matters is an answer, not a panic that drops the connection.
				if resp.StatusCode != tc.status {
					b, _ := io.ReadAll(resp.Body)
					t.Fatalf("got %d %s, want %d", resp.StatusCode, b, tc.status)
				}
				return
			}
			var body struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tc.status || body.Error.Code != tc.code || body.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
}

func TestControlAPIAndStorefrontOverHTTP(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	env.Emulator.SetLandingURL("", "https://isv.example/landing")
	resp, err := http.Post(env.Server.URL+"/control/purchases", "application/json", strings.NewReader(`{"offerId":"contoso-analytics","planId":"team","quantity":12,"beneficiary":{"emailId":"ada@fabrikam.example"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var p emulator.Purchase
	_ = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != 201 || !strings.HasPrefix(p.LandingURL, "https://isv.example/landing?token=") || p.Subscription.Quantity != 12 || p.Subscription.Beneficiary.EmailID != "ada@fabrikam.example" {
		t.Fatalf("purchase: %d %+v", resp.StatusCode, p)
	}
	// The landing URL carries the token percent-encoded, as Microsoft's does.
	if !strings.Contains(p.LandingURL, "%2B") && !strings.Contains(p.LandingURL, "%2F") {
		t.Fatalf("landing URL does not encode the token: %s", p.LandingURL)
	}
	page := get(t, env.Server.URL+"/")
	if !strings.Contains(page, p.SubscriptionID) || !strings.Contains(page, "PendingFulfillmentStart") {
		t.Fatalf("storefront does not show the purchase")
	}
	var state emulator.Snapshot
	if err := json.Unmarshal([]byte(get(t, env.Server.URL+"/control/state")), &state); err != nil || len(state.Subscriptions) != 1 {
		t.Fatalf("state: %+v %v", state, err)
	}
	resp, err = http.Post(env.Server.URL+"/control/clock", "application/json", strings.NewReader(`{"advance":"25h"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("clock: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if _, err := env.Client.Resolve(context.Background(), p.Token); marketplace.StatusCode(err) != 400 {
		t.Fatalf("token still resolves 25 h later: %v", err)
	}
}

// A state file written under another configuration must stop the emulator at start with an error naming
// what is missing, not panic on the first call about the orphaned subscription.
func TestStateFromAnotherConfigurationIsRefused(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	env := emulatortest.Start(t, emulatortest.Options{StateFile: state})
	id := activated(t, env, "team", 7)
	env.Server.Close()
	if err := env.Emulator.Close(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func(*emulator.Config)
		want []string
	}{
		"unknown plan": {func(c *emulator.Config) {
			plans := c.Publishers[0].Offers[0].Plans
			for i := range plans {
				if plans[i].ID == "team" {
					c.Publishers[0].Offers[0].Plans = append(plans[:i:i], plans[i+1:]...)
					break
				}
			}
		}, []string{id, `plan "team"`}},
		"unknown offer":     {func(c *emulator.Config) { c.Publishers[0].Offers[0].ID = "other-offer" }, []string{id, `offer "contoso-analytics"`}},
		"unknown publisher": {func(c *emulator.Config) { c.Publishers[0].ID = "fabrikam" }, []string{id, `publisher "contoso"`}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := emulator.DemoConfig()
			tc.edit(&cfg)
			emu, err := emulator.New(emulator.Options{Config: cfg, StateFile: state})
			if err == nil {
				emu.Close()
				t.Fatal("New accepted a state that does not match the configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %s", err, w)
				}
			}
		})
	}
	// The matching configuration still starts.
	emu, err := emulator.New(emulator.Options{Config: emulator.DemoConfig(), StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	emu.Close()
}

// Microsoft auto-accepts a customer's change or reinstatement after the window whether or not the webhook
// reached the publisher: with no webhook URL, or a dropped delivery, the subscription must not stay locked.
func TestCustomerOperationsAutoAcceptWithoutDelivery(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	ctx := context.Background()
	id := activated(t, env, "team", 10)
	succeeded := func(opID string) func() bool {
		return func() bool {
			o, err := env.Client.GetOperation(ctx, id, opID)
			return err == nil && o.Status == marketplace.OperationSucceeded
		}
	}

	// No webhook URL configured.
	op, err := env.Emulator.CustomerChangeQuantity(id, 15)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "quantity change auto-accepted", succeeded(op.ID))
	if s, _ := env.Emulator.Subscription(id); s.Quantity != 15 {
		t.Fatalf("accepted change not applied: quantity %d", s.Quantity)
	}

	// A delivery dropped by a fault.
	if err := env.Emulator.AddFault(emulator.Fault{Webhook: emulator.WebhookDrop, Count: 1}); err != nil {
		t.Fatal(err)
	}
	op, err = env.Emulator.CustomerChangePlan(id, "enterprise")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "plan change auto-accepted", succeeded(op.ID))
	if s, _ := env.Emulator.Subscription(id); s.PlanID != "enterprise" {
		t.Fatalf("accepted change not applied: plan %s", s.PlanID)
	}

	// Reinstate, with no webhook URL either.
	if _, err := env.Emulator.Suspend(id); err != nil {
		t.Fatal(err)
	}
	op, err = env.Emulator.Reinstate(id)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "reinstate auto-accepted", succeeded(op.ID))
	if s, _ := env.Emulator.Subscription(id); s.Status != marketplace.StatusSubscribed {
		t.Fatalf("accepted reinstate not applied: %s", s.Status)
	}
	// Nothing is outstanding, so the subscription takes the next change.
	if ops, err := env.Client.ListOperations(ctx, id); err != nil || len(ops) != 0 {
		t.Fatalf("outstanding: %+v %v", ops, err)
	}
	if _, err := env.Client.ChangeQuantity(ctx, id, 60); err != nil {
		t.Fatalf("subscription still locked: %v", err)
	}
	states := map[string]bool{}
	for _, d := range env.Emulator.Deliveries() {
		states[d.State] = true
	}
	if !states[emulator.DeliveryNoURL] || !states[emulator.DeliveryDropped] {
		t.Fatalf("the test did not exercise both undelivered cases: %v", states)
	}
}

// Activate as Microsoft's current documentation shows it: no body at all. The real API does not check
// the plan either, so a body naming another plan still activates the purchased one.
func TestActivateWithoutBody(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	tok, _ := env.Tokens.Token(context.Background())
	for _, body := range []string{"", `{"planId":"enterprise"}`} {
		p := env.Purchase(t, "team", 10)
		req, _ := http.NewRequest("POST", env.Server.URL+"/api/saas/subscriptions/"+p.SubscriptionID+"/activate?api-version=2018-08-31", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("activate with body %q: %d %s", body, resp.StatusCode, b)
		}
		if s, _ := env.Emulator.Subscription(p.SubscriptionID); s.Status != marketplace.StatusSubscribed || s.PlanID != "team" || s.Term.StartDate.IsZero() {
			t.Fatalf("after activate with body %q: %+v", body, s)
		}
	}
}

// PatchedAt tells when the publisher's first PATCH of an operation arrived, which Microsoft's API does not
// show: unset before it, the same after a second PATCH that Microsoft answers 409.
func TestPatchedAtIsTheFirstPatch(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) { c.AutoAcceptAfter = emulator.Duration(time.Hour) }})
	ctx := context.Background()
	id := activated(t, env, "team", 10)
	op, err := env.Emulator.CustomerChangeQuantity(id, 15)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := env.Emulator.PatchedAt(op.ID); ok {
		t.Fatal("PatchedAt set before any PATCH")
	}
	before := time.Now()
	if err := env.Client.UpdateOperation(ctx, id, op.ID, marketplace.OperationUpdate{Status: marketplace.UpdateFailure}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	at, ok := env.Emulator.PatchedAt(strings.ToUpper(op.ID))
	if !ok || at.Before(before) || at.After(after) {
		t.Fatalf("PatchedAt %v (%v), want between %v and %v", at, ok, before, after)
	}
	if err := env.Client.UpdateOperation(ctx, id, op.ID, marketplace.OperationUpdate{Status: marketplace.UpdateSuccess}); statusOf(err) != http.StatusConflict {
		t.Fatalf("second PATCH: %v, want 409", err)
	}
	if again, _ := env.Emulator.PatchedAt(op.ID); !again.Equal(at) {
		t.Fatalf("a second PATCH moved PatchedAt from %v to %v", at, again)
	}
	if _, ok := env.Emulator.PatchedAt("no-such-operation"); ok {
		t.Fatal("PatchedAt of an unknown operation")
	}
}

// A publisher that PATCHes an operation while the emulator still waits for the response to its webhook
// is caught (Microsoft expects no PATCH before the response); one that answers first is not.
func TestPatchBeforeTheWebhookAnswerIsFlagged(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) { c.AutoAcceptAfter = emulator.Duration(time.Hour) }})
	answerFirst := make(chan string, 4)
	var patchFirst atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev marketplace.WebhookEvent
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if patchFirst.Load() {
			if err := env.Client.UpdateOperation(r.Context(), ev.SubscriptionID, ev.ID, marketplace.OperationUpdate{Status: marketplace.UpdateSuccess}); err != nil {
				t.Errorf("PATCH during the webhook: %v", err)
			}
		}
		w.WriteHeader(http.StatusOK)
		if !patchFirst.Load() {
			answerFirst <- ev.SubscriptionID + "/" + ev.ID
		}
	}))
	t.Cleanup(srv.Close)
	env.Emulator.SetWebhookURL("", srv.URL)
	id := activated(t, env, "team", 10)

	// Answered first, then PATCHed: nothing to flag.
	op, err := env.Emulator.CustomerChangeQuantity(id, 15)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-answerFirst:
	case <-time.After(time.Minute):
		t.Fatal("no webhook came")
	}
	eventually(t, "the answer received", func() bool {
		for _, d := range env.Emulator.Deliveries() {
			if d.Event.ID == op.ID && d.State == emulator.DeliveryDelivered {
				return true
			}
		}
		return false
	})
	if err := env.Client.UpdateOperation(context.Background(), id, op.ID, marketplace.OperationUpdate{Status: marketplace.UpdateSuccess}); err != nil {
		t.Fatal(err)
	}
	if got := env.Emulator.PatchesBeforeAnswer(); len(got) != 0 {
		t.Fatalf("flagged %v after an answer that came first", got)
	}

	// PATCHed inside the webhook call: flagged.
	patchFirst.Store(true)
	op2, err := env.Emulator.CustomerChangeQuantity(id, 20)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the PATCH inside the webhook call", func() bool { _, ok := env.Emulator.PatchedAt(op2.ID); return ok })
	if got := env.Emulator.PatchesBeforeAnswer(); !slices.Equal(got, []string{op2.ID}) {
		t.Fatalf("flagged %v, want [%s]", got, op2.ID)
	}
}
