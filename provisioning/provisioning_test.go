package provisioning

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"saasengine/marketplace"
)

func sub(id string) marketplace.Subscription {
	return marketplace.Subscription{ID: id, OfferID: "offer", PlanID: "basic", Quantity: 5,
		Beneficiary: marketplace.AADIdentifier{TenantID: "tenant-1", EmailID: "a@example.com"}}
}

func TestDemoIdempotentAndPersistent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenants.db")
	d := openDemo(t, path)

	req := Request{SubscriptionID: "s1", OperationID: "activate", Subscription: sub("s1")}
	require.NoError(t, d.Provision(ctx, req))
	require.NoError(t, d.Provision(ctx, req))
	assert.Equal(t, 1, d.Applied(req.Key()))
	assert.Equal(t, 2, d.Calls(req.Key()))

	ch := ChangeRequest{SubscriptionID: "s1", OperationID: "op1", Action: marketplace.ActionChangePlan, PlanID: "gold"}
	require.NoError(t, d.ApplyChange(ctx, ch))
	// A later change under the same key must not be applied again.
	require.NoError(t, d.ApplyChange(ctx, ChangeRequest{SubscriptionID: "s1", OperationID: "op1", PlanID: "other"}))
	tn, ok := d.Tenant("s1")
	require.True(t, ok)
	assert.Equal(t, "gold", tn.PlanID)
	assert.Equal(t, int64(5), tn.Quantity)
	assert.Equal(t, "tenant-1", tn.BeneficiaryTenantID)

	susp := Request{SubscriptionID: "s1", OperationID: "op2"}
	require.NoError(t, d.Suspend(ctx, susp))
	tn, _ = d.Tenant("s1")
	assert.Equal(t, TenantSuspended, tn.Status)
	require.NoError(t, d.Reinstate(ctx, Request{SubscriptionID: "s1", OperationID: "op3"}))
	// Replaying the suspend key does nothing.
	require.NoError(t, d.Suspend(ctx, susp))
	tn, _ = d.Tenant("s1")
	assert.Equal(t, TenantActive, tn.Status)

	// The file survives a restart, counts included.
	d2 := openDemo(t, path)
	tn2, ok := d2.Tenant("s1")
	require.True(t, ok)
	assert.Equal(t, tn, tn2)
	assert.Equal(t, 1, d2.Applied(susp.Key()))

	require.NoError(t, d2.Deprovision(ctx, Request{SubscriptionID: "s1", OperationID: "op4"}))
	tn2, _ = d2.Tenant("s1")
	assert.Equal(t, TenantDeprovisioned, tn2.Status)
	err := d2.Suspend(ctx, Request{SubscriptionID: "s1", OperationID: "op5"})
	assert.True(t, IsPermanent(err), "suspend after deprovision: %v", err)
	assert.Equal(t, 0, d2.Applied(IdempotencyKey("s1", "op5")))
}

func TestDemoUnknownTenant(t *testing.T) {
	d := openDemo(t, filepath.Join(t.TempDir(), "x", "tenants.db"))
	err := d.ApplyChange(context.Background(), ChangeRequest{SubscriptionID: "nope", OperationID: "o"})
	assert.True(t, IsPermanent(err))
	assert.NoError(t, d.Deprovision(context.Background(), Request{SubscriptionID: "nope", OperationID: "o"}))
}

