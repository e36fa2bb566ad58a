package reconciliation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"saasengine/activities"
	"saasengine/activities/reconciliation"
	"saasengine/marketplace"
)

// failingMarketplace fails List subscriptions with err.
type failingMarketplace struct{ err error }

func (m failingMarketplace) ListSubscriptionsPage(context.Context, string) (*marketplace.SubscriptionsPage, error) {
	return nil, m.err
}

func (failingMarketplace) ListOperations(context.Context, string) ([]marketplace.Operation, error) {
	return nil, nil
}

// Listing fails as every other Marketplace call does (activities.MapError): what the client calls
// retryable is retried after Retry-After, anything else stops at once with the same error types.
func TestFetchPageClassifiesFailuresAsActivitiesDo(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	for _, tc := range []struct {
		name      string
		err       *marketplace.Error
		typ       string
		retryable bool
		after     time.Duration
	}{
		{"throttled", &marketplace.Error{Op: "list subscriptions", StatusCode: 429, Retryable: true, RetryAfter: 9 * time.Second}, activities.ErrMarketplaceRetryable, true, 9 * time.Second},
		{"forbidden", &marketplace.Error{Op: "list subscriptions", StatusCode: 403}, activities.ErrMarketplaceForbidden, false, 0},
		{"credential refused", &marketplace.Error{Op: "list subscriptions", Code: "TokenAcquisitionFailed"}, activities.ErrMarketplaceRejected, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := s.NewTestActivityEnvironment()
			a := &reconciliation.Activities{Marketplace: failingMarketplace{err: tc.err}}
			env.RegisterActivity(a)
			_, err := env.ExecuteActivity(a.FetchPage, "")
			var ae *temporal.ApplicationError
			if err == nil || !errors.As(err, &ae) {
				t.Fatalf("want an application error, got %v", err)
			}
			if ae.Type() != tc.typ || ae.NonRetryable() == tc.retryable || ae.NextRetryDelay() != tc.after {
				t.Fatalf("got type %s nonRetryable=%v after %v, want %s retryable=%v after %v", ae.Type(), ae.NonRetryable(), ae.NextRetryDelay(), tc.typ, tc.retryable, tc.after)
			}
		})
	}
}
