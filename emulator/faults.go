package emulator

import (
	"fmt"
	"math/rand/v2"
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
// operation of an Action. Count limits how many times it fires (0: until cleared); Rate makes it fire on
// that fraction of the calls or deliveries it matches, drawn from a generator seeded with Seed, so that a
// run can be repeated.
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

	// LostAnswer (with an Endpoint that writes) lets the call take effect and then answers Status (500 by
	// default) instead of its success: Microsoft applied the write, the publisher never heard.
	LostAnswer bool `json:"lostAnswer,omitempty"`

	// Rate, between 0 and 1, is the fraction of matching calls the fault fires on; 0 fires on every one.
	Rate float64 `json:"rate,omitempty"`
	// Seed seeds the draws of a Rate fault.
	Seed uint64 `json:"seed,omitempty"`

	Count int `json:"count,omitempty"`
	// Fired counts how often it applied.
	Fired int `json:"fired"`

	rng *rand.Rand
}

// lostAnswerEndpoints are the endpoints whose effect a lost answer keeps: Microsoft's writes.
var lostAnswerEndpoints = []string{"Activate", "UpdateSubscription", "DeleteSubscription", "UpdateOperation"}

func (f *Fault) validate() error {
	kinds := 0
	if f.LostAnswer {
		if f.Status == 0 {
			f.Status = http.StatusInternalServerError
		}
		known := false
		for _, e := range lostAnswerEndpoints {
			known = known || strings.EqualFold(e, f.Endpoint)
		}
		if !known {
			return fmt.Errorf("a lost answer needs an endpoint that writes (%s), not %q", strings.Join(lostAnswerEndpoints, ", "), f.Endpoint)
		}
		if f.Latency != 0 {
			return fmt.Errorf("a lost answer takes no latency")
		}
	}
	if f.Rate < 0 || f.Rate > 1 {
		return fmt.Errorf("fault rate %v: want a fraction between 0 and 1", f.Rate)
	}
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
	if f.Rate > 0 {
		f.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
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

// fireLocked returns the first live fault matching match that fires (every time, or at its rate) and
// counts it.
func (e *Emulator) fireLocked(match func(*Fault) bool) *Fault {
	for i, f := range e.faults {
		if !match(f) {
			continue
		}
		if f.rng != nil && f.rng.Float64() >= f.Rate {
			continue
		}
		f.Fired++
		if f.Count > 0 && f.Fired >= f.Count {
			e.faults = append(e.faults[:i:i], e.faults[i+1:]...)
		}
		c := *f
		c.rng = nil
		return &c
	}
	return nil
}

// applyFault delays or fails an API call as injected; it reports whether it answered the request.
func (e *Emulator) applyFault(w http.ResponseWriter, r *http.Request, endpoint string) bool {
	e.mu.Lock()
	f := e.fireLocked(func(f *Fault) bool {
		return f.Endpoint != "" && !f.LostAnswer && (f.Endpoint == "*" || strings.EqualFold(f.Endpoint, endpoint))
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
	faultAnswer(w, f)
	return true
}

// faultAnswer writes the error answer of f: Microsoft's error body for its status, with Retry-After.
func faultAnswer(w http.ResponseWriter, f *Fault) {
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
}

// takeLostAnswer draws a lost-answer fault for a call of endpoint, if one fires.
func (e *Emulator) takeLostAnswer(endpoint string) *Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fireLocked(func(f *Fault) bool { return f.LostAnswer && strings.EqualFold(f.Endpoint, endpoint) })
}

// answerWriter watches the status of an API answer: it counts the calls that took effect (2xx) and, for a
// lost-answer fault, replaces a success by the fault's error once the handler has applied the write.
type answerWriter struct {
	http.ResponseWriter
	lost    *Fault
	status  int
	swallow bool
}

func (a *answerWriter) WriteHeader(status int) {
	if a.status != 0 {
		return
	}
	a.status = status
	if a.lost != nil && status >= 200 && status < 300 {
		a.swallow = true
		a.Header().Del("Operation-Location")
		a.Header().Del("Location")
		faultAnswer(a.ResponseWriter, a.lost)
		return
	}
	a.ResponseWriter.WriteHeader(status)
}

func (a *answerWriter) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.WriteHeader(http.StatusOK)
	}
	if a.swallow {
		return len(b), nil
	}
	return a.ResponseWriter.Write(b)
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
