package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"

	"saasengine/internal/stacktest"
	"saasengine/workflows/metering"
)

// Usage the Metering API would refuse is answered 400 with the usual envelope, and never reaches Temporal;
// good usage is 202 once Temporal has it, even before a worker runs.
func TestAdminUsageIsCheckedBeforeTemporal(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	id := uuid.NewString()
	path := "/admin/subscriptions/" + id + "/usage"
	ago := func(d time.Duration) string { return time.Now().UTC().Add(-d).Format(time.RFC3339) }
	for name, c := range map[string]struct{ body, code string }{
		"bad dimension":     {fmt.Sprintf(`{"dimension":"api calls!","quantity":1,"time":%q}`, ago(time.Hour)), "InvalidUsage"},
		"no dimension":      {fmt.Sprintf(`{"quantity":1,"time":%q}`, ago(time.Hour)), "InvalidUsage"},
		"zero quantity":     {fmt.Sprintf(`{"dimension":"api_calls","quantity":0,"time":%q}`, ago(time.Hour)), "InvalidUsage"},
		"negative quantity": {fmt.Sprintf(`[{"dimension":"api_calls","quantity":1,"time":%q},{"dimension":"api_calls","quantity":-2,"time":%q}]`, ago(time.Hour), ago(time.Hour)), "InvalidUsage"},
		"future":            {fmt.Sprintf(`{"dimension":"api_calls","quantity":1,"time":%q}`, ago(-time.Hour)), "InvalidUsage"},
		"older than 24 h":   {fmt.Sprintf(`{"dimension":"api_calls","quantity":1,"time":%q}`, ago(26*time.Hour)), "InvalidUsage"},
		"unknown field":     {`{"dimension":"api_calls","quantity":1,"units":3}`, "MalformedRequest"},
		"not a time":        {`{"dimension":"api_calls","quantity":1,"time":"yesterday"}`, "MalformedRequest"},
		"not JSON":          {`dimension=api_calls`, "MalformedRequest"},
		"empty array":       {`[]`, "InvalidUsage"},
		// An hour holds at most metering.MaxQuantity (2^53): past it a double stops counting units, and
		// two reports of 1e308 once summed to +Inf and wedged the meter.
		"above what an hour holds": {fmt.Sprintf(`{"dimension":"api_calls","quantity":1e308,"time":%q}`, ago(time.Hour)), "InvalidUsage"},
		"a call that overflows an hour": {fmt.Sprintf(`[{"dimension":"api_calls","quantity":5e15,"time":%q},{"dimension":"api_calls","quantity":5e15,"time":%q}]`,
			ago(time.Hour), ago(time.Hour)), "InvalidUsage"},
	} {
		var e apiError
		if code, body := admin(t, s, "POST", path, stacktest.AdminToken, c.body, &e); code != http.StatusBadRequest || e.Error.Code != c.code || e.Error.Message == "" {
			t.Errorf("%s: %d %s, want 400 %s", name, code, body, c.code)
		}
	}
	// The pair that wedged a meter, sent one after the other: each is refused.
	for range 2 {
		var e apiError
		if code, body := admin(t, s, "POST", path, stacktest.AdminToken, fmt.Sprintf(`{"dimension":"api_calls","quantity":1e308,"time":%q}`, ago(time.Hour)), &e); code != http.StatusBadRequest || e.Error.Code != "InvalidUsage" {
			t.Errorf("1e308: %d %s, want 400 InvalidUsage", code, body)
		}
	}
	var e apiError
	if code, body := admin(t, s, "POST", "/admin/subscriptions/not-a-guid/usage", stacktest.AdminToken, `{"dimension":"api_calls","quantity":1}`, &e); code != http.StatusBadRequest || e.Error.Code != "InvalidSubscription" {
		t.Errorf("not a GUID: %d %s", code, body)
	}
	if code, _ := admin(t, s, "POST", path, "wrong", `{"dimension":"api_calls","quantity":1}`, nil); code != http.StatusUnauthorized {
		t.Errorf("without the admin token: %d", code)
	}
	if code, body := admin(t, s, "GET", path, stacktest.AdminToken, "", &e); code != http.StatusNotFound || e.Error.Code != "NotFound" {
		t.Errorf("GET usage without a meter: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var nf *serviceerror.NotFound
	if _, err := s.Client.DescribeWorkflowExecution(ctx, metering.WorkflowID(id), ""); !errors.As(err, &nf) {
		t.Fatalf("a refused report started a meter: %v", err)
	}

	// No time means now.
	if code, body := admin(t, s, "POST", path, stacktest.AdminToken, `{"id":"r1","dimension":"api_calls","quantity":2.5}`, nil); code != http.StatusAccepted {
		t.Fatalf("good report: %d %s", code, body)
	}
	if _, err := s.Client.DescribeWorkflowExecution(ctx, metering.WorkflowID(id), ""); err != nil {
		t.Fatalf("no meter after a good report: %v", err)
	}

	s.Temporal.Stop()
	if code, body := admin(t, s, "POST", path, stacktest.AdminToken, `{"dimension":"api_calls","quantity":1}`, &e); code != http.StatusServiceUnavailable || e.Error.Code != "Unavailable" {
		t.Fatalf("Temporal down: %d %s", code, body)
	}
}
