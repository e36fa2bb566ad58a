package tracing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/tracing"
	"saasengine/workflows/subscription"
)

// One trace from Microsoft's webhook to Microsoft's API: the webhook request's server span, the
// Signal-With-Start it makes, the workflow that starts, its activities and their HTTP calls to the
// Marketplace, each span the child of the one before; and no span holds a token or an e-mail address.
// (The workflow's span ends with the workflow, so the subscription is cancelled before the tree is read.)
func TestOneTraceFromWebhookToMarketplace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tracing.Use(tp)
	s := stacktest.Start(t, stacktest.Options{})
	ctx := context.Background()

	// Microsoft has a subscription the engine has not heard of (its landing was elsewhere); its
	// suspension's webhook is the first the engine hears of it, and starts its workflow.
	p := s.Emu.Purchase(t, "team", 5)
	if err := s.Emu.Client.Activate(ctx, p.SubscriptionID, marketplace.SubscriberPlan{PlanID: "team", Quantity: 5}); err != nil {
		t.Fatal(err)
	}
	exp.Reset()
	if _, err := s.Emu.Emulator.Suspend(p.SubscriptionID); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, p.SubscriptionID, "suspended", func(st subscription.State) bool { return st.Status == marketplace.StatusSuspended })
	// The workflow's own span ends (and is exported) when the workflow does: the customer cancels.
	if _, err := s.Emu.Emulator.Unsubscribe(p.SubscriptionID); err != nil {
		t.Fatal(err)
	}

	want := []string{"POST /webhook", "SignalWithStartWorkflow:SaaSSubscription", "RunWorkflow:SaaSSubscription", "StartActivity:", "RunActivity:", "HTTP "}
	var spans tracetest.SpanStubs
	var found string
	deadline := time.Now().Add(time.Minute)
	for found == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no trace runs %v to a Marketplace call about the subscription; spans: %s", want, names(spans))
		}
		time.Sleep(100 * time.Millisecond)
		_ = tp.ForceFlush(ctx)
		spans = exp.GetSpans()
		byID := map[trace.SpanID]tracetest.SpanStub{}
		for _, sp := range spans {
			byID[sp.SpanContext.SpanID()] = sp
		}
		// A Marketplace call made by an activity of the workflow that the webhook started.
		for _, sp := range spans {
			if sp.SpanKind != trace.SpanKindClient || !strings.Contains(attr(sp, "url.full"), "/saas/subscriptions/"+p.SubscriptionID) {
				continue
			}
			if path := chain(byID, sp); inOrder(path, want) {
				found = strings.Join(path, " > ")
				break
			}
		}
	}
	t.Logf("trace: %s", found)

	// Nothing secret in any span: not the webhook's bearer token, not the purchase token, no e-mail address.
	for _, sp := range spans {
		for _, kv := range sp.Attributes {
			v := kv.Value.String()
			if strings.Contains(v, "Bearer") || strings.Contains(v, p.Token) || strings.Contains(v, "@") {
				t.Errorf("span %s attribute %s holds %q", sp.Name, kv.Key, v)
			}
		}
	}
}

// chain walks from sp up to the root of its trace and returns the span names, root first.
func chain(byID map[trace.SpanID]tracetest.SpanStub, sp tracetest.SpanStub) []string {
	var path []string
	for i := 0; i < 50; i++ {
		path = append([]string{sp.Name}, path...)
		parent, ok := byID[sp.Parent.SpanID()]
		if !sp.Parent.IsValid() || !ok {
			if sp.Parent.IsValid() {
				path = append([]string{"(unexported parent)"}, path...)
			}
			break
		}
		sp = parent
	}
	return path
}

// inOrder reports whether path is want, each a prefix of the span's name, with nothing between them.
func inOrder(path, want []string) bool {
	if len(path) != len(want) {
		return false
	}
	for i := range want {
		if !strings.HasPrefix(path[i], want[i]) {
			return false
		}
	}
	return true
}

func attr(sp tracetest.SpanStub, key string) string {
	for _, kv := range sp.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

func names(spans tracetest.SpanStubs) string {
	var out []string
	for _, sp := range spans {
		out = append(out, sp.Name)
	}
	return strings.Join(out, ", ")
}
