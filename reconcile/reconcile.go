// Package reconcile checks our subscriptions against Microsoft's records on a schedule. Microsoft gives up
// on a webhook after eight hours and promises no order, so a reconciliation run lists every subscription
// of the publisher, compares each with its workflow's state, and sends a snapshot signal where they
// differ; the subscription workflow heals itself through the same transitions a webhook would drive.
// Subscriptions Microsoft knows and we do not are adopted: their workflow starts from Microsoft's state.
package reconcile

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Names of the reconciliation workflow and its schedule, declared once.
const (
	WorkflowType = "SaaSReconciliation"
	ScheduleID   = "saas-reconciliation"
	// WorkflowIDPrefix prefixes on-demand runs; scheduled runs get the schedule's IDs.
	WorkflowIDPrefix = "saas-reconciliation/"
	// DefaultInterval is how often the schedule runs.
	DefaultInterval = time.Hour
)

// Input carries a run across continue-as-new: where listing stands and what was found so far.
type Input struct {
	// NextLink continues the listing; empty starts at the first page.
	NextLink string `json:"nextLink,omitempty"`
	// PagesPerRun bounds the history of one run: after that many pages it continues as new.
	PagesPerRun int    `json:"pagesPerRun,omitempty"`
	Totals      Report `json:"totals"`
}

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
	for k, v := range r.Drift {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("seen=%d inSync=%d adopted=%d healed=%d ignored=%d errors=%d drift[%s]", r.Seen, r.InSync, r.Adopted, r.Healed, r.Ignored, r.Errors, strings.Join(kinds, " "))
}

// Metric names, so operators can alert on drift and errors without opening each run in the Temporal UI.
// They are counters: the worker's Prometheus endpoint shows them with the suffix _total.
const (
	// MetricSubscriptions counts reconciled subscriptions by outcome (in_sync, adopted, healed, ignored,
	// error).
	MetricSubscriptions = "saas_reconciliation_subscriptions"
	// MetricDrift counts differences found, by kind (the Drift* constants).
	MetricDrift = "saas_reconciliation_drift"
	// MetricRuns counts reconciliation runs that went through every page.
	MetricRuns = "saas_reconciliation_runs"
)

// recordMetrics adds one page's findings to the metrics. The SDK's handler records nothing while a
// workflow replays, so a page is counted once.
func recordMetrics(m client.MetricsHandler, page Report) {
	for outcome, n := range map[string]int{"in_sync": page.InSync, "adopted": page.Adopted, "healed": page.Healed, "ignored": page.Ignored, "error": page.Errors} {
		if n > 0 {
			m.WithTags(map[string]string{"outcome": outcome}).Counter(MetricSubscriptions).Inc(int64(n))
		}
	}
	for kind, n := range page.Drift {
		m.WithTags(map[string]string{"kind": kind}).Counter(MetricDrift).Inc(int64(n))
	}
}

// QueryReport returns the running report of a reconciliation.
const QueryReport = "report"

// Workflow lists every subscription page by page and reconciles each page in one activity (bounded
// parallelism inside it). It continues as new every PagesPerRun pages so that reconciling 10,000
// subscriptions keeps each run's history small.
func Workflow(ctx workflow.Context, in Input) (Report, error) {
	if in.PagesPerRun <= 0 {
		in.PagesPerRun = 20
	}
	if in.Totals.Started.IsZero() {
		in.Totals.Started = workflow.Now(ctx).UTC()
	}
	report := in.Totals
	if err := workflow.SetQueryHandler(ctx, QueryReport, func() (Report, error) { return report, nil }); err != nil {
		return report, err
	}
	logger := workflow.GetLogger(ctx)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    10,
		},
	})
	var a *Activities
	next := in.NextLink
	for pages := 0; ; pages++ {
		if pages == in.PagesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			return report, workflow.NewContinueAsNewError(ctx, Workflow, Input{NextLink: next, PagesPerRun: in.PagesPerRun, Totals: report})
		}
		var page Page
		if err := workflow.ExecuteActivity(ctx, a.FetchPage, next).Get(ctx, &page); err != nil {
			return report, fmt.Errorf("listing Microsoft's subscriptions: %w", err)
		}
		var pr Report
		if len(page.Subscriptions) > 0 {
			if err := workflow.ExecuteActivity(ctx, a.ReconcilePage, page.Subscriptions).Get(ctx, &pr); err != nil {
				return report, fmt.Errorf("reconciling a page: %w", err)
			}
		}
		pr.Pages = 1
		report.Add(pr)
		recordMetrics(workflow.GetMetricsHandler(ctx), pr)
		if page.NextLink == "" {
			report.Finished = workflow.Now(ctx).UTC()
			logger.Info("reconciliation finished", "report", report.String())
			workflow.GetMetricsHandler(ctx).Counter(MetricRuns).Inc(1)
			notify(ctx, report)
			return report, nil
		}
		next = page.NextLink
	}
}
