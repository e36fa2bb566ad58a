package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"saasengine/emulator"
	"saasengine/entra"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/subscriptions"
	"saasengine/webhook/server"
	"saasengine/workflows"
)

// fakeEntra publishes a key of the test's own through OpenID discovery, so the test can mint tokens with
// any claims, signed by a key the server trusts, and change one thing at a time.
type fakeEntra struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string
}

func newFakeEntra(t *testing.T) *fakeEntra {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeEntra{key: k, kid: "trusted-key"}
	mux := http.NewServeMux()
	mux.HandleFunc("/"+emulator.DemoTenantID+"/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":   f.srv.URL + "/" + emulator.DemoTenantID + "/v2.0",
			"jwks_uri": f.srv.URL + "/" + emulator.DemoTenantID + "/discovery/v2.0/keys",
		})
	})
	mux.HandleFunc("/"+emulator.DemoTenantID+"/discovery/v2.0/keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": f.kid,
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		}}})
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// claims are those of a genuine Marketplace webhook token for the demo publisher.
func (f *fakeEntra) claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"aud": emulator.DemoAppID, "tid": emulator.DemoTenantID, "iss": f.srv.URL + "/" + emulator.DemoTenantID + "/v2.0",
		"azp": marketplace.ResourceAppID, "appid": marketplace.ResourceAppID, "ver": "2.0",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func (f *fakeEntra) sign(t *testing.T, claims jwt.MapClaims, key *rsa.PrivateKey, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fakeEntra) valid(t *testing.T) string { return f.sign(t, f.claims(), f.key, f.kid) }

// stackWithFakeEntra runs the engine with webhook tokens checked against the fake authority.
func stackWithFakeEntra(t *testing.T, opts stacktest.Options) (*stacktest.Stack, *fakeEntra) {
	t.Helper()
	f := newFakeEntra(t)
	v, err := entra.NewValidator(entra.Config{Authority: f.srv.URL, TenantID: emulator.DemoTenantID, Audience: emulator.DemoAppID})
	if err != nil {
		t.Fatal(err)
	}
	opts.ConfigureServer = func(c *server.Config) { c.Validator = v }
	return stacktest.Start(t, opts), f
}

func event(subID, opID string, action marketplace.Action) []byte {
	b, _ := json.Marshal(marketplace.WebhookEvent{ID: opID, SubscriptionID: subID, Action: action, Status: marketplace.OperationSucceeded,
		OfferID: emulator.DemoOfferID, PublisherID: emulator.DemoPublisherID, PlanID: "basic", TimeStamp: marketplace.NewTime(time.Now())})
	return b
}

type answer struct {
	status int
	code   string
}

func post(t *testing.T, url, token, contentType string, body []byte) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("error answer %d is not a JSON error body: %s", resp.StatusCode, b)
		}
	}
	return answer{resp.StatusCode, e.Error.Code}
}

func noWorkflow(t *testing.T, s *stacktest.Stack, subID string) {
	t.Helper()
	_, err := s.Subs.State(context.Background(), subID)
	if !errors.Is(err, subscriptions.ErrNotFound) {
		t.Fatalf("a workflow exists for %s (err %v): the refused webhook reached Temporal", subID, err)
	}
}

