package server_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/webhook/server"
	"saasengine/workflows/subscription"
)

// demoBrand is a vendor's branding, as BRAND_* configure it.
var demoBrand = server.Brand{
	ProductName: "Contoso Suite", LogoURL: "https://cdn.contoso.example/logo.svg", AccentColor: "#ffb900",
	SupportURL: "https://contoso.example/support", PrivacyURL: "https://contoso.example/privacy", TermsURL: "https://contoso.example/terms",
	AppURL: "https://app.contoso.example/",
	Offers: map[string]server.OfferBrand{emulator.DemoOfferID: {Name: "Contoso Analytics", AppURL: "https://analytics.contoso.example/start"}},
}

func withBrand(c *server.Config) { c.Brand = demoBrand }

// internalWords are names buyers must never read: Microsoft's statuses, the workflow's phases, offer and
// plan IDs, and the text of internal errors.
var internalWords = regexp.MustCompile(`PendingFulfillmentStart|>Subscribed<|Unsubscribed|AwaitingConfirmation|AwaitingApproval|Provisioning|Activating|ActivationFailed|\bIdle\b|contoso-analytics|>team<|>trial<|activate: |marketplace: |injected`)

func noInternalWords(t *testing.T, page, where string) {
	t.Helper()
	if m := internalWords.FindString(page); m != "" {
		t.Errorf("%s shows the internal %q", where, m)
	}
}

// The pages look like the vendor's product and speak the buyer's words: the product's name and logo, the
// plan's display name from List available plans, free trials said as such, each status as the buyer reads
// it, an "Open <product>" button to the offer's application once ready, support and legal links.
func TestPagesSpeakTheBuyersWords(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{ConfigureServer: withBrand})
	b := buyer()
	p := s.Emu.PurchaseAs(t, "trial", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	code, page := signInAs(t, b, p.LandingURL, emulator.BuyerPurchaser)
	if code != 200 {
		t.Fatalf("landing: %d", code)
	}
	for _, want := range []string{
		`<img src="https://cdn.contoso.example/logo.svg" alt="">`, `<span id="product">Contoso Analytics</span>`,
		"<dd>Contoso Analytics</dd>", `<dd>Free trial<span class="tag">Free trial</span></dd>`, `id="trial"`, "not charged for its first month",
		"Waiting for your confirmation", "starts when your account is ready",
		`href="https://contoso.example/support"`, `href="https://contoso.example/privacy"`, `href="https://contoso.example/terms"`,
		"Step 1 of 3",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("landing page lacks %q", want)
		}
	}
	noInternalWords(t, page, "the landing page")

	code, page, final := postForm(t, b, s.HTTP.URL+"/landing/confirm", fields(page))
	if code != 200 {
		t.Fatalf("confirm: %d", code)
	}
	noInternalWords(t, page, "the status page while setting up")
	s.WaitState(t, p.SubscriptionID, "Subscribed", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed && st.Phase == subscription.PhaseIdle
	})
	_, page = get(t, b, final.String())
	for _, want := range []string{`id="status">Ready<`, "Your account is ready. You can start using Contoso Analytics now.", `<a class="button" id="open" href="https://analytics.contoso.example/start">Open Contoso Analytics</a>`, "Renews on"} {
		if !strings.Contains(page, want) {
			t.Errorf("ready status page lacks %q", want)
		}
	}
	noInternalWords(t, page, "the ready status page")
	_, js := get(t, b, final.String()+"&format=json")
	for _, want := range []string{`"label":"Ready"`, `"step":3`, `"done":true`} {
		if !strings.Contains(js, want) {
			t.Errorf("status JSON lacks %s: %s", want, js)
		}
	}

	// Suspended, then cancelled: said as the buyer reads it, with what to do.
	if _, err := s.Emu.Emulator.Suspend(p.SubscriptionID); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "Suspended", func(st subscription.State) bool { return st.Status == marketplace.StatusSuspended })
	_, page = get(t, b, final.String())
	if !strings.Contains(page, "Suspended: check your payment method") || !strings.Contains(page, "Your data is kept") || strings.Contains(page, `id="open"`) {
		t.Errorf("suspended status page:\n%s", page)
	}
	noInternalWords(t, page, "the suspended status page")
	if _, err := s.Emu.Emulator.Unsubscribe(p.SubscriptionID); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "Unsubscribed", func(st subscription.State) bool { return st.Status == marketplace.StatusUnsubscribed })
	_, page = get(t, b, final.String())
	if !strings.Contains(page, `id="status">Cancelled<`) || !strings.Contains(page, "buy it again from Microsoft") {
		t.Errorf("cancelled status page:\n%s", page)
	}
	noInternalWords(t, page, "the cancelled status page")
}

