package notification

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	htmltemplate "html/template"
	"net/mail"
	"strings"
	texttemplate "text/template"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTP says how to reach the mail server.
type SMTP struct {
	Host string
	Port int // default 587 (465 with TLS "tls", 25 with "none")
	// TLS is "starttls" (default: STARTTLS required), "tls" (implicit TLS, as on port 465),
	// "opportunistic" (STARTTLS when offered) or "none".
	TLS string
	// Username and Password authenticate (the strongest mechanism the server offers); empty: no auth.
	Username string
	Password string
	// TLSConfig overrides the TLS settings (a private CA); nil verifies the server against the system's roots.
	TLSConfig *tls.Config
	// Timeout bounds connecting and each command; default 30s.
	Timeout time.Duration
}

// Email sends notices to fixed recipients over SMTP, with a plain-text and an HTML body.
type Email struct {
	SMTP SMTP
	From string   // sender address, optionally with a name: "Saasengine <ops@example.com>"
	To   []string // recipients: the operators, never a buyer
}

// Send sends one message; its Message-ID comes from the notice's key, so a repeat is the same message.
func (e *Email) Send(ctx context.Context, m Message) error {
	msg, err := e.message(m)
	if err != nil {
		return &PermanentError{Err: err}
	}
	c, err := e.client()
	if err != nil {
		return &PermanentError{Err: err}
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("smtp %s: %w", e.SMTP.Host, err)
	}
	return nil
}

func (e *Email) client() (*gomail.Client, error) {
	s := e.SMTP
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	opts := []gomail.Option{gomail.WithTimeout(timeout)}
	tlsCfg := &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
	if s.TLSConfig != nil {
		tlsCfg = s.TLSConfig.Clone()
		if tlsCfg.ServerName == "" {
			tlsCfg.ServerName = s.Host
		}
	}
	opts = append(opts, gomail.WithTLSConfig(tlsCfg))
	port := s.Port
	switch s.TLS {
	case "", "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		port = cmp(port, 587)
	case "tls":
		opts = append(opts, gomail.WithSSL())
		port = cmp(port, 465)
	case "opportunistic":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
		port = cmp(port, 587)
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
		port = cmp(port, 25)
	default:
		return nil, fmt.Errorf("smtp TLS %q: want starttls, tls, opportunistic or none", s.TLS)
	}
	opts = append(opts, gomail.WithPort(port))
	if s.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.Username), gomail.WithPassword(s.Password))
	}
	return gomail.NewClient(s.Host, opts...)
}

func cmp(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func (e *Email) message(m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(e.From); err != nil {
		return nil, fmt.Errorf("sender %w", err)
	}
	if len(e.To) == 0 {
		return nil, fmt.Errorf("no recipient")
	}
	if err := msg.To(e.To...); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	domain := ""
	if a, err := mail.ParseAddress(e.From); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok {
			domain = d
		}
	}
	msg.SetMessageIDWithValue(messageID(m.Key, domain))
	msg.SetDateWithValue(m.At)
	msg.Subject("[" + string(m.Kind) + "] " + m.Title())
	// An automatic message: out-of-office replies and the like are not sent back (RFC 3834).
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("X-Auto-Response-Suppress", "All")
	var plain, html bytes.Buffer
	if err := plainTemplate.Execute(&plain, m); err != nil {
		return nil, err
	}
	if err := htmlTemplate.Execute(&html, m); err != nil {
		return nil, err
	}
	msg.SetBodyString(gomail.TypeTextPlain, plain.String())
	msg.AddAlternativeString(gomail.TypeTextHTML, html.String())
	return msg, nil
}

var plainTemplate = texttemplate.Must(texttemplate.New("plain").Parse(`{{.Title}}
{{if .Detail}}
{{.Detail}}
{{end}}
What to do: {{.Advice}}
{{if .FactList}}
{{range .FactList}}{{index . 0}}: {{index . 1}}
{{end}}{{end}}
{{- if .SubscriptionID}}Subscription: {{.SubscriptionID}}
{{end}}
{{- if .AdminURL}}Admin API:    {{.AdminURL}}
{{end}}
{{- if .WorkflowURL}}Temporal UI:  {{.WorkflowURL}}
{{end}}
Event: {{.Kind}} at {{.At.UTC.Format "2006-01-02 15:04:05 MST"}}, key {{.Key}}
`))

var htmlTemplate = htmltemplate.Must(htmltemplate.New("html").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body style="font-family: system-ui, sans-serif; line-height: 1.4; color: #1b1b1b">
<h1 style="font-size: 1.2em">{{.Title}}</h1>
{{if .Detail}}<p>{{.Detail}}</p>{{end}}
<p><strong>What to do:</strong> {{.Advice}}</p>
{{if .FactList}}<table>{{range .FactList}}<tr><th style="text-align: left; padding-right: 1em">{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>{{end}}
<ul>
{{if .SubscriptionID}}<li>Subscription <code>{{.SubscriptionID}}</code></li>{{end}}
{{if .AdminURL}}<li><a href="{{.AdminURL}}">The subscription in the admin API</a> (needs the admin token)</li>{{end}}
{{if .WorkflowURL}}<li><a href="{{.WorkflowURL}}">The workflow in the Temporal UI</a></li>{{end}}
</ul>
<p style="color: #555; font-size: 0.9em">Event {{.Kind}} at {{.At.UTC.Format "2006-01-02 15:04:05 MST"}}, key <code>{{.Key}}</code></p>
</body></html>
`))