func TestForgedWebhooksAreRefusedAndSignalNothing(t *testing.T) {
	s, f := stackWithFakeEntra(t, stacktest.Options{})
	url := s.HTTP.URL + "/webhook"
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	with := func(change func(jwt.MapClaims)) string {
		c := f.claims()
		change(c)
		return f.sign(t, c, f.key, f.kid)
	}
	hs256 := func() string {
		// The classic confusion: HMAC keyed with the public key.
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, f.claims())
		tok.Header["kid"] = f.kid
		s, _ := tok.SignedString(f.key.PublicKey.N.Bytes())
		return s
	}
	none := func() string {
		head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		body, _ := json.Marshal(f.claims())
		return head + "." + base64.RawURLEncoding.EncodeToString(body) + "."
	}
	cases := map[string]string{
		"no token":        "",
		"wrong signature": f.sign(t, f.claims(), other, f.kid),
		"unknown kid":     f.sign(t, f.claims(), other, "someone-elses-key"),
		"wrong audience":  with(func(c jwt.MapClaims) { c["aud"] = uuid.NewString() }),
		"wrong tenant":    with(func(c jwt.MapClaims) { c["tid"] = uuid.NewString() }),
		"wrong caller":    with(func(c jwt.MapClaims) { c["azp"], c["appid"] = uuid.NewString(), uuid.NewString() }),
		"expired":         with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-5 * time.Minute).Unix() }),
		"not yet valid":   with(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() }),
		"wrong issuer":    with(func(c jwt.MapClaims) { c["iss"] = "https://login.example.com/" + emulator.DemoTenantID + "/v2.0" }),
		"alg none":        none(),
		"HS256":           hs256(),
		"garbage":         "not-a-jwt",
		"token of the Marketplace API itself (aud 20e940b3-…)": with(func(c jwt.MapClaims) { c["aud"] = marketplace.ResourceAppID }),
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			sub := uuid.NewString()
			if got := post(t, url, token, "application/json", event(sub, uuid.NewString(), marketplace.ActionSuspend)); got.status != http.StatusUnauthorized {
				t.Fatalf("got %+v, want 401", got)
			}
			noWorkflow(t, s, sub)
		})
	}
	// The control: the same request with a genuine token goes through.
	sub := uuid.NewString()
	if got := post(t, url, f.valid(t), "application/json", event(sub, uuid.NewString(), marketplace.ActionSuspend)); got.status != http.StatusOK {
		t.Fatalf("genuine token: %+v", got)
	}
}

