// Package promtest reads a Prometheus endpoint in tests: scrape it, then look up one series by its metric
// name and some of its labels (exporters add labels of their own, such as otel_scope_name).
package promtest

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Scrape returns the text exposition h serves.
func Scrape(t testing.TB, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics endpoint: %d", rec.Code)
	}
	return rec.Body.String()
}

var label = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// Value returns the value of the first series of metric carrying every label in labels; ok is false when
// there is none.
func Value(page, metric string, labels map[string]string) (v float64, ok bool) {
	for _, line := range strings.Split(page, "\n") {
		rest, found := strings.CutPrefix(line, metric)
		if !found || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		have := map[string]string{}
		if rest[0] == '{' {
			end := strings.LastIndex(rest, "}")
			if end < 0 {
				continue
			}
			for _, m := range label.FindAllStringSubmatch(rest[1:end], -1) {
				have[m[1]] = m[2]
			}
			rest = rest[end+1:]
		}
		match := true
		for k, want := range labels {
			if have[k] != want {
				match = false
			}
		}
		if !match {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// Type returns the type the page declares for metric (counter, gauge, histogram...), or "" when it
// declares none.
func Type(page, metric string) string {
	for _, line := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "+metric+" "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}