// A failed activation says what happens next, never the internal error.
func TestFailedActivationSaysWhatHappensNext(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{ConfigureServer: withBrand})
	if err := s.Emu.Emulator.AddFault(emulator.Fault{Endpoint: emulator.EndpointActivate, Status: http.StatusBadRequest}); err != nil {
		t.Fatal(err)
	}
	b := buyer()
	p := s.Emu.PurchaseAs(t, "team", 5, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	_, page := signInAs(t, b, p.LandingURL, emulator.BuyerPurchaser)
	code, _, final := postForm(t, b, s.HTTP.URL+"/landing/confirm", fields(page))
	if code != 200 {
		t.Fatalf("confirm: %d", code)
	}
	st := s.WaitState(t, p.SubscriptionID, "activation failed", func(st subscription.State) bool { return st.Phase == subscription.PhaseActivationFailed })
	_, page = get(t, b, final.String())
	for _, want := range []string{"Setup needs our attention", "Our team has been told", "You are not billed"} {
		if !strings.Contains(page, want) {
			t.Errorf("failed activation page lacks %q", want)
		}
	}
	if st.LastError == "" || strings.Contains(page, st.LastError) {
		t.Errorf("the internal error %q is shown", st.LastError)
	}
	noInternalWords(t, page, "the failed activation page")
	if _, js := get(t, b, final.String()+"&format=json"); strings.Contains(js, st.LastError) || !strings.Contains(js, `"done":true`) {
		t.Errorf("status JSON: %s", js)
	}
}

// An invalid link and an expired one are told apart, each with what to do; a link made for another
// publisher's offer says so. None starts anything.
func TestLinkProblemsAreToldApart(t *testing.T) {
	other := emulator.Publisher{ID: "fabrikam-isv", TenantID: "11111111-2222-4333-8444-555555555555", AppID: "66666666-7777-4888-9999-000000000000",
		Offers: []emulator.Offer{{ID: "fabrikam-backup", DisplayName: "Fabrikam Backup", Plans: []emulator.Plan{{ID: "std", DisplayName: "Standard"}}}}}
	s := stacktest.Start(t, stacktest.Options{ConfigureServer: withBrand, ConfigureEmulator: func(c *emulator.Config) { c.Publishers = append(c.Publishers, other) }})
	b := signedIn(t, s, emulator.BuyerPurchaser)
	ada := emulator.DemoBuyer(emulator.BuyerPurchaser).Identity()

	foreign, err := s.Emu.Emulator.Purchase(emulator.PurchaseRequest{OfferID: "fabrikam-backup", PlanID: "std", Beneficiary: &ada})
	if err != nil {
		t.Fatal(err)
	}
	code, page := get(t, b, foreign.LandingURL)
	if code != http.StatusBadRequest || !strings.Contains(page, "This link is for another product") || !strings.Contains(page, "not Contoso Suite") {
		t.Errorf("another publisher's token: %d\n%s", code, page)
	}
	noWorkflow(t, s, foreign.SubscriptionID)

	mine := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	code, page = get(t, b, s.HTTP.URL+"/landing?token=not-a-token")
	if code != http.StatusBadRequest || !strings.Contains(page, "This link is not valid") || strings.Contains(page, "expired") {
		t.Errorf("invalid link: %d\n%s", code, page)
	}
	s.Emu.Emulator.AdvanceClock(25 * time.Hour)
	code, page = get(t, b, mine.LandingURL)
	if code != http.StatusBadRequest || !strings.Contains(page, "This link has expired") || !strings.Contains(page, "24 hours") {
		t.Errorf("expired link: %d\n%s", code, page)
	}
	noWorkflow(t, s, mine.SubscriptionID)
}
