package marketplace_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/emulator/emulatortest"
	"saasengine/internal/apispec"
	"saasengine/marketplace"
)

// TestMain checks, after a full run of the package's tests, that together they sent every operation of
// both OpenAPI files through the conformance checks (emulatortest turns them on by default).
func TestMain(m *testing.M) {
	code := m.Run()
	// A partial run (-run, -skip, -short) need not cover everything.
	if code != 0 || flag.Lookup("test.run").Value.String() != "" || flag.Lookup("test.skip").Value.String() != "" || testing.Short() {
		os.Exit(code)
	}
	spec, err := apispec.Default()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	checked := emulatortest.CheckedOperations()
	for _, op := range spec.OperationIDs() {
		if checked[op] == 0 {
			fmt.Fprintf(os.Stderr, "FAIL: no test sent %s through the OpenAPI conformance checks (checked: %v)\n", op, checked)
			code = 1
		}
	}
	os.Exit(code)
}

// These tests run the client against the emulator over real HTTP, with every request and response checked
// against Microsoft's OpenAPI files.

func waitOperation(t *testing.T, c *marketplace.Client, subID, opID string) *marketplace.Operation {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		op, err := c.GetOperation(ctx, subID, opID)
		if err != nil {
			t.Fatalf("get operation: %v", err)
		}
		if op.Status.Terminal() {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s still %s", opID, op.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClientAgainstEmulatorWholeLifecycle(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	ctx := context.Background()
	c := env.Client
	p := env.Purchase(t, "team", 10)
	if !strings.ContainsAny(p.Token, "+/=") {
		t.Fatalf("purchase token %q has no URL-unsafe characters; it would not test decoding", p.Token)
	}

	res, err := c.Resolve(ctx, p.Token)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if res.ID != p.SubscriptionID || res.PlanID != "team" || res.Quantity != 10 || res.Subscription.Status != marketplace.StatusPendingFulfillmentStart {
		t.Fatalf("resolved %+v", res)
	}
	plans, err := c.ListAvailablePlans(ctx, p.SubscriptionID, "")
	if err != nil || len(plans) != 5 {
		t.Fatalf("plans: %d %v", len(plans), err)
	}
	only, err := c.ListAvailablePlans(ctx, p.SubscriptionID, "enterprise")
	if err != nil || len(only) != 1 || only[0].PlanID != "enterprise" || only[0].MinQuantity != 50 {
		t.Fatalf("filtered plans: %+v %v", only, err)
	}
	if err := c.Activate(ctx, p.SubscriptionID, marketplace.SubscriberPlan{PlanID: "team", Quantity: 10}); err != nil {
		t.Fatalf("activate: %v", err)
	}
	sub, err := c.GetSubscription(ctx, p.SubscriptionID)
	if err != nil || sub.Status != marketplace.StatusSubscribed || sub.Term.StartDate.IsZero() || sub.Term.EndDate.IsZero() {
		t.Fatalf("after activate: %+v %v", sub, err)
	}

	opID, err := c.ChangeQuantity(ctx, p.SubscriptionID, 20)
	if err != nil || opID == "" {
		t.Fatalf("change quantity: %q %v", opID, err)
	}
	if op := waitOperation(t, c, p.SubscriptionID, opID); op.Status != marketplace.OperationSucceeded || op.Action != marketplace.ActionChangeQuantity {
		t.Fatalf("quantity operation %+v", op)
	}
	opID, err = c.ChangePlan(ctx, p.SubscriptionID, "enterprise")
	if err != nil {
		t.Fatalf("change plan: %v", err)
	}
	waitOperation(t, c, p.SubscriptionID, opID)
	sub = readUntil(t, c, p.SubscriptionID, func(s *marketplace.Subscription) bool { return s.PlanID == "enterprise" })
	if sub.PlanID != "enterprise" || sub.Quantity != 50 {
		t.Fatalf("after change plan to enterprise (min 50 seats): plan %s quantity %d", sub.PlanID, sub.Quantity)
	}

	// A customer's change waits for the publisher's decision and is listed as outstanding.
	cop, err := env.Emulator.CustomerChangeQuantity(p.SubscriptionID, 60)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := c.ListOperations(ctx, p.SubscriptionID)
	if err != nil || len(ops) != 1 || ops[0].ID != cop.ID || ops[0].Status != marketplace.OperationInProgress {
		t.Fatalf("outstanding: %+v %v", ops, err)
	}
	if err := c.UpdateOperation(ctx, p.SubscriptionID, cop.ID, marketplace.OperationUpdate{Status: marketplace.UpdateFailure}); err != nil {
		t.Fatalf("reject: %v", err)
	}
	// Deciding twice is a conflict: the operation is already decided.
	err = c.UpdateOperation(ctx, p.SubscriptionID, cop.ID, marketplace.OperationUpdate{Status: marketplace.UpdateSuccess})
	if marketplace.StatusCode(err) != http.StatusConflict || marketplace.IsRetryable(err) {
		t.Fatalf("second decision: %v", err)
	}
	if sub, _ = c.GetSubscription(ctx, p.SubscriptionID); sub.Quantity != 50 {
		t.Fatalf("rejected change applied: quantity %d", sub.Quantity)
	}

	opID, err = c.DeleteSubscription(ctx, p.SubscriptionID)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	waitOperation(t, c, p.SubscriptionID, opID)
	if sub = readUntil(t, c, p.SubscriptionID, func(s *marketplace.Subscription) bool { return s.Status == marketplace.StatusUnsubscribed }); sub.Status != marketplace.StatusUnsubscribed {
		t.Fatalf("after delete: %s", sub.Status)
	}

	// The rest of the files' operations: listing, and metering on a metered plan.
	if subs, err := c.ListSubscriptions(ctx); err != nil || len(subs) != 1 {
		t.Fatalf("list: %d %v", len(subs), err)
	}
	m := env.Purchase(t, "metered", 0)
	if err := c.Activate(ctx, m.SubscriptionID, marketplace.SubscriberPlan{PlanID: "metered"}); err != nil {
		t.Fatalf("activate metered: %v", err)
	}
	hour := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	if _, err := c.PostUsageEvent(ctx, marketplace.UsageEvent{ResourceID: m.SubscriptionID, Quantity: 2, Dimension: "api_calls", EffectiveStartTime: marketplace.NewTime(hour), PlanID: "metered"}); err != nil {
		t.Fatalf("usage event: %v", err)
	}
	if _, err := c.PostBatchUsageEvents(ctx, []marketplace.UsageEvent{{ResourceID: m.SubscriptionID, Quantity: 1, Dimension: "storage_gb", EffectiveStartTime: marketplace.NewTime(hour), PlanID: "metered"}}); err != nil {
		t.Fatalf("usage batch: %v", err)
	}
	if _, err := c.UsageEvents(ctx, marketplace.UsageReportQuery{UsageStartDate: hour.Add(-time.Hour)}); err != nil {
		t.Fatalf("usage events: %v", err)
	}

	env.AssertConformance(t)
	spec, err := apispec.Default()
	if err != nil {
		t.Fatal(err)
	}
	checked := env.Conformance.Checked()
	for _, op := range spec.OperationIDs() {
		if checked[op] == 0 {
			t.Errorf("no %s exchange was checked against the OpenAPI files (checked: %v)", op, checked)
		}
	}
}

func TestClientFollowsNextLinkOver250Subscriptions(t *testing.T) {
	// Microsoft's 100 a page, and a page size the emulator is configured with.
	for _, tc := range []struct{ pageSize, pages int }{{0, 3}, {40, 7}} {
		t.Run(fmt.Sprintf("page size %d", tc.pageSize), func(t *testing.T) {
			env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) { c.PageSize = tc.pageSize }})
			req := emulator.SeedRequest{}
			for _, st := range []marketplace.SubscriptionStatus{marketplace.StatusSubscribed, marketplace.StatusSuspended, marketplace.StatusUnsubscribed, ""} {
				item := struct {
					emulator.PurchaseRequest
					Count int `json:"count"`
				}{emulator.PurchaseRequest{OfferID: emulator.DemoOfferID, PlanID: "basic", Status: st}, 63}
				req.Subscriptions = append(req.Subscriptions, item)
			}
			ids, err := env.Emulator.Seed(req)
			if err != nil || len(ids) != 252 {
				t.Fatalf("seed: %d %v", len(ids), err)
			}
			pages := 0
			seen := map[string]bool{}
			err = env.Client.EachSubscriptionsPage(context.Background(), func(p *marketplace.SubscriptionsPage) error {
				pages++
				for _, s := range p.Subscriptions {
					if seen[s.ID] {
						t.Errorf("subscription %s listed twice", s.ID)
					}
					seen[s.ID] = true
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if pages != tc.pages || len(seen) != 252 {
				t.Fatalf("got %d subscriptions on %d pages, want 252 on %d", len(seen), pages, tc.pages)
			}
			for _, id := range ids {
				if !seen[id] {
					t.Fatalf("subscription %s missing from the listing", id)
				}
			}
			env.AssertConformance(t)
		})
	}
}

func TestClientErrorClassesFromEmulator(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	ctx := context.Background()
	c := env.Client
	p := env.Purchase(t, "team", 10)

	expect := func(name string, err error, status int, retryable bool) *marketplace.Error {
		t.Helper()
		me, ok := marketplace.AsError(err)
		if !ok {
			t.Fatalf("%s: want *marketplace.Error, got %v", name, err)
		}
		if me.StatusCode != status || me.Retryable != retryable || me.RequestID == "" || me.CorrelationID == "" {
			t.Fatalf("%s: got %d retryable=%v ids=%q/%q (%v), want %d retryable=%v", name, me.StatusCode, me.Retryable, me.RequestID, me.CorrelationID, err, status, retryable)
		}
		return me
	}

	// 400: a token whose '+' became a space, as naive query decoding does.
	_, err := c.Resolve(ctx, strings.ReplaceAll(p.Token, "+", " "))
	if me := expect("garbled token", err, 400, false); me.Code != "InvalidValue" {
		t.Fatalf("garbled token code %q", me.Code)
	}
	// 400: same quantity; both fields; quantity out of range.
	if err := c.Activate(ctx, p.SubscriptionID, marketplace.SubscriberPlan{PlanID: "team", Quantity: 10}); err != nil {
		t.Fatal(err)
	}
	_, err = c.ChangeQuantity(ctx, p.SubscriptionID, 10)
	expect("same quantity", err, 400, false)
	_, err = c.ChangeQuantity(ctx, p.SubscriptionID, 501)
	expect("quantity above max", err, 400, false)
	_, err = c.ChangePlan(ctx, p.SubscriptionID, "team")
	expect("same plan", err, 400, false)
	_, err = c.ChangePlan(ctx, p.SubscriptionID, "no-such-plan")
	expect("unknown plan", err, 400, false)
	// 400: locked by a pending operation; 409 on DELETE for the same reason.
	if _, err := c.ChangeQuantity(ctx, p.SubscriptionID, 12); err != nil {
		t.Fatal(err)
	}
	_, err = c.ChangeQuantity(ctx, p.SubscriptionID, 14)
	expect("locked by pending operation", err, 400, false)
	_, err = c.DeleteSubscription(ctx, p.SubscriptionID)
	expect("delete while pending", err, 409, false)
	// 404
	_, err = c.GetSubscription(ctx, "5e2d6c1a-7b3f-4c8e-9d0a-1f2e3d4c5b6a")
	if expect("unknown subscription", err, 404, false); !marketplace.IsNotFound(err) {
		t.Fatal("IsNotFound false for 404")
	}
	_, err = c.GetOperation(ctx, p.SubscriptionID, "6f3e7d2b-8c4a-4d9f-8e1b-2a3b4c5d6e7f")
	expect("unknown operation", err, 404, false)
	// 403: a token of an app Microsoft does not know for this publisher, and one with the wrong signature.
	stranger, _ := marketplace.NewClient(env.Emulator.APIBaseURL(), &marketplace.DevTokenSource{TenantID: emulator.DemoTenantID, ClientID: "11111111-2222-3333-4444-555555555555", Secret: []byte("x")})
	_, err = stranger.GetSubscription(ctx, p.SubscriptionID)
	expect("unknown app", err, 403, false)
	forger, _ := marketplace.NewClient(env.Emulator.APIBaseURL(), &marketplace.DevTokenSource{TenantID: emulator.DemoTenantID, ClientID: emulator.DemoAppID, Secret: []byte("not-the-secret")})
	_, err = forger.GetSubscription(ctx, p.SubscriptionID)
	expect("bad signature", err, 403, false)
	// 400: expired purchase token.
	env.Emulator.AdvanceClock(25 * time.Hour)
	_, err = c.Resolve(ctx, p.Token)
	expect("expired token", err, 400, false)

	// 429 with Retry-After in seconds and as an HTTP date; 500 and 503.
	must := func(f emulator.Fault) {
		if err := env.Emulator.AddFault(f); err != nil {
			t.Fatal(err)
		}
	}
	must(emulator.Fault{Endpoint: emulator.EndpointGetSubscription, Status: 429, RetryAfter: 7, Count: 1})
	_, err = c.GetSubscription(ctx, p.SubscriptionID)
	if me := expect("429 seconds", err, 429, true); me.RetryAfter != 7*time.Second {
		t.Fatalf("Retry-After seconds: %v", me.RetryAfter)
	}
	must(emulator.Fault{Endpoint: emulator.EndpointGetSubscription, Status: 429, RetryAfter: 30, RetryAfterDate: true, Count: 1})
	_, err = c.GetSubscription(ctx, p.SubscriptionID)
	if me := expect("429 date", err, 429, true); me.RetryAfter < 25*time.Second || me.RetryAfter > 32*time.Second {
		t.Fatalf("Retry-After date: %v", me.RetryAfter)
	}
	must(emulator.Fault{Endpoint: "*", Status: 500, Count: 1})
	_, err = c.ListOperations(ctx, p.SubscriptionID)
	expect("500", err, 500, true)
	must(emulator.Fault{Endpoint: emulator.EndpointListSubscriptions, Status: 503, Count: 1})
	_, err = c.ListSubscriptions(ctx)
	expect("503", err, 503, true)
	// The fault fired once: the next call goes through.
	if _, err := c.GetSubscription(ctx, p.SubscriptionID); err != nil {
		t.Fatalf("after faults: %v", err)
	}
	// A slow Microsoft: the client's own timeout gives a retryable transport error.
	must(emulator.Fault{Endpoint: emulator.EndpointGetSubscription, Latency: emulator.Duration(2 * time.Second), Count: 1})
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = c.GetSubscription(tctx, p.SubscriptionID)
	if !marketplace.IsRetryable(err) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	env.AssertConformance(t)
}

func TestClientMeteringAgainstEmulator(t *testing.T) {
	env := emulatortest.Start(t, emulatortest.Options{})
	ctx := context.Background()
	c := env.Client
	p := env.Purchase(t, "metered", 0)
	hour := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	ev := marketplace.UsageEvent{ResourceID: p.SubscriptionID, Quantity: 12.5, Dimension: "api_calls", EffectiveStartTime: marketplace.NewTime(hour.Add(10 * time.Minute)), PlanID: "metered"}

	// A 400's reason is in its details, under the generic BadArgument.
	_, err := c.PostUsageEvent(ctx, ev)
	if me, _ := marketplace.AsError(err); me == nil || me.StatusCode != 400 || me.Code != "BadArgument" || len(me.Details) != 1 || me.Details[0].Code != string(marketplace.UsageResourceNotActive) || !strings.Contains(err.Error(), "ResourceNotActive") {
		t.Fatalf("usage before activation: want 400 with detail ResourceNotActive, got %v", err)
	}
	if err := c.Activate(ctx, p.SubscriptionID, marketplace.SubscriberPlan{PlanID: "metered"}); err != nil {
		t.Fatal(err)
	}
	ok, err := c.PostUsageEvent(ctx, ev)
	if err != nil || ok.Status != marketplace.UsageAccepted || ok.UsageEventID == "" {
		t.Fatalf("first event: %+v %v", ok, err)
	}
	for want, bad := range map[marketplace.UsageEventStatus]marketplace.UsageEvent{
		marketplace.UsageExpired:          {ResourceID: p.SubscriptionID, Quantity: 1, Dimension: "api_calls", EffectiveStartTime: marketplace.NewTime(hour.Add(-30 * time.Hour)), PlanID: "metered"},
		marketplace.UsageInvalidDimension: {ResourceID: p.SubscriptionID, Quantity: 1, Dimension: "gpu_hours", EffectiveStartTime: marketplace.NewTime(hour), PlanID: "metered"},
	} {
		_, err := c.PostUsageEvent(ctx, bad)
		if me, _ := marketplace.AsError(err); me == nil || me.StatusCode != 400 || len(me.Details) == 0 || me.Details[0].Code != string(want) || me.Details[0].Target == "" {
			t.Errorf("want 400 with detail %s, got %v", want, err)
		}
	}
	// Same subscription, dimension and hour: a duplicate carrying the accepted event.
	dup := ev
	dup.Quantity = 3
	dup.EffectiveStartTime = marketplace.NewTime(hour.Add(40 * time.Minute))
	_, err = c.PostUsageEvent(ctx, dup)
	me, _ := marketplace.AsError(err)
	if me == nil || me.StatusCode != 409 || me.Duplicate == nil || me.Duplicate.UsageEventID != ok.UsageEventID || me.Duplicate.Quantity != 12.5 || me.Duplicate.Status != marketplace.UsageDuplicate {
		t.Fatalf("duplicate: %+v %v", me, err)
	}

	batch := []marketplace.UsageEvent{
		{ResourceID: p.SubscriptionID, Quantity: 1, Dimension: "storage_gb", EffectiveStartTime: marketplace.NewTime(hour), PlanID: "metered"},
		ev, // duplicate again
		{ResourceID: p.SubscriptionID, Quantity: 1, Dimension: "gpu_hours", EffectiveStartTime: marketplace.NewTime(hour), PlanID: "metered"},
		{ResourceID: p.SubscriptionID, Quantity: 1, Dimension: "storage_gb", EffectiveStartTime: marketplace.NewTime(hour.Add(-30 * time.Hour)), PlanID: "metered"},
		{ResourceID: p.SubscriptionID, Quantity: 0, Dimension: "storage_gb", EffectiveStartTime: marketplace.NewTime(hour.Add(-time.Hour)), PlanID: "metered"},
		{ResourceID: "7a4f8e3c-9d5b-4e0a-9f2c-3b4c5d6e7f80", Quantity: 1, Dimension: "storage_gb", EffectiveStartTime: marketplace.NewTime(hour), PlanID: "metered"},
	}
	res, err := c.PostBatchUsageEvents(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	want := []marketplace.UsageEventStatus{marketplace.UsageAccepted, marketplace.UsageDuplicate, marketplace.UsageInvalidDimension, marketplace.UsageExpired, marketplace.UsageInvalidQuantity, marketplace.UsageResourceNotFound}
	if res.Count != len(want) || len(res.Result) != len(want) {
		t.Fatalf("batch result %+v", res)
	}
	for i, w := range want {
		if res.Result[i].Status != w {
			t.Errorf("batch item %d: status %s, want %s", i, res.Result[i].Status, w)
		}
	}
	if res.Result[1].Error == nil || res.Result[1].Error.AdditionalInfo.AcceptedMessage == nil {
		t.Errorf("duplicate batch item carries no accepted message: %+v", res.Result[1])
	}
	if _, err := c.PostBatchUsageEvents(ctx, make([]marketplace.UsageEvent, 26)); !errors.Is(err, marketplace.ErrBatchSize) {
		t.Fatalf("26 events: %v", err)
	}

	report, err := c.UsageEvents(ctx, marketplace.UsageReportQuery{UsageStartDate: hour.Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, it := range report {
		total += it.SubmittedQuantity
	}
	if len(report) != 2 || total != 13.5 {
		t.Fatalf("report: %+v", report)
	}
	env.AssertConformance(t)
}

// Publishers are told apart by their token's tid and appid, as Microsoft does: one publisher neither sees
// nor touches another's subscriptions, and a token for another app gets 403.
func TestPublishersAreToldApartByTheirTokens(t *testing.T) {
	const fabrikamTenant, fabrikamApp = "6f0c8a7e-2d4b-4e1a-9c3f-5b7d9e1f2a3b", "9d8c7b6a-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	env := emulatortest.Start(t, emulatortest.Options{Configure: func(c *emulator.Config) {
		c.Publishers = append(c.Publishers, emulator.Publisher{ID: "fabrikam", TenantID: fabrikamTenant, AppID: fabrikamApp,
			TokenSecret: emulatortest.TokenSecret, Offers: []emulator.Offer{{ID: "fabrikam-backup", Plans: []emulator.Plan{{ID: "standard"}}}}})
	}})
	fabrikam, err := marketplace.NewClient(env.Emulator.APIBaseURL(), &marketplace.DevTokenSource{TenantID: fabrikamTenant, ClientID: fabrikamApp, Secret: []byte(emulatortest.TokenSecret)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	contosos := env.Purchase(t, "team", 10)
	fabrikams, err := env.Emulator.Purchase(emulator.PurchaseRequest{OfferID: "fabrikam-backup", PlanID: "standard"})
	if err != nil {
		t.Fatal(err)
	}

	for name, c := range map[string]struct {
		client      *marketplace.Client
		own, theirs emulator.Purchase
	}{"contoso": {env.Client, contosos, fabrikams}, "fabrikam": {fabrikam, fabrikams, contosos}} {
		subs, err := c.client.ListSubscriptions(ctx)
		if err != nil || len(subs) != 1 || subs[0].ID != c.own.SubscriptionID {
			t.Errorf("%s lists %+v, %v", name, subs, err)
		}
		if _, err := c.client.Resolve(ctx, c.own.Token); err != nil {
			t.Errorf("%s cannot resolve its own token: %v", name, err)
		}
		if _, err := c.client.Resolve(ctx, c.theirs.Token); !isStatus(err, http.StatusForbidden) {
			t.Errorf("%s resolved another publisher's token: %v", name, err)
		}
		if _, err := c.client.GetSubscription(ctx, c.theirs.SubscriptionID); !isStatus(err, http.StatusForbidden) {
			t.Errorf("%s read another publisher's subscription: %v", name, err)
		}
		if err := c.client.Activate(ctx, c.theirs.SubscriptionID, marketplace.SubscriberPlan{PlanID: c.theirs.Subscription.PlanID}); !isStatus(err, http.StatusForbidden) {
			t.Errorf("%s activated another publisher's subscription: %v", name, err)
		}
	}
	if sub, _ := env.Emulator.Subscription(fabrikams.SubscriptionID); sub.Status != marketplace.StatusPendingFulfillmentStart {
		t.Fatalf("fabrikam's subscription changed: %s", sub.Status)
	}

	stranger, _ := marketplace.NewClient(env.Emulator.APIBaseURL(), &marketplace.DevTokenSource{TenantID: fabrikamTenant, ClientID: "00000000-0000-0000-0000-000000000001", Secret: []byte(emulatortest.TokenSecret)})
	if _, err := stranger.ListSubscriptions(ctx); !isStatus(err, http.StatusForbidden) {
		t.Fatalf("an unknown app listed subscriptions: %v", err)
	}
}

func isStatus(err error, status int) bool {
	e, ok := marketplace.AsError(err)
	return ok && e.StatusCode == status
}

// readUntil reads the subscription until cond holds or 15 s pass, and returns the last read: Get
// subscription lags the operations that change it, as Microsoft's does.
func readUntil(t *testing.T, c *marketplace.Client, id string, cond func(*marketplace.Subscription) bool) *marketplace.Subscription {
	t.Helper()
	var sub *marketplace.Subscription
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		s, err := c.GetSubscription(context.Background(), id)
		if err != nil {
			t.Fatalf("get subscription: %v", err)
		}
		if sub = s; cond(s) {
			break
		}
	}
	return sub
}
