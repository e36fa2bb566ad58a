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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"

	"saasengine/emulator"
	"saasengine/entra"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/webhook/server"
	"saasengine/workflows/subscription"
)

// jwks is a JSON Web Key Set as Entra publishes it.
type jwks struct {
	Keys []map[string]any `json:"keys"`
}

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
	}
}

// emulatorKey fetches the emulator's published signing key: its kid and public key.
func emulatorKey(t *testing.T, s *stacktest.Stack) (string, *rsa.PublicKey) {
	t.Helper()
	var set jwks
	_, body := get(t, http.DefaultClient, s.Emu.Emulator.Authority()+"/"+emulator.DemoTenantID+"/discovery/v2.0/keys")
	if err := json.Unmarshal([]byte(body), &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("emulator JWKS: %v %s", err, body)
	}
	k := set.Keys[0]
	n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
	e, _ := base64.RawURLEncoding.DecodeString(k["e"].(string))
	return k["kid"].(string), &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
}

// authority stands between the server's validator and the emulator: it serves the emulator's OpenID
// configuration (so the emulator's issuer) and the emulator's keys, plus one key of the test's own. The
// emulator's real deliveries still validate, and the test can mint tokens a server trusts, changing one
// claim at a time, without access to the emulator's private key.
type authority struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string

	mu  sync.Mutex
	emu string // the emulator's authority, known once the stack runs
}

