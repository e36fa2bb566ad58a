package activities

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// MarketplaceReadOptions are for reads and calls that are safe to repeat (Get, List, Activate, PATCH of an
// operation): exponential backoff with no attempt limit, bounded by a generous schedule-to-close.
func MarketplaceReadOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
			MaximumAttempts:    0,
		},
	}
}

// MarketplaceWriteOptions are for PATCH/DELETE of a subscription, which create operations: repeating one
// blindly is not safe, so attempts are bounded; after an ambiguous failure the workflow looks for the
// operation with ListOperations instead of sending the write again.
func MarketplaceWriteOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    5,
		},
	}
}

// ProvisioningOptions are for the ISV's provisioning calls, idempotent by key: retried without an
// attempt limit for up to a day (a permanent refusal stops them at once).
func ProvisioningOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Minute,
		},
	}
}
