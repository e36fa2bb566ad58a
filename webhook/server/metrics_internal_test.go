package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The metrics' recorder lets a handler flush through it: the webhook's answer must be on the wire before
// the workflow hears it was sent.
func TestStatusRecorderFlushes(t *testing.T) {
	under := httptest.NewRecorder()
	rec := &statusRecorder{ResponseWriter: under}
	if _, err := rec.Write([]byte(`{"status":"accepted"}`)); err != nil {
		t.Fatal(err)
	}
	if err := http.NewResponseController(rec).Flush(); err != nil {
		t.Fatalf("flush through the recorder: %v", err)
	}
	if !under.Flushed {
		t.Fatal("the writer underneath was not flushed")
	}
}
