package reconcile_test

import (
	"slices"
	"testing"

	"saasengine/marketplace"
	"saasengine/reconcile"
)

// Reconciliation compares three sides: Microsoft, the workflow, and the tenant the workflow last
// applied. A tenant left behind by a failed apply, or a failed phase waiting for a retry, is drift a
// snapshot heals, even when Microsoft and the workflow agree.
func TestCompareSeesTheTenant(t *testing.T) {
	theirs := marketplace.Subscription{ID: "s", Status: marketplace.StatusSubscribed, PlanID: "gold", Quantity: 5}
	agree := reconcile.Ours{Status: marketplace.StatusSubscribed, PlanID: "gold", Quantity: 5,
		Tenant: &reconcile.Tenant{PlanID: "gold", Quantity: 5}}
	cases := []struct {
		name string
		edit func(o *reconcile.Ours)
		want bool
	}{
		{"all three agree", func(o *reconcile.Ours) {}, false},
		{"not provisioned yet", func(o *reconcile.Ours) { o.Tenant = nil }, false},
		{"tenant on the old plan", func(o *reconcile.Ours) { o.Tenant.PlanID = "basic" }, true},
		{"tenant with the old seats", func(o *reconcile.Ours) { o.Tenant.Quantity = 3 }, true},
		{"tenant suspended while Microsoft is not", func(o *reconcile.Ours) { o.Tenant.Suspended = true }, true},
		{"a failed phase waits for a retry", func(o *reconcile.Ours) { o.NeedsAttention = true }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := agree
			tn := *agree.Tenant
			o.Tenant = &tn
			c.edit(&o)
			kinds := reconcile.Compare(theirs, o)
			if got := slices.Contains(kinds, reconcile.DriftTenant); got != c.want {
				t.Fatalf("drift %v, want tenant drift %v", kinds, c.want)
			}
			if slices.Contains(kinds, reconcile.DriftPlan) || slices.Contains(kinds, reconcile.DriftQuantity) {
				t.Fatalf("Microsoft and the workflow agree, yet drift %v", kinds)
			}
		})
	}
}
