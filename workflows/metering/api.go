// Package metering reports metered usage to Microsoft durably: one SaaSMetering workflow per subscription
// sums the usage it is told about into (dimension, clock hour) buckets and, once an hour has closed, posts
// each bucket once through the Metering API's batch call. Microsoft accepts one event per subscription,
// dimension and hour, only for the last 24 hours: the workflow is what keeps a crash, a restart or a
// throttled API from losing an hour or billing it twice.
//
// This file is the package's contract: the workflow's names, the report it takes and the state it shows.
package metering

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Names of the workflow, its ID, its signal, its query and its metric.
const (
	WorkflowType     = "SaaSMetering"
	workflowIDPrefix = "saas-metering/"
	// SignalUsage carries a []Usage: the reports of one call, counted together.
	SignalUsage = "usage"
	// QueryState returns State.
	QueryState = "metering-state"
	// QueryCounted takes report IDs ([]string) and returns those the meter has counted already.
	QueryCounted = "metering-counted"
	// MetricEvents counts usage events by outcome (accepted, duplicate, rejected, expired, error); a
	// counter, saas_metering_events_total on the worker's Prometheus endpoint.
	MetricEvents = "saas_metering_events"
)

// WorkflowID is the ID of a subscription's metering workflow.
func WorkflowID(subscriptionID string) string { return workflowIDPrefix + subscriptionID }

// Window is how far back Microsoft accepts usage.
const Window = 24 * time.Hour

// MaxReports bounds the reports of one call (one signal), keeping each history event small.
const MaxReports = 100

// Usage is one report of usage: quantity units of dimension consumed at Time.
type Usage struct {
	// ID is the caller's idempotency key: a report whose ID was already counted is ignored, so a caller
	// may safely send a report again after an error. Optional.
	ID        string  `json:"id,omitempty"`
	Dimension string  `json:"dimension"`
	Quantity  float64 `json:"quantity"`
	// Time is when the usage happened; its UTC clock hour is the event it goes into. Client.Report
	// fills in the current time when it is zero.
	Time time.Time `json:"time,omitzero"`
	// PlanID is the plan to bill; empty means the subscription's current plan at posting time.
	PlanID string `json:"planId,omitempty"`
}

// MaxQuantity is the most units one report, and one dimension's hour (the sum of its reports), may hold.
// Microsoft takes a quantity as a JSON double with no stated maximum. Past 2^53 a double no longer counts
// whole units (x+1 == x), and a sum that kept growing would reach +Inf, which no JSON can carry, to
// Microsoft or through Temporal: a meter holding it could not post, show or carry its state.
const MaxQuantity = 1 << 53

