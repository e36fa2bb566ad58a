package notification_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"saasengine/activities/notification"
	"saasengine/config"
	"saasengine/emulator"
	"saasengine/engine"
	"saasengine/internal/devmail"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/workflows/subscription"
)

// inbox is a receiver of signed notification webhooks that keeps those that verify.
type inbox struct {
	mu     sync.Mutex
	got    []notification.WebhookBody
	keys   []string
	forged int
	wake   chan struct{}
}

func (in *inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	in.mu.Lock()
	defer in.mu.Unlock()
	if !provisioning.VerifySignature(stackSecret, b, r.Header.Get("X-Timestamp"), r.Header.Get("X-Signature"), provisioning.DefaultSignatureTolerance) {
		in.forged++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var body notification.WebhookBody
	if err := json.Unmarshal(b, &body); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	in.got = append(in.got, body)
	in.keys = append(in.keys, r.Header.Get("Idempotency-Key"))
	close(in.wake)
	in.wake = make(chan struct{})
}

// wait returns the first notice of kind for the subscription, and its Idempotency-Key.
func (in *inbox) wait(t *testing.T, kind notification.Kind, subscriptionID string) (notification.WebhookBody, string) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		in.mu.Lock()
		for i, b := range in.got {
			if b.Kind == kind && b.SubscriptionID == subscriptionID {
				in.mu.Unlock()
				return b, in.keys[i]
			}
		}
		wake := in.wake
		in.mu.Unlock()
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no %s notice for %s arrived", kind, subscriptionID)
		}
	}
}

const stackSecret = "stack-notify-secret"

