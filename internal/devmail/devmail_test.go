package devmail_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"saasengine/internal/devmail"
)

// A message sent over SMTP is kept with its parts and shown on the page, its HTML only on its own,
// sandboxed page.
func TestReceivesAndShows(t *testing.T) {
	s, err := devmail.Start(devmail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg := "From: engine@localhost\r\nTo: ops@localhost\r\nSubject: =?utf-8?q?Activation_failed_=E2=80=94_sub_1?=\r\n" +
		"Message-ID: <k1@localhost>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nWhat to do: retry=\r\n now\r\n" +
		"--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPHA+PGI+cmV0cnk8L2I+PC9wPg==\r\n--b--\r\n"
	if err := smtp.SendMail(s.Addr, nil, "engine@localhost", []string{"ops@localhost"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.Wait(ctx, func(m devmail.Message) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Activation failed — sub 1" || m.Text != "What to do: retry now" || m.HTML != "<p><b>retry</b></p>" || m.To[0] != "ops@localhost" {
		t.Fatalf("message %+v", m)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dev/mail", nil))
	page, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(page), "Activation failed — sub 1") || !strings.Contains(string(page), "What to do: retry now") ||
		strings.Contains(string(page), "<b>retry</b>") || !strings.Contains(string(page), "?html=0") {
		t.Fatalf("page:\n%s", page)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dev/mail?html=0", nil))
	if rec.Body.String() != m.HTML || !strings.Contains(rec.Header().Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("HTML view %q, CSP %q", rec.Body.String(), rec.Header().Get("Content-Security-Policy"))
	}
}
