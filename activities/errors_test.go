package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"saasengine/marketplace"
	"saasengine/provisioning"
)

func TestMapError(t *testing.T) {
	ctx := context.Background()
	err := MapError(ctx, &marketplace.Error{Op: "get subscription", StatusCode: 429, Retryable: true, RetryAfter: 7 * time.Second})
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, ErrMarketplaceRetryable, ae.Type())
	assert.False(t, ae.NonRetryable())
	assert.Equal(t, 7*time.Second, ae.NextRetryDelay())

	// Not retryable by the client's classification: never retried, whatever the status (0: no answer
	// because the call could not be made).
	for code, typ := range map[int]string{0: ErrMarketplaceRejected, 400: ErrMarketplaceBadRequest, 401: ErrMarketplaceUnauthorized, 403: ErrMarketplaceForbidden, 404: ErrMarketplaceNotFound, 409: ErrMarketplaceConflict, 412: ErrMarketplaceRejected} {
		err := MapError(ctx, &marketplace.Error{Op: "activate", StatusCode: code, Code: "EntityNotFound", Message: "no such thing"})
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, typ, ae.Type(), "status %d", code)
		assert.True(t, ae.NonRetryable(), "status %d", code)
		assert.Contains(t, ae.Error(), "EntityNotFound: no such thing")
		var d MarketplaceFailure
		require.NoError(t, ae.Details(&d))
		assert.Equal(t, code, d.StatusCode)
	}

	err = MapError(ctx, &provisioning.PermanentError{StatusCode: 422, Message: "nope"})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, ErrProvisioningRejected, ae.Type())
	assert.True(t, ae.NonRetryable())

	err = MapError(ctx, &provisioning.RetryableError{StatusCode: 429, Message: "busy", RetryAfter: 9 * time.Second})
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, ErrProvisioningRetryable, ae.Type())
	assert.False(t, ae.NonRetryable())
	assert.Equal(t, 9*time.Second, ae.NextRetryDelay())

	plain := errors.New("boom")
	assert.Equal(t, plain, MapError(ctx, plain))
	assert.Nil(t, MapError(ctx, nil))
}
