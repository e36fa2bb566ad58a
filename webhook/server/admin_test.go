package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/workflows"
)

func admin(t *testing.T, s *stacktest.Stack, method, path, token, body string, out any) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.HTTP.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	return resp.StatusCode, string(b)
}

type apiError struct {
	Error struct{ Code, Message string } `json:"error"`
}

func TestAdminAPI(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	tok := stacktest.AdminToken
	id := s.Activated(t, "team", 10)

	for _, bad := range []string{"", "wrong"} {
		var e apiError
		if code, _ := admin(t, s, "GET", "/admin/subscriptions", bad, "", &e); code != http.StatusUnauthorized || e.Error.Code != "Unauthorized" {
			t.Fatalf("token %q: %d %+v", bad, code, e)
		}
	}

	var st workflows.State
	if code, body := admin(t, s, "GET", "/admin/subscriptions/"+id, tok, "", &st); code != 200 || st.Status != marketplace.StatusSubscribed || st.Quantity != 10 {
		t.Fatalf("state: %d %s", code, body)
	}
	if code, _ := admin(t, s, "GET", "/admin/subscriptions/"+uuid.NewString(), tok, "", nil); code != http.StatusNotFound {
		t.Fatalf("unknown subscription: %d", code)
	}

	var res workflows.CommandResult
	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+id+"/quantity", tok, `{"quantity":25}`, &res); code != 200 || res.Status != "Succeeded" || res.OperationID == "" {
		t.Fatalf("change quantity: %d %s", code, body)
	}
	if sub, _ := s.Emu.Emulator.Subscription(id); sub.Quantity != 25 {
		t.Fatalf("Microsoft has %d seats", sub.Quantity)
	}
	for name, c := range map[string]struct{ path, body string }{
		"same quantity":          {"/quantity", `{"quantity":25}`},
		"zero seats":             {"/quantity", `{"quantity":0}`},
		"above the plan maximum": {"/quantity", `{"quantity":5000}`},
		"same plan":              {"/plan", `{"planId":"team"}`},
		"unknown plan":           {"/plan", `{"planId":"platinum"}`},
		"unknown field":          {"/plan", `{"plan":"enterprise"}`},
	} {
		var e apiError
		code, body := admin(t, s, "POST", "/admin/subscriptions/"+id+c.path, tok, c.body, &e)
		if code < 400 || code > 499 || e.Error.Code == "" || e.Error.Message == "" {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+id+"/plan", tok, `{"planId":"enterprise"}`, &res); code != 200 || res.Status != "Succeeded" {
		t.Fatalf("change plan: %d %s", code, body)
	}

	// Listing through visibility, with filters.
	var list struct {
		Subscriptions []struct {
			SubscriptionID, Status, PlanID string
			Quantity                       int64
		} `json:"subscriptions"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		admin(t, s, "GET", "/admin/subscriptions?status=Subscribed&plan=enterprise", tok, "", &list)
		if len(list.Subscriptions) == 1 && list.Subscriptions[0].SubscriptionID == id && list.Subscriptions[0].Quantity == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listing: %+v", list)
		}
		time.Sleep(200 * time.Millisecond)
	}
	admin(t, s, "GET", "/admin/subscriptions?plan=team", tok, "", &list)
	if len(list.Subscriptions) != 0 {
		t.Fatalf("plan filter ignored: %+v", list)
	}
	var e apiError
	if code, _ := admin(t, s, "GET", "/admin/subscriptions?status=x'%20OR%20'1'='1", tok, "", &e); code != 400 {
		t.Fatalf("quote in a filter: %d", code)
	}

	var run struct{ WorkflowID string }
	if code, body := admin(t, s, "POST", "/admin/reconcile", tok, "", &run); code != 200 || run.WorkflowID == "" {
		t.Fatalf("reconcile: %d %s", code, body)
	}

	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+id+"/cancel", tok, "", &res); code != 200 || res.Status != "Succeeded" {
		t.Fatalf("cancel: %d %s", code, body)
	}
	s.WaitState(t, id, "deprovisioned", func(st workflows.State) bool { return !st.DeprovisionedAt.IsZero() })
	if code, _ := admin(t, s, "POST", "/admin/subscriptions/"+id+"/quantity", tok, `{"quantity":30}`, &e); code < 400 || code > 499 {
		t.Fatalf("command on an ended subscription: %d %+v", code, e)
	}

	resp, err := http.Get(s.HTTP.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"http_requests_total", `route="/admin/subscriptions/{id}/quantity"`, "http_request_duration_seconds_bucket"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(s.HTTP.URL + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v", p, err)
		}
		resp.Body.Close()
	}
}

func TestApprovalOfAPendingActivation(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{Workflow: workflows.Options{RequireApproval: true}})
	p := s.Emu.Purchase(t, "basic", 0)
	res, err := s.Emu.Client.Resolve(t.Context(), p.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subs.Confirm(t.Context(), res.Subscription); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "awaiting approval", func(st workflows.State) bool { return st.Phase == workflows.PhaseAwaitingApproval })
	if sub, _ := s.Emu.Emulator.Subscription(p.SubscriptionID); sub.Status != marketplace.StatusPendingFulfillmentStart {
		t.Fatalf("activated before approval: %s", sub.Status)
	}
	var st workflows.State
	if code, body := admin(t, s, "POST", "/admin/subscriptions/"+p.SubscriptionID+"/approve", stacktest.AdminToken, "", &st); code != 200 {
		t.Fatalf("approve: %d %s", code, body)
	}
	s.WaitState(t, p.SubscriptionID, "Subscribed", func(st workflows.State) bool { return st.Status == marketplace.StatusSubscribed })
	if n := s.Emu.Emulator.Calls(emulator.EndpointActivate, p.SubscriptionID); n != 1 {
		t.Fatalf("Activate called %d times", n)
	}
}
