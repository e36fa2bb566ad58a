package activities

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"saasengine/internal/fakeentra"
	"saasengine/marketplace"
	"saasengine/provisioning"
)

func TestMapError(t *testing.T) {
	err := MapError(&marketplace.Error{Op: "get subscription", StatusCode: 429, Retryable: true, RetryAfter: 7 * time.Second})
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, ErrMarketplaceRetryable, ae.Type())
	assert.False(t, ae.NonRetryable())
	assert.Equal(t, 7*time.Second, ae.NextRetryDelay())

	// Not retryable by the client's classification: never retried, whatever the status (0: no answer
	// because the call could not be made).
	for code, typ := range map[int]string{0: ErrMarketplaceRejected, 400: ErrMarketplaceBadRequest, 401: ErrMarketplaceUnauthorized, 403: ErrMarketplaceForbidden, 404: ErrMarketplaceNotFound, 409: ErrMarketplaceConflict, 412: ErrMarketplaceRejected} {
		err := MapError(&marketplace.Error{Op: "activate", StatusCode: code, Code: "EntityNotFound", Message: "no such thing"})
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, typ, ae.Type(), "status %d", code)
		assert.True(t, ae.NonRetryable(), "status %d", code)
		assert.Contains(t, ae.Error(), "EntityNotFound: no such thing")
		var d MarketplaceFailure
		require.NoError(t, ae.Details(&d))
		assert.Equal(t, code, d.StatusCode)
	}

	err = MapError(&provisioning.PermanentError{StatusCode: 422, Message: "nope"})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, ErrProvisioningRejected, ae.Type())
	assert.True(t, ae.NonRetryable())

	err = MapError(&provisioning.RetryableError{StatusCode: 429, Message: "busy", RetryAfter: 9 * time.Second})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, ErrProvisioningRetryable, ae.Type())
	assert.False(t, ae.NonRetryable())
	assert.Equal(t, 9*time.Second, ae.NextRetryDelay())

	plain := errors.New("boom")
	assert.Equal(t, plain, MapError(plain))
	assert.Nil(t, MapError(nil))
}

type opsOnly struct {
	Marketplace
	err   error
	corrs []string
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
		{"400 not tolerated", &marketplace.Error{StatusCode: 400}, false, false, ErrMarketplaceBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := s.NewTestActivityEnvironment()
			a := &Activities{Marketplace: &opsOnly{err: tc.err}}
			env.RegisterActivity(a)
			v, err := env.ExecuteActivity(a.UpdateOperation, UpdateOperationInput{SubscriptionID: "s", OperationID: "o", Status: marketplace.UpdateSuccess, TolerateBadRequest: tc.tolerate})
			if tc.wantError != "" {
				require.Error(t, err)
				assert.Equal(t, tc.wantError, ErrorType(err))
				f, ok := Failure(err)
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
	assert.Equal(t, ErrMarketplaceRejected, ae.Type())
	assert.Contains(t, ae.Error(), "AADSTS7000215", "the failure says why")
	assert.Equal(t, int32(1), tokenRequests.Load(), "one attempt, one token request")
}
