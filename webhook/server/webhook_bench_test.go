package server_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"saasengine/internal/stacktest"
	"saasengine/marketplace"
)

// BenchmarkWebhookDelivery measures what Microsoft waits for on each notification: the signed token
// checked against the tenant's cached keys, the payload decoded, and the event made durable with
// Signal-With-Start on the subscription's workflow (a new subscription each time, the costlier start
// path), over loopback HTTP against the in-process Temporal server. No worker runs, so the figure is
// the webhook's own path, not the workflow's handling of the event. Run:
//
//	go test ./webhook/server -run '^$' -bench WebhookDelivery -benchtime 2000x
func BenchmarkWebhookDelivery(b *testing.B) {
	s, a := stackWithAuthority(b, stacktest.Options{NoWorker: true})
	token := "Bearer " + signRS256(b, genuineClaims(s), a.key, a.kid)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = event(uuid.NewString(), uuid.NewString(), marketplace.ActionSuspend)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req, _ := http.NewRequest(http.MethodPost, s.HTTP.URL+"/webhook", bytes.NewReader(bodies[i]))
		req.Header.Set("Authorization", token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("delivery %d: %d", i, resp.StatusCode)
		}
	}
}
