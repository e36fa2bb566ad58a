// Command worker is the engine's Temporal worker: the subscription workflows, their Marketplace and
// provisioning activities, and reconciliation. Run as many as you like against one task queue.
// Configuration is by environment variables (README.md, "Configuration").
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"saasengine/config"
	"saasengine/engine"
	"saasengine/internal/probe"
	"saasengine/tracing"
	"saasengine/workflows/subscription"
)

func main() {
	probe.FromArgs(os.Args)
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run() error {
	getenv := config.Getenv(os.Getenv)
	obs := config.ObservabilityFromEnv(getenv)
	logger, err := config.NewLogger(obs)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	stopTracing, err := tracing.Setup(context.Background(), "saasengine-worker", getenv)
	if err != nil {
		return err
	}
	defer stopTracing()
	tc := config.TemporalFromEnv(getenv)
	pc, err := config.ProvisioningFromEnv(getenv)
	if err != nil {
		return err
	}
	interval, err := config.ReconcileInterval(getenv)
	if err != nil {
		return err
	}
	wc, err := config.WorkerFromEnv(getenv)
	if err != nil {
		return err
	}
	nc, err := config.NotifyFromEnv(getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	metrics, err := config.NewMetrics()
	if err != nil {
		return err
	}
	if obs.MetricsAddr != "off" {
		// Listen before anything else starts, so a taken port fails the start and says which setting.
		ln, err := net.Listen("tcp", obs.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics endpoint (METRICS_ADDR=%s; off disables it): %w", obs.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.HTTPHandler())
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("metrics endpoint", zap.Error(err))
			}
		}()
		defer srv.Close()
	}

	c, err := config.Dial(ctx, tc, logger, metrics)
	if err != nil {
		return err
	}
	defer c.Close()
	api, err := config.MarketplaceFromEnv(getenv).NewClient(logger)
	if err != nil {
		return err
	}
	prov, err := engine.Provisioner(pc)
	if err != nil {
		return err
	}
	if closer, ok := prov.(io.Closer); ok {
		defer closer.Close()
	}
	// A search attribute added by a newer version (SaaSPurchaserTenant, say) must exist before the
	// workflows upsert it, or their tasks fail: add what is missing, where this worker may.
	if err := subscription.RegisterSearchAttributes(ctx, c.OperatorService(), tc.Namespace); err != nil {
		logger.Warn("could not check or add the search attributes; run `starter setup` (on Temporal Cloud, add them to the namespace) before the workflows need them",
			zap.Error(err))
	}
	if err := engine.SetUpReconciliation(ctx, c, tc.TaskQueue, interval, logger); err != nil {
		return err
	}
	deps := engine.Deps{Marketplace: api, Provisioner: prov, Logger: logger, Workflow: subscription.Options{RequireApproval: wc.RequireApproval},
		Notify: engine.Notifier(nc, logger.Named("notify"))}
	engine.SetWorkflowCacheSize(wc)
	w := engine.NewWorker(c, tc.TaskQueue, deps, engine.WorkerOptions(wc))
	logger.Info("worker starting", zap.String("temporal", tc.Address), zap.String("namespace", tc.Namespace), zap.String("taskQueue", tc.TaskQueue),
		zap.String("provisioning", pc.Mode), zap.Duration("stopTimeout", wc.StopTimeout), zap.Bool("requireApproval", wc.RequireApproval),
		zap.Int("workflowCacheSize", wc.WorkflowCacheSize))
	// Stops on SIGINT/SIGTERM, letting running activities finish for up to WORKER_STOP_TIMEOUT.
	return w.Run(interruptOn(ctx))
}

// interruptOn turns a context into the channel worker.Run stops on.
func interruptOn(ctx context.Context) <-chan any {
	ch := make(chan any)
	go func() { <-ctx.Done(); close(ch) }()
	return ch
}