func TestDemoDecideChange(t *testing.T) {
	ctx := context.Background()
	d := openDemo(t, filepath.Join(t.TempDir(), "tenants.db"))
	d.MaxQuantity = 10
	d.RejectPlans = []string{"forbidden"}

	dec, err := d.DecideChange(ctx, ChangeRequest{SubscriptionID: "s", OperationID: "1", Action: marketplace.ActionChangeQuantity, Quantity: 11})
	require.NoError(t, err)
	assert.False(t, dec.Accept)
	assert.Contains(t, dec.Reason, "above the limit")

	dec, err = d.DecideChange(ctx, ChangeRequest{SubscriptionID: "s", OperationID: "2", Action: marketplace.ActionChangeQuantity, Quantity: 10})
	require.NoError(t, err)
	assert.True(t, dec.Accept)

	dec, err = d.DecideChange(ctx, ChangeRequest{SubscriptionID: "s", OperationID: "3", Action: marketplace.ActionChangePlan, PlanID: "forbidden"})
	require.NoError(t, err)
	assert.False(t, dec.Accept)

	// A repeated key keeps its first decision even if the limits change.
	d.MaxQuantity = 0
	dec, err = d.DecideChange(ctx, ChangeRequest{SubscriptionID: "s", OperationID: "1", Action: marketplace.ActionChangeQuantity, Quantity: 11})
	require.NoError(t, err)
	assert.False(t, dec.Accept)
	assert.Equal(t, 0, d.Applied(IdempotencyKey("s", "1")), "deciding changes nothing")
	assert.Equal(t, 2, d.Calls(DecideKey("s", "1")))
}

// Deciding on a change and applying it are two steps with two keys: a service that answers a repeated
// key with the first result must not answer the apply with the decision.
func TestDecideAndApplyKeysDiffer(t *testing.T) {
	ctx := context.Background()
	ch := ChangeRequest{SubscriptionID: "s1", OperationID: "op", Action: marketplace.ActionChangeQuantity, Quantity: 7}
	assert.Equal(t, "s1/op/decide", ch.DecideKey())
	assert.Equal(t, "s1/op", ch.Key())

	keys := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys[r.URL.Path] = r.Header.Get(HeaderIdempotencyKey)
		_ = json.NewEncoder(w).Encode(Decision{Accept: true})
	}))
	defer srv.Close()
	h := &HTTP{BaseURL: srv.URL, Secret: "k"}
	_, err := h.DecideChange(ctx, ch)
	require.NoError(t, err)
	require.NoError(t, h.ApplyChange(ctx, ch))
	assert.Equal(t, "s1/op/decide", keys["/decide-change"])
	assert.Equal(t, "s1/op", keys["/apply-change"])

	// The demo provisioner keeps them apart too: the decision does not mark the change as applied.
	d := openDemo(t, filepath.Join(t.TempDir(), "tenants.db"))
	require.NoError(t, d.Provision(ctx, Request{SubscriptionID: "s1", OperationID: "activate", Subscription: sub("s1")}))
	_, err = d.DecideChange(ctx, ch)
	require.NoError(t, err)
	require.NoError(t, d.ApplyChange(ctx, ch))
	assert.Equal(t, 1, d.Calls(ch.DecideKey()))
	assert.Equal(t, 1, d.Calls(ch.Key()))
	tn, _ := d.Tenant("s1")
	assert.Equal(t, int64(7), tn.Quantity)
}

func TestHTTPCallback(t *testing.T) {
	const secret = "s3cret"
	var gotPath, gotKey string
	var gotBody []byte
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotKey = r.URL.Path, r.Header.Get(HeaderIdempotencyKey)
		gotBody, _ = io.ReadAll(r.Body)
		if !VerifySignature(secret, gotBody, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), DefaultSignatureTolerance) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(status)
		if r.URL.Path == "/isv/decide-change" {
			_ = json.NewEncoder(w).Encode(Decision{Accept: false, Reason: "too many seats"})
		}
	}))
	defer srv.Close()
	h := &HTTP{BaseURL: srv.URL + "/isv/", Secret: secret}
	ctx := context.Background()

	require.NoError(t, h.Provision(ctx, Request{SubscriptionID: "s1", OperationID: "activate", Subscription: sub("s1")}))
	assert.Equal(t, "/isv/provision", gotPath)
	assert.Equal(t, "s1/activate", gotKey)
	var r Request
	require.NoError(t, json.Unmarshal(gotBody, &r))
	assert.Equal(t, "basic", r.Subscription.PlanID)

	dec, err := h.DecideChange(ctx, ChangeRequest{SubscriptionID: "s1", OperationID: "op", Action: marketplace.ActionChangeQuantity, Quantity: 99})
	require.NoError(t, err)
	assert.Equal(t, Decision{Accept: false, Reason: "too many seats"}, dec)

	status = http.StatusConflict
	err = h.Suspend(ctx, Request{SubscriptionID: "s1", OperationID: "x"})
	require.Error(t, err)
	assert.True(t, IsPermanent(err))

	status = http.StatusServiceUnavailable
	err = h.Reinstate(ctx, Request{SubscriptionID: "s1", OperationID: "y"})
	require.Error(t, err)
	assert.False(t, IsPermanent(err))

	// A wrong secret is refused by the receiver (401 → permanent).
	bad := &HTTP{BaseURL: srv.URL + "/isv", Secret: "wrong"}
	err = bad.Deprovision(ctx, Request{SubscriptionID: "s1", OperationID: "z"})
	assert.True(t, IsPermanent(err))

	// Transport failure is retryable.
	srv.Close()
	err = h.ApplyChange(ctx, ChangeRequest{SubscriptionID: "s1", OperationID: "w"})
	require.Error(t, err)
	assert.False(t, IsPermanent(err))
}