func TestMalformedWebhooks(t *testing.T) {
	s, f := stackWithFakeEntra(t, stacktest.Options{})
	url := s.HTTP.URL + "/webhook"
	tok := f.valid(t)
	sub := uuid.NewString()
	for name, c := range map[string]struct {
		contentType string
		body        []byte
		want        answer
	}{
		"not JSON":         {"application/json", []byte(`{"action":`), answer{400, "MalformedPayload"}},
		"no subscription":  {"application/json", []byte(`{"id":"x","action":"Suspend"}`), answer{400, "MalformedPayload"}},
		"wrong media type": {"text/plain", event(sub, "x", marketplace.ActionSuspend), answer{415, "UnsupportedMediaType"}},
		"over 64 KiB":      {"application/json", append([]byte(`{"id":"x","subscriptionId":"`+sub+`","action":"Suspend","pad":"`), append(bytes.Repeat([]byte("a"), 70<<10), []byte(`"}`)...)...), answer{413, "PayloadTooLarge"}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := post(t, url, tok, c.contentType, c.body); got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
	noWorkflow(t, s, sub)
	// Lenient decoding: Microsoft's legacy quirks (quantity as a string, padded enums, extra fields) pass.
	quirky := []byte(`{"id":"` + uuid.NewString() + `","subscriptionId":"` + uuid.NewString() + `","action":" Renew ","status":"Succeeded","quantity":"","timeStamp":"2023-01-01T10:00:00.1234567","somethingNew":true}`)
	if got := post(t, url, tok, "application/json; charset=utf-8", quirky); got.status != http.StatusOK {
		t.Fatalf("legacy payload: %+v", got)
	}
}

func TestTemporalDownMeansDeliverAgain(t *testing.T) {
	s, f := stackWithFakeEntra(t, stacktest.Options{NoWorker: true})
	s.Temporal.Stop()
	if got := post(t, s.HTTP.URL+"/webhook", f.valid(t), "application/json", event(uuid.NewString(), uuid.NewString(), marketplace.ActionSuspend)); got.status != http.StatusServiceUnavailable {
		t.Fatalf("got %+v, want 503 so that Microsoft delivers again", got)
	}
	resp, err := http.Get(s.HTTP.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with Temporal down: %d", resp.StatusCode)
	}
}

// Microsoft's operations, made in the emulator without their webhooks, then delivered by the test
// itself: twice, and out of order.
func TestDuplicateAndOutOfOrderDeliveries(t *testing.T) {
	s, f := stackWithFakeEntra(t, stacktest.Options{})
	url := s.HTTP.URL + "/webhook"
	emu := s.Emu.Emulator
	id := s.Activated(t, "basic", 0)
	if err := emu.AddFault(emulator.Fault{Webhook: emulator.WebhookDrop}); err != nil {
		t.Fatal(err)
	}

	suspend, err := emu.Suspend(id)
	if err != nil {
		t.Fatal(err)
	}
	body := event(id, suspend.ID, marketplace.ActionSuspend)
	for i := 0; i < 2; i++ {
		if got := post(t, url, f.valid(t), "application/json", body); got.status != http.StatusOK {
			t.Fatalf("delivery %d: %+v", i+1, got)
		}
	}
	s.WaitState(t, id, "suspended", func(st workflows.State) bool { return st.TenantSuspended })
	if n := s.Provisioner.Calls(provisioning.IdempotencyKey(id, suspend.ID)); n != 1 {
		t.Fatalf("the suspension reached the provisioner %d times", n)
	}

	// Reinstate arrives before a second Suspend notification of the same suspension.
	reinstate, err := emu.Reinstate(id)
	if err != nil {
		t.Fatal(err)
	}
	if got := post(t, url, f.valid(t), "application/json", event(id, reinstate.ID, marketplace.ActionReinstate)); got.status != http.StatusOK {
		t.Fatalf("reinstate: %+v", got)
	}
	if got := post(t, url, f.valid(t), "application/json", body); got.status != http.StatusOK {
		t.Fatalf("late suspend: %+v", got)
	}
	s.WaitState(t, id, "reinstated", func(st workflows.State) bool {
		return st.Status == marketplace.StatusSubscribed && !st.TenantSuspended
	})
	time.Sleep(time.Second) // let the late Suspend be handled too
	s.WaitState(t, id, "still reinstated", func(st workflows.State) bool { return st.Status == marketplace.StatusSubscribed && !st.TenantSuspended })
	if sub, _ := emu.Subscription(id); sub.Status != marketplace.StatusSubscribed {
		t.Fatalf("Microsoft shows %s", sub.Status)
	}

	// Another subscription: suspended and reinstated at Microsoft, and the engine hears of the
	// Reinstate before the Suspend.
	other := s.Activated(t, "basic", 0)
	susp2, _ := emu.Suspend(other)
	rein2, _ := emu.Reinstate(other)
	if got := post(t, url, f.valid(t), "application/json", event(other, rein2.ID, marketplace.ActionReinstate)); got.status != http.StatusOK {
		t.Fatalf("reinstate first: %+v", got)
	}
	s.WaitState(t, other, "reinstated", func(st workflows.State) bool { return st.Status == marketplace.StatusSubscribed })
	if got := post(t, url, f.valid(t), "application/json", event(other, susp2.ID, marketplace.ActionSuspend)); got.status != http.StatusOK {
		t.Fatalf("suspend second: %+v", got)
	}
	s.WaitState(t, other, "the late Suspend handled", func(st workflows.State) bool {
		_, seen := st.Seen(susp2.ID)
		return seen
	})
	st := s.WaitState(t, other, "active", func(st workflows.State) bool { return st.Status == marketplace.StatusSubscribed })
	if st.TenantSuspended {
		t.Fatalf("a Suspend older than the Reinstate suspended the tenant: %+v", st.Audit)
	}
	if sub, _ := emu.Subscription(other); sub.Status != marketplace.StatusSubscribed {
		t.Fatalf("Microsoft shows %s", sub.Status)
	}
}

// A customer's seat change the ISV refuses is refused inside Microsoft's window with a 4xx answer (and a
// PATCH Failure), so Microsoft keeps the old quantity.
func TestRejectedChangeAnswers4xx(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{DemoMaxQuantity: 50})
	id := s.Activated(t, "team", 10)
	op, err := s.Emu.Emulator.CustomerChangeQuantity(id, 80)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var d *emulator.Delivery
		for _, x := range s.Emu.Emulator.Deliveries() {
			if x.Event.ID == op.ID {
				x := x
				d = &x
			}
		}
		if d != nil && d.State == emulator.DeliveryRejected && d.LastStatus == http.StatusBadRequest {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook was not answered 400: %+v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, _ := s.Emu.Client.GetOperation(context.Background(), id, op.ID)
	if got.Status != marketplace.OperationFailed {
		t.Fatalf("operation %s", got.Status)
	}
	time.Sleep(1500 * time.Millisecond) // past the emulator's auto-accept window
	if sub, _ := s.Emu.Emulator.Subscription(id); sub.Quantity != 10 {
		t.Fatalf("refused change applied: %d seats", sub.Quantity)
	}
	if st := s.WaitState(t, id, "10 seats", func(st workflows.State) bool { return st.Quantity == 10 }); st.Quantity != 10 {
		t.Fatal(st.Quantity)
	}
}