// A failed activation through the real stack (Temporal, the emulator refusing Activate, the production
// worker wiring from configuration) reaches the operators by e-mail over SMTP and the vendor's systems
// by signed webhook, once; a suspension follows.
func TestFailedActivationIsNotifiedThroughTheStack(t *testing.T) {
	mail, err := devmail.Start(devmail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mail.Close() })
	hooks := &inbox{wake: make(chan struct{})}
	receiver := httptest.NewServer(hooks)
	t.Cleanup(receiver.Close)
	host, port, _ := net.SplitHostPort(mail.Addr)
	nc, err := config.NotifyFromEnv(func(k string) string {
		return map[string]string{
			"NOTIFY_SMTP_HOST": host, "NOTIFY_SMTP_PORT": port, "NOTIFY_SMTP_TLS": "none",
			"NOTIFY_EMAIL_FROM": "engine@vendor.example", "NOTIFY_EMAIL_TO": "ops@vendor.example",
			"NOTIFY_EMAIL_EVENTS":   "attention",
			"NOTIFY_WEBHOOK_URL":    receiver.URL + "/saas-events",
			"NOTIFY_WEBHOOK_SECRET": stackSecret,
			"NOTIFY_ADMIN_URL":      "https://engine.vendor.example", "NOTIFY_TEMPORAL_UI_URL": "http://127.0.0.1:8233",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	s := stacktest.Start(t, stacktest.Options{Notify: engine.Notifier(nc, nil)})

	if err := s.Emu.Emulator.AddFault(emulator.Fault{Endpoint: emulator.EndpointActivate, Status: http.StatusBadRequest, Count: 1}); err != nil {
		t.Fatal(err)
	}
	p := s.Emu.Purchase(t, "basic", 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := s.Emu.Client.Resolve(ctx, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subs.Confirm(ctx, res.Subscription); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "activation failed", func(st subscription.State) bool { return st.Phase == subscription.PhaseActivationFailed })

	m, err := mail.Wait(ctx, func(m devmail.Message) bool { return strings.Contains(m.Subject, p.SubscriptionID) })
	if err != nil {
		t.Fatalf("no e-mail about %s: %v", p.SubscriptionID, err)
	}
	if !strings.HasPrefix(m.Subject, "[attention]") || strings.Join(m.To, ",") != "ops@vendor.example" {
		t.Errorf("mail %q to %v", m.Subject, m.To)
	}
	for _, want := range []string{"https://engine.vendor.example/admin/subscriptions/" + p.SubscriptionID,
		"http://127.0.0.1:8233/namespaces/" + s.Temporal.GetDefaultNamespace() + "/workflows/saas-subscription%2F" + p.SubscriptionID + "/", "starter retry " + p.SubscriptionID, "activate"} {
		if !strings.Contains(m.Text, want) || !strings.Contains(m.HTML, want) {
			t.Errorf("mail lacks %q:\n%s", want, m.Text)
		}
	}
	body, key := hooks.wait(t, notification.Attention, p.SubscriptionID)
	if !strings.HasPrefix(key, "saas-subscription/"+p.SubscriptionID+"/attention/activation/") || body.ID != key {
		t.Errorf("Idempotency-Key %q, body id %q", key, body.ID)
	}
	if body.WorkflowID != "saas-subscription/"+p.SubscriptionID || body.RunID == "" || body.Facts["plan"] != "basic" {
		t.Errorf("webhook body %+v", body)
	}

	// The operator retries; the activation goes through; then Microsoft suspends the subscription.
	resp, b := s.Admin(t, http.MethodPost, "/admin/subscriptions/"+p.SubscriptionID+"/retry", stacktest.AdminToken, "")
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		t.Fatalf("retry: %d %s", resp.StatusCode, b)
	}
	s.WaitState(t, p.SubscriptionID, "Subscribed", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed && st.Phase == subscription.PhaseIdle
	})
	if _, err := s.Emu.Emulator.Suspend(p.SubscriptionID); err != nil {
		t.Fatal(err)
	}
	suspended, _ := hooks.wait(t, notification.Suspended, p.SubscriptionID)
	if suspended.Summary == "" || suspended.AdminURL == "" {
		t.Errorf("suspended notice %+v", suspended)
	}

	// Each event went out once, and only attention went by e-mail (NOTIFY_EMAIL_EVENTS).
	hooks.mu.Lock()
	counts := map[string]int{}
	for _, k := range hooks.keys {
		counts[k]++
	}
	forged := hooks.forged
	hooks.mu.Unlock()
	for k, n := range counts {
		if n != 1 {
			t.Errorf("event %s delivered %d times", k, n)
		}
	}
	if forged != 0 {
		t.Errorf("%d webhook deliveries did not verify", forged)
	}
	for _, m := range mail.Messages() {
		if !strings.HasPrefix(m.Subject, "[attention]") {
			t.Errorf("mail %q went out although e-mail is routed attention only", m.Subject)
		}
	}
}

// With approval required, a confirmed purchase tells the operators it waits for them; a seat change the
// provisioning refuses is told too, to Slack and Teams in their shapes, with the refusal's reason.
func TestApprovalAndRefusedChangeReachChat(t *testing.T) {
	slack, slackGot := receiver(t)
	teams, teamsGot := receiver(t)
	nc, err := config.NotifyFromEnv(func(k string) string {
		return map[string]string{
			"NOTIFY_SLACK_URL": slack.URL + "/services/T/B/X", "NOTIFY_SLACK_EVENTS": "approval-pending,change-refused",
			"NOTIFY_TEAMS_URL": teams.URL + "/workflows/x", "NOTIFY_TEAMS_EVENTS": "change-refused",
			"NOTIFY_ADMIN_URL": "https://engine.vendor.example",
		}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	s := stacktest.Start(t, stacktest.Options{Workflow: subscription.Options{RequireApproval: true}, DemoMaxQuantity: 10,
		Notify: engine.Notifier(nc, nil)})
	p := s.Emu.Purchase(t, "team", 5)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := s.Emu.Client.Resolve(ctx, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subs.Confirm(ctx, res.Subscription); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "waiting for approval", func(st subscription.State) bool { return st.Phase == subscription.PhaseAwaitingApproval })
	text := func(r received) string {
		var m map[string]string
		_ = json.Unmarshal(r.body, &m)
		return m["text"]
	}
	waitFor := func(what string, got func() []received, match func(received) bool) received {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			for _, r := range got() {
				if match(r) {
					return r
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no %s arrived", what)
		return received{}
	}
	approval := waitFor("approval-pending message on Slack", slackGot, func(r received) bool {
		return strings.Contains(text(r), "waits for your approval") && strings.Contains(text(r), p.SubscriptionID)
	})
	if !strings.Contains(text(approval), "starter approve "+p.SubscriptionID) {
		t.Errorf("approval message does not say how to approve:\n%s", text(approval))
	}
	if _, err := s.Subs.Approve(ctx, p.SubscriptionID, 0); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "Subscribed", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed && st.Phase == subscription.PhaseIdle
	})
	if _, err := s.Emu.Emulator.CustomerChangeQuantity(p.SubscriptionID, 50); err != nil {
		t.Fatal(err)
	}
	refused := waitFor("change-refused message on Slack", slackGot, func(r received) bool { return strings.Contains(text(r), "refused a ChangeQuantity") })
	if !strings.Contains(text(refused), "requested seats: 50") {
		t.Errorf("refusal message:\n%s", text(refused))
	}
	card := waitFor("change-refused card on Teams", teamsGot, func(r received) bool { return strings.Contains(string(r.body), "refused a ChangeQuantity") })
	if !strings.Contains(string(card.body), `"type":"AdaptiveCard"`) || !strings.Contains(string(card.body), "https://engine.vendor.example/admin/subscriptions/"+p.SubscriptionID) {
		t.Errorf("teams card %s", card.body)
	}
	for _, r := range teamsGot() {
		if strings.Contains(string(r.body), "waits for your approval") {
			t.Error("approval-pending went to Teams, which is routed change-refused only")
		}
	}
}
