// Package engine assembles the worker side of the engine: the subscription workflow, its activities,
// reconciliation and metering, registered on one task queue with the Marketplace client and the ISV's
// provisioner. The worker binary, the all-in-one command and the integration tests all build their worker
// here, so they run the same wiring.
package engine

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	meteracts "saasengine/activities/metering"
	"saasengine/activities/notification"
	reconacts "saasengine/activities/reconciliation"
	subacts "saasengine/activities/subscription"
	"saasengine/config"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/tracing"
	"saasengine/workflows/metering"
	"saasengine/workflows/reconciliation"
	"saasengine/workflows/subscription"
)

// Deps are what the worker's activities talk to.
type Deps struct {
	Marketplace *marketplace.Client
	Provisioner subacts.Provisioner
	Logger      *zap.Logger
	// ReconcileConcurrency bounds parallel checks within a reconciliation page; default 10.
	ReconcileConcurrency int
	// Workflow are the options of the workflows the worker starts (reconciliation's adoptions); set
	// RequireApproval as the webhook server does, or adopted subscriptions skip the operator's approval.
	Workflow subscription.Options
	// Notify sends notices to operators (see Notifier); nil sends none.
	Notify *notification.Activities
}

// WorkerOptions are the worker's options from configuration: a stop timeout lets running activities
// finish when the worker is stopped (SIGTERM, a deployment) instead of cancelling them at once.
func WorkerOptions(w config.Worker) worker.Options {
	return worker.Options{WorkerStopTimeout: w.StopTimeout}
}

// SetWorkflowCacheSize sizes the process's workflow cache from configuration (the SDK's sticky cache,
// which every worker of the process shares). The SDK sizes the cache when the first worker of the process
// is created, so call this before NewWorker.
func SetWorkflowCacheSize(w config.Worker) {
	worker.SetStickyWorkflowCacheSize(w.WorkflowCacheSize)
}

// Workflows are the engine's workflows by type name. Each function's own name must differ from the
// others': where a workflow is named by its function (workflow.NewContinueAsNewError(ctx, fn), say), the
// SDK looks it up by that short name alone.
var Workflows = []struct {
	Type string
	Func any
}{
	{subscription.WorkflowType, subscription.SubscriptionWorkflow},
	{reconciliation.WorkflowType, reconciliation.ReconciliationWorkflow},
	{metering.WorkflowType, metering.MeteringWorkflow},
}

// NewWorker builds a worker on taskQueue with every workflow and activity of the engine registered.
func NewWorker(c client.Client, taskQueue string, d Deps, opts worker.Options) worker.Worker {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	w := worker.New(c, taskQueue, opts)
	for _, wf := range Workflows {
		w.RegisterWorkflowWithOptions(wf.Func, workflow.RegisterOptions{Name: wf.Type})
	}
	w.RegisterActivity(&subacts.Activities{Marketplace: d.Marketplace, Provisioner: d.Provisioner, Logger: d.Logger})
	w.RegisterActivity(&reconacts.Activities{
		Marketplace: d.Marketplace,
		// Reconciliation reaches subscription workflows through the same client the webhook server uses.
		Engine:      ReconciliationView(subscription.New(c, taskQueue, d.Workflow)),
		Concurrency: d.ReconcileConcurrency,
	})
	w.RegisterActivity(&meteracts.Activities{Marketplace: d.Marketplace})
	if d.Notify == nil {
		d.Notify = &notification.Activities{Logger: d.Logger}
	}
	w.RegisterActivity(d.Notify)
	return w
}

// Provisioner builds the configured provisioner.
func Provisioner(p config.Provisioning) (subacts.Provisioner, error) {
	switch p.Mode {
	case "http":
		return &provisioning.HTTP{BaseURL: p.URL, Secret: p.Secret, Client: &http.Client{Timeout: p.Timeout, Transport: tracing.Transport(nil)}}, nil
	default:
		d, err := provisioning.NewDemo(p.DemoFile)
		if err != nil {
			return nil, fmt.Errorf("demo provisioner: %w", err)
		}
		d.MaxQuantity = p.DemoMaxQuantity
		return d, nil
	}
}

// SetUpReconciliation prepares reconciliation before a worker starts: the hourly schedule when interval
// is positive, and the end of any run an earlier version left under a reconciliation ID as another
// workflow type (reconciliation.EndMistypedRuns; a failed check is logged, not fatal).
func SetUpReconciliation(ctx context.Context, c client.Client, taskQueue string, interval time.Duration, logger *zap.Logger) error {
	if interval > 0 {
		if err := reconciliation.EnsureSchedule(ctx, c, taskQueue, interval); err != nil {
			return err
		}
	}
	if ended, err := reconciliation.EndMistypedRuns(ctx, c); err != nil {
		logger.Warn("could not check the reconciliation runs left by an earlier version", zap.Error(err))
	} else if len(ended) > 0 {
		logger.Warn("ended reconciliation runs that had continued as the wrong workflow type", zap.Strings("workflowIds", ended))
	}
	return nil
}
