package reconciliation_test

import (
	"slices"
	"testing"

	reconacts "saasengine/activities/reconciliation"
	"saasengine/marketplace"
)

// Reconciliation compares three sides: Microsoft, the workflow, and the tenant the workflow last
// applied. A tenant left behind by a failed apply, or a failed phase waiting for a retry, is drift a
// snapshot heals, even when Microsoft and the workflow agree.
func TestCompareSeesTheTenant(t *testing.T) {
	theirs := marketplace.Subscription{ID: "s", Status: marketplace.StatusSubscribed, PlanID: "gold", Quantity: 5}
	agree := reconacts.Ours{Status: marketplace.StatusSubscribed, PlanID: "gold", Quantity: 5,
		Tenant: &reconacts.Tenant{PlanID: "gold", Quantity: 5}}
	cases := []struct {
		name string
		edit func(o *reconacts.Ours)
		want bool
	}{
		{"all three agree", func(o *reconacts.Ours) {}, false},
		{"not provisioned yet", func(o *reconacts.Ours) { o.Tenant = nil }, false},
		{"tenant on the old plan", func(o *reconacts.Ours) { o.Tenant.PlanID = "basic" }, true},
		{"tenant with the old seats", func(o *reconacts.Ours) { o.Tenant.Quantity = 3 }, true},
		{"tenant suspended while Microsoft is not", func(o *reconacts.Ours) { o.Tenant.Suspended = true }, true},
		{"a failed phase waits for a retry", func(o *reconacts.Ours) { o.NeedsAttention = true }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := agree
			tn := *agree.Tenant
			o.Tenant = &tn
			c.edit(&o)
			kinds := reconacts.Compare(theirs, o)
			if got := slices.Contains(kinds, reconacts.DriftTenant); got != c.want {
				t.Fatalf("drift %v, want tenant drift %v", kinds, c.want)
			}
			if slices.Contains(kinds, reconacts.DriftPlan) || slices.Contains(kinds, reconacts.DriftQuantity) {
				t.Fatalf("Microsoft and the workflow agree, yet drift %v", kinds)
			}
		})
	}
}
