package apispec

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// Recorder collects violations from checked traffic; tests fail on any.
type Recorder struct {
	spec *Spec

	mu         sync.Mutex
	checked    map[string]int // operation ID → exchanges checked
	violations []Violation
}

// NewRecorder checks traffic against spec.
func NewRecorder(spec *Spec) *Recorder {
	return &Recorder{spec: spec, checked: map[string]int{}}
}

// Violations returns what has been found so far.
func (r *Recorder) Violations() []Violation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Violation(nil), r.violations...)
}

// Checked returns how many exchanges of each operation were checked.
func (r *Recorder) Checked() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.checked))
	for k, v := range r.checked {
		out[k] = v
	}
	return out
}

func (r *Recorder) record(ctx context.Context, ex *Exchange, responseOnlyIfRequestConforms bool) {
	vs := r.spec.Check(ctx, ex)
	if responseOnlyIfRequestConforms {
		// A request that breaks the contract on purpose (a test of the emulator's error handling) can only get
		// an error answer, which the files do not describe; what counts is that the request was refused.
		for _, v := range vs {
			if v.Side == "request" {
				vs = nil
				break
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checked[ex.OperationID]++
	r.violations = append(r.violations, vs...)
}

// Transport wraps next (nil means http.DefaultTransport) so that every request a client sends, and every
// response it gets, is checked.
func (r *Recorder) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		var body []byte
		if req.Body != nil {
			b, err := io.ReadAll(req.Body)
			if err != nil {
				return nil, err
			}
			req.Body.Close()
			body = b
			req.Body = io.NopCloser(bytes.NewReader(b))
		}
		resp, err := next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		respBody, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
		if strings.Contains(req.URL.Path, "/api/") {
			r.record(req.Context(), &Exchange{
				Method: req.Method, URL: req.URL, Header: req.Header, Body: body,
				Status: resp.StatusCode, RespHeader: resp.Header, RespBody: respBody,
			}, false)
		}
		return resp, nil
	})
}

// Middleware wraps an API server so that every response it gives to a conforming request is checked.
func (r *Recorder) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !strings.HasPrefix(req.URL.Path, "/api/") {
			next.ServeHTTP(w, req)
			return
		}
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, req)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		u := *req.URL
		r.record(context.WithoutCancel(req.Context()), &Exchange{
			Method: req.Method, URL: &u, Header: req.Header, Body: body,
			Status: rec.Code, RespHeader: rec.Header(), RespBody: rec.Body.Bytes(),
		}, true)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
