// Command starter is the operators' CLI: list and inspect subscriptions, change plan or seats, cancel,
// approve an activation, report metered usage, run a reconciliation, and set a Temporal cluster up for the
// engine. It talks to
// Temporal only (TEMPORAL_* variables, README.md "Configuration").
//
// Exit codes: 0 done; 1 failed (Temporal unreachable, unexpected error); 2 usage; 3 no such subscription;
// 4 refused (by the workflow's validation or by Microsoft, or the operation ended Failed/Conflict).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	"saasengine/config"
	"saasengine/devserver"
	"saasengine/metering"
	"saasengine/reconcile"
	"saasengine/subscriptions"
	"saasengine/workflows"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitNotFound = 3
	exitRefused  = 4
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv, nil)
	stop()
	os.Exit(code)
}

const usage = `usage: starter <command> [flags] [arguments]

Commands:
  list                 list subscriptions (--status, --offer, --plan, --limit)
  show <id>            one subscription's full state
  change-plan <id> <planId>
  change-quantity <id> <quantity>
  cancel <id>          cancel at Microsoft (DELETE), then deprovision
  approve <id>         approve a pending activation, or retry a failed one
  retry <id>           retry what failed and needs a person (activation, deprovisioning, tenant sync)
  report-usage <id> <dimension> <quantity>
                       report metered usage (--time RFC3339, default now; --plan, default the
                       subscription's current plan; --id, an idempotency ID that makes sending it
                       again safe); posted to Microsoft once its hour has closed
  show-usage <id>      the subscription's meter: open hours and recent outcomes
  reconcile            start a reconciliation now (--wait to wait for its report)
  setup                register the search attributes and the reconciliation schedule
                       (--create-namespace on a self-hosted cluster; --reconcile-interval)

Every command takes --json for machine-readable output. Temporal is configured by TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, TEMPORAL_TLS_* and TEMPORAL_API_KEY.
Exit codes: 0 done, 1 failed, 2 usage, 3 not found, 4 refused.
`

