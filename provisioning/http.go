package provisioning

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"saasengine/marketplace"
)

// Callback paths under HTTP.BaseURL, one per step.
const (
	PathProvision    = "provision"
	PathDecideChange = "decide-change"
	PathApplyChange  = "apply-change"
	PathSuspend      = "suspend"
	PathReinstate    = "reinstate"
	PathDeprovision  = "deprovision"
)

// Headers of a callback.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderSignature      = "X-Signature"
	HeaderTimestamp      = "X-Timestamp"
)

// HTTP calls the ISV's service: each step is a POST of JSON to BaseURL/<step>, signed with Secret
// (X-Timestamp: Unix seconds; X-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">) and carrying
// the step's Idempotency-Key. A 2xx is success; a 408, 429 or 5xx is a *RetryableError (with the
// service's Retry-After); any other 4xx is a *PermanentError; a transport failure is worth retrying.
type HTTP struct {
	BaseURL string
	Secret  string
	// Client defaults to one with a 10-second timeout.
	Client *http.Client
	// Now defaults to time.Now; it stamps X-Timestamp.
	Now func() time.Time
}

// Provision asks the ISV to create the tenant.
func (h *HTTP) Provision(ctx context.Context, r Request) error {
	return h.post(ctx, PathProvision, r.Key(), r, nil)
}

// DecideChange asks the ISV whether to accept a change; the answer is the response body, a Decision.
func (h *HTTP) DecideChange(ctx context.Context, r ChangeRequest) (Decision, error) {
	var d Decision
	err := h.post(ctx, PathDecideChange, r.DecideKey(), r, &d)
	return d, err
}

// ApplyChange tells the ISV to apply an accepted change.
func (h *HTTP) ApplyChange(ctx context.Context, r ChangeRequest) error {
	return h.post(ctx, PathApplyChange, r.Key(), r, nil)
}

// Suspend tells the ISV to restrict the tenant.
func (h *HTTP) Suspend(ctx context.Context, r Request) error {
	return h.post(ctx, PathSuspend, r.Key(), r, nil)
}

// Reinstate tells the ISV to restore the tenant.
func (h *HTTP) Reinstate(ctx context.Context, r Request) error {
	return h.post(ctx, PathReinstate, r.Key(), r, nil)
}

// Deprovision tells the ISV the subscription has ended.
func (h *HTTP) Deprovision(ctx context.Context, r Request) error {
	return h.post(ctx, PathDeprovision, r.Key(), r, nil)
}

func (h *HTTP) post(ctx context.Context, path, key string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return &PermanentError{Message: "encode request: " + err.Error()}
	}
	url := strings.TrimRight(h.BaseURL, "/") + "/" + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{Message: err.Error()}
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderIdempotencyKey, key)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(h.Secret, ts, body))
	hc := h.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("provisioning: %s: %w", path, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("provisioning: %s: read response: %w", path, err)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if out != nil {
			if err := json.Unmarshal(rb, out); err != nil {
				return fmt.Errorf("provisioning: %s: decode response: %w", path, err)
			}
		}
		return nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		// Busy or timed out, not a refusal: retried, no sooner than the service asks.
		return &RetryableError{StatusCode: resp.StatusCode, Message: path + ": " + snippet(rb, resp.Status),
			RetryAfter: retryAfter(resp.Header.Get("Retry-After"), now())}
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return &PermanentError{StatusCode: resp.StatusCode, Message: path + ": " + snippet(rb, resp.Status)}
	default:
		return fmt.Errorf("provisioning: %s: %d: %s", path, resp.StatusCode, snippet(rb, resp.Status))
	}
}

// maxRetryAfter bounds a Retry-After: a service asking for hours would stall the subscription.
const maxRetryAfter = 5 * time.Minute

// retryAfter is the service's Retry-After (marketplace.ParseRetryAfter), at most maxRetryAfter.
func retryAfter(v string, now time.Time) time.Duration {
	return min(marketplace.ParseRetryAfter(v, now), maxRetryAfter)
}

func snippet(b []byte, fallback string) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return fallback
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Sign returns the X-Signature value of a callback: "sha256=" and the hex HMAC-SHA256, keyed by secret,
// of "<timestamp>.<body>", timestamp being the X-Timestamp value. Signing the timestamp with the body
// lets receivers refuse a captured request replayed later.
func Sign(secret, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// DefaultSignatureTolerance is a reasonable tolerance for VerifySignature: callbacks are sent at once,
// so only clock skew separates X-Timestamp from the receiver's clock.
const DefaultSignatureTolerance = 5 * time.Minute

// VerifySignature reports whether a callback is authentic and fresh: signature (X-Signature) signs
// timestamp (X-Timestamp) and body with secret, and the timestamp is within tolerance of the receiver's
// clock, so a replayed old request is refused. ISVs use it in their callback receivers; the comparison
// takes constant time.
func VerifySignature(secret string, body []byte, timestamp, signature string, tolerance time.Duration) bool {
	return verifySignature(secret, body, timestamp, signature, tolerance, time.Now())
}

func verifySignature(secret string, body []byte, timestamp, signature string, tolerance time.Duration, now time.Time) bool {
	timestamp = strings.TrimSpace(timestamp)
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	if skew := now.Sub(time.Unix(sec, 0)); skew > tolerance || skew < -tolerance {
		return false
	}
	got, ok := strings.CutPrefix(strings.TrimSpace(signature), "sha256=")
	if !ok {
		return false
	}
	gotMAC, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	return hmac.Equal(gotMAC, mac(secret, timestamp, body))
}
