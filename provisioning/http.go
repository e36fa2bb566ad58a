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
// (X-Signature: sha256=<hex HMAC-SHA256 of the body>) and carrying the step's Idempotency-Key. A 2xx is
// success; a 4xx is a *PermanentError; a 5xx or a transport failure is an error worth retrying.
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
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderIdempotencyKey, key)
	req.Header.Set(HeaderSignature, Sign(h.Secret, body))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now().Unix(), 10))
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
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return &PermanentError{StatusCode: resp.StatusCode, Message: path + ": " + snippet(rb, resp.Status)}
	default:
		return fmt.Errorf("provisioning: %s: %d: %s", path, resp.StatusCode, snippet(rb, resp.Status))
	}
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

// Sign returns the X-Signature value of body: "sha256=" and the hex HMAC-SHA256 of body keyed by secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header (an X-Signature value) signs body with secret. ISVs use it in
// their callback receivers; the comparison takes constant time.
func VerifySignature(secret string, body []byte, header string) bool {
	got, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return false
	}
	gotMAC, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(gotMAC, m.Sum(nil))
}
