package subscription

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A bounded wait ran out when its own context is done, or when the error says a deadline passed a moment
// before the context noticed (the server and gRPC give up a little early); never when the caller's
// context ended, and not for other errors.
func TestOutOfTime(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithTimeout(live, time.Nanosecond)
	defer cancel()
	<-done.Done()
	ended, endCaller := context.WithCancel(live)
	endCaller()
	running, stop := context.WithTimeout(live, time.Hour)
	defer stop()

	other := errors.New("connection refused")
	for name, tc := range map[string]struct {
		ctx, wctx context.Context
		err       error
		want      bool
	}{
		"wait done":                      {live, done, other, true},
		"caller gone":                    {ended, done, other, false},
		"deadline error before the wait": {live, running, fmt.Errorf("querying: %w", serviceerror.NewDeadlineExceeded("deadline")), true},
		"grpc deadline status":           {live, running, status.Error(codes.DeadlineExceeded, "context deadline exceeded"), true},
		"context deadline":               {live, running, fmt.Errorf("update: %w", context.DeadlineExceeded), true},
		"another failure":                {live, running, other, false},
	} {
		if got := outOfTime(tc.ctx, tc.wctx, tc.err); got != tc.want {
			t.Errorf("%s: outOfTime = %v, want %v", name, got, tc.want)
		}
	}
}

// A listing filters on statuses that exist, whatever their case; anything else is refused rather than
// answered with an empty list.
func TestFilterQueryStatus(t *testing.T) {
	q, err := Filter{Status: "subscribed", Plan: "team"}.Query()
	if err != nil || q != "WorkflowType = 'SaaSSubscription' AND SaaSStatus = 'Subscribed' AND SaaSPlan = 'team'" {
		t.Fatalf("Query = %q, %v", q, err)
	}
	for _, bad := range []string{"Nope", "Subscribed ", "x' OR '1'='1"} {
		if q, err := (Filter{Status: bad}).Query(); err == nil {
			t.Errorf("status %q: query %q, want an error", bad, q)
		}
	}
	if _, err := (Filter{Offer: "it's"}).Query(); err == nil {
		t.Error("a quote in the offer was accepted")
	}
}
