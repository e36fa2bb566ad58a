package emulator

import (
	"strings"

	"saasengine/marketplace"
)

// SignIn is the Entra ID of buyers: the accounts a landing page's sign-in can be completed with, and the
// sign-in apps registered for it (see signin.go).
type SignIn struct {
	// Users are the test accounts offered on the sign-in page; empty means DemoBuyers().
	Users []TestUser `json:"users,omitempty"`
	// Apps are the registered sign-in apps. Empty accepts any client ID and any credential, as a local
	// emulator may; an app listed here must present its secret or an assertion signed with its certificate.
	Apps []SignInApp `json:"apps,omitempty"`
	// CodeTTL is how long an authorization code can be redeemed (Entra: 10 minutes, on the emulated clock).
	CodeTTL Duration `json:"codeTTL,omitempty"`
	// BrowserURL is where browsers reach the emulator, when that is not its public URL (in docker compose,
	// servers call http://emulator:3978 but browsers open http://localhost:3978): the sign-in and sign-out
	// pages are announced there.
	BrowserURL string `json:"browserUrl,omitempty"`
}

// TestUser is one account of the sign-in page.
type TestUser struct {
	// ID names the account on the sign-in page and in tests ("purchaser").
	ID           string `json:"id"`
	Name         string `json:"name"`
	Email        string `json:"email"`
	TenantID     string `json:"tenantId"`
	ObjectID     string `json:"objectId"`
	Organization string `json:"organization,omitempty"`
	// Role says on the sign-in page who this account is in the demo ("bought the subscription").
	Role string `json:"role,omitempty"`
}

// Identity is the account as a subscription names its purchaser or beneficiary.
func (u TestUser) Identity() marketplace.AADIdentifier {
	return marketplace.AADIdentifier{EmailID: u.Email, ObjectID: u.ObjectID, TenantID: u.TenantID}
}

// SignInApp is a registered sign-in app (a landing page's multi-tenant Entra app).
type SignInApp struct {
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret,omitempty"`
	// CertificatePEM is the public certificate of an app that authenticates with a signed assertion
	// (private_key_jwt) instead of a secret.
	CertificatePEM string `json:"certificatePem,omitempty"`
	// RedirectURIs are the registered reply URLs; empty accepts any http or https URL.
	RedirectURIs []string `json:"redirectUris,omitempty"`
}

// IDs of the demo buyers, their tenants and the demo sign-in app: fixed, so that a development setup's
// subscriptions keep matching their buyers across restarts.
const (
	BuyerPurchaser      = "purchaser"
	BuyerCSPPartner     = "csp-partner"
	BuyerCSPBeneficiary = "csp-beneficiary"
	BuyerStranger       = "stranger"
	BuyerOtherTenant    = "other-tenant"

	FabrikamTenantID  = "3f1c8a52-6d0e-4b7a-9c21-5e8f4a7d2b10"
	NorthwindTenantID = "8d2e4f61-1a3b-4c5d-9e7f-0a1b2c3d4e5f"
	AdatumTenantID    = "c5a7e9b1-2d4f-4a6c-8e0a-1b3d5f7a9c2e"
	TailspinTenantID  = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b"

	DemoSignInClientID = "9a7c3e51-4b2d-4f86-a1c0-6e5d8b2f7a34"
	DemoSignInSecret   = "emulator-signin-secret"
)

// DemoBuyers are the accounts of the demo sign-in page: a buyer who purchases for her own company, a CSP
// partner who purchases for a customer and that customer's user, a colleague of the first buyer who is
// neither purchaser nor beneficiary, and a user of an unrelated company.
func DemoBuyers() []TestUser {
	return []TestUser{
		{ID: BuyerPurchaser, Name: "Ada Lovelace", Email: "ada@fabrikam.example", TenantID: FabrikamTenantID, ObjectID: "0b5e2c4a-7d1f-4e3a-9b6c-2f8d1a4e7c90", Organization: "Fabrikam", Role: "bought the subscription for Fabrikam"},
		{ID: BuyerCSPPartner, Name: "Pat Partner", Email: "pat@adatum-csp.example", TenantID: AdatumTenantID, ObjectID: "5c9a1e3b-8f2d-4b7a-a6e4-3d1c9b8a2f71", Organization: "Adatum (CSP partner)", Role: "bought a subscription on behalf of Northwind"},
		{ID: BuyerCSPBeneficiary, Name: "Kim Northwind", Email: "kim@northwind.example", TenantID: NorthwindTenantID, ObjectID: "a3d7f1c9-2e5b-4a8d-b0c6-7e4f2a9d1b36", Organization: "Northwind", Role: "uses the subscription Adatum bought for Northwind"},
		{ID: BuyerStranger, Name: "Sam Colleague", Email: "sam@fabrikam.example", TenantID: FabrikamTenantID, ObjectID: "e8b4c2a6-1d9f-4c3e-8a7b-5f2d6c1e9a04", Organization: "Fabrikam", Role: "works at Fabrikam, neither bought nor uses the subscription"},
		{ID: BuyerOtherTenant, Name: "Lee Tailspin", Email: "lee@tailspin.example", TenantID: TailspinTenantID, ObjectID: "7f3e9d1b-4a6c-4e2f-b8d0-9c5a3e7f1b28", Organization: "Tailspin Toys", Role: "works for an unrelated company"},
	}
}

// DemoBuyer returns a demo buyer by ID; it panics on an unknown ID (a mistake in a test or in the code).
func DemoBuyer(id string) TestUser {
	for _, u := range DemoBuyers() {
		if u.ID == id {
			return u
		}
	}
	panic("emulator: no demo buyer " + id)
}

func (s SignIn) users() []TestUser {
	if len(s.Users) == 0 {
		return DemoBuyers()
	}
	return s.Users
}

// app finds a registered app; with none registered, any client ID is an app with no credential checks.
func (s SignIn) app(clientID string) (SignInApp, bool) {
	if len(s.Apps) == 0 {
		return SignInApp{ClientID: clientID}, clientID != ""
	}
	for _, a := range s.Apps {
		if strings.EqualFold(a.ClientID, clientID) {
			return a, true
		}
	}
	return SignInApp{}, false
}

func (a SignInApp) redirectAllowed(uri string) bool {
	if len(a.RedirectURIs) == 0 {
		return strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")
	}
	for _, r := range a.RedirectURIs {
		if r == uri {
			return true
		}
	}
	return false
}
