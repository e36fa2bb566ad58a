// Package metering holds the metering workflow's activity: posting a batch of usage events to Microsoft and
// reading each item's answer.
package metering

import (
	"context"
	"fmt"
	"time"

	"saasengine/activities"
	"saasengine/marketplace"
)

// Marketplace is what the metering activity calls at Microsoft.
type Marketplace interface {
	PostBatchUsageEvents(ctx context.Context, events []marketplace.UsageEvent) (*marketplace.BatchUsageEventResult, error)
	GetSubscription(ctx context.Context, subscriptionID string) (*marketplace.Subscription, error)
}

var _ Marketplace = (*marketplace.Client)(nil)

// Activities are the metering workflow's activities; register the struct with a worker.
type Activities struct {
	Marketplace Marketplace
}

// Event is one bucket to post.
type Event struct {
	Dimension string    `json:"dimension"`
	Hour      time.Time `json:"hour"`
	Quantity  float64   `json:"quantity"`
	PlanID    string    `json:"planId,omitempty"`
}

// PostInput is one batch of at most marketplace.MaxBatchSize events of one subscription.
type PostInput struct {
	SubscriptionID string  `json:"subscriptionId"`
	Events         []Event `json:"events"`
}

// ItemResult is Microsoft's answer for one event, in the order of PostInput.Events.
type ItemResult struct {
	Status       marketplace.UsageEventStatus `json:"status"`
	UsageEventID string                       `json:"usageEventId,omitempty"`
	PlanID       string                       `json:"planId,omitempty"`
	Message      string                       `json:"message,omitempty"`
	// AcceptedQuantity is what Microsoft had accepted, for a Duplicate.
	AcceptedQuantity float64 `json:"acceptedQuantity,omitempty"`
}

// PostUsage posts one batch and returns each event's answer. A batch Microsoft does not answer item by
// item (429, 5xx, a timeout, 401/403) fails as a whole, classified by activities.MapError so that throttling
// waits for Retry-After. Reposting is safe: Microsoft keeps one event per subscription, dimension and hour
// and answers Duplicate for the rest.
func (a *Activities) PostUsage(ctx context.Context, in PostInput) ([]ItemResult, error) {
	if len(in.Events) == 0 || len(in.Events) > marketplace.MaxBatchSize {
		return nil, fmt.Errorf("metering: a batch holds 1 to %d events, got %d", marketplace.MaxBatchSize, len(in.Events))
	}
	ctx = activities.WithCorrelation(ctx)
	plan := ""
	events := make([]marketplace.UsageEvent, len(in.Events))
	for i, ev := range in.Events {
		if ev.PlanID == "" && plan == "" {
			// Microsoft wants the plan the customer has now; read it once per batch.
			sub, err := a.Marketplace.GetSubscription(ctx, in.SubscriptionID)
			if err != nil {
				return nil, activities.MapError(ctx, fmt.Errorf("reading the current plan: %w", err))
			}
			plan = sub.PlanID
		}
		p := ev.PlanID
		if p == "" {
			p = plan
		}
		events[i] = marketplace.UsageEvent{
			ResourceID: in.SubscriptionID, Dimension: ev.Dimension, Quantity: ev.Quantity,
			EffectiveStartTime: marketplace.NewTime(ev.Hour), PlanID: p,
		}
	}
	res, err := a.Marketplace.PostBatchUsageEvents(ctx, events)
	if err != nil {
		return nil, activities.MapError(ctx, err)
	}
	// Match answers to events by dimension and hour (unique within a batch) rather than trusting the
	// order alone; an event without an answer stays open and is posted again.
	byKey := make(map[string]marketplace.UsageEventResult, len(res.Result))
	for i, r := range res.Result {
		k := hourKey(r.Dimension, r.EffectiveStartTime.Time)
		if r.Dimension == "" && i < len(events) {
			k = eventKey(events[i])
		}
		byKey[k] = r
	}
	out := make([]ItemResult, len(events))
	for i, ev := range events {
		r, ok := byKey[eventKey(ev)]
		if !ok {
			out[i] = ItemResult{Status: marketplace.UsageError, PlanID: ev.PlanID, Message: "Microsoft's answer had no result for this event"}
			continue
		}
		item := ItemResult{Status: r.Status, UsageEventID: r.UsageEventID, PlanID: ev.PlanID}
		if r.Error != nil {
			item.Message = r.Error.Message
			if acc := r.Error.AdditionalInfo.AcceptedMessage; acc != nil {
				item.UsageEventID = acc.UsageEventID
				item.AcceptedQuantity = acc.Quantity
			}
		}
		out[i] = item
	}
	return out, nil
}

func eventKey(ev marketplace.UsageEvent) string {
	return hourKey(ev.Dimension, ev.EffectiveStartTime.Time)
}

// hourKey names a dimension's clock hour, the unit Microsoft keeps one event for.
func hourKey(dimension string, t time.Time) string {
	return dimension + "|" + t.UTC().Truncate(time.Hour).Format(time.RFC3339)
}
