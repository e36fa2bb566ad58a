package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"saasengine/emulator"
	"saasengine/internal/stacktest"
	"saasengine/workflows/subscription"
)

// apiError is the server's JSON error envelope.
type apiError struct {
	Error struct{ Code, Message string } `json:"error"`
}

// answer is what the webhook endpoint said.
type answer struct {
	status int
	code   string
	header http.Header
}

// post sends a webhook request. Every error answer must be the JSON error envelope with a code and a
// message.
func post(t *testing.T, u, token, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e apiError
	if resp.StatusCode >= 400 {
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("error answer %d has content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("error answer %d is not a JSON error body: %s", resp.StatusCode, b)
		}
	}
	return answer{status: resp.StatusCode, code: e.Error.Code, header: resp.Header}
}

// noWorkflow asserts that the engine never heard of a subscription: no workflow exists for it.
func noWorkflow(t *testing.T, s *stacktest.Stack, subID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Subs.State(ctx, subID)
	if !errors.Is(err, subscription.ErrNotFound) {
		t.Fatalf("a workflow exists for %s (err %v): a refused request reached Temporal", subID, err)
	}
}

// admin calls the admin API and decodes the answer into out.
func admin(t *testing.T, s *stacktest.Stack, method, path, token, body string, out any) (int, string) {
	t.Helper()
	resp, b := s.Admin(t, method, path, token, body)
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	return resp.StatusCode, string(b)
}

// get fetches a page with c.
func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var formField = regexp.MustCompile(`name="(subscription|token|csrf)" value="([^"]*)"`)

// fields reads the landing page's hidden form fields.
func fields(page string) url.Values {
	v := url.Values{}
	for _, m := range formField.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// eventually polls cond every 100 ms until it holds, failing the test after limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened; last: %s", what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// delivery returns the emulator's record of the webhook of an operation.
func delivery(s *stacktest.Stack, operationID string) (emulator.Delivery, bool) {
	for _, d := range s.Emu.Emulator.Deliveries() {
		if d.Event.ID == operationID {
			return d, true
		}
	}
	return emulator.Delivery{}, false
}

// waitDelivery waits until the webhook of an operation was answered as cond wants.
func waitDelivery(t *testing.T, s *stacktest.Stack, operationID string, cond func(emulator.Delivery) bool) emulator.Delivery {
	t.Helper()
	var d emulator.Delivery
	eventually(t, 30*time.Second, "webhook delivery of "+operationID, func() (bool, string) {
		var ok bool
		d, ok = delivery(s, operationID)
		return ok && cond(d), strconv.Quote(d.State) + " status " + strconv.Itoa(d.LastStatus) + " attempts " + strconv.Itoa(d.Attempts)
	})
	return d
}

// metrics scrapes /metrics.
func metrics(t *testing.T, s *stacktest.Stack) string {
	t.Helper()
	_, body := get(t, http.DefaultClient, s.HTTP.URL+"/metrics")
	return body
}

// metricValue returns the value of the series whose line starts with prefix (name and labels), or -1.
func metricValue(page, series string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// read returns a response's body and closes it.
func read(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// choose picks user on the emulator's sign-in page (the page of resp) and returns where that leads.
func choose(t *testing.T, c *http.Client, resp *http.Response, page, user string) *http.Response {
	t.Helper()
	if !strings.HasSuffix(resp.Request.URL.Path, "/oauth2/v2.0/authorize") || !strings.Contains(page, "Pick an account") {
		t.Fatalf("expected the emulator's sign-in page, got %d at %s", resp.StatusCode, resp.Request.URL)
	}
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if user == "" {
		form.Set("cancel", "1")
	} else {
		form.Set("user", user)
	}
	next, err := c.PostForm(resp.Request.URL.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	return next
}

// signInAs opens u with c, which the server sends to sign in first: it signs in on the emulator's Entra as
// the demo buyer user and returns the page u then shows.
func signInAs(t *testing.T, c *http.Client, u, user string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp = choose(t, c, resp, read(t, resp), user)
	return resp.StatusCode, read(t, resp)
}

// signedIn is a browser signed in as the demo buyer user.
func signedIn(t *testing.T, s *stacktest.Stack, user string) *http.Client {
	t.Helper()
	c := buyer()
	signInAs(t, c, s.HTTP.URL+"/landing/login?return=%2Flanding%2Fmanage", user)
	if !hasCookie(c, s.HTTP.URL, "saasengine_session") {
		t.Fatalf("signing in as %s left no session", user)
	}
	return c
}

func hasCookie(c *http.Client, u, name string) bool {
	pu, _ := url.Parse(u)
	for _, ck := range c.Jar.Cookies(pu) {
		if ck.Name == name {
			return true
		}
	}
	return false
}

// without is a browser with c's cookies for u but the one named name.
func without(c *http.Client, u, name string) *http.Client {
	pu, _ := url.Parse(u)
	var keep []*http.Cookie
	for _, ck := range c.Jar.Cookies(pu) {
		if ck.Name != name {
			keep = append(keep, ck)
		}
	}
	out := buyer()
	out.Jar.SetCookies(pu, keep)
	return out
}
