// Package devmail is an SMTP server for development and tests: it accepts every message (after
// authentication, when a user is set), keeps the last ones in memory and shows them on a web page. The
// all-in-one command sends the engine's notification e-mails to it; tests read what arrived.
package devmail

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one message as received.
type Message struct {
	From     string
	To       []string
	Received time.Time
	Header   mail.Header
	Subject  string
	// Text and HTML are the message's plain-text and HTML parts (or its single body of that type).
	Text string
	HTML string
	// AuthUser is who authenticated for it; empty without authentication.
	AuthUser string
	// TLS says whether the session was encrypted (STARTTLS).
	TLS bool
	Raw []byte
}

// Options configure the server.
type Options struct {
	// Addr to listen on; default 127.0.0.1:0 (any free port).
	Addr string
	// Username and Password, when set, are required (AUTH PLAIN) before a message is accepted.
	Username, Password string
	// TLSConfig, when set, offers STARTTLS.
	TLSConfig *tls.Config
	// Keep is how many messages are kept, newest last; default 200.
	Keep int
}

// Server is a running SMTP server.
type Server struct {
	Addr string // host:port it listens on

	srv  *smtp.Server
	opts Options
	mu   sync.Mutex
	msgs []Message
	wake chan struct{}
}

// Start listens and serves until Close.
func Start(o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Keep <= 0 {
		o.Keep = 200
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), opts: o, wake: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, conn: c}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.TLSConfig = o.TLSConfig
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.MaxMessageBytes = 10 << 20
	s.srv.MaxRecipients = 100
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Messages returns the messages received so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait returns the first message for which match holds, waiting for it until ctx ends.
func (s *Server) Wait(ctx context.Context, match func(Message) bool) (Message, error) {
	for {
		s.mu.Lock()
		for _, m := range s.msgs {
			if match(m) {
				s.mu.Unlock()
				return m, nil
			}
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("no matching message among %d: %w", len(s.Messages()), ctx.Err())
		}
	}
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	if len(s.msgs) > s.opts.Keep {
		s.msgs = s.msgs[len(s.msgs)-s.opts.Keep:]
	}
	close(s.wake)
	s.wake = make(chan struct{})
}

type session struct {
	s    *Server
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != ss.s.opts.Username || password != ss.s.opts.Password {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.Username != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Message{From: ss.from, To: ss.to, Received: time.Now(), AuthUser: ss.user, Raw: raw}
	_, m.TLS = ss.conn.TLSConnectionState()
	if err := parse(&m); err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unreadable message: " + err.Error()}
	}
	ss.s.add(m)
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

// parse fills the header, subject and bodies from the raw message.
func parse(m *Message) error {
	msg, err := mail.ReadMessage(strings.NewReader(string(m.Raw)))
	if err != nil {
		return err
	}
	m.Header = msg.Header
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		m.Subject = msg.Header.Get("Subject")
	}
	return readPart(m, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
}

func readPart(m *Message, contentType, encoding string, body io.Reader) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := readPart(m, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	b, err := io.ReadAll(decoder(encoding, body))
	if err != nil {
		return err
	}
	switch mt {
	case "text/plain":
		m.Text = string(b)
	case "text/html":
		m.HTML = string(b)
	}
	return nil
}

// ServeHTTP shows the received messages, newest first; ?id=N shows message N's HTML part alone.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	msgs := s.Messages()
	if id := r.URL.Query().Get("html"); id != "" {
		var n int
		if _, err := fmt.Sscan(id, &n); err != nil || n < 0 || n >= len(msgs) {
			http.NotFound(w, r)
			return
		}
		// The message's own HTML, sandboxed: no script of a message runs on this page's origin.
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, msgs[n].HTML)
		return
	}
	type row struct {
		N int
		Message
	}
	rows := make([]row, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- {
		rows = append(rows, row{i, msgs[i]})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = page.Execute(w, struct {
		Addr string
		Rows []row
	}{s.Addr, rows})
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mail sent by saasengine</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}article{border-top:1px solid #ccc;padding:1em 0}pre{white-space:pre-wrap;background:#f4f4f4;padding:1em}dt{font-weight:bold}</style>
</head><body>
<h1>Mail sent by saasengine</h1>
<p>The development SMTP server at {{.Addr}} keeps what the engine sends here, newest first, until the process stops. Reload to see new mail.</p>
{{if not .Rows}}<p>No mail yet.</p>{{end}}
{{range .Rows}}<article>
<h2>{{.Subject}}</h2>
<dl><dt>From</dt><dd>{{.From}}</dd><dt>To</dt><dd>{{range $i, $t := .To}}{{if $i}}, {{end}}{{$t}}{{end}}</dd>
<dt>Received</dt><dd>{{.Received.Format "2006-01-02 15:04:05"}}</dd><dt>Message-ID</dt><dd>{{.Header.Get "Message-Id"}}</dd></dl>
<pre>{{.Text}}</pre>
{{if .HTML}}<p><a href="?html={{.N}}">HTML version</a></p>{{end}}
</article>{{end}}
</body></html>
`))

// decoder undoes a part's Content-Transfer-Encoding.
func decoder(encoding string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r) // it skips line breaks itself
	}
	return r
}
