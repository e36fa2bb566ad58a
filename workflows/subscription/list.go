package subscription

import (
	"context"
	"fmt"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"saasengine/marketplace"
)

// Filter narrows a listing; empty fields match everything. Values must not contain quotes.
type Filter struct {
	Status    string
	Offer     string
	Plan      string
	PageSize  int
	PageToken []byte

	// Tenant is a tenant that bought the subscriptions or that they were bought for (the buyers' manage
	// page: a CSP partner's tenant buys for its customers' tenants).
	Tenant string
}

// tenantClause stands for Filter.Tenant in Query, which matches either of two search attributes.
const tenantClause = "tenant"

// Summary is one subscription of a listing, read from its search attributes.
type Summary struct {
	SubscriptionID string `json:"subscriptionId"`
	Status         string `json:"status"`
	Phase          string `json:"phase,omitempty"`
	OfferID        string `json:"offerId,omitempty"`
	PlanID         string `json:"planId,omitempty"`
	Quantity       int64  `json:"quantity,omitempty"`
	IsTest         bool   `json:"isTest,omitempty"`
	IsFreeTrial    bool   `json:"isFreeTrial,omitempty"`
	Running        bool   `json:"running"`
}

// Statuses are the subscription statuses a listing can filter on: Microsoft's, as the SaaSStatus search
// attribute holds them.
var Statuses = []marketplace.SubscriptionStatus{
	marketplace.StatusPendingFulfillmentStart, marketplace.StatusSubscribed, marketplace.StatusSuspended, marketplace.StatusUnsubscribed,
}

// canonicalStatus returns the status s names (in any case), or false when it names none: a filter on a
// status that cannot exist would list nothing and look like an empty result.
func canonicalStatus(s string) (string, bool) {
	for _, st := range Statuses {
		if strings.EqualFold(s, string(st)) {
			return string(st), true
		}
	}
	return "", false
}

// Query is the visibility query of a filter.
func (f Filter) Query() (string, error) {
	if f.Status != "" {
		st, ok := canonicalStatus(f.Status)
		if !ok {
			names := make([]string, len(Statuses))
			for i, s := range Statuses {
				names[i] = string(s)
			}
			return "", fmt.Errorf("status %q is not one of %s", f.Status, strings.Join(names, ", "))
		}
		f.Status = st
	}
	clauses := []string{fmt.Sprintf("WorkflowType = '%s'", WorkflowType)}
	for _, c := range []struct{ key, val string }{
		{SaaSStatus.GetName(), f.Status},
		{SaaSOffer.GetName(), f.Offer},
		{SaaSPlan.GetName(), f.Plan},
		{tenantClause, f.Tenant},
	} {
		if c.val == "" {
			continue
		}
		if strings.ContainsAny(c.val, `'"\`) {
			return "", fmt.Errorf("filter value %q may not contain quotes or backslashes", c.val)
		}
		if c.key == tenantClause {
			// Bought by the tenant, or for it.
			clauses = append(clauses, fmt.Sprintf("(%s = '%s' OR %s = '%s')", SaaSBeneficiaryTenant.GetName(), c.val, SaaSPurchaserTenant.GetName(), c.val))
			continue
		}
		clauses = append(clauses, fmt.Sprintf("%s = '%s'", c.key, c.val))
	}
	return strings.Join(clauses, " AND "), nil
}

// List lists subscriptions through Temporal visibility, newest first.
func (c *Client) List(ctx context.Context, f Filter) ([]Summary, []byte, error) {
	q, err := f.Query()
	if err != nil {
		return nil, nil, &CommandError{Code: "BadFilter", Message: err.Error()}
	}
	size := f.PageSize
	if size <= 0 || size > 1000 {
		size = 100
	}
	resp, err := c.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{PageSize: int32(size), NextPageToken: f.PageToken, Query: q})
	if err != nil {
		return nil, nil, fmt.Errorf("listing subscriptions: %w", err)
	}
	out := make([]Summary, 0, len(resp.GetExecutions()))
	for _, ex := range resp.GetExecutions() {
		id, ok := SubscriptionIDFromWorkflowID(ex.GetExecution().GetWorkflowId())
		if !ok {
			continue
		}
		fields := ex.GetSearchAttributes().GetIndexedFields()
		out = append(out, Summary{
			SubscriptionID: id,
			Status:         attr[string](fields, SaaSStatus.GetName()),
			Phase:          attr[string](fields, SaaSPhase.GetName()),
			OfferID:        attr[string](fields, SaaSOffer.GetName()),
			PlanID:         attr[string](fields, SaaSPlan.GetName()),
			Quantity:       attr[int64](fields, SaaSQuantity.GetName()),
			IsTest:         attr[bool](fields, SaaSIsTest.GetName()),
			IsFreeTrial:    attr[bool](fields, SaaSIsFreeTrial.GetName()),
			Running:        ex.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING,
		})
	}
	return out, resp.GetNextPageToken(), nil
}

// StatusFromSearchAttributes is the subscription status a workflow's search attributes last showed
// (SaaSStatus), or "" when they show none.
func StatusFromSearchAttributes(sa *commonpb.SearchAttributes) marketplace.SubscriptionStatus {
	return marketplace.SubscriptionStatus(attr[string](sa.GetIndexedFields(), SaaSStatus.GetName()))
}

func attr[T any](fields map[string]*commonpb.Payload, name string) T {
	var v T
	if p, ok := fields[name]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &v)
	}
	return v
}
