package frontend_test

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"

	"saasengine/config"
	"saasengine/marketplace"
	"saasengine/webhook/frontend"
)

type noResolver struct{}

func (noResolver) Resolve(context.Context, string) (*marketplace.ResolvedSubscription, error) {
	return nil, errors.New("no resolver in this test")
}

// WEBHOOK_AUTH=none alone is refused: webhooks go unauthenticated only with the explicit opt-in.
func TestNoWebhookAuthNeedsTheExplicitOptIn(t *testing.T) {
	signIn := config.SignIn{Mode: "none", InsecureNoAuth: true}
	if _, err := frontend.New(nil, config.Temporal{}, config.Webhook{Auth: "none", SignIn: signIn}, noResolver{}, zap.NewNop()); err == nil {
		t.Fatal("auth none without the opt-in: no error")
	}
	if _, err := frontend.New(nil, config.Temporal{}, config.Webhook{Auth: "none", InsecureNoAuth: true, SignIn: signIn}, noResolver{}, zap.NewNop()); err != nil {
		t.Fatalf("auth none with the opt-in: %v", err)
	}
}
