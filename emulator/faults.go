package emulator

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"saasengine/marketplace"
)

// Webhook fault kinds.
const (
	WebhookDrop      = "drop"
	WebhookDuplicate = "duplicate"
	WebhookReorder   = "reorder"
)

// Fault is one injected misbehaviour. API faults name an Endpoint ("*" for all); webhook faults name a
// Webhook kind and optionally an Action; operation faults name an Outcome for the next publisher-initiated
// operation of an Action. Count limits how many times it fires (0: until cleared).
type Fault struct {
	Endpoint string `json:"endpoint,omitempty"`
	// Status is the HTTP status to answer with (429, 500, 503, ...); 0 with Latency only delays.
	Status int `json:"status,omitempty"`
	// RetryAfter is the Retry-After of a 429 or 503, in seconds.
	RetryAfter int `json:"retryAfter,omitempty"`
	// RetryAfterDate sends Retry-After as an HTTP date instead of seconds.
	RetryAfterDate bool     `json:"retryAfterDate,omitempty"`
	Latency        Duration `json:"latency,omitempty"`

	Webhook string `json:"webhook,omitempty"`
	Action  string `json:"action,omitempty"`

	Outcome marketplace.OperationStatus `json:"outcome,omitempty"`

	Count int `json:"count,omitempty"`
	// Fired counts how often it applied.
	Fired int `json:"fired"`
}

func (f *Fault) validate() error {
	kinds := 0
	if f.Endpoint != "" {
		kinds++
		if f.Status == 0 && f.Latency == 0 {
			return fmt.Errorf("fault for endpoint %q needs a status or a latency", f.Endpoint)
		}
		if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
			return fmt.Errorf("fault status %d is not an error status", f.Status)
		}
	}
	if f.Webhook != "" {
		kinds++
		switch f.Webhook {
		case WebhookDrop, WebhookDuplicate, WebhookReorder:
		default:
			return fmt.Errorf("webhook fault %q: want drop, duplicate or reorder", f.Webhook)
		}
	}
	if f.Outcome != "" {
		kinds++
		if f.Outcome != marketplace.OperationFailed && f.Outcome != marketplace.OperationConflict {
			return fmt.Errorf("operation outcome %q: want Failed or Conflict", f.Outcome)
		}
	}
	if kinds != 1 {
		return fmt.Errorf("a fault names exactly one of endpoint, webhook or outcome")
	}
	if f.Count < 0 {
		return fmt.Errorf("fault count must not be negative")
	}
	return nil
}

// AddFault injects a fault.
func (e *Emulator) AddFault(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = append(e.faults, &f)
	return nil
}

// ClearFaults removes every injected fault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = nil
}

// fireLocked returns the first live fault matching match and counts it.
func (e *Emulator) fireLocked(match func(*Fault) bool) *Fault {
	for i, f := range e.faults {
		if !match(f) {
			continue
		}
		f.Fired++
		if f.Count > 0 && f.Fired >= f.Count {
			e.faults = append(e.faults[:i:i], e.faults[i+1:]...)
		}
		c := *f
		return &c
	}
	return nil
}

// applyFault delays or fails an API call as injected; it reports whether it answered the request.
func (e *Emulator) applyFault(w http.ResponseWriter, r *http.Request, endpoint string) bool {
	e.mu.Lock()
	f := e.fireLocked(func(f *Fault) bool {
		return f.Endpoint != "" && (f.Endpoint == "*" || strings.EqualFold(f.Endpoint, endpoint))
	})
	e.mu.Unlock()
	if f == nil {
		return false
	}
	if f.Latency > 0 {
		sleepCtx(r.Context(), f.Latency.D())
	}
	if f.Status == 0 {
		return false
	}
	if f.RetryAfter > 0 {
		if f.RetryAfterDate {
			// HTTP dates have whole seconds; round up so the client never retries early.
			at := time.Now().Add(time.Duration(f.RetryAfter)*time.Second + time.Second).UTC()
			w.Header().Set("Retry-After", at.Format(http.TimeFormat))
		} else {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
	}
	code := "InternalServerError"
	msg := "Internal server error. Retry the API call. If the error persists, contact Microsoft support."
	switch f.Status {
	case http.StatusTooManyRequests:
		code, msg = "TooManyRequests", "Rate limit is exceeded. Try again later."
	case http.StatusServiceUnavailable:
		code, msg = "ServiceUnavailable", "The service is temporarily unavailable."
	}
	apiError(w, f.Status, code, msg)
	return true
}

func (e *Emulator) takeWebhookFaultLocked(action string) string {
	f := e.fireLocked(func(f *Fault) bool {
		return f.Webhook != "" && (f.Action == "" || strings.EqualFold(f.Action, action))
	})
	if f == nil {
		return ""
	}
	return f.Webhook
}

func (e *Emulator) takeOutcomeLocked(action string) marketplace.OperationStatus {
	f := e.fireLocked(func(f *Fault) bool {
		return f.Outcome != "" && (f.Action == "" || strings.EqualFold(f.Action, action))
	})
	if f == nil {
		return ""
	}
	return f.Outcome
}
