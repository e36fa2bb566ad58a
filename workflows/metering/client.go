package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// Client reports usage to the metering workflows; the admin API, the operator CLI and the ISV's own Go
// services use it.
type Client struct {
	Temporal  client.Client
	TaskQueue string
	// Options go to workflows this client starts.
	Options Options
	// Now is the clock reports are checked against; default time.Now.
	Now func() time.Time
	// Dimensions, when set, refuses usage of a dimension the plan does not have (see Dimensions); nil
	// leaves that to Microsoft's answer when the hour is posted.
	Dimensions *Dimensions
}

// ErrNotFound means no metering workflow has run for the subscription recently.
var ErrNotFound = errors.New("metering: no metering workflow for this subscription")

// Report checks the reports (see Usage.Check; a zero Time becomes now; with Dimensions, the dimension is
// one of the plan's) and hands them to the subscription's metering workflow in one signal, starting the
// workflow if it is not running: either all of them are recorded or, on error, none. A refused report is an *InvalidUsageError and nothing is sent.
// Give reports an ID to make sending them again after an error safe.
func (c Client) Report(ctx context.Context, subscriptionID string, reports ...Usage) error {
	if !validSubscriptionID(subscriptionID) {
		return ErrInvalidSubscription
	}
	if len(reports) == 0 || len(reports) > MaxReports {
		return &InvalidUsageError{Reason: fmt.Sprintf("send 1 to %d reports at a time, not %d", MaxReports, len(reports))}
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	t := now().UTC()
	out := make([]Usage, len(reports))
	// The call's own sum per dimension and hour: reports that together overflow an hour are refused here.
	// (What the meter holds already is checked by the meter, which records such a report as rejected.)
	sums := map[bucketKey]float64{}
	ids := map[string]bool{}
	for i, u := range reports {
		if u.Time.IsZero() {
			u.Time = t
		}
		u.Time = u.Time.UTC()
		if err := u.Check(t); err != nil {
			return &InvalidUsageError{Index: i, Reason: err.Error()}
		}
		out[i] = u
		if u.ID != "" {
			if ids[u.ID] {
				continue // the meter counts it once
			}
			ids[u.ID] = true
		}
		k := bucketKey{u.Dimension, hourOf(u.Time).Unix()}
		if sums[k]+u.Quantity > MaxQuantity {
			return &InvalidUsageError{Index: i, Reason: fmt.Sprintf("with the reports before it, dimension %s's hour %s would hold more than %d, the most one hour can hold",
				u.Dimension, hourOf(u.Time).Format(time.RFC3339), int64(MaxQuantity))}
		}
		sums[k] += u.Quantity
	}
	if c.Dimensions != nil {
		if err := c.Dimensions.check(ctx, subscriptionID, out); err != nil {
			return err
		}
	}
	opts := client.StartWorkflowOptions{
		ID:        WorkflowID(subscriptionID),
		TaskQueue: c.TaskQueue,
		// Join the running meter; start a new one after an idle meter ended (or one failed).
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}
	in := Input{SubscriptionID: subscriptionID, Options: c.Options}
	if _, err := c.Temporal.SignalWithStartWorkflow(ctx, opts.ID, SignalUsage, out, opts, WorkflowType, in); err != nil {
		return fmt.Errorf("reporting usage of subscription %s: %w", subscriptionID, err)
	}
	return nil
}

// Counted returns those of ids the subscription's running meter has counted already, so that a caller can
// say a report it is about to send again would be ignored. It is a courtesy, not the guarantee: the meter
// itself ignores a counted ID whatever this answered (two senders of one ID at once both hear "not yet").
// A meter that is not running has counted nothing its next run would ignore.
func (c Client) Counted(ctx context.Context, subscriptionID string, ids ...string) ([]string, error) {
	resp, err := c.Temporal.QueryWorkflowWithOptions(ctx, &client.QueryWorkflowWithOptionsRequest{
		WorkflowID: WorkflowID(subscriptionID), QueryType: QueryCounted, Args: []any{ids},
		QueryRejectCondition: enumspb.QUERY_REJECT_CONDITION_NOT_OPEN,
	})
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("asking the meter of subscription %s: %w", subscriptionID, err)
	}
	if resp.QueryRejected != nil {
		return nil, nil
	}
	var counted []string
	if err := resp.QueryResult.Get(&counted); err != nil {
		return nil, fmt.Errorf("decoding the meter's answer: %w", err)
	}
	return counted, nil
}

// State queries the subscription's metering workflow: open buckets and recent outcomes. A meter that
// ended (idle) answers with its last state.
func (c Client) State(ctx context.Context, subscriptionID string) (State, error) {
	v, err := c.Temporal.QueryWorkflow(ctx, WorkflowID(subscriptionID), "", QueryState)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return State{}, ErrNotFound
		}
		return State{}, fmt.Errorf("querying the meter of subscription %s: %w", subscriptionID, err)
	}
	var st State
	if err := v.Get(&st); err != nil {
		return State{}, fmt.Errorf("decoding the meter's state: %w", err)
	}
	return st, nil
}
