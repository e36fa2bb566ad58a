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
	"saasengine/emulator"
	"saasengine/emulator/emulatortest"
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

// inSync is an engine whose workflow agrees with Microsoft on every subscription.
type inSync struct {
	subs map[string]marketplace.Subscription
}

func (e inSync) Ours(_ context.Context, id string) (reconciliation.Ours, bool, error) {
	s := e.subs[id]
	return reconciliation.Ours{Status: s.Status, PlanID: s.PlanID, Quantity: int64(s.Quantity), TermEnd: s.Term.EndDate.Time}, true, nil
}

func (inSync) Snapshot(context.Context, marketplace.Subscription) error {
	return errors.New("a subscription in sync needs no snapshot")
}

// A throttled or failing List operations is read again within the page, so one transient fault does not
// leave a subscription unchecked until the next run.
func TestAPageRetriesATransientRead(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	p := env.Purchase(t, "basic", 0)
	ctx := context.Background()
	if err := env.Client.Activate(ctx, p.SubscriptionID, marketplace.SubscriberPlan{PlanID: "basic"}); err != nil {
		t.Fatal(err)
	}
	sub, err := env.Client.GetSubscription(ctx, p.SubscriptionID)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []emulator.Fault{
		{Endpoint: emulator.EndpointListOperations, Status: 503, Count: 1},
		{Endpoint: emulator.EndpointListOperations, Status: 429, RetryAfter: 1, Count: 1},
	} {
		if err := env.Emulator.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	a := &reconciliation.Activities{Marketplace: env.Client, Engine: inSync{subs: map[string]marketplace.Subscription{sub.ID: *sub}}}
	var s testsuite.WorkflowTestSuite
	aenv := s.NewTestActivityEnvironment()
	aenv.RegisterActivity(a)
	v, err := aenv.ExecuteActivity(a.ReconcilePage, []marketplace.Subscription{*sub})
	if err != nil {
		t.Fatal(err)
	}
	var rep reconciliation.Report
	if err := v.Get(&rep); err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 0 || rep.InSync != 1 {
		t.Fatalf("want the subscription checked and in sync after two transient faults, got %s (%v)", rep, rep.ErrorSamples)
	}
	if n := env.Emulator.Calls(emulator.EndpointListOperations, sub.ID); n != 3 {
		t.Fatalf("List operations was called %d times, want 3 (two faults, then the answer)", n)
	}
}

// hung is an engine whose reads never answer (a describe or query stuck behind a lost connection).
type hung struct{}

func (hung) Ours(ctx context.Context, _ string) (reconciliation.Ours, bool, error) {
	<-ctx.Done()
	return reconciliation.Ours{}, false, ctx.Err()
}

func (hung) Snapshot(ctx context.Context, _ marketplace.Subscription) error {
	<-ctx.Done()
	return ctx.Err()
}

// A check that hangs is cut off at CheckTimeout and counted as an error: the page finishes with the rest
// checked, instead of holding its activity until Temporal gives it up.
func TestAHungCheckDoesNotHoldThePage(t *testing.T) {
	subs := []marketplace.Subscription{{ID: "a", Status: marketplace.StatusSubscribed}, {ID: "b", Status: marketplace.StatusSubscribed}}
	a := &reconciliation.Activities{Engine: hung{}, Concurrency: 1, CheckTimeout: 50 * time.Millisecond}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	v, err := env.ExecuteActivity(a.ReconcilePage, subs)
	if err != nil {
		t.Fatal(err)
	}
	var rep reconciliation.Report
	if err := v.Get(&rep); err != nil {
		t.Fatal(err)
	}
	if rep.Seen != 2 || rep.Errors != 2 {
		t.Fatalf("want both checks seen and cut off as errors, got %s", rep)
	}
}
