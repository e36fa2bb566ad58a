package config

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"

	"saasengine/activities/notification"
)

// Notify configures the notifications to operators and the vendor's systems (NOTIFY_*): which channels,
// and which kinds of events each one gets. Nothing set: no notification is sent.
type Notify struct {
	// E-mail over SMTP.
	SMTPHost     string   // NOTIFY_SMTP_HOST: the mail server; e-mail is off without it
	SMTPPort     int      // NOTIFY_SMTP_PORT: default 587 (465 with NOTIFY_SMTP_TLS=tls, 25 with none)
	SMTPTLS      string   // NOTIFY_SMTP_TLS: starttls (default, required), tls (implicit), opportunistic, none
	SMTPUsername string   // NOTIFY_SMTP_USERNAME: authenticate when set
	SMTPPassword string   // NOTIFY_SMTP_PASSWORD
	EmailFrom    string   // NOTIFY_EMAIL_FROM: the sender address
	EmailTo      []string // NOTIFY_EMAIL_TO: comma-separated recipients
	EmailKinds   []notification.Kind
	// A signed JSON webhook to the vendor's own systems.
	WebhookURL    string // NOTIFY_WEBHOOK_URL
	WebhookSecret string // NOTIFY_WEBHOOK_SECRET: HMAC key, as PROVISIONING_SECRET is for provisioning
	WebhookKinds  []notification.Kind
	// Chat: Slack and Microsoft Teams incoming webhooks (their URLs are secrets).
	SlackURL   string // NOTIFY_SLACK_URL
	SlackKinds []notification.Kind
	TeamsURL   string // NOTIFY_TEAMS_URL
	TeamsKinds []notification.Kind
	// Links in notices.
	AdminURL      string // NOTIFY_ADMIN_URL: where the admin API is, e.g. https://saas.example.com
	TemporalUIURL string // NOTIFY_TEMPORAL_UI_URL: the Temporal Web UI
}

// NotifyFromEnv reads the NOTIFY_* variables. Each channel gets every kind unless NOTIFY_<CHANNEL>_EVENTS
// lists some (comma-separated, see notification.Kinds).
func NotifyFromEnv(g Getenv) (Notify, error) {
	n := Notify{
		SMTPHost:      g.str("NOTIFY_SMTP_HOST", ""),
		SMTPTLS:       g.str("NOTIFY_SMTP_TLS", "starttls"),
		SMTPUsername:  g.str("NOTIFY_SMTP_USERNAME", ""),
		SMTPPassword:  g.str("NOTIFY_SMTP_PASSWORD", ""),
		EmailFrom:     g.str("NOTIFY_EMAIL_FROM", ""),
		WebhookURL:    g.str("NOTIFY_WEBHOOK_URL", ""),
		WebhookSecret: g.str("NOTIFY_WEBHOOK_SECRET", ""),
		SlackURL:      g.str("NOTIFY_SLACK_URL", ""),
		TeamsURL:      g.str("NOTIFY_TEAMS_URL", ""),
		AdminURL:      g.str("NOTIFY_ADMIN_URL", ""),
		TemporalUIURL: g.str("NOTIFY_TEMPORAL_UI_URL", ""),
	}
	var err error
	if v := g.str("NOTIFY_SMTP_PORT", ""); v != "" {
		if n.SMTPPort, err = strconv.Atoi(v); err != nil || n.SMTPPort < 1 || n.SMTPPort > 65535 {
			return n, fmt.Errorf("NOTIFY_SMTP_PORT: want a port number, got %q", v)
		}
	}
	for _, to := range strings.Split(g.str("NOTIFY_EMAIL_TO", ""), ",") {
		if to = strings.TrimSpace(to); to != "" {
			if _, err := mail.ParseAddress(to); err != nil {
				return n, fmt.Errorf("NOTIFY_EMAIL_TO: %q: %w", to, err)
			}
			n.EmailTo = append(n.EmailTo, to)
		}
	}
	kinds := []struct {
		name string
		dst  *[]notification.Kind
	}{{"NOTIFY_EMAIL_EVENTS", &n.EmailKinds}, {"NOTIFY_WEBHOOK_EVENTS", &n.WebhookKinds}, {"NOTIFY_SLACK_EVENTS", &n.SlackKinds}, {"NOTIFY_TEAMS_EVENTS", &n.TeamsKinds}}
	for _, k := range kinds {
		if *k.dst, err = notification.ParseKinds(g.str(k.name, "")); err != nil {
			return n, fmt.Errorf("%s: %w", k.name, err)
		}
	}
	switch n.SMTPTLS {
	case "starttls", "tls", "opportunistic", "none":
	default:
		return n, fmt.Errorf("NOTIFY_SMTP_TLS %q: want starttls, tls, opportunistic or none", n.SMTPTLS)
	}
	if n.SMTPHost != "" {
		if n.EmailFrom == "" || len(n.EmailTo) == 0 {
			return n, errors.New("NOTIFY_SMTP_HOST needs NOTIFY_EMAIL_FROM and NOTIFY_EMAIL_TO (the operators' addresses)")
		}
		if _, err := mail.ParseAddress(n.EmailFrom); err != nil {
			return n, fmt.Errorf("NOTIFY_EMAIL_FROM: %w", err)
		}
		if (n.SMTPUsername == "") != (n.SMTPPassword == "") {
			return n, errors.New("NOTIFY_SMTP_USERNAME and NOTIFY_SMTP_PASSWORD go together")
		}
	}
	if n.WebhookURL != "" && n.WebhookSecret == "" {
		return n, errors.New("NOTIFY_WEBHOOK_URL needs NOTIFY_WEBHOOK_SECRET: its requests are signed")
	}
	urls := []struct{ name, v string }{{"NOTIFY_WEBHOOK_URL", n.WebhookURL}, {"NOTIFY_SLACK_URL", n.SlackURL}, {"NOTIFY_TEAMS_URL", n.TeamsURL},
		{"NOTIFY_ADMIN_URL", n.AdminURL}, {"NOTIFY_TEMPORAL_UI_URL", n.TemporalUIURL}}
	for _, u := range urls {
		if u.v == "" {
			continue
		}
		// The error does not repeat the value: chat webhook URLs are secrets.
		if p, err := url.Parse(u.v); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return n, fmt.Errorf("%s: want an http(s) URL", u.name)
		}
	}
	return n, nil
}
