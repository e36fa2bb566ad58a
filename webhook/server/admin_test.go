package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/webhook/server"
	"saasengine/workflows/subscription"
)

type listing struct {
	Subscriptions []struct {
		SubscriptionID, Status, OfferID, PlanID string
		Quantity                                int64
		Running                                 bool
	} `json:"subscriptions"`
	NextPageToken string `json:"nextPageToken"`
}

func (l listing) ids() []string {
	var out []string
	for _, s := range l.Subscriptions {
		out = append(out, s.SubscriptionID)
	}
	slices.Sort(out)
	return out
}

// waitListing polls the admin listing (visibility is eventually consistent) until it holds exactly want.
func waitListing(t *testing.T, s *stacktest.Stack, query string, want ...string) listing {
	t.Helper()
	slices.Sort(want)
	var l listing
	eventually(t, 30*time.Second, "listing "+query, func() (bool, string) {
		l = listing{}
		code, body := admin(t, s, "GET", "/admin/subscriptions"+query, stacktest.AdminToken, "", &l)
		return code == 200 && slices.Equal(l.ids(), want), fmt.Sprintf("%d %s", code, body)
	})
	return l
}

func TestAdminRequiresTheBearerToken(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	for _, c := range []struct{ method, path, auth string }{
		{"GET", "/admin/subscriptions", ""},
		{"GET", "/admin/subscriptions", "Bearer wrong"},
		{"GET", "/admin/subscriptions", "Bearer " + stacktest.AdminToken + "x"},
		{"GET", "/admin/subscriptions", stacktest.AdminToken}, // no scheme
		{"GET", "/admin/subscriptions", "Basic " + stacktest.AdminToken},
		{"POST", "/admin/subscriptions/" + uuid.NewString() + "/cancel", "Bearer wrong"},
		{"POST", "/admin/reconcile", ""},
	} {
		req, _ := http.NewRequest(c.method, s.HTTP.URL+c.path, nil)
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s with %q: %d", c.method, c.path, c.auth, resp.StatusCode)
		}
	}
}