// dimensionPattern is what Partner Center allows as a dimension ID.
var dimensionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]{0,49}$`)

// clockSkew tolerates callers whose clocks run a little ahead of ours.
const clockSkew = time.Minute

// InvalidUsageError is a report the engine refuses before anything is sent to Temporal.
type InvalidUsageError struct {
	// Index is the report's position in the call.
	Index  int
	Reason string
}

func (e *InvalidUsageError) Error() string {
	return fmt.Sprintf("usage report %d: %s", e.Index, e.Reason)
}

// ErrInvalidSubscription is a subscription ID that is not a GUID.
var ErrInvalidSubscription = errors.New("metering: the subscription ID is not a GUID")

// Check says why Microsoft would refuse the report at now, or nil: a dimension ID that cannot exist,
// a quantity that is not a positive number up to MaxQuantity, a time in the future or outside Microsoft's
// 24-hour window.
func (u Usage) Check(now time.Time) error {
	switch {
	case !dimensionPattern.MatchString(u.Dimension):
		return fmt.Errorf("dimension %q is not a dimension ID (letters, digits, '_', '-', '.'; at most 50)", u.Dimension)
	case math.IsNaN(u.Quantity) || math.IsInf(u.Quantity, 0) || u.Quantity <= 0:
		return fmt.Errorf("quantity %v must be a number greater than 0", u.Quantity)
	case u.Quantity > MaxQuantity:
		return fmt.Errorf("quantity %v is above %d, the most one hour of a dimension can hold", u.Quantity, int64(MaxQuantity))
	case u.Time.IsZero():
		return errors.New("time is required")
	case u.Time.After(now.Add(clockSkew)):
		return fmt.Errorf("time %s is in the future", u.Time.UTC().Format(time.RFC3339))
	case hourOf(u.Time).Add(Window).Before(now):
		return fmt.Errorf("time %s is too old: its hour, %s, is outside Microsoft's 24-hour window", u.Time.UTC().Format(time.RFC3339), hourOf(u.Time).Format(time.RFC3339))
	case len(u.ID) > 200 || len(u.PlanID) > 200:
		return errors.New("id and planId are at most 200 characters")
	}
	return nil
}

func validSubscriptionID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && !strings.ContainsAny(id, "{}")
}

// hourOf is the UTC clock hour a time falls in.
func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// Options tune a metering workflow; zero fields take the defaults.
type Options struct {
	// Grace is how long after an hour closes (and after the last report for it) its bucket waits for
	// late reports before it is posted. Default 5 minutes.
	Grace time.Duration `json:"grace,omitempty"`
	// RetryInterval is how long a bucket Microsoft answered Error for waits before it is posted again.
	// Default 10 minutes.
	RetryInterval time.Duration `json:"retryInterval,omitempty"`
	// IdleTimeout ends the workflow after that long without open buckets; the next report starts it
	// again. Default 25 hours (longer than Microsoft's window, so a retried report is still deduplicated).
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
	// SignalsPerRun bounds a run's history: after that many signals it continues as new. Default 500.
	SignalsPerRun int `json:"signalsPerRun,omitempty"`
	// MaxSeenIDs bounds the report IDs remembered for deduplication. Default 10,000.
	MaxSeenIDs int `json:"maxSeenIds,omitempty"`
}

func (o Options) withDefaults() Options {
	if o.Grace <= 0 {
		o.Grace = 5 * time.Minute
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = 10 * time.Minute
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 25 * time.Hour
	}
	if o.SignalsPerRun <= 0 {
		o.SignalsPerRun = 500
	}
	if o.MaxSeenIDs <= 0 {
		o.MaxSeenIDs = 10_000
	}
	return o
}

// Input starts a metering workflow and carries it across continue-as-new.
type Input struct {
	SubscriptionID string  `json:"subscriptionId"`
	Options        Options `json:"options,omitzero"`
	// What a previous run carries over.
	Buckets   []Bucket   `json:"buckets,omitempty"`
	SeenIDs   []string   `json:"seenIds,omitempty"`
	Recent    []Outcome  `json:"recent,omitempty"`
	Totals    Totals     `json:"totals,omitzero"`
	IdleSince *time.Time `json:"idleSince,omitempty"`
}

// Bucket is the usage of one dimension in one clock hour, not yet settled with Microsoft.
type Bucket struct {
	Dimension string    `json:"dimension"`
	Hour      time.Time `json:"hour"`
	Quantity  float64   `json:"quantity"`
	PlanID    string    `json:"planId,omitempty"`
	Reports   int       `json:"reports"`
	// LastReport is when the last report for this bucket arrived; late reports delay its posting.
	LastReport time.Time `json:"lastReport"`
	// Attempts counts posts that ended without a final answer (Error, an unknown status, a failed call).
	Attempts  int       `json:"attempts,omitempty"`
	LastError string    `json:"lastError,omitempty"`
	NotBefore time.Time `json:"notBefore,omitzero"`
}

// Outcomes of a bucket, as metrics and the query name them.
const (
	OutcomeAccepted  = "accepted"
	OutcomeDuplicate = "duplicate"
	OutcomeRejected  = "rejected"
	OutcomeExpired   = "expired"
	OutcomeError     = "error"
)

// Outcome is how one bucket was settled.
type Outcome struct {
	Dimension string    `json:"dimension"`
	Hour      time.Time `json:"hour"`
	Quantity  float64   `json:"quantity"`
	PlanID    string    `json:"planId,omitempty"`
	// Outcome is accepted, duplicate (Microsoft had that hour already), rejected (a permanent refusal)
	// or expired (older than Microsoft's window when it was due).
	Outcome string `json:"outcome"`
	// Status is Microsoft's status for the event (Accepted, Duplicate, InvalidDimension...).
	Status       string `json:"status,omitempty"`
	Reason       string `json:"reason,omitempty"`
	UsageEventID string `json:"usageEventId,omitempty"`
	// AcceptedQuantity is what Microsoft had accepted for a duplicate hour; QuantityDiffers says it is not
	// what this bucket held (usage came after the hour was posted, or from another sender).
	AcceptedQuantity float64   `json:"acceptedQuantity,omitempty"`
	QuantityDiffers  bool      `json:"quantityDiffers,omitempty"`
	Settled          time.Time `json:"settled"`
}

// Totals count settled buckets by outcome since the workflow started (across continue-as-new).
type Totals struct {
	Accepted  int `json:"accepted"`
	Duplicate int `json:"duplicate"`
	Rejected  int `json:"rejected"`
	Expired   int `json:"expired"`
	// Errors counts posts that will be retried.
	Errors int `json:"errors"`
	// IgnoredReports are reports whose ID had been counted already.
	IgnoredReports int `json:"ignoredReports"`
}

// State is what the query shows: open buckets (oldest first) and the most recent outcomes (newest last).
type State struct {
	SubscriptionID string     `json:"subscriptionId"`
	Open           []Bucket   `json:"open"`
	Recent         []Outcome  `json:"recent"`
	Totals         Totals     `json:"totals"`
	IdleSince      *time.Time `json:"idleSince,omitempty"`
}

// maxRecent bounds the outcomes kept for the query.
const maxRecent = 200
