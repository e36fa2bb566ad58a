package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/webhook/server"
	"saasengine/workflows/subscription"
)

// Without a validator, the server starts only when told on purpose that webhooks go unauthenticated.
func TestNoWebhookAuthNeedsTheExplicitOptIn(t *testing.T) {
	if _, err := server.New(server.Config{Subscriptions: budgetProbe{}, Resolver: noResolver{}}); err == nil {
		t.Fatal("New without a validator and without InsecureNoWebhookAuth: no error")
	}
}

// With the opt-in, the server says loudly at start that anyone can forge events, and then takes an
// unsigned webhook.
func TestNoWebhookAuthIsAnnouncedAndTakesUnsignedWebhooks(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s := stacktest.Start(t, stacktest.Options{NoWorker: true, ConfigureServer: func(c *server.Config) {
		c.Validator, c.InsecureNoWebhookAuth, c.Logger = nil, true, zap.New(core)
	}})
	warned := logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("AUTHENTICATION IS OFF").All()
	if len(warned) != 1 || !strings.Contains(warned[0].Message, "/webhook") {
		t.Fatalf("start-up warnings %+v, want one naming the open path", logs.FilterLevelExact(zapcore.WarnLevel).All())
	}
	sub := uuid.NewString()
	if got := post(t, s.HTTP.URL+"/webhook", "", "application/json", event(sub, uuid.NewString(), marketplace.ActionSuspend)); got.status != http.StatusOK {
		t.Fatalf("unsigned webhook: %+v", got)
	}
	if _, err := s.Client.DescribeWorkflowExecution(t.Context(), subscription.WorkflowID(sub), ""); err != nil {
		t.Fatalf("the accepted webhook started no workflow: %v", err)
	}
}

// Waits that could not be honoured are refused at start rather than found out by a dropped connection.
func TestNewRefusesWaitsItCannotKeep(t *testing.T) {
	for name, cfg := range map[string]server.Config{
		"admin command wait past the write timeout": {CommandWait: 30 * time.Second},
		"webhook budget with no room for Temporal":  {WebhookBudget: time.Second},
	} {
		cfg.Subscriptions, cfg.Resolver, cfg.InsecureNoWebhookAuth, cfg.InsecureNoSignIn = budgetProbe{}, noResolver{}, true, true
		if _, err := server.New(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
