package notification_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"saasengine/activities/notification"
	"saasengine/internal/devmail"
	"saasengine/provisioning"
)

const subID = "5f0b1a2c-3d4e-4f50-8a6b-7c8d9e0f1a2b"

var links = notification.Links{AdminBaseURL: "https://engine.example", TemporalUIURL: "http://127.0.0.1:8233"}

func notice() notification.Notice {
	return notification.Notice{
		Kind: notification.Attention, Event: "attention/activation/1", SubscriptionID: subID,
		Summary: "Activation of subscription " + subID + " failed",
		Detail:  "provisioning refused: tenant name taken",
		Facts:   map[string]string{"plan": "gold", "seats": "5"},
		At:      time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC),
	}
}

// run executes Notify as a worker would, for a workflow with a fixed ID, and returns the heartbeat
// details it recorded last and its error.
func run(t *testing.T, a *notification.Activities, n notification.Notice, previous []string) ([]string, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	if previous != nil {
		env.SetHeartbeatDetails(previous)
	}
	var mu sync.Mutex
	var recorded []string
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
		mu.Lock()
		defer mu.Unlock()
		recorded = nil
		_ = d.Get(&recorded)
	})
	_, err := env.ExecuteActivity(a.Notify, n)
	mu.Lock()
	defer mu.Unlock()
	return recorded, err
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "devmail test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

func TestEmailArrivesOverSMTPWithTLSAndAuth(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	mail, err := devmail.Start(devmail.Options{Username: "ops-sender", Password: "s3cret", TLSConfig: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mail.Close() })
	host, port, _ := net.SplitHostPort(mail.Addr)
	p, _ := strconv.Atoi(port)
	email := &notification.Email{
		SMTP: notification.SMTP{Host: host, Port: p, TLS: "starttls", Username: "ops-sender", Password: "s3cret",
			TLSConfig: &tls.Config{RootCAs: roots}, Timeout: 10 * time.Second},
		From: "Saasengine <engine@vendor.example>",
		To:   []string{"ops@vendor.example", "oncall@vendor.example"},
	}
	a := &notification.Activities{Channels: []notification.Channel{{Name: "email", Sender: email}}, Links: links}
	delivered, err := run(t, a, notice(), nil)
	if err != nil {
		t.Fatalf("notify: %v", err)
	}
	if strings.Join(delivered, ",") != "email" {
		t.Errorf("heartbeat recorded %v, want [email]", delivered)
	}
	msgs := mail.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages arrived, want 1", len(msgs))
	}
	m := msgs[0]
	if !m.TLS || m.AuthUser != "ops-sender" {
		t.Errorf("session TLS=%v user=%q: want STARTTLS and authentication", m.TLS, m.AuthUser)
	}
	if m.From != "engine@vendor.example" || strings.Join(m.To, ",") != "ops@vendor.example,oncall@vendor.example" {
		t.Errorf("envelope from %q to %v", m.From, m.To)
	}
	if !strings.Contains(m.Subject, "[attention] Activation of subscription "+subID+" failed") {
		t.Errorf("subject %q", m.Subject)
	}
	admin := "https://engine.example/admin/subscriptions/" + subID
	workflowURL := "http://127.0.0.1:8233/namespaces/default-test-namespace/workflows/default-test-workflow-id/default-test-run-id/history"
	for name, body := range map[string]string{"plain": m.Text, "html": m.HTML} {
		for _, want := range []string{admin, workflowURL, "tenant name taken", "What to do", "starter retry " + subID, "gold"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s body lacks %q:\n%s", name, want, body)
			}
		}
	}
	if !strings.Contains(m.HTML, `<a href="`+admin+`">`) {
		t.Errorf("HTML body does not link the admin API:\n%s", m.HTML)
	}
	if m.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("Auto-Submitted = %q", m.Header.Get("Auto-Submitted"))
	}

	// The same event sent again (a retry whose answer was lost) is the same message to mail clients.
	if _, err := run(t, a, notice(), nil); err != nil {
		t.Fatal(err)
	}
	other := notice()
	other.Event = "attention/activation/2"
	if _, err := run(t, a, other, nil); err != nil {
		t.Fatal(err)
	}
	msgs = mail.Messages()
	if len(msgs) != 3 {
		t.Fatalf("%d messages, want 3", len(msgs))
	}
	id := func(m devmail.Message) string { return m.Header.Get("Message-Id") }
	if id(msgs[0]) == "" || id(msgs[0]) != id(msgs[1]) {
		t.Errorf("Message-IDs of one event differ: %q, %q", id(msgs[0]), id(msgs[1]))
	}
	if id(msgs[2]) == id(msgs[0]) || !strings.HasSuffix(id(msgs[0]), "@vendor.example>") {
		t.Errorf("Message-IDs %q (event 1) and %q (event 2)", id(msgs[0]), id(msgs[2]))
	}
}