func newAuthority(t testing.TB) *authority {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	a := &authority{key: k, kid: "test-trusted-" + uuid.NewString()[:8]}
	fetch := func(w http.ResponseWriter, path string) ([]byte, bool) {
		a.mu.Lock()
		base := a.emu
		a.mu.Unlock()
		resp, err := http.Get(base + path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return nil, false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return b, true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		b, ok := fetch(w, r.URL.Path)
		if !ok {
			return
		}
		var doc map[string]any
		_ = json.Unmarshal(b, &doc)
		doc["jwks_uri"] = a.srv.URL + "/" + r.PathValue("tenant") + "/discovery/v2.0/keys"
		_ = json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("/{tenant}/discovery/v2.0/keys", func(w http.ResponseWriter, r *http.Request) {
		b, ok := fetch(w, r.URL.Path)
		if !ok {
			return
		}
		var set jwks
		_ = json.Unmarshal(b, &set)
		set.Keys = append(set.Keys, rsaJWK(a.kid, &k.PublicKey))
		_ = json.NewEncoder(w).Encode(set)
	})
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

// stackWithAuthority runs the engine with webhook tokens checked through a test authority.
func stackWithAuthority(t testing.TB, opts stacktest.Options) (*stacktest.Stack, *authority) {
	t.Helper()
	a := newAuthority(t)
	v, err := entra.NewValidator(entra.Config{Authority: a.srv.URL, TenantID: emulator.DemoTenantID, Audience: emulator.DemoAppID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	next := opts.ConfigureServer
	opts.ConfigureServer = func(c *server.Config) {
		c.Validator = v
		if next != nil {
			next(c)
		}
	}
	s := stacktest.Start(t, opts)
	a.mu.Lock()
	a.emu = s.Emu.Emulator.Authority()
	a.mu.Unlock()
	return s, a
}

// genuineClaims are those of the emulator's webhook tokens (emulator/webhooks.go): the publisher's app as
// audience, its tenant, the emulator's issuer, the Marketplace as caller, one hour of validity.
func genuineClaims(s *stacktest.Stack) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"aud": emulator.DemoAppID, "tid": emulator.DemoTenantID,
		"iss": s.Emu.Emulator.Authority() + "/" + emulator.DemoTenantID + "/v2.0",
		"azp": marketplace.ResourceAppID, "appid": marketplace.ResourceAppID, "sub": marketplace.ResourceAppID, "ver": "2.0",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func signRS256(t testing.TB, claims jwt.MapClaims, key *rsa.PrivateKey, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	out, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// event is a notification of a subscription as Microsoft would send it.
func event(subID, opID string, action marketplace.Action) []byte {
	b, _ := json.Marshal(marketplace.WebhookEvent{ID: opID, SubscriptionID: subID, Action: action, Status: marketplace.OperationSucceeded,
		OfferID: emulator.DemoOfferID, PublisherID: emulator.DemoPublisherID, PlanID: "basic", TimeStamp: marketplace.NewTime(time.Now())})
	return b
}

// Tokens that do not come from the emulator's key are refused against the emulator's own JWKS, the
// production wiring: a 401 with a JSON body, and no workflow for the subscription they name.
func TestForgedSignaturesAreRefused(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	kid, pub := emulatorKey(t, s)
	mine, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	hs256 := func() string {
		// Algorithm confusion: HMAC keyed with the emulator's public key.
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, genuineClaims(s))
		tok.Header["kid"] = kid
		out, _ := tok.SignedString(pub.N.Bytes())
		return out
	}
	none := func() string {
		head, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
		body, _ := json.Marshal(genuineClaims(s))
		return base64.RawURLEncoding.EncodeToString(head) + "." + base64.RawURLEncoding.EncodeToString(body) + "."
	}
	forged := []struct{ name, token string }{
		{"missing header", ""},
		{"wrong signature, emulator's kid", signRS256(t, genuineClaims(s), mine, kid)},
		{"unknown kid", signRS256(t, genuineClaims(s), mine, "not-a-published-key")},
		{"alg none", none()},
		{"HS256", hs256()},
		{"not a JWT", "not-a-jwt"},
	}
	p := s.Emu.Purchase(t, "basic", 0) // a real subscription the engine has not met
	for _, c := range forged {
		t.Run(c.name, func(t *testing.T) {
			got := post(t, s.HTTP.URL+"/webhook", c.token, "application/json", event(p.SubscriptionID, uuid.NewString(), marketplace.ActionUnsubscribe))
			if got.status != http.StatusUnauthorized || got.code != "Unauthorized" {
				t.Fatalf("got %d %s, want 401 Unauthorized", got.status, got.code)
			}
			if !strings.Contains(got.header.Get("WWW-Authenticate"), "invalid_token") {
				t.Errorf("WWW-Authenticate %q", got.header.Get("WWW-Authenticate"))
			}
		})
	}
	noWorkflow(t, s, p.SubscriptionID)
	page := metrics(t, s)
	if v := metricValue(page, `saasengine_webhook_deliveries_total{action="unknown",outcome="unauthorized"}`); v != float64(len(forged)) {
		t.Errorf("unauthorized webhooks counted %v, want %d", v, len(forged))
	}
}

// Validly signed tokens (by a key the server trusts) with one claim wrong are refused, while the same
// token with every claim right is accepted: each check is made, and nothing reaches Temporal before it.
func TestForgedClaimsAreRefusedAndSignalNothing(t *testing.T) {
	s, a := stackWithAuthority(t, stacktest.Options{NoWorker: true})
	with := func(change func(jwt.MapClaims)) string {
		c := genuineClaims(s)
		change(c)
		return signRS256(t, c, a.key, a.kid)
	}
	cases := []struct{ name, token string }{
		{"wrong aud", with(func(c jwt.MapClaims) { c["aud"] = uuid.NewString() })},
		{"aud of the Marketplace API", with(func(c jwt.MapClaims) { c["aud"] = marketplace.ResourceAppID })},
		{"no aud", with(func(c jwt.MapClaims) { delete(c, "aud") })},
		{"wrong tid", with(func(c jwt.MapClaims) { c["tid"] = uuid.NewString() })},
		{"wrong appid and azp", with(func(c jwt.MapClaims) { c["azp"], c["appid"] = uuid.NewString(), uuid.NewString() })},
		{"expired", with(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
		})},
		{"no exp", with(func(c jwt.MapClaims) { delete(c, "exp") })},
		{"not yet valid", with(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() })},
		{"wrong issuer", with(func(c jwt.MapClaims) { c["iss"] = "https://login.example.com/" + emulator.DemoTenantID + "/v2.0" })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sub := uuid.NewString()
			got := post(t, s.HTTP.URL+"/webhook", c.token, "application/json", event(sub, uuid.NewString(), marketplace.ActionSuspend))
			if got.status != http.StatusUnauthorized || got.code != "Unauthorized" {
				t.Fatalf("got %d %s, want 401 Unauthorized", got.status, got.code)
			}
			noWorkflow(t, s, sub)
		})
	}
	// The control: the same request with every claim right goes through and starts the workflow.
	sub := uuid.NewString()
	if got := post(t, s.HTTP.URL+"/webhook", signRS256(t, genuineClaims(s), a.key, a.kid), "application/json", event(sub, uuid.NewString(), marketplace.ActionSuspend)); got.status != http.StatusOK {
		t.Fatalf("genuine claims: %+v", got)
	}
	if _, err := s.Client.DescribeWorkflowExecution(context.Background(), subscription.WorkflowID(sub), ""); err != nil {
		t.Fatalf("the accepted webhook started no workflow: %v", err)
	}
}

// Requests that are not webhook payloads are refused with the right 4xx and signal nothing; Microsoft's
// legacy quirks still pass.
func TestMalformedWebhooks(t *testing.T) {
	s, a := stackWithAuthority(t, stacktest.Options{NoWorker: true})
	u := s.HTTP.URL + "/webhook"
	tok := signRS256(t, genuineClaims(s), a.key, a.kid)
	sub := uuid.NewString()
	oversized := append([]byte(`{"id":"x","subscriptionId":"`+sub+`","action":"Suspend","pad":"`), bytes.Repeat([]byte("a"), 70<<10)...)
	oversized = append(oversized, `"}`...)
	for _, c := range []struct {
		name        string
		contentType string
		body        []byte
		status      int
		code        string
	}{
		{"malformed JSON", "application/json", []byte(`{"action":`), 400, "MalformedPayload"},
		{"JSON of the wrong shape", "application/json", []byte(`["Suspend"]`), 400, "MalformedPayload"},
		{"no subscription", "application/json", []byte(`{"id":"x","action":"Suspend"}`), 400, "MalformedPayload"},
		{"text/plain", "text/plain", event(sub, "x", marketplace.ActionSuspend), 415, "UnsupportedMediaType"},
		{"form", "application/x-www-form-urlencoded", []byte("id=x&subscriptionId=" + sub + "&action=Suspend"), 415, "UnsupportedMediaType"},
		{"no content type", "", event(sub, "x", marketplace.ActionSuspend), 415, "UnsupportedMediaType"},
		{"over 64 KiB", "application/json", oversized, 413, "PayloadTooLarge"},
		// A subscription ID names a workflow: only a GUID may.
		{"subscription not a GUID", "application/json", event("../../saas-reconciliation", "x", marketplace.ActionSuspend), 400, "MalformedPayload"},
		{"subscription a GUID in braces", "application/json", event("{"+sub+"}", "x", marketplace.ActionSuspend), 400, "MalformedPayload"},
		// Once a 503 (Temporal refused the workflow ID), which made Microsoft deliver it for eight hours.
		{"2,000-character subscription", "application/json", event(strings.Repeat("a", 2000), "x", marketplace.ActionSuspend), 400, "MalformedPayload"},
		{"2,000-character operation", "application/json", event(sub, strings.Repeat("a", 2000), marketplace.ActionSuspend), 400, "MalformedPayload"},
		{"2,000-character operation of a change", "application/json", changeEvent(sub, strings.Repeat("a", 2000), 3), 400, "MalformedPayload"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := post(t, u, tok, c.contentType, c.body); got.status != c.status || got.code != c.code {
				t.Fatalf("got %d %s, want %d %s", got.status, got.code, c.status, c.code)
			}
		})
	}
	noWorkflow(t, s, sub)
	noWorkflow(t, s, "../../saas-reconciliation")
	// Lenient decoding: quantity as an empty string, padded enums, unknown fields, a timestamp without zone.
	quirky := []byte(`{"id":"` + uuid.NewString() + `","subscriptionId":"` + uuid.NewString() + `","action":" Renew ","status":"Succeeded","quantity":"","timeStamp":"2023-01-01T10:00:00.1234567","somethingNew":true}`)
	if got := post(t, u, tok, "application/json; charset=utf-8", quirky); got.status != http.StatusOK {
		t.Fatalf("legacy payload: %+v", got)
	}

	// Metric labels are closed sets: neither an invented action nor an invented method becomes a series.
	invented := "Frobnicate" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if got := post(t, u, tok, "application/json", event(uuid.NewString(), uuid.NewString(), marketplace.Action(invented))); got.status != http.StatusOK {
		t.Fatalf("unknown action: %+v", got)
	}
	req, _ := http.NewRequest(invented, s.HTTP.URL+"/no/such/path", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("invented method: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	page := metrics(t, s)
	if strings.Contains(page, invented) {
		t.Fatalf("a caller's string became a label:\n%s", page)
	}
	for _, series := range []string{
		`saasengine_webhook_deliveries_total{action="other",outcome="accepted"}`,
		`saasengine_http_requests_total{method="other",route="unmatched",status="404"}`,
	} {
		if v := metricValue(page, series); v != 1 {
			t.Errorf("%s = %v, want 1", series, v)
		}
	}
}

// With Temporal down, a genuine delivery from the emulator is answered 503, so Microsoft keeps it and
// delivers again; /readyz says so too.
func TestTemporalDownMeansDeliverAgain(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	p, err := s.Emu.Emulator.Purchase(emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: "basic", Status: marketplace.StatusSubscribed})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, http.DefaultClient, s.HTTP.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("readyz with Temporal up: %d", code)
	}
	s.Temporal.Stop()

	op, err := s.Emu.Emulator.Suspend(p.SubscriptionID)
	if err != nil {
		t.Fatal(err)
	}
	d := waitDelivery(t, s, op.ID, func(d emulator.Delivery) bool { return d.Attempts >= 2 })
	if d.State != emulator.DeliveryPending || d.LastStatus != http.StatusServiceUnavailable {
		t.Fatalf("delivery %+v: want pending redelivery after 503", d)
	}
	if v := metricValue(metrics(t, s), `saasengine_webhook_deliveries_total{action="Suspend",outcome="unavailable"}`); v < 2 {
		t.Errorf("unavailable Suspend webhooks counted %v", v)
	}

	code, body := get(t, http.DefaultClient, s.HTTP.URL+"/readyz")
	var e apiError
	_ = json.Unmarshal([]byte(body), &e)
	if code != http.StatusServiceUnavailable || e.Error.Code != "TemporalUnreachable" {
		t.Fatalf("readyz with Temporal down: %d %s", code, body)
	}
	if code, _ := get(t, http.DefaultClient, s.HTTP.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("healthz (liveness) must not depend on Temporal: %d", code)
	}
}

// Microsoft sends one delivery twice (duplicate fault): both copies are accepted, the tenant is
// suspended once.
func TestDuplicateDeliveryHasOneEffect(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	id := s.Activated(t, "basic", 0)
	if err := s.Emu.Emulator.AddFault(emulator.Fault{Webhook: emulator.WebhookDuplicate, Action: "Suspend", Count: 1}); err != nil {
		t.Fatal(err)
	}
	op, err := s.Emu.Emulator.Suspend(id)
	if err != nil {
		t.Fatal(err)
	}
	waitDelivery(t, s, op.ID, func(d emulator.Delivery) bool { return d.State == emulator.DeliveryDelivered })
	st := s.WaitState(t, id, "suspended, and the copy handled", func(st subscription.State) bool {
		return st.TenantSuspended && countAudit(st, op.ID, "webhook-duplicate", "duplicate") >= 1
	})
	if n := s.Provisioner.Applied(provisioning.IdempotencyKey(id, op.ID)); n != 1 {
		t.Fatalf("the suspension was applied %d times", n)
	}
	if n := countAudit(st, op.ID, "tenant", ""); n != 1 {
		t.Fatalf("audit shows %d suspensions: %+v", n, st.Audit)
	}
	if tn, _ := s.Provisioner.Tenant(id); tn.Status != provisioning.TenantSuspended {
		t.Fatalf("tenant %s", tn.Status)
	}
	if v := metricValue(metrics(t, s), `saasengine_webhook_deliveries_total{action="Suspend",outcome="accepted"}`); v != 2 {
		t.Fatalf("the server accepted %v Suspend webhooks, want both copies", v)
	}
}

// countAudit counts audit entries of an operation of the given kinds.
func countAudit(st subscription.State, operationID string, kinds ...string) int {
	n := 0
	for _, e := range st.Audit {
		for _, k := range kinds {
			if k != "" && e.Kind == k && e.OperationID == operationID {
				n++
			}
		}
	}
	return n
}

// A Reinstate delivered before its Suspend (reorder fault): the subscription ends Subscribed with its
// tenant active, the late Suspend notwithstanding.
func TestReinstateBeforeSuspend(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	emu := s.Emu.Emulator
	id := s.Activated(t, "basic", 0)
	if err := emu.AddFault(emulator.Fault{Webhook: emulator.WebhookReorder, Action: "Suspend", Count: 1}); err != nil {
		t.Fatal(err)
	}
	suspend, err := emu.Suspend(id)
	if err != nil {
		t.Fatal(err)
	}
	reinstate, err := emu.Reinstate(id)
	if err != nil {
		t.Fatal(err)
	}
	waitDelivery(t, s, suspend.ID, func(d emulator.Delivery) bool { return d.State == emulator.DeliveryDelivered })
	st := s.WaitState(t, id, "both handled, Subscribed", func(st subscription.State) bool {
		_, a := st.Seen(suspend.ID)
		_, b := st.Seen(reinstate.ID)
		return a && b && st.Status == marketplace.StatusSubscribed && st.Phase == subscription.PhaseIdle
	})
	// The reorder happened: the engine handled the Reinstate first.
	order := map[string]int{}
	for i, o := range st.SeenOperations {
		order[o.ID] = i
	}
	if order[reinstate.ID] > order[suspend.ID] {
		t.Errorf("the Suspend was handled first; the reorder fault did not reorder: %+v", st.SeenOperations)
	}
	if st.TenantSuspended {
		t.Fatalf("the late Suspend suspended the tenant: %+v", st.Audit)
	}
	if tn, _ := s.Provisioner.Tenant(id); tn.Status != provisioning.TenantActive {
		t.Fatalf("tenant %s", tn.Status)
	}
	if sub, _ := emu.Subscription(id); sub.Status != marketplace.StatusSubscribed {
		t.Fatalf("Microsoft shows %s", sub.Status)
	}
}

// A Suspend redelivered after the Reinstate that ended it (the test delivers both by hand) changes
// nothing either.
func TestLateDuplicateSuspendAfterReinstate(t *testing.T) {
	s, a := stackWithAuthority(t, stacktest.Options{})
	u := s.HTTP.URL + "/webhook"
	emu := s.Emu.Emulator
	id := s.Activated(t, "basic", 0)
	if err := emu.AddFault(emulator.Fault{Webhook: emulator.WebhookDrop}); err != nil {
		t.Fatal(err)
	}
	tok := func() string { return signRS256(t, genuineClaims(s), a.key, a.kid) }
	suspend, err := emu.Suspend(id)
	if err != nil {
		t.Fatal(err)
	}
	body := event(id, suspend.ID, marketplace.ActionSuspend)
	if got := post(t, u, tok(), "application/json", body); got.status != http.StatusOK {
		t.Fatalf("suspend: %+v", got)
	}
	s.WaitState(t, id, "suspended", func(st subscription.State) bool { return st.TenantSuspended })
	reinstate, err := emu.Reinstate(id)
	if err != nil {
		t.Fatal(err)
	}
	if got := post(t, u, tok(), "application/json", event(id, reinstate.ID, marketplace.ActionReinstate)); got.status != http.StatusOK {
		t.Fatalf("reinstate: %+v", got)
	}
	s.WaitState(t, id, "reinstated", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed && !st.TenantSuspended
	})
	if got := post(t, u, tok(), "application/json", body); got.status != http.StatusOK {
		t.Fatalf("late suspend: %+v", got)
	}
	st := s.WaitState(t, id, "the late copy handled", func(st subscription.State) bool {
		return countAudit(st, suspend.ID, "webhook-duplicate", "duplicate") >= 1
	})
	if st.TenantSuspended || st.Status != marketplace.StatusSubscribed {
		t.Fatalf("late Suspend took effect: %+v", st.Audit)
	}
	if n := s.Provisioner.Applied(provisioning.IdempotencyKey(id, suspend.ID)); n != 1 {
		t.Fatalf("suspension applied %d times", n)
	}
}

