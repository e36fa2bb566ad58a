package marketplace

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
)

// Error is a failed call to a Marketplace API. It carries what a retry policy needs: whether the failure is
// worth retrying and after how long. The client itself never loops; durable retries belong to the caller
// (Temporal activities in this project).
type Error struct {
	// Op names the call, e.g. "resolve" or "get subscription".
	Op string
	// StatusCode is the HTTP status, or 0 when no response arrived.
	StatusCode int
	// Code and Message are Microsoft's error code and message when the body carried them.
	Code    string
	Message string
	// RequestID and CorrelationID identify the attempt and the logical operation; Microsoft support asks for them.
	RequestID     string
	CorrelationID string
	// Retryable is true for throttling (429), server errors (5xx), timeouts and broken connections, and
	// for Entra throttling or failing; false for everything else, whatever StatusCode says (a credential
	// Entra refused has no Marketplace status at all). The client decides it once, when the call fails;
	// callers read it through IsRetryable and do not second-guess it.
	Retryable bool
	// RetryAfter is the delay Microsoft asked for in Retry-After, or 0.
	RetryAfter time.Duration
	// Details are the specific reasons under a generic Code: a Metering API 400 says BadArgument at the top
	// and Expired, ResourceNotActive, InvalidDimension... in its details.
	Details []ErrorDetail
	// Duplicate is the usage event Microsoft had already accepted, on a metering 409.
	Duplicate *UsageEventResult
	// Err is the transport error, when there was no response.
	Err error
}

// ErrorDetail is one entry of an error body's details: what was wrong (Code) with which field (Target).
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target"`
}

// Error reads well when wrapped: "marketplace: get subscription: 404 EntityNotFound: ... (request r, correlation c)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("marketplace: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	switch {
	case e.StatusCode == 0 && e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString(strconv.Itoa(e.StatusCode))
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
		if e.Message != "" {
			b.WriteString(": " + e.Message)
		} else if e.Code == "" {
			b.WriteString(" " + http.StatusText(e.StatusCode))
		}
		// The first detail is usually the real reason ("One or more errors have occurred" is not).
		if len(e.Details) > 0 {
			d := e.Details[0]
			b.WriteString(" [")
			b.WriteString(d.Code)
			if d.Target != "" {
				b.WriteString(" " + d.Target)
			}
			if d.Message != "" {
				b.WriteString(": " + d.Message)
			}
			if len(e.Details) > 1 {
				fmt.Fprintf(&b, "; and %d more", len(e.Details)-1)
			}
			b.WriteString("]")
		}
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.RequestID != "" || e.CorrelationID != "" {
		fmt.Fprintf(&b, " (request %s, correlation %s)", e.RequestID, e.CorrelationID)
	}
	return b.String()
}

// Unwrap returns the transport error, if any.
func (e *Error) Unwrap() error { return e.Err }

// AsError finds a *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsRetryable reports whether err is a Marketplace failure worth retrying: the one classification every
// caller uses. Errors that are not a Marketplace failure are not retryable by this rule; a caller that
// retries them (a cancelled attempt, say) decides so on its own grounds.
func IsRetryable(err error) bool {
	e, ok := AsError(err)
	return ok && e.Retryable
}

// StatusCode returns the HTTP status of a Marketplace failure, or 0.
func StatusCode(err error) int {
	if e, ok := AsError(err); ok {
		return e.StatusCode
	}
	return 0
}

// IsNotFound reports a 404 from the Marketplace.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// retryableStatus reports which statuses are transient: throttling and server-side failures.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
}

// retryableTransport reports whether a transport error is worth retrying: timeouts, resets, refused
// connections and unexpected EOFs are; a cancelled context or a malformed URL is not.
func retryableTransport(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset")
}

// tokenError classifies a failure to get an access token. Entra answering 429 or 5xx (MSAL reports the
// answer as a CallErr) or not answering at all is transient and worth a retry, after Retry-After when Entra
// sent one. Anything else, above all 400/401 for a wrong or rotated secret, is a configuration problem no
// retry fixes: not retryable, so it surfaces loudly. StatusCode stays 0: it is the Marketplace's status, and
// the Marketplace never answered.
func tokenError(err error, now time.Time) *Error {
	e := &Error{Code: "TokenAcquisitionFailed", Err: fmt.Errorf("acquire access token: %w", err)}
	var ce msalerrors.CallErr
	if errors.As(err, &ce) && ce.Resp != nil {
		e.Retryable = retryableStatus(ce.Resp.StatusCode)
		if e.Retryable {
			e.RetryAfter = ParseRetryAfter(ce.Resp.Header.Get("Retry-After"), now)
		}
		return e
	}
	e.Retryable = retryableTransport(err)
	return e
}

// maxRetryAfter caps what a Retry-After may ask for. A huge value (a bug, or a hostile proxy) would
// otherwise overflow time.Duration into a negative delay or park a retry for years.
const maxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header as delay-seconds or an HTTP date, at most a day; 0 when
// absent, past or malformed. The one parser of the project: the provisioning client uses it too.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case err != nil && !strings.HasPrefix(v, "-"), secs > int64(maxRetryAfter/time.Second):
			return maxRetryAfter
		case secs <= 0:
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// errorBody captures the error shapes the APIs use: {"error":{"code","message","details"}} (fulfillment),
// {"Error":{"Code","Message"}} (api-version errors), {"code","message","target","details":[{"code",
// "message","target"}]} (metering) and a bare {"message"}.
type errorBody struct {
	Error *struct {
		Code    string       `json:"code"`
		Message string       `json:"message"`
		Details errorDetails `json:"details"`
	} `json:"error"`
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Details errorDetails `json:"details"`
}

// errorDetails is an error body's details: documented as an array, but Microsoft's own emulator sends one
// object, and a body that cannot be read must not cost the code and message beside it.
type errorDetails []ErrorDetail

// UnmarshalJSON accepts an array of details, a single object, or null; anything else is ignored.
func (d *errorDetails) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '[':
		var list []ErrorDetail
		if json.Unmarshal(b, &list) == nil {
			*d = list
		}
	case len(b) > 0 && b[0] == '{':
		var one ErrorDetail
		if json.Unmarshal(b, &one) == nil {
			*d = errorDetails{one}
		}
	}
	return nil
}

// decodeErrorBody fills code, message and details from whatever error shape the body has; a body that is
// not JSON becomes the message, trimmed.
func decodeErrorBody(body []byte) (code, message string, details []ErrorDetail) {
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err == nil {
		if eb.Error != nil && (eb.Error.Code != "" || eb.Error.Message != "") {
			return eb.Error.Code, eb.Error.Message, []ErrorDetail(eb.Error.Details)
		}
		if eb.Code != "" || eb.Message != "" {
			return eb.Code, eb.Message, []ErrorDetail(eb.Details)
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") {
		return "", "", nil
	}
	return "", s, nil
}