func TestEmailWrongPasswordIsRetried(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	mail, err := devmail.Start(devmail.Options{Username: "ops-sender", Password: "right", TLSConfig: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mail.Close() })
	host, port, _ := net.SplitHostPort(mail.Addr)
	p, _ := strconv.Atoi(port)
	email := &notification.Email{SMTP: notification.SMTP{Host: host, Port: p, Username: "ops-sender", Password: "wrong",
		TLSConfig: &tls.Config{RootCAs: roots}}, From: "engine@vendor.example", To: []string{"ops@vendor.example"}}
	a := &notification.Activities{Channels: []notification.Channel{{Name: "email", Sender: email}}}
	_, err = run(t, a, notice(), nil)
	if err == nil {
		t.Fatal("sent with a wrong password")
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.NonRetryable() {
		t.Errorf("a refused login is retried (the operator may fix the password): %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
	if len(mail.Messages()) != 0 {
		t.Error("a message arrived without authentication")
	}
}

type received struct {
	header http.Header
	body   []byte
}

// receiver records what it is sent and answers with the statuses given, then 200.
func receiver(t *testing.T, statuses ...int) (*httptest.Server, func() []received) {
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Header.Clone(), b})
		n := len(got)
		mu.Unlock()
		if n <= len(statuses) {
			w.WriteHeader(statuses[n-1])
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func TestSignedWebhookVerifiesAndCarriesTheKey(t *testing.T) {
	srv, got := receiver(t)
	const secret = "notify-secret"
	a := &notification.Activities{Channels: []notification.Channel{{Name: "webhook", Sender: &notification.Webhook{URL: srv.URL + "/hooks/saas", Secret: secret}}}, Links: links}
	if _, err := run(t, a, notice(), nil); err != nil {
		t.Fatal(err)
	}
	reqs := got()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if !provisioning.VerifySignature(secret, r.body, r.header.Get("X-Timestamp"), r.header.Get("X-Signature"), provisioning.DefaultSignatureTolerance) {
		t.Fatalf("signature does not verify with the provisioning scheme: %v", r.header)
	}
	if provisioning.VerifySignature("another", r.body, r.header.Get("X-Timestamp"), r.header.Get("X-Signature"), provisioning.DefaultSignatureTolerance) {
		t.Fatal("signature verifies with another secret")
	}
	wantKey := "default-test-workflow-id/attention/activation/1"
	if k := r.header.Get("Idempotency-Key"); k != wantKey {
		t.Errorf("Idempotency-Key %q, want %q", k, wantKey)
	}
	var body notification.WebhookBody
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.ID != wantKey || body.Kind != notification.Attention || body.SubscriptionID != subID ||
		body.AdminURL != "https://engine.example/admin/subscriptions/"+subID || !strings.Contains(body.WorkflowURL, "/workflows/default-test-workflow-id/") ||
		body.Facts["plan"] != "gold" || !strings.Contains(body.Action, "retry") {
		t.Errorf("body %+v", body)
	}
}

func TestARetrySendsOnlyToChannelsThatFailed(t *testing.T) {
	hook, hookGot := receiver(t)
	slack, slackGot := receiver(t, http.StatusServiceUnavailable)
	a := &notification.Activities{Channels: []notification.Channel{
		{Name: "webhook", Sender: &notification.Webhook{URL: hook.URL, Secret: "k"}},
		{Name: "slack", Sender: &notification.Slack{URL: slack.URL + "/services/T000/B000/SECRETPART"}},
	}}
	delivered, err := run(t, a, notice(), nil)
	if err == nil {
		t.Fatal("a 503 from Slack did not fail the attempt")
	}
	if strings.Contains(err.Error(), "SECRETPART") {
		t.Errorf("the error shows the webhook URL's secret path: %v", err)
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.NonRetryable() {
		t.Errorf("a 503 is not retried: %v", err)
	}
	if strings.Join(delivered, ",") != "webhook" {
		t.Fatalf("recorded %v, want [webhook]", delivered)
	}
	// The retry starts from the heartbeat details, as Temporal hands them to the next attempt.
	if delivered, err = run(t, a, notice(), delivered); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if len(hookGot()) != 1 || len(slackGot()) != 2 {
		t.Errorf("webhook got %d requests (want 1), slack %d (want 2)", len(hookGot()), len(slackGot()))
	}
	if strings.Join(delivered, ",") != "webhook,slack" {
		t.Errorf("recorded %v", delivered)
	}
}

func TestRefusalIsPermanent(t *testing.T) {
	hook, _ := receiver(t, http.StatusBadRequest)
	a := &notification.Activities{Channels: []notification.Channel{{Name: "webhook", Sender: &notification.Webhook{URL: hook.URL, Secret: "k"}}}}
	_, err := run(t, a, notice(), nil)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || !ae.NonRetryable() || ae.Type() != notification.ErrNotifyFailed {
		t.Fatalf("a 400 gave %v, want a non-retryable %s", err, notification.ErrNotifyFailed)
	}
}

func TestRoutingByKindAndNoChannel(t *testing.T) {
	hook, got := receiver(t)
	a := &notification.Activities{Channels: []notification.Channel{{Name: "webhook", Kinds: []notification.Kind{notification.UsageRejected},
		Sender: &notification.Webhook{URL: hook.URL, Secret: "k"}}}}
	if _, err := run(t, a, notice(), nil); err != nil {
		t.Fatal(err)
	}
	if len(got()) != 0 {
		t.Fatal("an attention notice went to a channel routed usage-rejected only")
	}
	n := notice()
	n.Kind = notification.UsageRejected
	if _, err := run(t, a, n, nil); err != nil {
		t.Fatal(err)
	}
	if len(got()) != 1 {
		t.Fatal("a usage-rejected notice did not reach its channel")
	}
	if _, err := run(t, &notification.Activities{}, notice(), nil); err != nil {
		t.Fatalf("with no channel: %v", err)
	}
}

func TestSlackAndTeamsShapes(t *testing.T) {
	slack, slackGot := receiver(t)
	teams, teamsGot := receiver(t)
	a := &notification.Activities{Links: links, Channels: []notification.Channel{
		{Name: "slack", Sender: &notification.Slack{URL: slack.URL}},
		{Name: "teams", Sender: &notification.Teams{URL: teams.URL}},
	}}
	n := notice()
	n.Detail = "refused <b>&</b>"
	if _, err := run(t, a, n, nil); err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(slackGot()[0].body, &s); err != nil {
		t.Fatal(err)
	}
	text, _ := s["text"].(string)
	for _, want := range []string{"*Activation of subscription", "<https://engine.example/admin/subscriptions/" + subID + "|Admin API>", "|Temporal UI>", "refused &lt;b&gt;&amp;&lt;/b&gt;"} {
		if !strings.Contains(text, want) {
			t.Errorf("slack text lacks %q:\n%s", want, text)
		}
	}
	var m struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Type    string `json:"type"`
				Version string `json:"version"`
				Body    []struct {
					Type string `json:"type"`
					Text string `json:"text"`
				} `json:"body"`
				Actions []struct {
					Type, Title, URL string
				} `json:"actions"`
			} `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(teamsGot()[0].body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "message" || len(m.Attachments) != 1 || m.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" {
		t.Fatalf("teams message %+v", m)
	}
	card := m.Attachments[0].Content
	if card.Type != "AdaptiveCard" || card.Version == "" || len(card.Body) < 3 || !strings.Contains(card.Body[0].Text, "Activation of subscription") {
		t.Errorf("card %+v", card)
	}
	if len(card.Actions) != 2 || card.Actions[0].Type != "Action.OpenUrl" || card.Actions[0].URL != "https://engine.example/admin/subscriptions/"+subID {
		t.Errorf("card actions %+v", card.Actions)
	}
}

func TestParseKinds(t *testing.T) {
	if k, err := notification.ParseKinds("all"); err != nil || k != nil {
		t.Errorf("all: %v %v", k, err)
	}
	k, err := notification.ParseKinds(" attention, usage-rejected ")
	if err != nil || len(k) != 2 || k[1] != notification.UsageRejected {
		t.Errorf("list: %v %v", k, err)
	}
	if _, err := notification.ParseKinds("attention,nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown kind: %v", err)
	}
}