// run is main without the process: tests pass their own client (dial is nil then unused).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, c client.Client) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	status := fs.String("status", "", "list: only this status (PendingFulfillmentStart, Subscribed, Suspended, Unsubscribed)")
	offer := fs.String("offer", "", "list: only this offer")
	plan := fs.String("plan", "", "list: only this plan; report-usage: the plan to bill")
	usageTime := fs.String("time", "", "report-usage: when the usage happened (RFC3339; default now)")
	reportID := fs.String("id", "", "report-usage: idempotency ID of the report")
	limit := fs.Int("limit", 100, "list: at most this many")
	wait := fs.Bool("wait", false, "reconcile: wait for the run's report")
	createNS := fs.Bool("create-namespace", false, "setup: create the namespace if missing (self-hosted clusters)")
	interval := fs.Duration("reconcile-interval", reconcile.DefaultInterval, "setup: how often reconciliation runs")
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	need := map[string]int{"list": 0, "show": 1, "change-plan": 2, "change-quantity": 2, "cancel": 1, "approve": 1, "retry": 1, "report-usage": 3, "show-usage": 1, "reconcile": 0, "setup": 0}
	n, known := need[cmd]
	if !known {
		fmt.Fprintf(stderr, "starter: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	if len(pos) != n {
		fmt.Fprintf(stderr, "starter %s: want %d argument(s), got %d\n", cmd, n, len(pos))
		return exitUsage
	}
	tc := config.TemporalFromEnv(config.Getenv(getenv))
	if c == nil {
		dialCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		var err error
		if cmd == "setup" && *createNS {
			if err := createNamespace(dialCtx, tc); err != nil {
				fmt.Fprintln(stderr, "starter setup:", err)
				return exitFailed
			}
		}
		if c, err = config.Dial(dialCtx, tc, nil, nil); err != nil {
			fmt.Fprintln(stderr, "starter:", err)
			return exitFailed
		}
		defer c.Close()
	}
	subs := subscriptions.New(c, tc.TaskQueue, workflows.Options{})
	grace, err := config.MeteringGrace(config.Getenv(getenv))
	if err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		return exitUsage
	}
	meter := metering.Client{Temporal: c, TaskQueue: tc.TaskQueue, Options: metering.Options{Grace: grace}}
	out := printer{w: stdout, json: *asJSON}

	var result any
	switch cmd {
	case "list":
		var all []subscriptions.Summary
		var token []byte
		for {
			var page []subscriptions.Summary
			page, token, err = subs.List(ctx, subscriptions.Filter{Status: *status, Offer: *offer, Plan: *plan, PageSize: min(*limit, 1000), PageToken: token})
			all = append(all, page...)
			if err != nil || len(token) == 0 || len(all) >= *limit {
				break
			}
		}
		if err == nil {
			if len(all) > *limit {
				all = all[:*limit]
			}
			out.table(all)
			return exitOK
		}
	case "show":
		result, err = subs.State(ctx, pos[0])
	case "change-plan":
		result, err = subs.ChangePlan(ctx, pos[0], pos[1])
	case "change-quantity":
		q, perr := strconv.ParseInt(pos[1], 10, 64)
		if perr != nil || q <= 0 {
			fmt.Fprintf(stderr, "starter change-quantity: %q is not a positive whole number\n", pos[1])
			return exitUsage
		}
		result, err = subs.ChangeQuantity(ctx, pos[0], q)
	case "cancel":
		result, err = subs.Cancel(ctx, pos[0])
	case "approve":
		result, err = subs.Approve(ctx, pos[0], 0)
	case "retry":
		result, err = subs.Retry(ctx, pos[0], 0)
	case "report-usage":
		u := metering.Usage{ID: *reportID, Dimension: pos[1], PlanID: *plan}
		var perr error
		if u.Quantity, perr = strconv.ParseFloat(pos[2], 64); perr != nil {
			fmt.Fprintf(stderr, "starter report-usage: %q is not a number\n", pos[2])
			return exitUsage
		}
		if *usageTime != "" {
			if u.Time, perr = time.Parse(time.RFC3339, *usageTime); perr != nil {
				fmt.Fprintf(stderr, "starter report-usage: --time %q is not an RFC 3339 time\n", *usageTime)
				return exitUsage
			}
		}
		err = meter.Report(ctx, pos[0], u)
		var invalid *metering.InvalidUsageError
		if errors.As(err, &invalid) || errors.Is(err, metering.ErrInvalidSubscription) {
			fmt.Fprintf(stderr, "starter report-usage: %v\n", err)
			return exitUsage
		}
		result = map[string]string{"status": "Accepted", "meter": metering.WorkflowID(pos[0])}
	case "show-usage":
		result, err = meter.State(ctx, pos[0])
	case "reconcile":
		result, err = runReconcile(ctx, c, tc.TaskQueue, *wait)
	case "setup":
		result, err = setup(ctx, c, tc, *interval)
	}
	if err != nil {
		return fail(stderr, cmd, err)
	}
	out.value(result)
	if r, ok := result.(workflows.CommandResult); ok && r.Status != "Succeeded" {
		return exitRefused
	}
	return exitOK
}

// parseInterspersed lets flags follow arguments ("show <id> --json"), which flag.Parse alone does not.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func fail(stderr io.Writer, cmd string, err error) int {
	var ce *subscriptions.CommandError
	switch {
	case errors.Is(err, metering.ErrNotFound):
		fmt.Fprintf(stderr, "starter %s: no meter has run for this subscription in the last day\n", cmd)
		return exitNotFound
	case errors.Is(err, subscriptions.ErrNotFound):
		fmt.Fprintf(stderr, "starter %s: no such subscription\n", cmd)
		return exitNotFound
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "starter %s: refused: %s (%s)\n", cmd, ce.Message, ce.Code)
		return exitRefused
	case errors.Is(err, subscriptions.ErrEnded):
		fmt.Fprintf(stderr, "starter %s: the subscription has ended\n", cmd)
		return exitRefused
	}
	fmt.Fprintf(stderr, "starter %s: %v\n", cmd, err)
	return exitFailed
}

func runReconcile(ctx context.Context, c client.Client, taskQueue string, wait bool) (any, error) {
	run, err := reconcile.Start(ctx, c, taskQueue)
	if err != nil {
		return nil, err
	}
	if !wait {
		return map[string]string{"workflowId": run.GetID(), "runId": run.GetRunID()}, nil
	}
	var rep reconcile.Report
	if err := run.Get(ctx, &rep); err != nil {
		return nil, fmt.Errorf("reconciliation %s: %w", run.GetID(), err)
	}
	return rep, nil
}

