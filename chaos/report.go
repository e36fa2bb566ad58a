package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"saasengine/activities/reconciliation"
	"saasengine/emulator"
)

// Report is what a chaos run found. Lost, Doubled, Stuck, FalselyReported, NonDeterminism and
// WorkflowPanics must all be 0.
type Report struct {
	Config  Config    `json:"-"`
	Started time.Time `json:"started"`
	// Subscriptions is how many were driven.
	Subscriptions int `json:"subscriptions"`

	// Lost: a subscription whose Microsoft, workflow and tenant views disagree once everything settled
	// (a transition one of them never saw), or that never got going.
	Lost int `json:"lost"`
	// Doubled: an effect applied more than once: Activate, a PATCH or DELETE taking effect twice, a tenant
	// provisioned or deprovisioned under two keys, more tenant changes than Microsoft made.
	Doubled int `json:"doubled"`
	// Stuck: a workflow still busy (or failed) when the settle time ran out.
	Stuck int `json:"stuck"`
	// FalselyReported: an admin command answered otherwise than Microsoft shows it ended (Rejected while
	// Microsoft shows it Succeeded, or Succeeded while it shows none).
	FalselyReported int `json:"falselyReported"`
	// NonDeterminism counts workflow tasks that failed on non-determinism; WorkflowPanics those that
	// failed on a panic in workflow code.
	NonDeterminism int `json:"nonDeterminism"`
	WorkflowPanics int `json:"workflowPanics"`

	// LingeringExpectations counts workflows that, at the end, still expect Microsoft's record to confirm
	// a transition they already applied (no read since): not a failure, shown for what it is.
	LingeringExpectations int `json:"lingeringExpectations"`
	// PatchedBeforeAnswer counts operations PATCHed while their webhook awaited its first response (the
	// emulator's record). Microsoft expects none; a webhook server killed before it could answer can
	// still cause one, so it is shown, not failed.
	PatchedBeforeAnswer int `json:"patchedBeforeAnswer"`
	// Reports counts the admin API's answers to the changes and cancellations, by answer.
	Reports map[string]int `json:"reports"`
	// Calls are the Activate, PATCH and DELETE calls per subscription that reached Microsoft and took
	// effect; Keys the provisioning idempotency keys, KeysApplied the steps applied under them by method.
	Calls       []emulator.CallCount `json:"-"`
	Keys        int                  `json:"keys"`
	KeysApplied map[string]int       `json:"keysApplied"`
	Faults      []emulator.Fault     `json:"faults"`
	Kills       []ProcessCount       `json:"kills"`
	// Reconciliations are the reconciliation runs after driving (more than one when a run had errors).
	Reconciliations []reconciliation.Report `json:"reconciliations"`

	Driven   time.Duration `json:"driven"`
	Duration time.Duration `json:"duration"`
	// Findings explain every non-zero count, one line each; Notes are what the driver saw on the way.
	Findings []string `json:"findings,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

// ProcessCount is how often a process was killed, and how often it died on its own.
type ProcessCount struct {
	Name            string `json:"name"`
	Kills           int    `json:"kills"`
	UnexpectedExits int    `json:"unexpectedExits"`
}

// OK reports whether every count that must be 0 is.
func (r *Report) OK() bool {
	return r.Lost == 0 && r.Doubled == 0 && r.Stuck == 0 && r.FalselyReported == 0 && r.NonDeterminism == 0 && r.WorkflowPanics == 0
}

func (r *Report) finding(format string, args ...any) {
	r.Findings = append(r.Findings, fmt.Sprintf(format, args...))
}

func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) count(o *outcome) {
	if r.Reports == nil {
		r.Reports = map[string]int{}
	}
	if o.Change != "" {
		r.Reports["change "+o.ChangeReport]++
	}
	if o.Cancel {
		r.Reports["cancel "+o.CancelReport]++
	}
}

// Write prints the report for people: the counts first, then the figures behind them.
func (r *Report) Write(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "chaos run: %d subscriptions, started %s, took %s (driving %s)\n", r.Subscriptions, r.Started.Format(time.RFC3339), r.Duration.Round(time.Second), r.Driven.Round(time.Second))
	fmt.Fprintf(w, "world: %.0f%% of Marketplace calls failing (500/503/429), %.0f%% of Activate/PATCH/DELETE answers lost, read lag %s,\n", c.FailRate*100, c.LostRate*100, c.ReadLag)
	fmt.Fprintf(w, "       webhooks %.0f%% dropped, %.0f%% duplicated, %.0f%% reordered; seed %d\n", c.DropRate*100, c.DuplicateRate*100, c.ReorderRate*100, c.Seed)
	for _, k := range r.Kills {
		fmt.Fprintf(w, "process %-8s killed %d times, died on its own %d times\n", k.Name, k.Kills, k.UnexpectedExits)
	}
	fmt.Fprintf(w, "\nlost %d, doubled %d, stuck %d, falsely reported %d, non-determinism %d, workflow panics %d\n",
		r.Lost, r.Doubled, r.Stuck, r.FalselyReported, r.NonDeterminism, r.WorkflowPanics)

	totals := map[string][2]int{}
	for _, cc := range r.Calls {
		t := totals[cc.Endpoint]
		t[0] += cc.Calls
		t[1] += cc.Applied
		totals[cc.Endpoint] = t
	}
	for _, ep := range []string{"Activate", "UpdateSubscription", "DeleteSubscription"} {
		fmt.Fprintf(w, "%-19s %5d calls, %5d took effect\n", ep, totals[ep][0], totals[ep][1])
	}
	fmt.Fprintf(w, "provisioning keys   %5d, steps applied: %s\n", r.Keys, sortedCounts(r.KeysApplied))
	fmt.Fprintf(w, "admin answers       %s\n", sortedCounts(r.Reports))
	for i, rc := range r.Reconciliations {
		fmt.Fprintf(w, "reconciliation %d     seen %d, in sync %d, adopted %d, healed %d, errors %d\n", i+1, rc.Seen, rc.InSync, rc.Adopted, rc.Healed, rc.Errors)
	}
	fmt.Fprintf(w, "lingering expectations (applied, not yet confirmed by a read) %d\n", r.LingeringExpectations)
	fmt.Fprintf(w, "PATCHes before the webhook's answer (a killed webhook server can cause one) %d\n", r.PatchedBeforeAnswer)
	var fired []string
	for _, f := range r.Faults {
		what := f.Endpoint
		if f.Webhook != "" {
			what = "webhook " + f.Webhook
		}
		switch {
		case f.LostAnswer:
			what += " lost answer"
		case f.Status != 0:
			what += fmt.Sprint(" ", f.Status)
		}
		fired = append(fired, fmt.Sprintf("%s %d", what, f.Fired))
	}
	fmt.Fprintf(w, "faults fired        %s\n", strings.Join(fired, ", "))
	if len(r.Findings) > 0 {
		fmt.Fprintf(w, "\nfindings:\n")
		for _, f := range r.Findings {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "\ndriver notes (%d):\n", len(r.Notes))
		for i, n := range r.Notes {
			if i == 50 {
				fmt.Fprintf(w, "  ... %d more\n", len(r.Notes)-50)
				break
			}
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
