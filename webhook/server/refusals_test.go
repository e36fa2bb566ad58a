package server_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// A flood of forged webhooks is counted in full but logged at a bounded rate: ten lines per ten seconds.
func TestRefusedWebhooksAreLoggedAtABoundedRate(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	s := stacktest.Start(t, stacktest.Options{NoWorker: true, Logger: zap.New(core)})
	const flood = 200
	began := time.Now()
	for range flood {
		got := post(t, s.HTTP.URL+"/webhook", "forged", "application/json", event(uuid.NewString(), uuid.NewString(), marketplace.ActionUnsubscribe))
		if got.status != http.StatusUnauthorized {
			t.Fatalf("forged webhook: %+v", got)
		}
	}
	windows := int(time.Since(began)/(10*time.Second)) + 1
	lines := logs.FilterMessage("webhook refused").Len()
	if lines == 0 || lines > 10*windows {
		t.Errorf("%d refusals logged %d lines over %d ten-second windows; want 1 to %d", flood, lines, windows, 10*windows)
	}
	if v := metricValue(metrics(t, s), `saasengine_webhook_deliveries_total{action="unknown",outcome="unauthorized"}`); v != flood {
		t.Errorf("unauthorized webhooks counted %v, want %d", v, flood)
	}
}

// The admin listing's page tokens are the API's own: a genuine one continues the listing, an invented or
// altered one is a 400 at once (Temporal made it wait 10 s for a 503).
func TestAdminPageTokens(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ids []string
	for range 3 {
		id := uuid.NewString()
		ids = append(ids, id)
		if _, err := s.Client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: subscription.WorkflowID(id), TaskQueue: s.TaskQueue},
			subscription.WorkflowType, subscription.Input{SubscriptionID: id}); err != nil {
			t.Fatal(err)
		}
	}
	waitListing(t, s, "", ids...)
	var first, second listing
	if code, body := admin(t, s, "GET", "/admin/subscriptions?pageSize=2", stacktest.AdminToken, "", &first); code != 200 || len(first.Subscriptions) != 2 || first.NextPageToken == "" {
		t.Fatalf("first page: %d %s", code, body)
	}
	if code, body := admin(t, s, "GET", "/admin/subscriptions?pageSize=2&pageToken="+first.NextPageToken, stacktest.AdminToken, "", &second); code != 200 || len(second.Subscriptions) != 1 {
		t.Fatalf("second page: %d %s", code, body)
	}
	if got := append(first.ids(), second.ids()...); len(got) != 3 || strings.Contains(strings.Join(first.ids(), ","), second.ids()[0]) {
		t.Errorf("pages %v and %v", first.ids(), second.ids())
	}

	altered := []byte(first.NextPageToken)
	altered[len(altered)/2] ^= 1
	for name, token := range map[string]string{
		"invented":         base64.RawURLEncoding.EncodeToString([]byte("an invented page token, long enough")),
		"altered":          string(altered),
		"not base64":       "%25%25",
		"someone else's":   base64.RawURLEncoding.EncodeToString(make([]byte, 40)),
		"only a signature": base64.RawURLEncoding.EncodeToString(make([]byte, 16)),
	} {
		var e apiError
		if code, body := admin(t, s, "GET", "/admin/subscriptions?pageToken="+token, stacktest.AdminToken, "", &e); code != http.StatusBadRequest || e.Error.Code != "BadPageToken" {
			t.Errorf("%s page token: %d %s, want 400 BadPageToken", name, code, body)
		}
	}
	for _, size := range []string{"0", "1001", "ten"} {
		var e apiError
		if code, body := admin(t, s, "GET", "/admin/subscriptions?pageSize="+size, stacktest.AdminToken, "", &e); code != http.StatusBadRequest || e.Error.Code != "BadPageSize" {
			t.Errorf("pageSize %s: %d %s", size, code, body)
		}
	}
}
