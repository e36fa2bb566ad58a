// Package apispec checks HTTP traffic against Microsoft's official OpenAPI files for the SaaS Fulfillment
// API v2 and the Metering API, with kin-openapi. Tests put it around the client (a RoundTripper) and around
// the emulator (a handler middleware), so both sides are held to the published contract.
//
// The files are Microsoft's, embedded from the openapi folder (see its README for their origin and MIT
// license). Where the files are known to be wrong about Microsoft's real behaviour, allowList says so and why.
package apispec

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Files are the official OpenAPI files, in the embedded openapi folder.
var Files = []string{"saasapi.v2.json", "meteringapi.v1.json"}

// openapiFS holds the files in the binary, so tests need nothing beside the repository.
//
//go:embed openapi/*.json
var openapiFS embed.FS

// specServer is where both files say the API lives; traffic to any other host is checked as if sent there.
const specServer = "https://marketplaceapi.microsoft.com"

// Spec holds the loaded documents and their routers.
type Spec struct {
	routers []routers.Router
	ops     []string
}

// OperationIDs lists the operation IDs of both files, sorted: what a test run should have exercised.
func (s *Spec) OperationIDs() []string { return append([]string(nil), s.ops...) }

// Load reads and validates the embedded OpenAPI files.
func Load() (*Spec, error) {
	s := &Spec{}
	for _, name := range Files {
		data, err := openapiFS.ReadFile("openapi/" + name)
		if err != nil {
			return nil, fmt.Errorf("apispec: read %s: %w", name, err)
		}
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(data)
		if err != nil {
			return nil, fmt.Errorf("apispec: load %s: %w", name, err)
		}
		fixDocument(doc)
		if err := doc.Validate(loader.Context, openapi3.EnableSchemaFormatValidation()); err != nil {
			return nil, fmt.Errorf("apispec: %s is not a valid OpenAPI document: %w", name, err)
		}
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			return nil, fmt.Errorf("apispec: route %s: %w", name, err)
		}
		s.routers = append(s.routers, r)
		for _, item := range doc.Paths.Map() {
			for _, op := range item.Operations() {
				s.ops = append(s.ops, op.OperationID)
			}
		}
	}
	sort.Strings(s.ops)
	return s, nil
}

var (
	loadOnce sync.Once
	loaded   *Spec
	loadErr  error
)

// Default loads the files once per process.
func Default() (*Spec, error) {
	loadOnce.Do(func() { loaded, loadErr = Load() })
	return loaded, loadErr
}

// Exchange is one request and its response, bodies read.
type Exchange struct {
	Method      string
	URL         *url.URL
	Header      http.Header
	Body        []byte
	Status      int
	RespHeader  http.Header
	RespBody    []byte
	OperationID string
}

// Violation is a way an exchange departs from the OpenAPI files.
type Violation struct {
	Exchange Exchange
	Side     string // "request" or "response"
	Err      error
}

func (v Violation) Error() string {
	return fmt.Sprintf("%s %s (%s) → %d: %s does not conform: %v", v.Exchange.Method, v.Exchange.URL.Path, v.Exchange.OperationID, v.Exchange.Status, v.Side, v.Err)
}

// Check validates one exchange, returning what the files and the allow-list do not accept.
func (s *Spec) Check(ctx context.Context, ex *Exchange) []Violation {
	req, err := specRequest(ctx, ex)
	if err != nil {
		return []Violation{{Exchange: *ex, Side: "request", Err: err}}
	}
	route, params, err := s.findRoute(req)
	if err != nil {
		return []Violation{{Exchange: *ex, Side: "request", Err: fmt.Errorf("no operation in the OpenAPI files: %w", err)}}
	}
	ex.OperationID = route.Operation.OperationID
	opts := &openapi3filter.Options{
		AuthenticationFunc:      bearerPresent,
		IncludeResponseStatus:   true,
		MultiError:              true,
		SchemaValidationOptions: formatValidators,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	var out []Violation
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		out = append(out, Violation{Exchange: *ex, Side: "request", Err: err})
	}
	if ex.Status != 0 && !allowedResponse(ex) {
		rin := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in,
			Status:                 ex.Status,
			Header:                 ex.RespHeader,
			Body:                   io.NopCloser(bytes.NewReader(ex.RespBody)),
			Options:                opts,
		}
		if err := openapi3filter.ValidateResponse(ctx, rin); err != nil {
			out = append(out, Violation{Exchange: *ex, Side: "response", Err: err})
		}
	}
	return out
}

func (s *Spec) findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	var firstErr error
	for _, r := range s.routers {
		route, params, err := r.FindRoute(req)
		if err == nil {
			return route, params, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, nil, firstErr
}

// specRequest rebuilds the request as if it were sent to the spec's server, keeping the path below /api.
func specRequest(ctx context.Context, ex *Exchange) (*http.Request, error) {
	u := *ex.URL
	base, _ := url.Parse(specServer)
	u.Scheme, u.Host = base.Scheme, base.Host
	i := bytes.Index([]byte(u.Path), []byte("/api/"))
	if i < 0 {
		return nil, fmt.Errorf("path %q is not below /api", u.Path)
	}
	u.Path = normalizePath(u.Path[i:])
	u.RawPath = ""
	var body io.Reader
	if len(ex.Body) > 0 {
		body = bytes.NewReader(ex.Body)
	}
	req, err := http.NewRequestWithContext(ctx, ex.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header = ex.Header.Clone()
	return req, nil
}

func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if h := in.RequestValidationInput.Request.Header.Get("Authorization"); len(h) > len("Bearer ") && h[:7] == "Bearer " {
		return nil
	}
	return errors.New("no bearer token")
}