// A customer's seat change above what the ISV allows is refused inside Microsoft's window with a 400,
// so the emulator marks the delivery rejected, fails the operation and keeps the old quantity.
func TestRejectedChangeAnswers400(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{DemoMaxQuantity: 50})
	id := s.Activated(t, "team", 10)
	op, err := s.Emu.Emulator.CustomerChangeQuantity(id, 80)
	if err != nil {
		t.Fatal(err)
	}
	waitDelivery(t, s, op.ID, func(d emulator.Delivery) bool { return d.State != emulator.DeliveryPending })
	if d, _ := delivery(s, op.ID); d.State != emulator.DeliveryRejected || d.LastStatus != http.StatusBadRequest {
		t.Fatalf("delivery %+v: want rejected with 400", d)
	}
	got, err := s.Emu.Client.GetOperation(context.Background(), id, op.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != marketplace.OperationFailed {
		t.Fatalf("operation %s, want Failed", got.Status)
	}
	time.Sleep(1200 * time.Millisecond) // past the emulator's auto-accept window
	if sub, _ := s.Emu.Emulator.Subscription(id); sub.Quantity != 10 {
		t.Fatalf("refused change applied at Microsoft: %d seats", sub.Quantity)
	}
	st := s.WaitState(t, id, "decided", func(st subscription.State) bool {
		o, ok := st.Seen(op.ID)
		return ok && o.Outcome == subscription.OutcomeRejected
	})
	if st.Quantity != 10 {
		t.Fatalf("engine has %d seats", st.Quantity)
	}
	if v := metricValue(metrics(t, s), `saasengine_webhook_deliveries_total{action="ChangeQuantity",outcome="rejected"}`); v != 1 {
		t.Fatalf("rejected ChangeQuantity webhooks counted %v", v)
	}
}