func TestVerifySignature(t *testing.T) {
	body := []byte(`{"a":1}`)
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := Sign("k", ts, body)
	ok := func(secret string, body []byte, ts, sig string) bool {
		return verifySignature(secret, body, ts, sig, time.Minute, now)
	}
	assert.True(t, ok("k", body, ts, sig))
	assert.False(t, ok("k2", body, ts, sig))
	assert.False(t, ok("k", []byte(`{"a":2}`), ts, sig))
	assert.False(t, ok("k", body, ts, sig[len("sha256="):]))
	assert.False(t, ok("k", body, ts, "sha256=zz"))
	assert.False(t, ok("k", body, "", sig))

	// The timestamp is signed: a captured request replayed with a fresh timestamp does not verify.
	fresh := strconv.FormatInt(now.Unix()+1, 10)
	assert.False(t, ok("k", body, fresh, sig))
	// The body alone (the old scheme) is not a valid signature.
	m := hmac.New(sha256.New, []byte("k"))
	m.Write(body)
	assert.False(t, ok("k", body, ts, "sha256="+hex.EncodeToString(m.Sum(nil))))

	// A stale (or far-future) timestamp is refused even when correctly signed.
	old := strconv.FormatInt(now.Add(-2*time.Minute).Unix(), 10)
	assert.False(t, ok("k", body, old, Sign("k", old, body)))
	future := strconv.FormatInt(now.Add(2*time.Minute).Unix(), 10)
	assert.False(t, ok("k", body, future, Sign("k", future, body)))
	within := strconv.FormatInt(now.Add(-30*time.Second).Unix(), 10)
	assert.True(t, ok("k", body, within, Sign("k", within, body)))
	// The exported form checks against the real clock.
	assert.False(t, VerifySignature("k", body, ts, sig, time.Minute), "a 2027 timestamp is not fresh today")
}

// Busy (429) and timed-out (408) answers are retried, not permanent refusals; Retry-After is kept.
func TestHTTPRetryableStatuses(t *testing.T) {
	status, retry := http.StatusTooManyRequests, "7"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if retry != "" {
			w.Header().Set("Retry-After", retry)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	h := &HTTP{BaseURL: srv.URL, Secret: "k"}
	ctx := context.Background()
	req := Request{SubscriptionID: "s1", OperationID: "activate"}

	var re *RetryableError
	err := h.Provision(ctx, req)
	assert.False(t, IsPermanent(err))
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 7*time.Second, re.RetryAfter)

	retry = "86400"
	require.ErrorAs(t, h.Provision(ctx, req), &re)
	assert.Equal(t, maxRetryAfter, re.RetryAfter, "an excessive Retry-After is bounded")

	status, retry = http.StatusRequestTimeout, ""
	err = h.Provision(ctx, req)
	assert.False(t, IsPermanent(err))
	require.ErrorAs(t, err, &re)
	assert.Zero(t, re.RetryAfter)

	status = http.StatusUnprocessableEntity
	assert.True(t, IsPermanent(h.Provision(ctx, req)))
}
