package engine

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"saasengine/activities/notification"
	"saasengine/config"
)

// Notifier builds the notification activity from configuration: one channel per configured sender, each
// with the kinds routed to it. With none configured the activity sends nothing.
func Notifier(n config.Notify, logger *zap.Logger) *notification.Activities {
	hc := &http.Client{Timeout: 10 * time.Second}
	a := &notification.Activities{Logger: logger, Links: notification.Links{AdminBaseURL: n.AdminURL, TemporalUIURL: n.TemporalUIURL}}
	if n.SMTPHost != "" {
		a.Channels = append(a.Channels, notification.Channel{Name: "email", Kinds: n.EmailKinds, Sender: &notification.Email{
			SMTP: notification.SMTP{Host: n.SMTPHost, Port: n.SMTPPort, TLS: n.SMTPTLS, Username: n.SMTPUsername, Password: n.SMTPPassword},
			From: n.EmailFrom, To: n.EmailTo,
		}})
	}
	if n.WebhookURL != "" {
		a.Channels = append(a.Channels, notification.Channel{Name: "webhook", Kinds: n.WebhookKinds,
			Sender: &notification.Webhook{URL: n.WebhookURL, Secret: n.WebhookSecret, Client: hc}})
	}
	if n.SlackURL != "" {
		a.Channels = append(a.Channels, notification.Channel{Name: "slack", Kinds: n.SlackKinds, Sender: &notification.Slack{URL: n.SlackURL, Client: hc}})
	}
	if n.TeamsURL != "" {
		a.Channels = append(a.Channels, notification.Channel{Name: "teams", Kinds: n.TeamsKinds, Sender: &notification.Teams{URL: n.TeamsURL, Client: hc}})
	}
	return a
}