func setup(ctx context.Context, c client.Client, tc config.Temporal, interval time.Duration) (any, error) {
	if err := devserver.RegisterSearchAttributes(ctx, c.OperatorService(), tc.Namespace, workflows.SearchAttributes()); err != nil {
		return nil, fmt.Errorf("search attributes (on Temporal Cloud, add them in the Cloud UI or with tcld): %w", err)
	}
	if err := reconcile.EnsureSchedule(ctx, c, tc.TaskQueue, interval); err != nil {
		return nil, err
	}
	names := make([]string, 0)
	for k := range workflows.SearchAttributes() {
		names = append(names, k)
	}
	return map[string]any{"namespace": tc.Namespace, "searchAttributes": names, "schedule": reconcile.ScheduleID, "interval": interval.String()}, nil
}

func createNamespace(ctx context.Context, tc config.Temporal) error {
	tlsCfg, err := tc.TLS()
	if err != nil {
		return err
	}
	opts := client.Options{HostPort: tc.Address, ConnectionOptions: client.ConnectionOptions{TLS: tlsCfg}}
	if tc.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(tc.APIKey)
	}
	nc, err := client.NewNamespaceClient(opts)
	if err != nil {
		return err
	}
	defer nc.Close()
	err = nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{Namespace: tc.Namespace, WorkflowExecutionRetentionPeriod: durationpb.New(30 * 24 * time.Hour)})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("namespace %s: %w", tc.Namespace, err)
	}
	// A new namespace takes a moment to reach every frontend.
	for i := 0; i < 30; i++ {
		if _, err := nc.Describe(ctx, tc.Namespace); err == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return nil
}

type printer struct {
	w    io.Writer
	json bool
}

func (p printer) value(v any) {
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
		return
	}
	switch r := v.(type) {
	case workflows.CommandResult:
		fmt.Fprintf(p.w, "%s (operation %s)", r.Status, r.OperationID)
		if r.Message != "" {
			fmt.Fprintf(p.w, ": %s", r.Message)
		}
		fmt.Fprintln(p.w)
	case *workflows.State:
		tw := tabwriter.NewWriter(p.w, 0, 2, 2, ' ', 0)
		fmt.Fprintf(tw, "subscription\t%s\nstatus\t%s\nphase\t%s\noffer\t%s\nplan\t%s\nquantity\t%d\n", r.SubscriptionID, r.Status, r.Phase, r.OfferID, r.PlanID, r.Quantity)
		if !r.Term.EndDate.IsZero() {
			fmt.Fprintf(tw, "term\t%s %s to %s\n", r.Term.TermUnit, r.Term.StartDate.Format("2006-01-02"), r.Term.EndDate.Format("2006-01-02"))
		}
		if r.Pending != nil {
			fmt.Fprintf(tw, "pending\t%s %s\n", r.Pending.Action, r.Pending.ID)
		}
		if r.LastError != "" {
			fmt.Fprintf(tw, "last error\t%s\n", r.LastError)
		}
		_ = tw.Flush()
		fmt.Fprintln(p.w, "history:")
		for _, a := range r.Audit {
			move := ""
			if a.From != "" || a.To != "" {
				move = strings.TrimSpace(a.From + " -> " + a.To)
			}
			fmt.Fprintf(p.w, "  %s  %-18s %s", a.Time.Format(time.RFC3339), a.Kind, move)
			if a.OperationID != "" {
				fmt.Fprintf(p.w, "  op %s", a.OperationID)
			}
			if a.Note != "" {
				fmt.Fprintf(p.w, "  (%s)", a.Note)
			}
			fmt.Fprintln(p.w)
		}
	default:
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(p.w, string(b))
	}
}

func (p printer) table(rows []subscriptions.Summary) {
	if p.json {
		p.value(rows)
		return
	}
	tw := tabwriter.NewWriter(p.w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBSCRIPTION\tSTATUS\tPHASE\tOFFER\tPLAN\tSEATS\tRUNNING")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%v\n", r.SubscriptionID, r.Status, r.Phase, r.OfferID, r.PlanID, r.Quantity, r.Running)
	}
	_ = tw.Flush()
}
