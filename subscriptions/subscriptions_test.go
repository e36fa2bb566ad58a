package subscriptions

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
