package subscription

import (
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"saasengine/activities/notification"
)

// What operators see: search attributes kept current, and failures that need a person, logged once at
// error level, counted (saas_subscription_attention{kind}) and flagged as SaaSNeedsAttention.

// MetricAttention counts failed phases that need a person, by kind (activation, deprovisioning,
// tenant-sync); Prometheus shows it as saas_subscription_attention_total.
const MetricAttention = "saas_subscription_attention"

// needAttention records a failed phase; the first time, it logs and counts it.
func (r *runner) needAttention(ctx workflow.Context, kind, err string) {
	if !r.st.NeedAttention(r.now(ctx), kind, err) {
		return
	}
	workflow.GetLogger(ctx).Error("subscription needs attention", "subscriptionId", r.st.SubscriptionID, "kind", kind, "cause", err)
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"kind": kind}).Counter(MetricAttention).Inc(1)
	r.notify(ctx, notification.Attention, stamp(ctx, "attention/"+kind), attentionSummaries[kind]+": subscription "+r.st.SubscriptionID, err, nil)
	r.upsertSearch(ctx)
}

// searchView is what the search attributes show.
type searchView struct {
	status, phase, offer, plan, tenant, purchaserTenant string
	quantity                                            int64
	isTest, isFreeTrial, attention                      bool
}

// upsertSearch keeps the search attributes current, writing only when something shown changed.
func (r *runner) upsertSearch(ctx workflow.Context) {
	v := searchView{status: string(r.st.Status), phase: string(r.st.Phase), offer: r.st.OfferID, plan: r.st.PlanID,
		tenant: r.st.Beneficiary.TenantID, purchaserTenant: r.st.Purchaser.TenantID, quantity: r.st.Quantity, isTest: r.st.IsTest, isFreeTrial: r.st.IsFreeTrial,
		attention: r.st.Attention != ""}
	if r.lastSA != nil && *r.lastSA == v {
		return
	}
	updates := []temporal.SearchAttributeUpdate{
		SaaSPhase.ValueSet(v.phase), SaaSQuantity.ValueSet(v.quantity),
		SaaSIsTest.ValueSet(v.isTest), SaaSIsFreeTrial.ValueSet(v.isFreeTrial), SaaSNeedsAttention.ValueSet(v.attention),
	}
	keywords := []struct {
		key temporal.SearchAttributeKeyKeyword
		val string
	}{{SaaSStatus, v.status}, {SaaSOffer, v.offer}, {SaaSPlan, v.plan}, {SaaSBeneficiaryTenant, v.tenant}, {SaaSPurchaserTenant, v.purchaserTenant}}
	for _, kw := range keywords {
		if kw.val != "" {
			updates = append(updates, kw.key.ValueSet(kw.val))
		}
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
		return
	}
	r.lastSA = &v
}
