package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// A signed-in buyer sees the subscriptions of their organisation that they bought or use, each with its
// status, plan, seats, term and renewal, and where Microsoft lets them change it; not their colleague's,
// not another organisation's; a CSP partner sees what it bought for a customer. Someone with none is told
// so and offered to switch account.
func TestManageAccount(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{ConfigureServer: withBrand})
	ada := buyer()
	active := s.Emu.PurchaseAs(t, "team", 12, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	_, page := signInAs(t, ada, active.LandingURL, emulator.BuyerPurchaser)
	if code, _, _ := postForm(t, ada, s.HTTP.URL+"/landing/confirm", fields(page)); code != 200 {
		t.Fatalf("confirm: %d", code)
	}
	pending := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	get(t, ada, pending.LandingURL)
	sams := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerStranger, emulator.BuyerStranger)
	sam := buyer()
	signInAs(t, sam, sams.LandingURL, emulator.BuyerStranger)
	csp := s.Emu.PurchaseAs(t, "team", 6, emulator.BuyerCSPPartner, emulator.BuyerCSPBeneficiary)
	kim := buyer()
	signInAs(t, kim, csp.LandingURL, emulator.BuyerCSPBeneficiary)
	s.WaitState(t, active.SubscriptionID, "Subscribed", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed && st.Phase == subscription.PhaseIdle
	})

	manage := s.HTTP.URL + "/landing/manage"
	// Temporal's listing follows the workflows' search attributes a moment later.
	eventually(t, 30*time.Second, "Ada's subscriptions listed", func() (bool, string) {
		_, page = get(t, ada, manage)
		return strings.Contains(page, "sub-"+active.SubscriptionID) && strings.Contains(page, "sub-"+pending.SubscriptionID) && strings.Contains(page, "Ready") && strings.Contains(page, "Renews on"), page
	})
	for _, want := range []string{
		"Your subscriptions", "Waiting for your confirmation", "<dd>Team</dd>", "<dd>Basic</dd>", "<dd>12</dd>",
		`href="https://analytics.contoso.example/start">Open Contoso Analytics`, "/landing/status/" + active.SubscriptionID + "?sig=",
		"https://admin.microsoft.com/", "https://portal.azure.com/",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("Ada's manage page lacks %q", want)
		}
	}
	for _, not := range []string{sams.SubscriptionID, csp.SubscriptionID} {
		if strings.Contains(page, not) {
			t.Errorf("Ada sees %s, which is not hers", not)
		}
	}
	noInternalWords(t, page, "Ada's manage page")

	eventually(t, 30*time.Second, "Sam's subscription listed", func() (bool, string) {
		_, page = get(t, sam, manage)
		return strings.Contains(page, "sub-"+sams.SubscriptionID), page
	})
	if strings.Contains(page, active.SubscriptionID) || strings.Contains(page, pending.SubscriptionID) {
		t.Error("Sam sees his colleague's subscriptions")
	}
	eventually(t, 30*time.Second, "Kim's subscription listed", func() (bool, string) {
		_, page = get(t, kim, manage)
		return strings.Contains(page, "sub-"+csp.SubscriptionID) && strings.Contains(page, "<dd>6</dd>"), page
	})
	// The CSP partner who bought it for Northwind, signed in with the partner's own tenant, sees it too.
	pat := signedIn(t, s, emulator.BuyerCSPPartner)
	eventually(t, 30*time.Second, "the partner's purchase listed", func() (bool, string) {
		_, page = get(t, pat, manage)
		return strings.Contains(page, "sub-"+csp.SubscriptionID), page
	})
	if strings.Contains(page, active.SubscriptionID) || strings.Contains(page, sams.SubscriptionID) {
		t.Error("the partner sees subscriptions it did not buy")
	}

	lee := signedIn(t, s, emulator.BuyerOtherTenant)
	code, page := get(t, lee, manage)
	if code != http.StatusOK || !strings.Contains(page, `id="none"`) || !strings.Contains(page, `id="switch-account"`) || strings.Contains(page, "sub-") {
		t.Errorf("Lee's manage page: %d\n%s", code, page)
	}
}
