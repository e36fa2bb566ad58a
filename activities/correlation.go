package activities

import (
	"context"

	"go.temporal.io/sdk/activity"

	"saasengine/marketplace"
)

// WithCorrelation gives every attempt of one activity the same x-ms-correlationid (its workflow and
// activity IDs), so that Microsoft support sees the retries of one logical call as one.
func WithCorrelation(ctx context.Context) context.Context {
	if !activity.IsActivity(ctx) {
		return ctx
	}
	info := activity.GetInfo(ctx)
	return marketplace.WithCorrelationID(ctx, info.WorkflowExecution.ID+"/"+info.ActivityID)
}
