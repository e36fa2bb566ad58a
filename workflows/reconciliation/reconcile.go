// Package reconciliation checks our subscriptions against Microsoft's records on a schedule. Microsoft gives up
// on a webhook after eight hours and promises no order, so a reconciliation run lists every subscription
// of the publisher, compares each with its workflow's state, and sends a snapshot signal where they
// differ; the subscription workflow heals itself through the same transitions a webhook would drive.
// Subscriptions Microsoft knows and we do not are adopted: their workflow starts from Microsoft's state.
package reconciliation

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	acts "saasengine/activities/reconciliation"
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
	PagesPerRun int         `json:"pagesPerRun,omitempty"`
	Totals      acts.Report `json:"totals"`
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
func recordMetrics(m client.MetricsHandler, page acts.Report) {
	//workflowcheck:ignore metrics, in any order (nothing of them reaches the history)
	for outcome, n := range map[string]int{"in_sync": page.InSync, "adopted": page.Adopted, "healed": page.Healed, "ignored": page.Ignored, "error": page.Errors} {
		if n > 0 {
			m.WithTags(map[string]string{"outcome": outcome}).Counter(MetricSubscriptions).Inc(int64(n))
		}
	}
	//workflowcheck:ignore metrics, in any order
	for kind, n := range page.Drift {
		m.WithTags(map[string]string{"kind": kind}).Counter(MetricDrift).Inc(int64(n))
	}
}

// QueryReport returns the running report of a reconciliation.
const QueryReport = "report"

// ReconciliationWorkflow (type WorkflowType) lists every subscription page by page and reconciles each
// page in one activity (bounded parallelism inside it). It continues as new every PagesPerRun pages so
// that reconciling 10,000 subscriptions keeps each run's history small.
func ReconciliationWorkflow(ctx workflow.Context, in Input) (acts.Report, error) {
	if in.PagesPerRun <= 0 {
		in.PagesPerRun = 20
	}
	if in.Totals.Started.IsZero() {
		in.Totals.Started = workflow.Now(ctx).UTC()
	}
	report := in.Totals
	if err := workflow.SetQueryHandler(ctx, QueryReport, func() (acts.Report, error) { return report, nil }); err != nil {
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
	var a *acts.Activities
	next := in.NextLink
	for pages := 0; ; pages++ {
		if pages == in.PagesPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			// By its type name: the SDK would name the function by its short name alone, which once
			// resolved to the metering workflow (both were called Workflow).
			return report, workflow.NewContinueAsNewError(ctx, WorkflowType, Input{NextLink: next, PagesPerRun: in.PagesPerRun, Totals: report})
		}
		var page acts.Page
		if err := workflow.ExecuteActivity(ctx, a.FetchPage, next).Get(ctx, &page); err != nil {
			return report, fmt.Errorf("listing Microsoft's subscriptions: %w", err)
		}
		var pr acts.Report
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
