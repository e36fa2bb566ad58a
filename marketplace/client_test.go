package marketplace

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"saasengine/internal/fakeentra"
)

// These tests pin behaviour that needs a server misbehaving on purpose (dropped connections, hung answers,
// a fake Entra): the emulator-backed tests in emulator_test.go cover the API itself.

func newTestClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	c, err := NewClient(url, &DevTokenSource{TenantID: "tenant", ClientID: "client", Secret: []byte("secret")}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRequestHeadersPerAttempt(t *testing.T) {
	var seen []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Clone())
		if r.URL.Query().Get("api-version") != APIVersion {
			t.Errorf("api-version %q", r.URL.Query().Get("api-version"))
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/api")
	ctx := WithCorrelationID(context.Background(), "saas-subscription/s-1/activity-7")
	wantCorr := correlationID(ctx)
	if _, err := uuid.Parse(wantCorr); err != nil || wantCorr != correlationID(WithCorrelationID(context.Background(), "saas-subscription/s-1/activity-7")) {
		t.Fatalf("correlation ID %q must be a stable GUID", wantCorr)
	}
	for range 2 {
		if _, err := c.GetSubscription(ctx, "sub"); !IsRetryable(err) {
			t.Fatalf("503 must be retryable: %v", err)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("%d requests", len(seen))
	}
	if seen[0].Get("x-ms-requestid") == seen[1].Get("x-ms-requestid") {
		t.Error("x-ms-requestid must be fresh per attempt")
	}
	for _, h := range seen {
		if h.Get("x-ms-correlationid") != wantCorr {
			t.Errorf("correlation %q", h.Get("x-ms-correlationid"))
		}
		if !strings.HasPrefix(h.Get("Authorization"), "Bearer ") || h.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", h)
		}
	}
}

func TestTransportFailuresAreRetryable(t *testing.T) {
	t.Run("connection dropped", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		defer srv.Close()
		_, err := newTestClient(t, srv.URL).GetSubscription(context.Background(), "sub")
		e, ok := AsError(err)
		if !ok || !e.Retryable || e.StatusCode != 0 || e.Err == nil {
			t.Fatalf("got %#v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		defer srv.Close()
		defer close(release)
		c := newTestClient(t, srv.URL, WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}))
		_, err := c.GetSubscription(context.Background(), "sub")
		if !IsRetryable(err) {
			t.Fatalf("a timeout must be retryable: %v", err)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		_, err = newTestClient(t, "http://"+addr).GetSubscription(context.Background(), "sub")
		if !IsRetryable(err) {
			t.Fatalf("connection refused must be retryable: %v", err)
		}
	})
	t.Run("cancelled by the caller", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := newTestClient(t, srv.URL).GetSubscription(ctx, "sub")
		if err == nil || IsRetryable(err) || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Duration{
		"7":    7 * time.Second,
		"0":    0,
		"-3":   0,
		"":     0,
		"soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		// Absurd values are capped at a day rather than overflowing into a negative or endless wait.
		"86400":                         24 * time.Hour,
		"86401":                         24 * time.Hour,
		"9999999999999":                 24 * time.Hour,
		"99999999999999999999999":       24 * time.Hour,
		"-99999999999999999999999":      0,
		"Fri, 31 Dec 9999 23:59:59 GMT": 24 * time.Hour,
	}
	for in, want := range cases {
		if got := ParseRetryAfter(in, now); got != want {
			t.Errorf("Retry-After %q: got %v, want %v", in, got, want)
		}
	}
}

func TestErrorBodies(t *testing.T) {
	for body, want := range map[string][2]string{
		`{"error":{"code":"EntityNotFound","message":"gone"}}`:                  {"EntityNotFound", "gone"},
		`{"Error":{"Code":"UnsupportedApiVersion","Message":"x"}}`:              {"UnsupportedApiVersion", "x"},
		`{"code":"Conflict","message":"dup"}`:                                   {"Conflict", "dup"},
		`plain text failure`:                                                    {"", "plain text failure"},
		`{"unexpected":true}`:                                                   {"", ""},
		`{"error":{"code":"BadArgument","message":"m","details":{"code":"c"}}}`: {"BadArgument", "m"},
		`{"code":"BadArgument","message":"m","details":"not a detail"}`:         {"BadArgument", "m"},
	} {
		code, msg, _ := decodeErrorBody([]byte(body))
		if code != want[0] || msg != want[1] {
			t.Errorf("%s: got %q %q", body, code, msg)
		}
	}
}

func TestOperationIDFromLocation(t *testing.T) {
	id, err := OperationIDFromLocation("https://marketplaceapi.microsoft.com/api/saas/subscriptions/s-1/operations/op-9?api-version=2018-08-31")
	if err != nil || id != "op-9" {
		t.Fatalf("got %q, %v", id, err)
	}
	for _, bad := range []string{"", "https://x/api/saas/subscriptions/s-1", "https://x/operations/"} {
		if _, err := OperationIDFromLocation(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestPurchaseTokenFromQuery(t *testing.T) {
	cases := map[string]string{
		"token=ab%2Bcd%2Fef%3D%3D": "ab+cd/ef==",
		"x=1&token=ab+cd":          "ab+cd", // a raw "+" is part of the token, never a space
		"token=ab%20cd":            "ab+cd", // a proxy already turned "+" into a space
		"other=1":                  "",
	}
	for in, want := range cases {
		if got := PurchaseTokenFromQuery(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestBatchSizeIsCheckedLocally(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c := newTestClient(t, srv.URL)
	for _, n := range []int{0, MaxBatchSize + 1} {
		if _, err := c.PostBatchUsageEvents(context.Background(), make([]UsageEvent, n)); !errors.Is(err, ErrBatchSize) {
			t.Errorf("%d events: %v", n, err)
		}
	}
	if calls.Load() != 0 {
		t.Fatal("an oversized batch must not be sent")
	}
}

func TestDevTokenSourceClaims(t *testing.T) {
	src := &DevTokenSource{TenantID: "tid-1", ClientID: "app-1", Secret: []byte("s3cret")}
	tok, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := src.Token(context.Background())
	if again != tok {
		t.Error("a valid token should be reused")
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte("s3cret"), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithAudience(ResourceAppID)); err != nil {
		t.Fatal(err)
	}
	if claims["tid"] != "tid-1" || claims["appid"] != "app-1" {
		t.Fatalf("claims %v", claims)
	}
}

// TestMSALTokenSource runs MSAL's real client-credentials flow against a local Entra stand-in: discovery,
// token request with the Marketplace scope, and MSAL's cache serving the second call.
func TestMSALTokenSource(t *testing.T) {
	var tokenCalls atomic.Int32
	srv := fakeentra.Start(t, fakeentra.Grant(func(r *http.Request) bool {
		tokenCalls.Add(1)
		return r.Form.Get("grant_type") == "client_credentials" && strings.Contains(" "+r.Form.Get("scope")+" ", " "+Scope+" ") &&
			r.Form.Get("client_secret") == "s3cret"
	}, "access-token-1"))

	src, err := NewMSALTokenSource(MSALConfig{Authority: srv.URL, TenantID: fakeentra.TenantID, ClientID: "app-1", ClientSecret: "s3cret", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		tok, err := src.Token(context.Background())
		if err != nil || tok != "access-token-1" {
			t.Fatalf("token %q, %v", tok, err)
		}
	}
	if n := tokenCalls.Load(); n != 1 {
		t.Fatalf("MSAL should cache the token: %d token requests", n)
	}

	bad, err := NewMSALTokenSource(MSALConfig{Authority: srv.URL, TenantID: fakeentra.TenantID, ClientID: "app-1", ClientSecret: "rotated", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := NewClient(srv.URL+"/api", bad)
	_, err = c.GetSubscription(context.Background(), "sub")
	e, ok := AsError(err)
	if !ok || e.Code != "TokenAcquisitionFailed" || e.Retryable || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("a rejected secret must fail loudly and not be retried: %v", err)
	}

	if _, err := NewMSALTokenSource(MSALConfig{TenantID: "t", ClientID: "c"}); err == nil {
		t.Error("no credential must be an error")
	}
}

// TestMSALTokenEndpointFailures: Entra throttling or failing (429, 5xx) or not answering is transient and
// retryable, with its Retry-After; a rejected credential (400, 401) is not.
func TestMSALTokenEndpointFailures(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		retryAfter string
		retryable  bool
		wait       time.Duration
	}{
		{"throttled", http.StatusTooManyRequests, "12", true, 12 * time.Second},
		{"unavailable", http.StatusServiceUnavailable, "", true, 0},
		{"server error", http.StatusInternalServerError, "", true, 0},
		{"bad secret", http.StatusBadRequest, "", false, 0},
		{"unauthorized", http.StatusUnauthorized, "", false, 0},
		{"connection dropped", 0, "", true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakeentra.Start(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.status == 0 {
					if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
						conn.Close()
					}
					return
				}
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_ = json.NewEncoder(w).Encode(map[string]any{"error": "failure", "error_description": "AADSTS-test: " + tc.name})
			})
			src, err := NewMSALTokenSource(MSALConfig{Authority: srv.URL, TenantID: fakeentra.TenantID, ClientID: "app-1", ClientSecret: "s3cret", HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			c, _ := NewClient(srv.URL+"/api", src)
			_, err = c.GetSubscription(context.Background(), "sub")
			e, ok := AsError(err)
			if !ok || e.Code != "TokenAcquisitionFailed" || e.StatusCode != 0 {
				t.Fatalf("got %v", err)
			}
			if e.Retryable != tc.retryable || e.RetryAfter != tc.wait {
				t.Fatalf("retryable=%v after %v, want %v after %v: %v", e.Retryable, e.RetryAfter, tc.retryable, tc.wait, err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error reveals the secret: %v", err)
			}
		})
	}
}

// One walk over @nextLink is one logical operation: every page request carries the same correlation ID, a
// fresh one per walk unless the caller set one, and a fresh request ID each.
func TestSubscriptionPagesShareACorrelationID(t *testing.T) {
	var mu sync.Mutex
	var corr, reqs []string
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		corr = append(corr, r.Header.Get("x-ms-correlationid"))
		reqs = append(reqs, r.Header.Get("x-ms-requestid"))
		mu.Unlock()
		page := SubscriptionsPage{Subscriptions: []Subscription{{ID: "s-" + r.URL.Query().Get("continuationToken")}}}
		switch r.URL.Query().Get("continuationToken") {
		case "":
			page.NextLink = srv.URL + "/api/saas/subscriptions/?continuationToken=p2&api-version=2018-08-31"
		case "p2":
			page.NextLink = srv.URL + "/api/saas/subscriptions/?continuationToken=p3&api-version=2018-08-31"
		}
		json.NewEncoder(w).Encode(page)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/api")
	walk := func(ctx context.Context) []string {
		t.Helper()
		mu.Lock()
		corr, reqs = nil, nil
		mu.Unlock()
		subs, err := c.ListSubscriptions(ctx)
		if err != nil || len(subs) != 3 {
			t.Fatalf("walk: %d subscriptions, %v", len(subs), err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(corr) != 3 || reqs[0] == reqs[1] || reqs[1] == reqs[2] {
			t.Fatalf("requests %v", reqs)
		}
		for _, id := range corr {
			if id != corr[0] || id == "" {
				t.Fatalf("pages of one walk carry correlation IDs %v", corr)
			}
		}
		return append([]string(nil), corr...)
	}
	first := walk(context.Background())
	if second := walk(context.Background()); second[0] == first[0] {
		t.Fatalf("two walks share correlation ID %s", first[0])
	}
	ctx := WithCorrelationID(context.Background(), "reconcile/run-1")
	if got := walk(ctx); got[0] != correlationID(ctx) {
		t.Fatalf("the caller's correlation ID was not used: %v", got)
	}
}

// Answers in the shapes Microsoft's own emulator gives, which differ from the documentation: an error
// whose details is one object (not an array) keeps its code, message and detail; 200 [] from List
// available plans is no plans; operations and webhooks spelling operationRequestedSource keep the source.
func TestMicrosoftsVariationsDecode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/activate"):
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"code":"Bad Argument","message":"One or more errors have occurred","target":"activate",` +
				`"details":{"code":"RequiredField","message":"The plan id is required","target":"plan id"}}`))
		case strings.HasSuffix(r.URL.Path, "/listAvailablePlans"):
			_, _ = w.Write([]byte(`[]`))
		case strings.Contains(r.URL.Path, "/operations/"):
			_, _ = w.Write([]byte(`{"id":"op-1","subscriptionId":"sub-1","action":"ChangePlan","status":"InProgress","operationRequestedSource":"Partner"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL)
	ctx := context.Background()

	t.Run("error details as one object", func(t *testing.T) {
		err := c.Activate(ctx, "sub-1", SubscriberPlan{PlanID: "basic"})
		e, ok := AsError(err)
		if !ok || e.StatusCode != http.StatusBadRequest || e.Code != "Bad Argument" || e.Message != "One or more errors have occurred" ||
			len(e.Details) != 1 || e.Details[0].Code != "RequiredField" || e.Details[0].Target != "plan id" {
			t.Fatalf("error with one detail object: %#v", err)
		}
		if !strings.Contains(err.Error(), "The plan id is required") {
			t.Fatalf("the error text lacks the detail: %v", err)
		}
	})
	t.Run("200 [] from List available plans", func(t *testing.T) {
		plans, err := c.ListAvailablePlans(ctx, "sub-1", "")
		if err != nil || len(plans) != 0 {
			t.Fatalf("got %+v, %v", plans, err)
		}
	})
	t.Run("operationRequestedSource", func(t *testing.T) {
		op, err := c.GetOperation(ctx, "sub-1", "op-1")
		if err != nil || op.OperationRequestSource != SourcePartner {
			t.Fatalf("operation: %+v, %v", op, err)
		}
		var ev WebhookEvent
		mustDecode(t, []byte(`{"id":"op-2","subscriptionId":"sub-1","action":"Unsubscribe","status":"Succeeded","operationRequestedSource":"Azure"}`), &ev)
		if ev.OperationRequestSource != SourceAzure || ev.ID != "op-2" || ev.Action != ActionUnsubscribe {
			t.Fatalf("webhook: %+v", ev)
		}
		// The documented spelling wins when both are present.
		mustDecode(t, []byte(`{"id":"op-3","operationRequestSource":"Partner","operationRequestedSource":"Azure"}`), &ev)
		if ev.OperationRequestSource != SourcePartner {
			t.Fatalf("both spellings: %+v", ev)
		}
	})
}
