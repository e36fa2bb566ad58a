package allinone

import (
	"strings"
	"testing"

	"saasengine/config"
)

// TestAdminTokenFollowsTheMarketplace: the development admin token is a default only beside the stack's own
// emulator. Pointed at Microsoft's API the admin API is off unless ADMIN_TOKEN is set, the development token
// is refused there, and the banner says which.
func TestAdminTokenFollowsTheMarketplace(t *testing.T) {
	const emulatorURL = "http://127.0.0.1:3978"
	const microsoft = "https://marketplaceapi.microsoft.com/api"
	// atMicrosoft is a real publisher's configuration, plus extra variables.
	atMicrosoft := func(extra ...string) map[string]string {
		env := map[string]string{
			"MARKETPLACE_BASE_URL":      microsoft,
			"MARKETPLACE_TENANT_ID":     "11111111-1111-1111-1111-111111111111",
			"MARKETPLACE_CLIENT_ID":     "22222222-2222-2222-2222-222222222222",
			"MARKETPLACE_CLIENT_SECRET": "a-client-secret",
			// Against Microsoft, buyers sign in with the vendor's own Entra app.
			"SIGNIN_CLIENT_ID":     "33333333-3333-3333-3333-333333333333",
			"SIGNIN_CLIENT_SECRET": "a-sign-in-secret",
			"SIGNIN_REDIRECT_URL":  "https://isv.example/landing/signin",
		}
		for i := 0; i+1 < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		return env
	}
	resolve := func(t *testing.T, env map[string]string) (config.Webhook, config.Marketplace, bool, error) {
		t.Helper()
		o := Options{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:8080", Getenv: func(k string) string { return env[k] }}
		getenv, useEmulator, err := environment(o, emulatorURL, strings.Repeat("k", 64))
		if err != nil {
			return config.Webhook{}, config.Marketplace{}, false, err
		}
		wc, err := config.WebhookFromEnv(getenv)
		if err != nil {
			t.Fatal(err)
		}
		return wc, config.MarketplaceFromEnv(getenv), useEmulator, nil
	}

	t.Run("own emulator: development token", func(t *testing.T) {
		wc, mc, useEmulator, err := resolve(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !useEmulator || mc.BaseURL != emulatorURL+"/api" {
			t.Fatalf("emulator %v, marketplace %q", useEmulator, mc.BaseURL)
		}
		if wc.AdminToken != devAdminToken {
			t.Fatalf("admin token %q, want the development token", wc.AdminToken)
		}
		banner := (&Stack{HTTPURL: "http://x", AdminToken: wc.AdminToken}).Banner()
		if !strings.Contains(banner, "Bearer "+devAdminToken) {
			t.Fatalf("banner does not show the development token:\n%s", banner)
		}
	})

	t.Run("Microsoft's API without ADMIN_TOKEN: admin API off", func(t *testing.T) {
		wc, mc, useEmulator, err := resolve(t, atMicrosoft())
		if err != nil {
			t.Fatal(err)
		}
		if useEmulator || mc.BaseURL != microsoft {
			t.Fatalf("emulator %v, marketplace %q", useEmulator, mc.BaseURL)
		}
		if wc.AdminToken != "" {
			t.Fatalf("admin token %q, want none (admin API off)", wc.AdminToken)
		}
		if mc.DevTokenSecret != "" {
			t.Fatalf("the emulator's token secret is set against Microsoft's API")
		}
		banner := (&Stack{HTTPURL: "http://x", AdminToken: wc.AdminToken}).Banner()
		if !strings.Contains(banner, "Admin API           off") || !strings.Contains(banner, "ADMIN_TOKEN") {
			t.Fatalf("banner does not say the admin API is off:\n%s", banner)
		}
	})

	t.Run("Microsoft's API with ADMIN_TOKEN: the operator's token, not printed", func(t *testing.T) {
		const own = "an-operator-chosen-token-0123456789"
		wc, _, _, err := resolve(t, atMicrosoft("ADMIN_TOKEN", own))
		if err != nil {
			t.Fatal(err)
		}
		if wc.AdminToken != own {
			t.Fatalf("admin token %q, want the operator's", wc.AdminToken)
		}
		if banner := (&Stack{HTTPURL: "http://x", AdminToken: wc.AdminToken}).Banner(); strings.Contains(banner, own) {
			t.Fatalf("banner prints the operator's token:\n%s", banner)
		}
	})

	t.Run("Microsoft's API with the development token: refused", func(t *testing.T) {
		_, _, _, err := resolve(t, atMicrosoft("ADMIN_TOKEN", " "+devAdminToken+" "))
		if err == nil || !strings.Contains(err.Error(), "ADMIN_TOKEN") {
			t.Fatalf("err = %v, want a refusal naming ADMIN_TOKEN", err)
		}
	})
}