func TestAdminAPI(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	tok := stacktest.AdminToken
	team := s.Activated(t, "team", 10)
	basic := s.Activated(t, "basic", 0)

	// Get state.
	var st subscription.State
	if code, body := admin(t, s, "GET", "/admin/subscriptions/"+team, tok, "", &st); code != 200 || st.Status != marketplace.StatusSubscribed || st.PlanID != "team" || st.Quantity != 10 || !st.Provisioned {
		t.Fatalf("state: %d %s", code, body)
	}

	// Commands that succeed, and reach Microsoft.
	var res subscription.CommandResult
	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+team+"/quantity", tok, `{"quantity":25}`, &res); code != 200 || res.Status != string(marketplace.OperationSucceeded) || res.OperationID == "" {
		t.Fatalf("change quantity: %d %s", code, body)
	}
	if sub, _ := s.Emu.Emulator.Subscription(team); sub.Quantity != 25 {
		t.Fatalf("Microsoft has %d seats", sub.Quantity)
	}

	// Refusals: 4xx with the workflow's (or the API's) code and message.
	unknown := uuid.NewString()
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"same quantity", "POST", "/admin/subscriptions/" + team + "/quantity", `{"quantity":25}`, 400, ""},
		{"zero seats", "POST", "/admin/subscriptions/" + team + "/quantity", `{"quantity":0}`, 400, ""},
		{"below the plan minimum", "POST", "/admin/subscriptions/" + team + "/quantity", `{"quantity":2}`, 400, ""},
		{"above the plan maximum", "POST", "/admin/subscriptions/" + team + "/quantity", `{"quantity":5000}`, 400, ""},
		{"seats on a flat-rate plan", "POST", "/admin/subscriptions/" + basic + "/quantity", `{"quantity":10}`, 400, ""},
		{"same plan", "POST", "/admin/subscriptions/" + team + "/plan", `{"planId":"team"}`, 400, ""},
		{"unknown plan", "POST", "/admin/subscriptions/" + team + "/plan", `{"planId":"platinum"}`, 400, ""},
		{"no plan", "POST", "/admin/subscriptions/" + team + "/plan", `{}`, 400, ""},
		{"unknown field", "POST", "/admin/subscriptions/" + team + "/plan", `{"plan":"enterprise"}`, 400, "MalformedRequest"},
		{"not JSON", "POST", "/admin/subscriptions/" + team + "/quantity", `quantity=30`, 400, "MalformedRequest"},
		{"quote in a filter", "GET", "/admin/subscriptions?status=x'%20OR%20'1'='1", "", 400, "BadFilter"},
		{"unknown status", "GET", "/admin/subscriptions?status=Nope", "", 400, "BadFilter"},
		{"bad page token", "GET", "/admin/subscriptions?pageToken=%25%25", "", 400, "BadPageToken"},
		{"get unknown", "GET", "/admin/subscriptions/" + unknown, "", 404, "NotFound"},
		{"quantity of unknown", "POST", "/admin/subscriptions/" + unknown + "/quantity", `{"quantity":30}`, 404, "NotFound"},
		{"plan of unknown", "POST", "/admin/subscriptions/" + unknown + "/plan", `{"planId":"enterprise"}`, 404, "NotFound"},
		{"cancel unknown", "POST", "/admin/subscriptions/" + unknown + "/cancel", "", 404, "NotFound"},
		{"approve unknown", "POST", "/admin/subscriptions/" + unknown + "/approve", "", 404, "NotFound"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e apiError
			code, body := admin(t, s, c.method, c.path, tok, c.body, &e)
			if code/100 != 4 || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%d %s: want a 4xx with code and message", code, body)
			}
			if c.status != 0 && code != c.status || c.code != "" && e.Error.Code != c.code {
				t.Fatalf("%d %s: want %d %s", code, body, c.status, c.code)
			}
		})
	}
	// No refusal changed anything.
	if code, _ := admin(t, s, "GET", "/admin/subscriptions/"+team, tok, "", &st); code != 200 || st.Quantity != 25 || st.PlanID != "team" {
		t.Fatalf("after refusals: %+v", st)
	}
	noWorkflow(t, s, unknown)

	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+team+"/plan", tok, `{"planId":"enterprise"}`, &res); code != 200 || res.Status != string(marketplace.OperationSucceeded) {
		t.Fatalf("change plan: %d %s", code, body)
	}
	if sub, _ := s.Emu.Emulator.Subscription(team); sub.PlanID != "enterprise" {
		t.Fatalf("Microsoft has plan %s", sub.PlanID)
	}

	// Microsoft suspends the flat-rate one; its webhook updates the engine and the listing.
	if _, err := s.Emu.Emulator.Suspend(basic); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, basic, "suspended", func(st subscription.State) bool { return st.Status == marketplace.StatusSuspended })

	// Listing through visibility, with filters.
	all := waitListing(t, s, "", team, basic)
	for _, x := range all.Subscriptions {
		if x.OfferID != emulator.DemoOfferID || !x.Running {
			t.Errorf("summary %+v", x)
		}
	}
	l := waitListing(t, s, "?status=Subscribed&plan=enterprise", team)
	if l.Subscriptions[0].Quantity != 50 {
		t.Errorf("enterprise raised the seats to its minimum of 50; listing says %d", l.Subscriptions[0].Quantity)
	}
	waitListing(t, s, "?status=Suspended", basic)
	waitListing(t, s, "?plan=basic", basic)
	waitListing(t, s, "?offer="+emulator.DemoOfferID+"&status=Subscribed", team)
	waitListing(t, s, "?plan=team")
	waitListing(t, s, "?offer=someone-elses-offer")

	var run struct{ WorkflowID string }
	if code, body := admin(t, s, "POST", "/admin/reconcile", tok, "", &run); code != 200 || run.WorkflowID == "" {
		t.Fatalf("reconcile: %d %s", code, body)
	}

	// Cancel; commands on the ended subscription are refused as a conflict of state.
	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+team+"/cancel", tok, "", &res); code != 200 || res.Status != string(marketplace.OperationSucceeded) {
		t.Fatalf("cancel: %d %s", code, body)
	}
	s.WaitState(t, team, "deprovisioned", func(st subscription.State) bool { return !st.DeprovisionedAt.IsZero() })
	var e apiError
	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+team+"/quantity", tok, `{"quantity":60}`, &e); code != http.StatusConflict || e.Error.Code == "" {
		t.Fatalf("command on an ended subscription: %d %s", code, body)
	}
	waitListing(t, s, "?status=Unsubscribed", team)
}

func TestApprovalOfAPendingActivation(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Workflow: subscription.Options{RequireApproval: true}})
	p := s.Emu.Purchase(t, "basic", 0)
	res, err := s.Emu.Client.Resolve(t.Context(), p.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subs.Confirm(t.Context(), res.Subscription); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "awaiting approval", func(st subscription.State) bool { return st.Phase == subscription.PhaseAwaitingApproval })
	waitListing(t, s, "?status=PendingFulfillmentStart", p.SubscriptionID)
	if sub, _ := s.Emu.Emulator.Subscription(p.SubscriptionID); sub.Status != marketplace.StatusPendingFulfillmentStart {
		t.Fatalf("activated before approval: %s", sub.Status)
	}
	if n := s.Emu.Emulator.Calls(emulator.EndpointActivate, p.SubscriptionID); n != 0 {
		t.Fatalf("Activate called %d times before approval", n)
	}
	var st subscription.State
	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+p.SubscriptionID+"/approve", stacktest.AdminToken, "", &st); code != 200 || !st.Approved {
		t.Fatalf("approve: %d %s", code, body)
	}
	s.WaitState(t, p.SubscriptionID, "Subscribed", func(st subscription.State) bool { return st.Status == marketplace.StatusSubscribed && st.Provisioned })
	if n := s.Emu.Emulator.Calls(emulator.EndpointActivate, p.SubscriptionID); n != 1 {
		t.Fatalf("Activate called %d times", n)
	}
	waitListing(t, s, "?status=Subscribed", p.SubscriptionID)
}

