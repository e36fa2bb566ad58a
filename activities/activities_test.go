package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

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

	for code, typ := range map[int]string{400: ErrMarketplaceBadRequest, 403: ErrMarketplaceForbidden, 404: ErrMarketplaceNotFound, 409: ErrMarketplaceConflict, 412: ErrMarketplaceRejected} {
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