// changeEvent is a customer's seat change awaiting the publisher's decision, as Microsoft sends it.
func changeEvent(subID, opID string, quantity int) []byte {
	b, _ := json.Marshal(marketplace.WebhookEvent{ID: opID, SubscriptionID: subID, Action: marketplace.ActionChangeQuantity, Status: marketplace.OperationInProgress,
		OfferID: emulator.DemoOfferID, PublisherID: emulator.DemoPublisherID, PlanID: "team", Quantity: marketplace.Quantity(quantity), TimeStamp: marketplace.NewTime(time.Now())})
	return b
}

// microsoft is a client with Microsoft's webhook window: an answer after 10 seconds is no answer.
var microsoft = &http.Client{Timeout: 10 * time.Second}

// No worker decides the change within the decision wait: the event is signalled instead (200, durable in
// the workflow's history), and decided once a worker runs.
func TestChangePastTheDecisionWaitIsSignalled(t *testing.T) {
	s, a := stackWithAuthority(t, stacktest.Options{NoWorker: true, ConfigureServer: func(c *server.Config) { c.DecisionWait = 500 * time.Millisecond },
		// Microsoft's own decision after its window would settle the change however the engine fares:
		// keep it out of the way, since this test is about the engine deciding after the fallback.
		ConfigureEmulator: func(c *emulator.Config) { c.AutoAcceptAfter = emulator.Duration(time.Hour) }})
	p, err := s.Emu.Emulator.Purchase(emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: "team", Quantity: 10, Status: marketplace.StatusSubscribed})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Emu.Emulator.AddFault(emulator.Fault{Webhook: emulator.WebhookDrop}); err != nil {
		t.Fatal(err) // the test delivers the change itself
	}
	op, err := s.Emu.Emulator.CustomerChangeQuantity(p.SubscriptionID, 12)
	if err != nil {
		t.Fatal(err)
	}
	if got := post(t, s.HTTP.URL+"/webhook", signRS256(t, genuineClaims(s), a.key, a.kid), "application/json", changeEvent(p.SubscriptionID, op.ID, 12)); got.status != http.StatusOK {
		t.Fatalf("change past the decision wait: %+v", got)
	}
	// The 200 was earned: the event is in the workflow's history as a signal.
	it := s.Client.GetWorkflowHistory(context.Background(), subscription.WorkflowID(p.SubscriptionID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	signalled := false
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == subscription.SignalWebhook {
			signalled = true
		}
	}
	if !signalled {
		t.Fatal("the webhook was answered 200 but no signal is in the workflow's history")
	}
	// Operators see it: the answer went without a decision (an alert watches this counter).
	if n := metricValue(metrics(t, s), server.MetricDecisionFallbacks+`{action="ChangeQuantity"}`); n != 1 {
		t.Errorf("decision fallbacks counted %v, want 1", n)
	}
	s.StartWorker(t)
	// Wait for the decision itself (an outcome recorded), not for the operation to be merely seen.
	st := s.WaitState(t, p.SubscriptionID, "change decided", func(st subscription.State) bool {
		o, ok := st.Seen(op.ID)
		return ok && o.Outcome != ""
	})
	if o, _ := st.Seen(op.ID); o.Outcome != subscription.OutcomeAccepted {
		t.Fatalf("change decided %+v; audit %+v", o, st.Audit)
	}
}

