package activities

import (
	"errors"
	"slices"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"saasengine/marketplace"
)

// Logged reports whether an activity failure has been logged where it happened: the Marketplace client
// logs every failed call once, with its request and correlation IDs, and the activities log provisioning
// failures. The SDK's own line for such a failure would only repeat it.
func Logged(err error) bool {
	if _, ok := marketplace.AsError(err); ok {
		return true
	}
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && slices.Contains(loggedTypes, ae.Type())
}

// loggedTypes are the application errors MapError makes of failures that were logged.
var loggedTypes = []string{
	ErrMarketplaceRetryable, ErrMarketplaceUnauthorized, ErrMarketplaceBadRequest, ErrMarketplaceForbidden,
	ErrMarketplaceNotFound, ErrMarketplaceConflict, ErrMarketplaceRejected, ErrProvisioningRejected, ErrProvisioningRetryable,
}

// sdkActivityError is the message of the SDK's line for each failed activity attempt.
const sdkActivityError = "Activity error."

// QuietLogged wraps the Temporal SDK's logger so that its line for a failed activity attempt is Debug
// when the failure was logged already (see Logged): a throttled call retried by Temporal is then one
// warning with its request IDs, not that warning plus an error-level line per attempt. Every other line
// passes unchanged.
func QuietLogged(l log.Logger) log.Logger { return quietLogger{l} }

type quietLogger struct{ log.Logger }

func (q quietLogger) Error(msg string, keyvals ...any) {
	if msg == sdkActivityError && loggedIn(keyvals) {
		q.Logger.Debug(msg, keyvals...)
		return
	}
	q.Logger.Error(msg, keyvals...)
}

func (q quietLogger) With(keyvals ...any) log.Logger {
	return quietLogger{log.With(q.Logger, keyvals...)}
}

func (q quietLogger) WithCallerSkip(depth int) log.Logger {
	if s, ok := q.Logger.(log.WithSkipCallers); ok {
		return quietLogger{s.WithCallerSkip(depth)}
	}
	return q
}

func loggedIn(keyvals []any) bool {
	for _, v := range keyvals {
		if err, ok := v.(error); ok && Logged(err) {
			return true
		}
	}
	return false
}
