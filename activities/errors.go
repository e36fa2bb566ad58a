// Package activities is what every activity of the engine shares: one failure taxonomy (MapError turns
// Marketplace and provisioning failures into typed Temporal errors), the retry options workflows call them
// with, and logging that says a retried failure once. Each workflow's activities live in a sub-package
// named for it: subscription, metering, reconciliation.
package activities

import (
	"context"
	"errors"
	"go.temporal.io/sdk/activity"
	"net/http"

	"go.temporal.io/sdk/temporal"

	"saasengine/marketplace"
	"saasengine/provisioning"
)

// Error types of the application errors the activities return; the workflow tells failures apart by them.
const (
	// ErrMarketplaceRetryable is a throttled (429), failed (5xx) or unanswered call; Temporal retries it,
	// after Retry-After when Microsoft sent one.
	ErrMarketplaceRetryable = "MarketplaceRetryable"
	// ErrMarketplaceUnauthorized is a 401: credentials are wrong or expired. Not retried, like every
	// failure the client does not call retryable: it needs an operator, and fails loudly.
	ErrMarketplaceUnauthorized = "MarketplaceUnauthorized"
	ErrMarketplaceBadRequest   = "MarketplaceBadRequest"
	ErrMarketplaceForbidden    = "MarketplaceForbidden"
	ErrMarketplaceNotFound     = "MarketplaceNotFound"
	ErrMarketplaceConflict     = "MarketplaceConflict"
	// ErrMarketplaceRejected is any other failure that is not retryable: another 4xx, an undecodable
	// answer, or no answer because the call could not be made (a credential Entra refused).
	ErrMarketplaceRejected = "MarketplaceRejected"
	// ErrProvisioningRejected is a permanent refusal by the ISV's provisioning.
	ErrProvisioningRejected = "ProvisioningRejected"
	// ErrProvisioningRetryable is a busy or failing provisioning service (408, 429, 5xx); retried after
	// its Retry-After when it sent one.
	ErrProvisioningRetryable = "ProvisioningRetryable"
)

// MarketplaceFailure is the detail attached to Marketplace application errors.
type MarketplaceFailure struct {
	StatusCode int    `json:"statusCode"`
	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
	// Attempt is the activity attempt that got the answer. A refusal of a retried write may be about the
	// operation an earlier attempt created before its answer was lost.
	Attempt int32 `json:"attempt,omitempty"`
}

// Failure returns the MarketplaceFailure detail of an activity error, if it has one.
func Failure(err error) (MarketplaceFailure, bool) {
	var ae *temporal.ApplicationError
	var d MarketplaceFailure
	if !errors.As(err, &ae) || !ae.HasDetails() || ae.Details(&d) != nil {
		return MarketplaceFailure{}, false
	}
	return d, true
}

// MapError turns a Marketplace or provisioning failure into the application error Temporal should see:
// retryable ones (marketplace.IsRetryable) keep retrying, honouring Retry-After through NextRetryDelay;
// every other Marketplace failure stops at once, whatever its status, and carries a type the workflow can
// switch on. An attempt cut short (worker shutting down, activity timeout: ctx is done, whatever err says of
// itself) is retried. Other errors pass through and are retried. Inside an activity the attempt is recorded
// in Marketplace failures.
func MapError(ctx context.Context, err error) error {
	var attempt int32
	if activity.IsActivity(ctx) {
		attempt = activity.GetInfo(ctx).Attempt
	}
	if err != nil && ctx.Err() != nil {
		return temporal.NewApplicationError(err.Error(), ErrMarketplaceRetryable)
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The attempt was cut short (worker shutting down, activity timeout): nothing is known about the
		// call, so it is retried like any unanswered call.
		return temporal.NewApplicationError(err.Error(), ErrMarketplaceRetryable)
	}
	if me, ok := marketplace.AsError(err); ok {
		detail := MarketplaceFailure{StatusCode: me.StatusCode, Code: me.Code, Message: me.Message, Attempt: attempt}
		// Whether to retry is the client's call (marketplace.IsRetryable), never the status code's: status 0
		// is a cut-short attempt (retried above) but also a credential Entra refused, which no retry fixes.
		if marketplace.IsRetryable(err) {
			opts := temporal.ApplicationErrorOptions{Details: []any{detail}}
			if me.RetryAfter > 0 {
				opts.NextRetryDelay = me.RetryAfter
			}
			return temporal.NewApplicationErrorWithOptions(me.Error(), ErrMarketplaceRetryable, opts)
		}
		typ := ErrMarketplaceRejected
		switch me.StatusCode {
		case http.StatusUnauthorized:
			typ = ErrMarketplaceUnauthorized
		case http.StatusBadRequest:
			typ = ErrMarketplaceBadRequest
		case http.StatusForbidden:
			typ = ErrMarketplaceForbidden
		case http.StatusNotFound:
			typ = ErrMarketplaceNotFound
		case http.StatusConflict:
			typ = ErrMarketplaceConflict
		}
		return temporal.NewApplicationErrorWithOptions(me.Error(), typ, temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{detail}})
	}
	var pe *provisioning.PermanentError
	if errors.As(err, &pe) {
		return temporal.NewApplicationErrorWithOptions(pe.Error(), ErrProvisioningRejected, temporal.ApplicationErrorOptions{NonRetryable: true})
	}
	var re *provisioning.RetryableError
	if errors.As(err, &re) {
		return temporal.NewApplicationErrorWithOptions(re.Error(), ErrProvisioningRetryable, temporal.ApplicationErrorOptions{NextRetryDelay: re.RetryAfter})
	}
	return err
}

// ErrorType returns the application error type found in err's chain (as the workflow sees an activity
// failure), or "".
func ErrorType(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Type()
	}
	return ""
}
