package config

import (
	"strings"
	"testing"

	"saasengine/activities/notification"
)

func TestNotifyFromEnv(t *testing.T) {
	n, err := NotifyFromEnv(env(nil))
	if err != nil || n.SMTPHost != "" || n.WebhookURL != "" || n.SMTPTLS != "starttls" {
		t.Fatalf("nothing set: %+v %v", n, err)
	}
	n, err = NotifyFromEnv(env(map[string]string{
		"NOTIFY_SMTP_HOST": "smtp.example.com", "NOTIFY_SMTP_PORT": "465", "NOTIFY_SMTP_TLS": "tls",
		"NOTIFY_SMTP_USERNAME": "u", "NOTIFY_SMTP_PASSWORD": "p",
		"NOTIFY_EMAIL_FROM": "Engine <engine@example.com>", "NOTIFY_EMAIL_TO": "ops@example.com, oncall@example.com",
		"NOTIFY_EMAIL_EVENTS": "attention,usage-rejected", "NOTIFY_WEBHOOK_URL": "https://hooks.example.com/saas",
		"NOTIFY_WEBHOOK_SECRET": "s", "NOTIFY_SLACK_URL": "https://hooks.slack.com/services/T/B/X", "NOTIFY_TEAMS_EVENTS": "all",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if n.SMTPPort != 465 || n.SMTPTLS != "tls" || len(n.EmailTo) != 2 || n.EmailTo[1] != "oncall@example.com" ||
		len(n.EmailKinds) != 2 || n.EmailKinds[1] != notification.UsageRejected || n.WebhookKinds != nil || n.TeamsKinds != nil {
		t.Fatalf("%+v", n)
	}
	bad := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"NOTIFY_SMTP_HOST": "h"}, "NOTIFY_EMAIL_FROM and NOTIFY_EMAIL_TO"},
		{map[string]string{"NOTIFY_SMTP_HOST": "h", "NOTIFY_EMAIL_FROM": "a@b", "NOTIFY_EMAIL_TO": "c@d", "NOTIFY_SMTP_USERNAME": "u"}, "go together"},
		{map[string]string{"NOTIFY_SMTP_TLS": "ssl"}, "NOTIFY_SMTP_TLS"},
		{map[string]string{"NOTIFY_SMTP_PORT": "99999"}, "NOTIFY_SMTP_PORT"},
		{map[string]string{"NOTIFY_EMAIL_TO": "not an address"}, "NOTIFY_EMAIL_TO"},
		{map[string]string{"NOTIFY_WEBHOOK_URL": "https://x.example"}, "NOTIFY_WEBHOOK_SECRET"},
		{map[string]string{"NOTIFY_SLACK_EVENTS": "attention,typo"}, "typo"},
		{map[string]string{"NOTIFY_TEAMS_URL": "ftp://secret-part"}, "NOTIFY_TEAMS_URL"},
	}
	for _, b := range bad {
		_, err := NotifyFromEnv(env(b.env))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%v: error %v, want one naming %q", b.env, err, b.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-part") {
			t.Errorf("the error repeats a URL, which may be a secret: %v", err)
		}
	}
}
