package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"saasengine/emulator"
	"saasengine/internal/devmail"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// The end-to-end test runs what `go run ./cmd/allinone` runs, in process, and drives it only through
// real HTTP: the emulator's control API as the customer and Microsoft, the landing page as the buyer's
// browser would, and the admin API as the publisher.

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

type e2e struct {
	t     *testing.T
	stack *Stack
}

func (e e2e) call(method, rawURL, body string, auth bool, out any) int {
	e.t.Helper()
	req, _ := http.NewRequest(method, rawURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth {
		req.Header.Set("Authorization", "Bearer "+e.stack.AdminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %d %s", method, rawURL, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

func (e e2e) customer(id, action, body string) {
	e.t.Helper()
	if code := e.call("POST", e.stack.EmulatorURL+"/control/subscriptions/"+id+"/"+action, body, false, nil); code != http.StatusAccepted {
		e.t.Fatalf("customer %s on %s: %d", action, id, code)
	}
}

func (e e2e) state(id string) subscription.State {
	var st subscription.State
	e.call("GET", e.stack.HTTPURL+"/admin/subscriptions/"+id, "", true, &st)
	return st
}

func (e e2e) microsoft(id string) marketplace.Subscription {
	var v struct {
		Subscription marketplace.Subscription `json:"subscription"`
	}
	e.call("GET", e.stack.EmulatorURL+"/control/subscriptions/"+id, "", false, &v)
	return v.Subscription
}

func (e e2e) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var (
	hidden      = regexp.MustCompile(`name="(subscription|token|csrf)" value="([^"]*)"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// buy purchases in the emulator as its demo buyer Ada, lands on the landing page, signs in as Ada on the
// emulator's Entra and confirms, like a buyer's browser.
func (e e2e) buy(plan string, qty int64) string {
	e.t.Helper()
	var p emulator.Purchase
	ada, err := json.Marshal(emulator.DemoBuyer(emulator.BuyerPurchaser).Identity())
	if err != nil {
		e.t.Fatal(err)
	}
	body := fmt.Sprintf(`{"offerId":%q,"planId":%q,"quantity":%d,"beneficiary":%s}`, emulator.DemoOfferID, plan, qty, ada)
	if code := e.call("POST", e.stack.EmulatorURL+"/control/purchases", body, false, &p); code != http.StatusCreated {
		e.t.Fatalf("purchase: %d", code)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := browser.Get(p.LandingURL)
	if err != nil {
		e.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The landing page sent the browser to sign in first.
	if !strings.HasSuffix(resp.Request.URL.Path, "/oauth2/v2.0/authorize") {
		e.t.Fatalf("landing without signing in: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	signIn := url.Values{"user": {emulator.BuyerPurchaser}}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
		signIn.Set(m[1], html.UnescapeString(m[2]))
	}
	if resp, err = browser.PostForm(resp.Request.URL.String(), signIn); err != nil {
		e.t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	// The buyer's page names the plan as the buyer knows it: its display name.
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), planDisplayName(plan)) {
		e.t.Fatalf("landing page: %d", resp.StatusCode)
	}
	form := url.Values{}
	for _, m := range hidden.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], strings.ReplaceAll(m[2], "&#43;", "+"))
	}
	resp, err = browser.PostForm(e.stack.HTTPURL+"/landing/confirm", form)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Request.URL.Path, "/landing/status/") {
		e.t.Fatalf("confirm: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	e.waitFor(p.SubscriptionID+" Subscribed", func() bool { return e.state(p.SubscriptionID).Status == marketplace.StatusSubscribed })
	return p.SubscriptionID
}

func agree(st subscription.State, ms marketplace.Subscription) bool {
	return st.Status == ms.Status && st.PlanID == ms.PlanID && st.Quantity == int64(ms.Quantity) &&
		st.Term.EndDate.Equal(ms.Term.EndDate.Time)
}

func TestEndToEnd(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"METRICS_ADDR": freeAddr(t), "LOG_LEVEL": "warn", "PROVISIONING_DEMO_MAX_QUANTITY": "100", "RECONCILE_INTERVAL": "off",
		"METERING_GRACE": "1s"}
	opts := Options{
		DataDir: dir, TemporalPort: port(freeAddr(t)), UIPort: -1,
		EmulatorAddr: freeAddr(t), HTTPAddr: freeAddr(t),
		Getenv: func(k string) string { return env[k] },
	}
	stack, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stack.Close() }()
	e := e2e{t: t, stack: stack}

	// The lifecycles run in parallel; each records its subscription here.
	var (
		mu  sync.Mutex
		ids = map[string]string{}
	)
	record := func(name, id string) {
		mu.Lock()
		defer mu.Unlock()
		ids[name] = id
	}
	t.Run("lifecycles", func(t *testing.T) {
		t.Run("seats-and-publisher-changes", func(t *testing.T) {
			t.Parallel()
			e := e2e{t: t, stack: stack}
			id := e.buy("team", 10)
			record("seats", id)
			e.customer(id, "change-quantity", `{"quantity":20}`)
			e.waitFor("20 seats", func() bool { return e.state(id).Quantity == 20 && e.microsoft(id).Quantity == 20 })
			// Above the demo provisioner's limit: rejected, and Microsoft keeps 20.
			e.customer(id, "change-quantity", `{"quantity":150}`)
			e.waitFor("rejected change settled", func() bool {
				for _, a := range e.state(id).Audit {
					if a.Kind == "decided" && a.To == subscription.OutcomeRejected {
						return true
					}
				}
				return false
			})
			time.Sleep(time.Second)
			if q := e.microsoft(id).Quantity; q != 20 {
				t.Fatalf("rejected change applied at Microsoft: %d", q)
			}
			var res subscription.CommandResult
			if code := e.call("POST", stack.HTTPURL+"/admin/subscriptions/"+id+"/plan", `{"planId":"enterprise"}`, true, &res); code != 200 || res.Status != "Succeeded" {
				t.Fatalf("publisher plan change: %d %+v", code, res)
			}
			if code := e.call("POST", stack.HTTPURL+"/admin/subscriptions/"+id+"/quantity", `{"quantity":60}`, true, &res); code != 200 || res.Status != "Succeeded" {
				t.Fatalf("publisher seat change: %d %+v", code, res)
			}
			var bad struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if code := e.call("POST", stack.HTTPURL+"/admin/subscriptions/"+id+"/quantity", `{"quantity":60}`, true, &bad); code < 400 || code > 499 || bad.Error.Message == "" {
				t.Fatalf("same quantity accepted: %d %+v", code, bad)
			}
			if code := e.call("POST", stack.HTTPURL+"/admin/subscriptions/"+id+"/cancel", ``, true, &res); code != 200 || res.Status != "Succeeded" {
				t.Fatalf("publisher cancel: %d %+v", code, res)
			}
		})
		t.Run("suspend-reinstate-renew-unsubscribe", func(t *testing.T) {
			t.Parallel()
			e := e2e{t: t, stack: stack}
			id := e.buy("basic", 0)
			record("suspend", id)
			e.customer(id, "suspend", ``)
			e.waitFor("suspended", func() bool { st := e.state(id); return st.Status == marketplace.StatusSuspended && st.TenantSuspended })
			e.customer(id, "reinstate", ``)
			e.waitFor("reinstated", func() bool {
				st := e.state(id)
				return st.Status == marketplace.StatusSubscribed && !st.TenantSuspended
			})
			before := e.state(id).Term.EndDate
			e.customer(id, "renew", ``)
			e.waitFor("renewed", func() bool { return e.state(id).Term.EndDate.After(before.Time) })
			e.customer(id, "unsubscribe", ``)
			e.waitFor("unsubscribed", func() bool { return !e.state(id).DeprovisionedAt.IsZero() })
		})
		t.Run("trial-then-paid", func(t *testing.T) {
			t.Parallel()
			e := e2e{t: t, stack: stack}
			id := e.buy("trial", 0)
			record("trial", id)
			if !e.state(id).IsFreeTrial {
				t.Fatal("trial not recorded")
			}
			e.customer(id, "change-plan", `{"planId":"metered"}`)
			e.waitFor("metered plan", func() bool { st := e.state(id); return st.PlanID == "metered" && !st.IsFreeTrial })
			e.customer(id, "renew", ``)
		})
		t.Run("untouched", func(t *testing.T) {
			t.Parallel()
			e := e2e{t: t, stack: stack}
			record("untouched", e.buy("team", 5))
		})
		t.Run("metered-usage", func(t *testing.T) {
			t.Parallel()
			e := e2e{t: t, stack: stack}
			id := e.buy("metered", 0)
			record("metered", id)
			// Two reports for an hour that has closed, one more with the same idempotency ID (a retry).
			hour := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Hour)
			body := fmt.Sprintf(`[{"id":"r1","dimension":"api_calls","quantity":3,"time":%q},
				{"id":"r2","dimension":"api_calls","quantity":4.5,"time":%q},
				{"id":"r1","dimension":"api_calls","quantity":3,"time":%q}]`,
				hour.Add(5*time.Minute).Format(time.RFC3339), hour.Add(50*time.Minute).Format(time.RFC3339), hour.Add(5*time.Minute).Format(time.RFC3339))
			if code := e.call("POST", stack.HTTPURL+"/admin/subscriptions/"+id+"/usage", body, true, nil); code != http.StatusAccepted {
				t.Fatalf("usage report: %d", code)
			}
			// Microsoft receives one event for the hour, with the reports summed once each.
			e.waitFor("usage at Microsoft", func() bool {
				var st struct {
					Usage []marketplace.UsageEventResult `json:"usage"`
				}
				e.call("GET", stack.EmulatorURL+"/control/state", "", false, &st)
				n := 0
				for _, u := range st.Usage {
					if u.ResourceID == id {
						n++
						if u.Status != marketplace.UsageAccepted || u.Quantity != 7.5 || u.Dimension != "api_calls" || !u.EffectiveStartTime.Equal(hour) {
							t.Fatalf("usage at Microsoft: %+v", u)
						}
					}
				}
				return n == 1
			})
		})
	})
	if t.Failed() {
		return
	}

	// Both sides agree on every subscription.
	for name, id := range ids {
		e.waitFor(name+" agrees with Microsoft", func() bool { return agree(e.state(id), e.microsoft(id)) })
	}

	// The banner names both metrics endpoints, and both serve Prometheus' text format with counters.
	banner := stack.Banner()
	for u, counter := range map[string]string{stack.MetricsURL: "temporal_workflow_completed_total", stack.HTTPURL + "/metrics": "saasengine_http_requests_total"} {
		if stack.MetricsURL == "" || !strings.Contains(banner, u) {
			t.Errorf("the banner does not name %q:\n%s", u, banner)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "# TYPE "+counter+" counter") {
			t.Errorf("%s: %d, no counter %s:\n%.2000s", u, resp.StatusCode, counter, page)
		}
	}

	// Personal data is encrypted in Temporal.
	checkPayloadsEncrypted(t, stack, dir, ids["seats"])

	// The operators were told by e-mail, which the development mail server received and its page (named in
	// the banner) shows: the refused seat change, the suspension, the reinstatement and the end.
	if stack.Mail == nil || stack.MailURL == "" || !strings.Contains(banner, stack.MailURL) {
		t.Fatalf("no development mail server named in the banner:\n%s", banner)
	}
	want := map[string]string{"[change-refused]": ids["seats"], "[suspended]": ids["suspend"], "[reinstated]": ids["suspend"], "[unsubscribed]": ids["suspend"]}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for prefix, id := range want {
		if _, err := stack.Mail.Wait(ctx, func(m devmail.Message) bool {
			return strings.HasPrefix(m.Subject, prefix) && strings.Contains(m.Subject, id)
		}); err != nil {
			t.Errorf("no %s mail about %s: %v", prefix, id, err)
		}
	}
	resp, err := http.Get(stack.MailURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for prefix := range want {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), html.EscapeString(prefix)) {
			t.Errorf("%s: %d, no %s mail shown:\n%.3000s", stack.MailURL, resp.StatusCode, prefix, page)
		}
	}
}

// checkPayloadsEncrypted reads a subscription's history as stored (a client without the engine's keys)
// and finds the purchaser's e-mail address nowhere in it, while the engine (with its keys) and the codec
// endpoint (for the Web UI and the CLI) read it back.
func checkPayloadsEncrypted(t *testing.T, stack *Stack, dataDir, id string) {
	t.Helper()
	email := emulator.DemoBuyer(emulator.BuyerPurchaser).Email
	var st subscription.State
	(e2e{t: t, stack: stack}).call("GET", stack.HTTPURL+"/admin/subscriptions/"+id, "", true, &st)
	if st.Purchaser.EmailID != email {
		t.Fatalf("the engine reads the purchaser as %q, want %q", st.Purchaser.EmailID, email)
	}
	raw, err := client.Dial(client.Options{HostPort: stack.TemporalAt, Namespace: stack.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var input *commonpb.Payloads
	events := 0
	it := raw.GetWorkflowHistory(ctx, subscription.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		events++
		// The wire form holds every payload's bytes as they are stored.
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(email)) {
			t.Fatalf("event %d (%s) holds the purchaser's e-mail address as stored", ev.GetEventId(), ev.GetEventType())
		}
		if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil && input == nil {
			input = a.GetInput()
		}
	}
	if events < 5 || input == nil || len(input.GetPayloads()) == 0 {
		t.Fatalf("history of %d events, start input %v", events, input)
	}
	if enc := string(input.GetPayloads()[0].GetMetadata()["encoding"]); enc != "binary/encrypted" {
		t.Fatalf("the start input is stored as %q, not encrypted", enc)
	}

	// The codec endpoint: at the UI's secret address, with the admin token, and nowhere else.
	body, err := protojson.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	pathKey, err := os.ReadFile(filepath.Join(dataDir, "codec-path.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path   string
		bearer bool
		want   int
	}{
		{"/codec/" + strings.TrimSpace(string(pathKey)) + "/decode", false, http.StatusOK},
		{"/codec/decode", true, http.StatusOK},
		{"/codec/decode", false, http.StatusUnauthorized},
		{"/codec/not-the-key-not-the-key-not-the-key/decode", false, http.StatusNotFound},
	} {
		req, _ := http.NewRequest("POST", stack.HTTPURL+c.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if c.bearer {
			req.Header.Set("Authorization", "Bearer "+stack.AdminToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("POST %s (bearer %v): %d, want %d: %.200s", c.path, c.bearer, resp.StatusCode, c.want, out)
			continue
		}
		if c.want == http.StatusOK {
			var decoded commonpb.Payloads
			if err := protojson.Unmarshal(out, &decoded); err != nil || len(decoded.GetPayloads()) != 1 || !strings.Contains(string(decoded.GetPayloads()[0].GetData()), email) {
				t.Errorf("POST %s decoded %.300s (%v), want the start input with the purchaser's address", c.path, out, err)
			}
		}
	}
}

// planDisplayName is the demo offer's display name of a plan, as the buyer's pages show it.
func planDisplayName(planID string) string {
	for _, o := range emulator.DemoConfig().Publishers[0].Offers {
		for _, p := range o.Plans {
			if p.ID == planID && p.DisplayName != "" {
				return p.DisplayName
			}
		}
	}
	return planID
}
