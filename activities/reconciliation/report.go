package reconciliation

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Drift kinds.
const (
	DriftStatus      = "status"
	DriftPlan        = "plan"
	DriftQuantity    = "quantity"
	DriftTerm        = "term"
	DriftOutstanding = "outstandingOperation"
	DriftUnknown     = "unknownToUs"
	// DriftTenant: the tenant differs from Microsoft, or a failed phase waits for a retry.
	DriftTenant = "tenant"
)

// Report is what a run found and did.
type Report struct {
	Pages int `json:"pages"`
	Seen  int `json:"seen"`
	// InSync subscriptions needed nothing.
	InSync int `json:"inSync"`
	// Adopted subscriptions had no workflow; one was started from Microsoft's state.
	Adopted int `json:"adopted"`
	// Healed subscriptions differed and were sent a snapshot.
	Healed int `json:"healed"`
	// Ignored are Unsubscribed subscriptions we never knew: there is nothing to provision or undo.
	Ignored int `json:"ignored"`
	// Drift counts differences by kind (a subscription may count under several).
	Drift  map[string]int `json:"drift,omitempty"`
	Errors int            `json:"errors"`
	// ErrorSamples keeps the first few errors for the operator.
	ErrorSamples []string  `json:"errorSamples,omitempty"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished,omitzero"`
}

const maxErrorSamples = 20

// Add folds another report into r.
func (r *Report) Add(o Report) {
	r.Pages += o.Pages
	r.Seen += o.Seen
	r.InSync += o.InSync
	r.Adopted += o.Adopted
	r.Healed += o.Healed
	r.Ignored += o.Ignored
	r.Errors += o.Errors
	//workflowcheck:ignore sums into a map: the order does not matter
	for k, v := range o.Drift {
		if r.Drift == nil {
			r.Drift = map[string]int{}
		}
		r.Drift[k] += v
	}
	for _, e := range o.ErrorSamples {
		if len(r.ErrorSamples) < maxErrorSamples {
			r.ErrorSamples = append(r.ErrorSamples, e)
		}
	}
}

// String summarises the report for logs.
func (r Report) String() string {
	kinds := make([]string, 0, len(r.Drift))
	//workflowcheck:ignore sorted below
	for k, v := range r.Drift {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("seen=%d inSync=%d adopted=%d healed=%d ignored=%d errors=%d drift[%s]", r.Seen, r.InSync, r.Adopted, r.Healed, r.Ignored, r.Errors, strings.Join(kinds, " "))
}
