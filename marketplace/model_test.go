package marketplace

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readExample reads a payload from testdata/examples (see its README).
func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExamplesDecode(t *testing.T) {
	t.Run("resolve", func(t *testing.T) {
		var r ResolvedSubscription
		mustDecode(t, readExample(t, "resolve-response.json"), &r)
		if r.ID != "33333333-3333-3333-3333-333333333333" || r.Quantity != 20 || r.Subscription.Status != StatusPendingFulfillmentStart {
			t.Fatalf("decoded %+v", r)
		}
		if r.Subscription.Term.TermUnit != "P1M" || !r.Subscription.Term.StartDate.IsZero() {
			t.Fatalf("term %+v", r.Subscription.Term)
		}
	})
	t.Run("list page with string quantity and date-only term", func(t *testing.T) {
		var p SubscriptionsPage
		mustDecode(t, readExample(t, "list-subscriptions-page.json"), &p)
		if len(p.Subscriptions) != 2 || p.NextLink == "" {
			t.Fatalf("decoded %+v", p)
		}
		second := p.Subscriptions[1]
		if second.Quantity != 0 || second.Status != StatusSuspended {
			t.Fatalf("second %+v", second)
		}
		if want := time.Date(2019, 5, 31, 0, 0, 0, 0, time.UTC); !second.Term.StartDate.Equal(want) {
			t.Fatalf("start %v, want %v", second.Term.StartDate, want)
		}
		if second.Allows("Update") || !second.Allows("Read") {
			t.Fatalf("allowed operations %v", second.AllowedCustomerOperations)
		}
	})
	t.Run("operation", func(t *testing.T) {
		var o Operation
		mustDecode(t, readExample(t, "get-operation.json"), &o)
		if o.Action != ActionChangePlan || o.Status != OperationInProgress || o.Quantity != 20 || o.TimeStamp.IsZero() {
			t.Fatalf("decoded %+v", o)
		}
	})
	t.Run("webhook change plan", func(t *testing.T) {
		var ev WebhookEvent
		mustDecode(t, readExample(t, "webhook-changeplan.json"), &ev)
		if ev.PlanID != "plan2" || ev.Subscription == nil || ev.Subscription.PlanID != "plan1" || ev.OperationRequestSource != SourceAzure {
			t.Fatalf("decoded %+v", ev)
		}
		if ev.TimeStamp.Nanosecond() != 444993700 {
			t.Fatalf("seven fractional digits lost: %v", ev.TimeStamp)
		}
	})
	t.Run("webhook unsubscribe", func(t *testing.T) {
		var ev WebhookEvent
		mustDecode(t, readExample(t, "webhook-unsubscribe.json"), &ev)
		if ev.Action != ActionUnsubscribe || ev.Subscription.Status != StatusUnsubscribed {
			t.Fatalf("decoded %+v", ev)
		}
	})
	t.Run("legacy webhooks", func(t *testing.T) {
		var evs []WebhookEvent
		mustDecode(t, readExample(t, "webhook-legacy-quirks.json"), &evs)
		if len(evs) != 2 || evs[0].Quantity != 4 || evs[0].ID[:4] != "org:" || evs[1].Action != "Subscribe" {
			t.Fatalf("decoded %+v", evs)
		}
	})
	t.Run("metering", func(t *testing.T) {
		var batch BatchUsageEventResult
		mustDecode(t, readExample(t, "metering-batch-response.json"), &batch)
		if batch.Count != 2 || batch.Result[1].Status != UsageDuplicate || batch.Result[1].Error.AdditionalInfo.AcceptedMessage.UsageEventID == "" {
			t.Fatalf("decoded %+v", batch)
		}
		if !batch.Result[1].MessageTime.IsZero() {
			t.Fatalf("0001-01-01 should decode to the zero time, got %v", batch.Result[1].MessageTime)
		}
		var conflict UsageEventConflict
		mustDecode(t, readExample(t, "metering-409.json"), &conflict)
		if conflict.Code != "Conflict" || conflict.AdditionalInfo.AcceptedMessage.Status != UsageDuplicate {
			t.Fatalf("decoded %+v", conflict)
		}
		code, msg, details := decodeErrorBody(readExample(t, "metering-400.json"))
		if code != "BadArgument" || msg == "" {
			t.Fatalf("400 body gave %q %q", code, msg)
		}
		if len(details) != 1 || details[0] != (ErrorDetail{Code: "BadArgument", Target: "ResourceId", Message: "The resourceId is required."}) {
			t.Fatalf("400 details %+v", details)
		}
		e := &Error{Op: "post usage event", StatusCode: 400, Code: code, Message: msg, Details: details}
		if want := "400 BadArgument: One or more errors have occurred. [BadArgument ResourceId: The resourceId is required.]"; !strings.Contains(e.Error(), want) {
			t.Fatalf("Error() = %q, want it to contain %q", e.Error(), want)
		}
	})
}

func mustDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode: %v", err)
	}
}

func TestQuantityDecoding(t *testing.T) {
	for in, want := range map[string]Quantity{`20`: 20, `"20"`: 20, `" 7 "`: 7, `""`: 0, `null`: 0, `20.0`: 20, `"3e1"`: 30} {
		var q Quantity
		if err := json.Unmarshal([]byte(in), &q); err != nil || q != want {
			t.Errorf("%s: got %d, %v; want %d", in, q, err, want)
		}
	}
	for _, in := range []string{`"ten"`, `2.5`, `true`, `{}`} {
		var q Quantity
		if err := json.Unmarshal([]byte(in), &q); err == nil {
			t.Errorf("%s: decoded to %d, want an error", in, q)
		}
	}
	b, _ := json.Marshal(SubscriberPlan{PlanID: "gold"})
	if string(b) != `{"planId":"gold"}` {
		t.Errorf("a plan change must not carry a quantity: %s", b)
	}
}

func TestTimeDecoding(t *testing.T) {
	want := time.Date(2023, 2, 10, 18, 48, 58, 444993700, time.UTC)
	for _, in := range []string{`"2023-02-10T18:48:58.4449937Z"`, `"2023-02-10T18:48:58.4449937"`, `"2023-02-10T19:48:58.4449937+01:00"`} {
		var tm Time
		if err := json.Unmarshal([]byte(in), &tm); err != nil || !tm.Equal(want) {
			t.Errorf("%s: got %v, %v", in, tm, err)
		}
	}
	for _, in := range []string{`null`, `""`, `"0001-01-01T00:00:00"`} {
		var tm Time
		if err := json.Unmarshal([]byte(in), &tm); err != nil || !tm.IsZero() {
			t.Errorf("%s: got %v, %v; want zero", in, tm, err)
		}
	}
	var tm Time
	if err := json.Unmarshal([]byte(`"yesterday"`), &tm); err == nil {
		t.Error("an unknown format must fail")
	}
	b, _ := json.Marshal(struct {
		T Time `json:"t,omitzero"`
	}{})
	if string(b) != `{}` {
		t.Errorf("zero time with omitzero: %s", b)
	}
}

func TestOpenEnumsAreTrimmed(t *testing.T) {
	var s Subscription
	mustDecode(t, []byte(`{"id":"x","saasSubscriptionStatus":" Subscribed ","term":{"termUnit":"P9Y"}}`), &s)
	if s.Status != StatusSubscribed || s.Term.TermUnit != "P9Y" {
		t.Fatalf("decoded %+v", s)
	}
	var o Operation
	mustDecode(t, []byte(`{"id  ":"op-1","action":"Transfer","status":"Paused"}`), &o)
	if o.ID != "op-1" || o.Action != "Transfer" || o.Status != "Paused" || o.Status.Terminal() {
		t.Fatalf("decoded %+v", o)
	}
	var l OperationList
	mustDecode(t, []byte(`[{"id":"a"},{"id":"b"}]`), &l)
	if len(l.Operations) != 2 {
		t.Fatalf("bare array: %+v", l)
	}
}
