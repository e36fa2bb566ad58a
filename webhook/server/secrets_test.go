package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// Purchase tokens and bearer tokens are credentials: a landing visit, a confirmation and webhooks (taken
// and refused), with every logger of the stack at debug level, leave no trace of them in any message or
// field.
func TestTokensNeverReachTheLogs(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s, a := stackWithAuthority(t, stacktest.Options{Logger: zap.New(core)})
	var secrets []string
	secret := func(v string) string {
		secrets = append(secrets, v, url.QueryEscape(v))
		if parts := strings.Split(v, "."); len(parts) == 3 {
			secrets = append(secrets, parts[2]) // a JWT's signature alone is enough to replay it
		}
		return v
	}

	// The buyer signs in (the authorization code travels in the callback URL), lands, confirms, and
	// follows the status.
	b := buyer()
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if c := req.URL.Query().Get("code"); c != "" {
			secret(c)
		}
		return nil
	}
	p := s.Emu.PurchaseAs(t, "basic", 0, emulator.BuyerPurchaser, emulator.BuyerPurchaser)
	secret(p.Token)
	secret(emulator.DemoSignInSecret)
	secret(emulator.DemoBuyer(emulator.BuyerPurchaser).Email)
	_, page := signInAs(t, b, p.LandingURL, emulator.BuyerPurchaser)
	code, _, final := postForm(t, b, s.HTTP.URL+"/landing/confirm", fields(page))
	if code != 200 {
		t.Fatalf("confirm: %d", code)
	}
	s.WaitState(t, p.SubscriptionID, "Subscribed", func(st subscription.State) bool { return st.Status == marketplace.StatusSubscribed })
	get(t, b, final.String())
	// A token that does not resolve is logged as refused, not shown.
	bad := secret(p.Token[:len(p.Token)-6] + "AAAAAA")
	get(t, b, s.HTTP.URL+"/landing?token="+url.QueryEscape(bad))

	// A webhook taken, and one refused for its claims.
	good := secret(signRS256(t, genuineClaims(s), a.key, a.kid))
	if got := post(t, s.HTTP.URL+"/webhook", good, "application/json", event(p.SubscriptionID, uuid.NewString(), marketplace.ActionRenew)); got.status != http.StatusOK {
		t.Fatalf("webhook: %+v", got)
	}
	wrong := genuineClaims(s)
	wrong["aud"] = uuid.NewString()
	refused := secret(signRS256(t, wrong, a.key, a.kid))
	if got := post(t, s.HTTP.URL+"/webhook", refused, "application/json", event(p.SubscriptionID, uuid.NewString(), marketplace.ActionRenew)); got.status != http.StatusUnauthorized {
		t.Fatalf("refused webhook: %+v", got)
	}

	entries := logs.All()
	if len(logs.FilterMessage("webhook recorded").All()) == 0 || len(logs.FilterMessage("webhook refused").All()) == 0 || len(logs.FilterMessage("buyer signed in").All()) == 0 {
		t.Fatalf("the server's log lines are missing (%d entries): the test would prove nothing", len(entries))
	}
	for _, e := range entries {
		text := e.LoggerName + " " + e.Message + " " + e.Stack
		for k, v := range e.ContextMap() {
			text += " " + k + "=" + fmt.Sprint(v)
		}
		for _, sec := range secrets {
			if strings.Contains(text, sec) {
				t.Errorf("a token reached the log: %s %q %v", e.Level, e.Message, e.ContextMap())
				break
			}
		}
	}
}
