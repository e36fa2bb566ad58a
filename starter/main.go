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
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/durationpb"

	reconacts "saasengine/activities/reconciliation"
	"saasengine/config"
	"saasengine/marketplace"
	"saasengine/workflows/metering"
	"saasengine/workflows/reconciliation"
	"saasengine/workflows/subscription"
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
  approve <id>         approve a pending activation, or retry a failed one, and wait for its outcome
  retry <id>           retry what failed and needs a person (activation, deprovisioning, tenant sync)
  report-usage <id> <dimension> <quantity>
                       report metered usage (--time RFC3339, default now; --plan, default the
                       subscription's current plan; --id, an idempotency ID that makes sending it
                       again safe; a report whose ID was counted is not sent again); posted to
                       Microsoft once its hour has closed. With MARKETPLACE_* set, a dimension the
                       plan does not have is refused at once
  show-usage <id>      the subscription's meter: open hours and recent outcomes
  reconcile            start a reconciliation now (--wait to wait for its report)
  setup                register the search attributes and the reconciliation schedule
                       (--create-namespace on a self-hosted cluster; --reconcile-interval)

Output is for people; every command takes --json for JSON instead. Temporal is configured by
TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, TEMPORAL_TLS_* and TEMPORAL_API_KEY.
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
	interval := fs.Duration("reconcile-interval", reconciliation.DefaultInterval, "setup: how often reconciliation runs")
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
	subs := subscription.New(c, tc.TaskQueue, subscription.Options{})
	grace, err := config.MeteringGrace(config.Getenv(getenv))
	if err != nil {
		fmt.Fprintln(stderr, "starter:", err)
		return exitUsage
	}
	meter := metering.Client{Temporal: c, TaskQueue: tc.TaskQueue, Options: metering.Options{Grace: grace}}
	if cmd == "report-usage" {
		if meter.Dimensions, err = dimensions(config.MarketplaceFromEnv(config.Getenv(getenv))); err != nil {
			fmt.Fprintln(stderr, "starter report-usage:", err)
			return exitUsage
		}
	}
	out := printer{w: stdout, json: *asJSON}

	var result any
	switch cmd {
	case "list":
		var all []subscription.Summary
		var token []byte
		for {
			var page []subscription.Summary
			page, token, err = subs.List(ctx, subscription.Filter{Status: *status, Offer: *offer, Plan: *plan, PageSize: min(*limit, 1000), PageToken: token})
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
		var st *subscription.State
		if st, err = subs.Approve(ctx, pos[0], 0); err == nil {
			st, err = waitActivation(ctx, subs, pos[0], st)
		}
		if err == nil {
			out.value(st)
			if st.Phase == subscription.PhaseActivationFailed {
				fmt.Fprintf(stderr, "starter approve: the activation failed: %s\n", st.LastError)
				return exitRefused
			}
			return exitOK
		}
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
		result, err = reportUsage(ctx, meter, pos[0], u)
		var invalid *metering.InvalidUsageError
		if errors.As(err, &invalid) || errors.Is(err, metering.ErrInvalidSubscription) {
			fmt.Fprintf(stderr, "starter report-usage: %v\n", err)
			return exitUsage
		}
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
	if r, ok := result.(subscription.CommandResult); ok && r.Status != "Succeeded" {
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
	var ce *subscription.CommandError
	switch {
	case errors.Is(err, metering.ErrNotFound):
		fmt.Fprintf(stderr, "starter %s: no meter has run for this subscription in the last day\n", cmd)
		return exitNotFound
	case errors.Is(err, subscription.ErrNotFound):
		fmt.Fprintf(stderr, "starter %s: no such subscription\n", cmd)
		return exitNotFound
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "starter %s: refused: %s (%s)\n", cmd, ce.Message, ce.Code)
		return exitRefused
	case errors.Is(err, subscription.ErrEnded):
		fmt.Fprintf(stderr, "starter %s: the subscription has ended\n", cmd)
		return exitRefused
	}
	fmt.Fprintf(stderr, "starter %s: %v\n", cmd, err)
	return exitFailed
}

// dimensions is the plan check of report-usage, when the Marketplace is configured (the CLI otherwise
// talks to Temporal only, and Microsoft's answer when the hour is posted tells instead).
func dimensions(mc config.Marketplace) (*metering.Dimensions, error) {
	if mc.TenantID == "" && mc.ClientID == "" {
		return nil, nil
	}
	tokens, err := mc.TokenSource()
	if err != nil {
		return nil, err
	}
	api, err := marketplace.NewClient(mc.BaseURL, tokens)
	if err != nil {
		return nil, err
	}
	return &metering.Dimensions{Marketplace: api}, nil
}

// usageReported is report-usage's answer.
type usageReported struct {
	// Status is Accepted, or AlreadyCounted when the meter had counted the report's ID (nothing was sent).
	Status string `json:"status"`
	ID     string `json:"id,omitempty"`
	Meter  string `json:"meter"`
}

// reportUsage sends one report, unless its ID says the meter has counted it already: then it says so
// instead of answering Accepted for a report the meter will ignore.
func reportUsage(ctx context.Context, meter metering.Client, subscriptionID string, u metering.Usage) (usageReported, error) {
	res := usageReported{Status: "Accepted", ID: u.ID, Meter: metering.WorkflowID(subscriptionID)}
	if u.ID != "" {
		counted, err := meter.Counted(ctx, subscriptionID, u.ID)
		if err != nil {
			return res, err
		}
		if len(counted) > 0 {
			res.Status = "AlreadyCounted"
			return res, nil
		}
	}
	return res, meter.Report(ctx, subscriptionID, u)
}

// waitActivation follows an approved subscription until its activation has an outcome, as the other
// commands wait for Microsoft's: activated (or ended), failed, or waiting for the buyer again.
func waitActivation(ctx context.Context, subs *subscription.Client, subscriptionID string, st *subscription.State) (*subscription.State, error) {
	for !activationSettled(*st) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		var err error
		if st, err = subs.State(ctx, subscriptionID); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// activationSettled reports a state in which nothing more happens to an activation without someone
// acting.
func activationSettled(st subscription.State) bool {
	switch st.Phase {
	case subscription.PhaseActivationFailed:
		return true
	case subscription.PhaseAwaitingConfirmation:
		// The approval may not have moved the workflow on yet; if it did not count as the buyer's
		// confirmation, the activation waits for the buyer.
		return !st.Confirmed
	case subscription.PhaseAwaitingApproval:
		return !st.Approved
	case subscription.PhaseNew, subscription.PhaseProvisioning, subscription.PhaseActivating:
		return false
	}
	return st.Ended() || st.Status == marketplace.StatusSubscribed || st.Status == marketplace.StatusSuspended || st.Status == marketplace.StatusUnsubscribed
}

func runReconcile(ctx context.Context, c client.Client, taskQueue string, wait bool) (any, error) {
	run, err := reconciliation.Start(ctx, c, taskQueue)
	if err != nil {
		return nil, err
	}
	if !wait {
		return run, nil
	}
	var rep reconacts.Report
	if err := c.GetWorkflow(ctx, run.WorkflowID, run.RunID).Get(ctx, &rep); err != nil {
		return nil, fmt.Errorf("reconciliation %s: %w", run.WorkflowID, err)
	}
	return rep, nil
}

func setup(ctx context.Context, c client.Client, tc config.Temporal, interval time.Duration) (any, error) {
	if err := subscription.RegisterSearchAttributes(ctx, c.OperatorService(), tc.Namespace); err != nil {
		return nil, fmt.Errorf("search attributes (on Temporal Cloud, add them in the Cloud UI or with tcld): %w", err)
	}
	if err := reconciliation.EnsureSchedule(ctx, c, tc.TaskQueue, interval); err != nil {
		return nil, err
	}
	names := make([]string, 0)
	for k := range subscription.SearchAttributes() {
		names = append(names, k)
	}
	sort.Strings(names)
	return setupDone{Namespace: tc.Namespace, SearchAttributes: names, Schedule: reconciliation.ScheduleID, Interval: interval.String()}, nil
}

// setupDone is what setup registered.
type setupDone struct {
	Namespace        string   `json:"namespace"`
	SearchAttributes []string `json:"searchAttributes"`
	Schedule         string   `json:"schedule"`
	Interval         string   `json:"interval"`
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
	case subscription.CommandResult:
		fmt.Fprint(p.w, r.Status)
		if r.OperationID != "" {
			fmt.Fprintf(p.w, " (operation %s)", r.OperationID)
		}
		if r.Message != "" {
			fmt.Fprintf(p.w, ": %s", r.Message)
		}
		fmt.Fprintln(p.w)
	case *subscription.State:
		p.state(r)
	case usageReported:
		if r.Status == "AlreadyCounted" {
			fmt.Fprintf(p.w, "Already counted: the meter has counted usage ID %q before; nothing was sent again.\n", r.ID)
			return
		}
		fmt.Fprintf(p.w, "Accepted by the meter %s; it is posted to Microsoft once its hour has closed (see show-usage).\n", r.Meter)
	case metering.State:
		p.meter(r)
	case reconciliation.Run:
		fmt.Fprintf(p.w, "Reconciliation started: workflow %s (run %s). --wait waits for its report.\n", r.WorkflowID, r.RunID)
	case reconacts.Report:
		p.report(r)
	case setupDone:
		fmt.Fprintf(p.w, "Namespace %s is ready: search attributes %s; schedule %s every %s.\n", r.Namespace, strings.Join(r.SearchAttributes, ", "), r.Schedule, r.Interval)
	default:
		fmt.Fprintf(p.w, "%+v\n", v)
	}
}

func (p printer) state(r *subscription.State) {
	tw := tabwriter.NewWriter(p.w, 0, 2, 2, ' ', 0)
	fmt.Fprintf(tw, "subscription\t%s\nstatus\t%s\nphase\t%s\noffer\t%s\nplan\t%s\n", r.SubscriptionID, r.Status, r.Phase, r.OfferID, r.PlanID)
	if r.Quantity > 0 {
		// Only per-seat plans have seats; a flat-rate plan's quantity is no number worth showing.
		fmt.Fprintf(tw, "seats\t%d\n", r.Quantity)
	}
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
}

func (p printer) meter(st metering.State) {
	t := st.Totals
	fmt.Fprintf(p.w, "meter of %s: %d accepted, %d duplicate, %d rejected, %d expired, %d failed posts (retried), %d reports ignored as counted\n",
		st.SubscriptionID, t.Accepted, t.Duplicate, t.Rejected, t.Expired, t.Errors, t.IgnoredReports)
	tw := tabwriter.NewWriter(p.w, 0, 2, 2, ' ', 0)
	if len(st.Open) > 0 {
		fmt.Fprintln(tw, "OPEN HOUR\tDIMENSION\tQUANTITY\tREPORTS\tLAST ERROR")
		for _, b := range st.Open {
			fmt.Fprintf(tw, "%s\t%s\t%g\t%d\t%s\n", b.Hour.Format(time.RFC3339), b.Dimension, b.Quantity, b.Reports, b.LastError)
		}
	}
	if len(st.Recent) > 0 {
		fmt.Fprintln(tw, "SETTLED HOUR\tDIMENSION\tQUANTITY\tOUTCOME\tDETAIL")
		for _, o := range st.Recent {
			detail := o.Reason
			if o.Outcome == metering.OutcomeAccepted || o.Outcome == metering.OutcomeDuplicate {
				detail = "event " + o.UsageEventID
			}
			fmt.Fprintf(tw, "%s\t%s\t%g\t%s\t%s\n", o.Hour.Format(time.RFC3339), o.Dimension, o.Quantity, o.Outcome, detail)
		}
	}
	_ = tw.Flush()
}

func (p printer) report(r reconacts.Report) {
	fmt.Fprintf(p.w, "Reconciliation: %d pages, %d subscriptions seen: %d in sync, %d adopted, %d healed, %d ignored, %d errors\n",
		r.Pages, r.Seen, r.InSync, r.Adopted, r.Healed, r.Ignored, r.Errors)
	kinds := make([]string, 0, len(r.Drift))
	for k := range r.Drift {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(p.w, "  drift %-22s %d\n", k, r.Drift[k])
	}
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(p.w, "  error: %s\n", e)
	}
}

func (p printer) table(rows []subscription.Summary) {
	if p.json {
		p.value(rows)
		return
	}
	tw := tabwriter.NewWriter(p.w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBSCRIPTION\tSTATUS\tPHASE\tOFFER\tPLAN\tSEATS\tRUNNING")
	for _, r := range rows {
		seats := ""
		if r.Quantity > 0 {
			seats = strconv.FormatInt(r.Quantity, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", r.SubscriptionID, r.Status, r.Phase, r.OfferID, r.PlanID, seats, r.Running)
	}
	_ = tw.Flush()
}