// With Temporal down, a change to decide is answered 503 inside Microsoft's window: the decision wait
// and the fallback signal share one budget.
func TestChangeWithTemporalDownAnswers503InTime(t *testing.T) {
	s, a := stackWithAuthority(t, stacktest.Options{NoWorker: true, ConfigureServer: func(c *server.Config) {
		c.DecisionWait, c.WebhookBudget = time.Second, 4*time.Second
	}})
	tok := signRS256(t, genuineClaims(s), a.key, a.kid)
	// Discover the keys while Temporal is up, so only Temporal is down below.
	if got := post(t, s.HTTP.URL+"/webhook", tok, "application/json", event(uuid.NewString(), uuid.NewString(), marketplace.ActionSuspend)); got.status != http.StatusOK {
		t.Fatalf("warm-up: %+v", got)
	}
	s.Temporal.Stop()
	req, _ := http.NewRequest(http.MethodPost, s.HTTP.URL+"/webhook", bytes.NewReader(changeEvent(uuid.NewString(), uuid.NewString(), 12)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := microsoft.Do(req)
	if err != nil {
		t.Fatalf("no answer inside Microsoft's window: %v", err)
	}
	defer resp.Body.Close()
	var e apiError
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusServiceUnavailable || e.Error.Code != "Unavailable" {
		t.Fatalf("got %d %+v, want 503 Unavailable", resp.StatusCode, e)
	}
}

// budgetProbe records the deadlines the webhook handler gives the Temporal calls.
type budgetProbe struct {
	server.Subscriptions
	deadline chan time.Time
	wait     chan time.Duration
}

func (p budgetProbe) DecideChange(ctx context.Context, ev marketplace.WebhookEvent, wait time.Duration) (subscription.ChangeDecision, error) {
	d, _ := ctx.Deadline()
	p.deadline <- d
	p.wait <- wait
	return subscription.ChangeDecision{}, nil
}

func (p budgetProbe) DeliverWebhook(ctx context.Context, ev marketplace.WebhookEvent) error {
	d, _ := ctx.Deadline()
	p.deadline <- d
	return nil
}

// Every Temporal call of a webhook runs under the one budget, the decision's fallback signal included
// (the SDK's own default would be 10 s more).
func TestWebhookTemporalCallsShareOneBudget(t *testing.T) {
	probe := budgetProbe{deadline: make(chan time.Time, 1), wait: make(chan time.Duration, 1)}
	srv, err := server.New(server.Config{Subscriptions: probe, Resolver: noResolver{}, InsecureNoWebhookAuth: true, InsecureNoSignIn: true, WebhookBudget: 3 * time.Second, DecisionWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{
		"decided change": changeEvent(uuid.NewString(), uuid.NewString(), 12),
		"signal":         event(uuid.NewString(), uuid.NewString(), marketplace.ActionSuspend),
	} {
		req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		end := time.Now()
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", name, rec.Code, rec.Body)
		}
		if d := <-probe.deadline; d.IsZero() || d.After(end.Add(3*time.Second)) {
			t.Fatalf("%s: Temporal called with deadline %v, want within the 3 s budget (answered at %v)", name, d, end)
		}
		select {
		case w := <-probe.wait:
			// The 5 s decision wait would leave the fallback no time: it is cut to leave 2 s.
			if w > time.Second {
				t.Fatalf("decision wait %v inside a 3 s budget", w)
			}
		default:
		}
	}
}

// noResolver resolves nothing; the tests that use it never reach the landing page.
type noResolver struct{}

func (noResolver) Resolve(ctx context.Context, token string) (*marketplace.ResolvedSubscription, error) {
	return nil, errors.New("no resolver in this test")
}

// A webhook for a subscription Microsoft does not know starts one workflow, which fails with
// SubscriptionNotFound; redeliveries (plain or a change awaiting its decision) are answered 200, so that
// Microsoft stops, and start nothing more.
func TestUnknownSubscriptionCostsOneWorkflow(t *testing.T) {
	s, a := stackWithAuthority(t, stacktest.Options{})
	u := s.HTTP.URL + "/webhook"
	tok := signRS256(t, genuineClaims(s), a.key, a.kid)
	sub, op := uuid.NewString(), uuid.NewString()
	if got := post(t, u, tok, "application/json", event(sub, op, marketplace.ActionSuspend)); got.status != http.StatusOK {
		t.Fatalf("first delivery: %+v", got)
	}
	var firstRun string
	eventually(t, time.Minute, "the workflow fails with SubscriptionNotFound", func() (bool, string) {
		d, err := s.Client.DescribeWorkflowExecution(context.Background(), subscription.WorkflowID(sub), "")
		if err != nil {
			return false, err.Error()
		}
		firstRun = d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		return d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, d.GetWorkflowExecutionInfo().GetStatus().String()
	})
	for i, body := range [][]byte{
		event(sub, op, marketplace.ActionSuspend),
		event(sub, op, marketplace.ActionSuspend),
		event(sub, uuid.NewString(), marketplace.ActionUnsubscribe),
		changeEvent(sub, uuid.NewString(), 3),
	} {
		if got := post(t, u, tok, "application/json", body); got.status != http.StatusOK {
			t.Fatalf("redelivery %d: %+v, want 200", i, got)
		}
		d, err := s.Client.DescribeWorkflowExecution(context.Background(), subscription.WorkflowID(sub), "")
		if err != nil {
			t.Fatal(err)
		}
		if run := d.GetWorkflowExecutionInfo().GetExecution().GetRunId(); run != firstRun {
			t.Fatalf("redelivery %d started another workflow (run %s after %s)", i, run, firstRun)
		}
	}
	// Microsoft knows the subscription after all (the landing page, reconciliation): its workflow starts.
	if _, err := s.Subs.Land(context.Background(), marketplace.Subscription{ID: sub, Status: marketplace.StatusPendingFulfillmentStart}); err != nil {
		t.Fatal(err)
	}
	d, err := s.Client.DescribeWorkflowExecution(context.Background(), subscription.WorkflowID(sub), "")
	if err != nil || d.GetWorkflowExecutionInfo().GetExecution().GetRunId() == firstRun {
		t.Fatalf("the landing page did not start the subscription's workflow anew: %v", err)
	}
}
