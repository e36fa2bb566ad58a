package subscription

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"saasengine/activities"
	"saasengine/internal/fakeentra"
	"saasengine/marketplace"
)

type opsOnly struct {
	Marketplace
	err error
}

func (o *opsOnly) UpdateOperation(ctx context.Context, subscriptionID, operationID string, u marketplace.OperationUpdate) error {
	return o.err
}

func TestUpdateOperationAlreadyDecided(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	for _, tc := range []struct {
		name      string
		err       error
		tolerate  bool
		decided   bool
		wantError string
	}{
		{"ok", nil, false, false, ""},
		{"409", &marketplace.Error{StatusCode: 409}, false, true, ""},
		{"400 tolerated", &marketplace.Error{StatusCode: 400}, true, true, ""},
		{"400 not tolerated", &marketplace.Error{StatusCode: 400}, false, false, activities.ErrMarketplaceBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := s.NewTestActivityEnvironment()
			a := &Activities{Marketplace: &opsOnly{err: tc.err}}
			env.RegisterActivity(a)
			v, err := env.ExecuteActivity(a.UpdateOperation, UpdateOperationInput{SubscriptionID: "s", OperationID: "o", Status: marketplace.UpdateSuccess, TolerateBadRequest: tc.tolerate})
			if tc.wantError != "" {
				require.Error(t, err)
				assert.Equal(t, tc.wantError, activities.ErrorType(err))
				f, ok := activities.Failure(err)
				require.True(t, ok, "the failure carries its details")
				assert.Equal(t, int32(1), f.Attempt, "the attempt is recorded for the workflow")
				return
			}
			require.NoError(t, err)
			var res UpdateOperationResult
			require.NoError(t, v.Get(&res))
			assert.Equal(t, tc.decided, res.AlreadyDecided)
		})
	}
}

// A credential Entra refuses is a configuration problem no retry fixes: the activity fails non-retryable
// on its first attempt, although the failure has no Marketplace status (the Marketplace was never asked),
// instead of retrying for as long as the retry policy allows.
func TestRefusedCredentialIsNotRetried(t *testing.T) {
	var tokenRequests atomic.Int32
	entra := fakeentra.Start(t, fakeentra.Grant(func(*http.Request) bool {
		tokenRequests.Add(1)
		return false
	}, ""))
	tokens, err := marketplace.NewMSALTokenSource(marketplace.MSALConfig{Authority: entra.URL, TenantID: fakeentra.TenantID,
		ClientID: "app-1", ClientSecret: "rotated-away", HTTPClient: entra.Client()})
	require.NoError(t, err)
	client, err := marketplace.NewClient(entra.URL+"/api", tokens)
	require.NoError(t, err)
	a := &Activities{Marketplace: client}

	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(a)
	activate := func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 5},
		})
		return workflow.ExecuteActivity(ctx, a.Activate, ActivateInput{SubscriptionID: "sub-1", PlanID: "basic"}).Get(ctx, nil)
	}
	env.RegisterWorkflow(activate)
	env.ExecuteWorkflow(activate)

	err = env.GetWorkflowError()
	require.Error(t, err)
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	assert.True(t, ae.NonRetryable(), "a refused credential must not be retried: %v", err)
	assert.Equal(t, activities.ErrMarketplaceRejected, ae.Type())
	assert.Contains(t, ae.Error(), "AADSTS7000215", "the failure says why")
	assert.Equal(t, int32(1), tokenRequests.Load(), "one attempt, one token request")
}