// The operations endpoints: liveness, readiness, and the Prometheus series of requests and webhooks.
func TestOperationsEndpoints(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	id := s.Activated(t, "team", 10)
	if _, err := s.Emu.Emulator.CustomerChangeQuantity(id, 12); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, id, "12 seats", func(st subscription.State) bool { return st.Quantity == 12 })
	admin(t, s, "GET", "/admin/subscriptions/"+id, stacktest.AdminToken, "", nil)
	admin(t, s, "GET", "/admin/subscriptions/"+id, "", "", nil)
	get(t, http.DefaultClient, s.HTTP.URL+"/no/such/path/"+uuid.NewString())

	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, http.DefaultClient, s.HTTP.URL+p); code != 200 || !strings.Contains(body, `"status"`) {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	page := metrics(t, s)
	for series, min := range map[string]float64{
		`saasengine_http_requests_total{method="GET",route="/admin/subscriptions/{id}",status="200"}`:               1,
		`saasengine_http_requests_total{method="GET",route="/admin/subscriptions/{id}",status="401"}`:               1,
		`saasengine_http_requests_total{method="POST",route="/webhook",status="200"}`:                               1,
		`saasengine_http_requests_total{method="GET",route="unmatched",status="404"}`:                               1,
		`saasengine_webhook_deliveries_total{action="ChangeQuantity",outcome="accepted"}`:                           1,
		`saasengine_http_request_duration_seconds_count{method="POST",route="/webhook"}`:                            1,
		`saasengine_http_request_duration_seconds_bucket{method="GET",route="/admin/subscriptions/{id}",le="+Inf"}`: 2,
	} {
		if v := metricValue(page, series); v < min {
			t.Errorf("%s = %v, want at least %v", series, v, min)
		}
	}
	if strings.Contains(page, id) {
		t.Error("a subscription ID leaked into a metric label")
	}
}

// Microsoft's operation outlasts the admin command's wait: the answer is 202 with where to follow it,
// inside the server's write timeout, and the workflow still sees the change through.
func TestAdminCommandPastItsWaitAnswers202(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{
		ConfigureEmulator: func(c *emulator.Config) { c.OperationDelay = emulator.Duration(time.Hour) },
		ConfigureServer:   func(c *server.Config) { c.CommandWait = 2 * time.Second },
	})
	id := s.Activated(t, "team", 10)

	var got struct{ Status, OperationID, Message, Subscription string }
	resp, body := s.Admin(t, "POST", "/admin/subscriptions/"+id+"/quantity", stacktest.AdminToken, `{"quantity":25}`)
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := "/admin/subscriptions/" + id
	if resp.StatusCode != http.StatusAccepted || got.Status != "InProgress" || got.Message == "" || got.Subscription != want || resp.Header.Get("Location") != want {
		t.Fatalf("quantity past the wait: %d %+v Location %q", resp.StatusCode, got, resp.Header.Get("Location"))
	}
	st := s.WaitState(t, id, "operation pending", func(st subscription.State) bool { return st.Pending != nil })
	if got.OperationID != "" && got.OperationID != st.Pending.ID {
		t.Fatalf("202 names operation %s; the workflow follows %s", got.OperationID, st.Pending.ID)
	}
	// The link answers with the subscription's state, the pending operation in it.
	var linked subscription.State
	if code, body := admin(t, s, "GET", got.Subscription, stacktest.AdminToken, "", &linked); code != 200 || linked.Pending == nil {
		t.Fatalf("GET %s: %d %s", got.Subscription, code, body)
	}

	// Microsoft finishes; the workflow's polling sees it.
	s.Emu.Emulator.AdvanceClock(2 * time.Hour)
	s.WaitState(t, id, "25 seats, nothing pending", func(st subscription.State) bool { return st.Quantity == 25 && st.Pending == nil })
	if sub, _ := s.Emu.Emulator.Subscription(id); sub.Quantity != 25 {
		t.Fatalf("Microsoft has %d seats", sub.Quantity)
	}
	// A refusal still answers 4xx at once, not 202.
	var e apiError
	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+id+"/quantity", stacktest.AdminToken, `{"quantity":25}`, &e); code != 400 || e.Error.Code != "SameQuantity" {
		t.Fatalf("same quantity: %d %s", code, body)
	}
}

// A command no worker takes within the wait is not reported as refused or done: 503 NotAccepted.
func TestAdminCommandNotTakenAnswers503(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{ConfigureServer: func(c *server.Config) { c.CommandWait = time.Second }})
	id := s.Activated(t, "team", 10)
	s.StopWorker()
	var e apiError
	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+id+"/cancel", stacktest.AdminToken, "", &e); code != http.StatusServiceUnavailable || e.Error.Code != "NotAccepted" {
		t.Fatalf("cancel with no worker: %d %s", code, body)
	}
}
