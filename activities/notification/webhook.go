package notification

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"saasengine/provisioning"
)

// Webhook posts a message as JSON to the vendor's own systems, signed as the provisioning callback is
// (X-Timestamp, X-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">; check it with
// provisioning.VerifySignature) and carrying the notice's key as Idempotency-Key.
type Webhook struct {
	URL    string
	Secret string
	// Client defaults to one with a 10-second timeout.
	Client *http.Client
}

// Send posts the message.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(webhookBody(m))
	if err != nil {
		return &PermanentError{Err: err}
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	return post(ctx, w.Client, w.URL, body, map[string]string{
		provisioning.HeaderIdempotencyKey: m.Key,
		provisioning.HeaderTimestamp:      ts,
		provisioning.HeaderSignature:      provisioning.Sign(w.Secret, ts, body),
	})
}

// WebhookBody is the JSON a signed webhook carries.
type WebhookBody struct {
	ID             string            `json:"id"` // the idempotency key
	Kind           Kind              `json:"kind"`
	SubscriptionID string            `json:"subscriptionId,omitempty"`
	Summary        string            `json:"summary"`
	Detail         string            `json:"detail,omitempty"`
	Action         string            `json:"action"`
	Facts          map[string]string `json:"facts,omitempty"`
	At             time.Time         `json:"at"`
	Namespace      string            `json:"namespace,omitempty"`
	WorkflowID     string            `json:"workflowId,omitempty"`
	RunID          string            `json:"runId,omitempty"`
	AdminURL       string            `json:"adminUrl,omitempty"`
	WorkflowURL    string            `json:"workflowUrl,omitempty"`
}

func webhookBody(m Message) WebhookBody {
	return WebhookBody{ID: m.Key, Kind: m.Kind, SubscriptionID: m.SubscriptionID, Summary: m.Summary, Detail: m.Detail,
		Action: m.Advice(), Facts: m.Facts, At: m.At.UTC(), Namespace: m.Namespace, WorkflowID: m.WorkflowID,
		RunID: m.RunID, AdminURL: m.AdminURL, WorkflowURL: m.WorkflowURL}
}

// Slack posts to a Slack incoming webhook: a "text" field in Slack's mrkdwn, links as <url|label>.
type Slack struct {
	URL    string
	Client *http.Client
}

// Send posts the message.
func (s *Slack) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(SlackPayload(m))
	if err != nil {
		return &PermanentError{Err: err}
	}
	return post(ctx, s.Client, s.URL, body, nil)
}

// SlackPayload is the body posted to Slack.
func SlackPayload(m Message) map[string]string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s*\n", slackEscape(m.Title()))
	if m.Detail != "" {
		fmt.Fprintf(&b, "%s\n", slackEscape(m.Detail))
	}
	fmt.Fprintf(&b, "What to do: %s\n", slackEscape(m.Advice()))
	for _, f := range m.FactList() {
		fmt.Fprintf(&b, "%s: %s\n", slackEscape(f[0]), slackEscape(f[1]))
	}
	var links []string
	if m.AdminURL != "" {
		links = append(links, "<"+m.AdminURL+"|Admin API>")
	}
	if m.WorkflowURL != "" {
		links = append(links, "<"+m.WorkflowURL+"|Temporal UI>")
	}
	if len(links) > 0 {
		b.WriteString(strings.Join(links, " · ") + "\n")
	}
	fmt.Fprintf(&b, "_%s · %s_", m.Kind, slackEscape(m.Key))
	return map[string]string{"text": b.String()}
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Teams posts to a Microsoft Teams incoming webhook (a Workflows "post to a channel when a webhook
// request is received" URL, or a classic incoming webhook): a message with one Adaptive Card, the shape
// both accept.
type Teams struct {
	URL    string
	Client *http.Client
}

// Send posts the message.
func (t *Teams) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(TeamsPayload(m))
	if err != nil {
		return &PermanentError{Err: err}
	}
	return post(ctx, t.Client, t.URL, body, nil)
}

// TeamsPayload is the body posted to Teams: {"type":"message","attachments":[{Adaptive Card}]}.
func TeamsPayload(m Message) map[string]any {
	body := []map[string]any{
		{"type": "TextBlock", "text": m.Title(), "weight": "Bolder", "size": "Medium", "wrap": true},
	}
	if m.Detail != "" {
		body = append(body, map[string]any{"type": "TextBlock", "text": m.Detail, "wrap": true})
	}
	body = append(body, map[string]any{"type": "TextBlock", "text": "What to do: " + m.Advice(), "wrap": true})
	facts := []map[string]string{}
	for _, f := range m.FactList() {
		facts = append(facts, map[string]string{"title": f[0], "value": f[1]})
	}
	facts = append(facts, map[string]string{"title": "event", "value": string(m.Kind)}, map[string]string{"title": "key", "value": m.Key})
	body = append(body, map[string]any{"type": "FactSet", "facts": facts})
	actions := []map[string]string{}
	if m.AdminURL != "" {
		actions = append(actions, map[string]string{"type": "Action.OpenUrl", "title": "Admin API", "url": m.AdminURL})
	}
	if m.WorkflowURL != "" {
		actions = append(actions, map[string]string{"type": "Action.OpenUrl", "title": "Temporal UI", "url": m.WorkflowURL})
	}
	card := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body":    body,
	}
	if len(actions) > 0 {
		card["actions"] = actions
	}
	return map[string]any{
		"type": "message",
		"attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content":     card,
		}},
	}
}

// post sends JSON; a 2xx is delivered, 408/429/5xx and transport failures may pass (retried), any other
// answer is a permanent refusal.
func post(ctx context.Context, hc *http.Client, target string, body []byte, headers map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "saasengine-notifications")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The URL may hold a secret (Slack's and Teams' do): say only where it went.
		return fmt.Errorf("post to %s: %w", req.URL.Host, unwrapURLError(err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return fmt.Errorf("%s answered %s: %s", req.URL.Host, resp.Status, strings.TrimSpace(string(snippet)))
	default:
		return &PermanentError{Err: fmt.Errorf("%s answered %s: %s", req.URL.Host, resp.Status, strings.TrimSpace(string(snippet)))}
	}
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the whole URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
