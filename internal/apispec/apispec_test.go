package apispec

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func load(t *testing.T) *Spec {
	t.Helper()
	s, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func exchange(method, rawURL, body string, status int, respBody string) *Exchange {
	u, _ := url.Parse(rawURL)
	h := http.Header{}
	h.Set("Authorization", "Bearer x")
	h.Set("Content-Type", "application/json")
	h.Set("x-ms-requestid", "8a0f3e8e-2c8a-4a8c-9a0e-7e1c0f6f7d11")
	rh := http.Header{}
	rh.Set("Content-Type", "application/json")
	return &Exchange{Method: method, URL: u, Header: h, Body: []byte(body), Status: status, RespHeader: rh, RespBody: []byte(respBody)}
}

const sub = "33333333-3333-4333-8333-333333333333"

// TestCheckerCanFail shows the checker accepts conforming traffic and rejects departures, so a clean run of
// the conformance tests means something.
func TestCheckerCanFail(t *testing.T) {
	s := load(t)
	ctx := context.Background()
	good := exchange("GET", "http://127.0.0.1:1/api/saas/subscriptions/"+sub+"?api-version=2018-08-31", "", 200,
		`{"id":"`+sub+`","planId":"gold","quantity":5,"saasSubscriptionStatus":"Subscribed","term":{"startDate":"2026-01-01T00:00:00Z"}}`)
	if vs := s.Check(ctx, good); len(vs) != 0 {
		t.Fatalf("conforming exchange rejected: %v", vs)
	}
	if good.OperationID != "FulfillmentOperations_GetSubscription" {
		t.Fatalf("routed to %q", good.OperationID)
	}
	bad := map[string]*Exchange{
		"no api-version":      exchange("GET", "http://h/api/saas/subscriptions/"+sub, "", 200, `{}`),
		"quantity as string":  exchange("GET", "http://h/api/saas/subscriptions/"+sub+"?api-version=2018-08-31", "", 200, `{"quantity":"5"}`),
		"unknown status enum": exchange("GET", "http://h/api/saas/subscriptions/"+sub+"?api-version=2018-08-31", "", 200, `{"saasSubscriptionStatus":"Paused"}`),
		"bad date-time":       exchange("GET", "http://h/api/saas/subscriptions/"+sub+"?api-version=2018-08-31", "", 200, `{"created":"yesterday"}`),
		"undocumented status": exchange("GET", "http://h/api/saas/subscriptions/"+sub+"?api-version=2018-08-31", "", 418, ``),
		"batch of 26":         exchange("POST", "http://h/api/batchUsageEvent?api-version=2018-08-31", `{"request":[`+strings.TrimSuffix(strings.Repeat(`{"quantity":1},`, 26), ",")+`]}`, 200, `{"count":0,"result":[]}`),
		"unknown path":        exchange("GET", "http://h/api/saas/nothing?api-version=2018-08-31", "", 200, `{}`),
		"non-uuid request id": func() *Exchange {
			ex := exchange("GET", "http://h/api/saas/subscriptions/"+sub+"?api-version=2018-08-31", "", 200, `{}`)
			ex.Header.Set("x-ms-requestid", "not-a-guid")
			return ex
		}(),
	}
	for name, ex := range bad {
		if vs := s.Check(ctx, ex); len(vs) == 0 {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAllowList(t *testing.T) {
	s := load(t)
	ctx := context.Background()
	for name, ex := range map[string]*Exchange{
		"429 anywhere":           exchange("POST", "http://h/api/saas/subscriptions/resolve?api-version=2018-08-31", "", 429, ``),
		"503":                    exchange("GET", "http://h/api/saas/subscriptions/"+sub+"?api-version=2018-08-31", "", 503, ``),
		"409 locked delete":      exchange("DELETE", "http://h/api/saas/subscriptions/"+sub+"?api-version=2018-08-31", "", 409, `{"error":{"code":"Conflict"}}`),
		"list without the slash": exchange("GET", "http://h/api/saas/subscriptions?api-version=2018-08-31", "", 200, `{"subscriptions":[]}`),
		"bad continuation token": exchange("GET", "http://h/api/saas/subscriptions/?api-version=2018-08-31&continuationToken=x", "", 400, `{"error":{"code":"BadArgument","message":"The continuation token is invalid."}}`),
	} {
		ex.Header.Set("x-ms-marketplace-token", "tok")
		if vs := s.Check(ctx, ex); len(vs) != 0 {
			t.Errorf("%s: %v", name, vs)
		}
	}
}

func TestOperationIDs(t *testing.T) {
	ids := load(t).OperationIDs()
	// 10 fulfillment and operations calls, 3 metering calls.
	if len(ids) != 13 || ids[0] != "FulfillmentOperations_ActivateSubscription" || ids[len(ids)-1] != "SubscriptionOperations_UpdateOperationStatus" {
		t.Fatalf("operation IDs %v", ids)
	}
}

// TestFilesAreMicrosoftsVerbatim: the embedded files are Microsoft's published ones, unedited (openapi/README.md
// names the commit and these digests); where they are wrong, allowlist.go says so instead.
func TestFilesAreMicrosoftsVerbatim(t *testing.T) {
	want := map[string]string{
		"saasapi.v2.json":     "8a50259e1be653608d51002059de80ba072a7e45daaf969c349ced934931e019",
		"meteringapi.v1.json": "1c431b39d9a975bb86109dab27f3f717f3c0434320541c88dcfa041dd14cc047",
	}
	for _, name := range Files {
		b, err := openapiFS.ReadFile("openapi/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want[name] {
			t.Errorf("%s: sha256 %s, want %s (Microsoft's file as published)", name, got, want[name])
		}
	}
}
