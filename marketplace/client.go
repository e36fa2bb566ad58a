package marketplace

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
)

// MaxBatchSize is the most usage events one batch may carry.
const MaxBatchSize = 25

// maxResponseBody bounds what the client reads of one answer; the largest legitimate one is a page of 100
// subscriptions.
const maxResponseBody = 8 << 20

// Client calls the SaaS Fulfillment API v2, the Operations API and the Metering API. It is safe for concurrent
// use. Every call carries api-version, a fresh x-ms-requestid and the x-ms-correlationid of the logical
// operation (see WithCorrelationID). It makes exactly one attempt per call: failures come back as *Error,
// which says whether and when to retry.
type Client struct {
	base   *url.URL
	tokens TokenSource
	http   *http.Client
	log    *zap.Logger
	now    func() time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client; its Timeout bounds each attempt. The default times out after 30 s.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithLogger sets the logger failures are reported to. The default discards.
func WithLogger(l *zap.Logger) Option { return func(c *Client) { c.log = l } }

// NewClient returns a client for the API at baseURL (DefaultBaseURL in production; an emulator's
// "http://host:port/api" in development) that authenticates with tokens.
func NewClient(baseURL string, tokens TokenSource, opts ...Option) (*Client, error) {
	if tokens == nil {
		return nil, errors.New("marketplace: a token source is required")
	}
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("marketplace: base URL %q is not an absolute URL", baseURL)
	}
	c := &Client{
		base:   u,
		tokens: tokens,
		http:   &http.Client{Timeout: 30 * time.Second},
		log:    zap.NewNop(),
		now:    time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

type correlationKey struct{}

// WithCorrelationID makes every call made with ctx carry id as x-ms-correlationid, so that the attempts of
// one logical operation (say, an activity and its retries) correlate at Microsoft. Without it each call
// gets a fresh one. The API documents the header as a GUID, so any other string (a workflow and activity
// ID, say) is turned into a name-based GUID: the same string always gives the same GUID.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	if _, err := uuid.Parse(id); err != nil {
		id = uuid.NewSHA1(correlationNamespace, []byte(id)).String()
	}
	return context.WithValue(ctx, correlationKey{}, id)
}

// correlationNamespace scopes name-based correlation IDs to this engine.
var correlationNamespace = uuid.MustParse("6f1c2a0e-8d1b-4f8e-9a57-3c1d2b7e5a90")

// withOperationCorrelation pins a fresh correlation ID on ctx for a call made of several requests, unless
// the caller already set one.
func withOperationCorrelation(ctx context.Context) context.Context {
	if id, ok := ctx.Value(correlationKey{}).(string); ok && id != "" {
		return ctx
	}
	return context.WithValue(ctx, correlationKey{}, uuid.NewString())
}

func correlationID(ctx context.Context) string {
	if id, ok := ctx.Value(correlationKey{}).(string); ok && id != "" {
		return id
	}
	return uuid.NewString()
}

// Resolve exchanges a landing-page purchase token for the subscription it stands for. The token must be
// URL-decoded exactly once (see PurchaseTokenFromQuery).
func (c *Client) Resolve(ctx context.Context, purchaseToken string) (*ResolvedSubscription, error) {
	if strings.TrimSpace(purchaseToken) == "" {
		return nil, &Error{Op: "resolve", StatusCode: http.StatusBadRequest, Code: "MissingToken", Message: "the purchase token is empty"}
	}
	var out ResolvedSubscription
	_, err := c.do(ctx, call{
		op: "resolve", method: http.MethodPost, path: "/saas/subscriptions/resolve",
		header: http.Header{"x-ms-marketplace-token": {purchaseToken}},
		out:    &out, want: http.StatusOK,
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Activate tells Microsoft the account is set up, which starts billing. Success only means the request was
// received: confirm with GetSubscription.
func (c *Client) Activate(ctx context.Context, subscriptionID string, plan SubscriberPlan) error {
	_, err := c.do(ctx, call{
		op: "activate", method: http.MethodPost, path: subscriptionPath(subscriptionID) + "/activate",
		in: plan, want: http.StatusOK,
	})
	return err
}

// GetSubscription reads one subscription.
func (c *Client) GetSubscription(ctx context.Context, subscriptionID string) (*Subscription, error) {
	var out Subscription
	if _, err := c.do(ctx, call{op: "get subscription", method: http.MethodGet, path: subscriptionPath(subscriptionID), out: &out, want: http.StatusOK}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSubscriptionsPage reads one page of the publisher's subscriptions: the first when nextLink is empty,
// else the page nextLink (a previous page's @nextLink) points at. Only the continuation token of nextLink is
// used, against this client's base URL, so the bearer token never goes to a host named in a response.
func (c *Client) ListSubscriptionsPage(ctx context.Context, nextLink string) (*SubscriptionsPage, error) {
	q := url.Values{}
	if nextLink != "" {
		u, err := url.Parse(strings.TrimSpace(strings.TrimPrefix(nextLink, "https:// ")))
		if err != nil {
			return nil, &Error{Op: "list subscriptions", Err: fmt.Errorf("parse @nextLink: %w", err)}
		}
		token := u.Query().Get("continuationToken")
		if token == "" {
			return nil, &Error{Op: "list subscriptions", Err: fmt.Errorf("@nextLink %q has no continuationToken", nextLink)}
		}
		q.Set("continuationToken", token)
	}
	var out SubscriptionsPage
	if _, err := c.do(ctx, call{op: "list subscriptions", method: http.MethodGet, path: "/saas/subscriptions/", query: q, out: &out, want: http.StatusOK}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSubscriptions reads every subscription of the publisher, following @nextLink to the end.
func (c *Client) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	var all []Subscription
	err := c.EachSubscriptionsPage(ctx, func(p *SubscriptionsPage) error {
		all = append(all, p.Subscriptions...)
		return nil
	})
	return all, err
}

// EachSubscriptionsPage calls fn with every page of the publisher's subscriptions in order, stopping at the
// first error fn returns. The whole walk is one logical operation: every page request carries the same
// x-ms-correlationid (the caller's, if ctx has one).
func (c *Client) EachSubscriptionsPage(ctx context.Context, fn func(*SubscriptionsPage) error) error {
	ctx = withOperationCorrelation(ctx)
	seen := map[string]bool{}
	next := ""
	for {
		page, err := c.ListSubscriptionsPage(ctx, next)
		if err != nil {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		if page.NextLink == "" {
			return nil
		}
		// A server that hands out the same link twice would keep us here forever.
		if seen[page.NextLink] {
			return &Error{Op: "list subscriptions", Err: fmt.Errorf("@nextLink repeats: %s", page.NextLink)}
		}
		seen[page.NextLink] = true
		next = page.NextLink
	}
}

// ListAvailablePlans lists the plans the subscription may move to, its current plan included. A non-empty
// planID filters to that plan (and, for the purchased plan, adds the private offers it came through).
func (c *Client) ListAvailablePlans(ctx context.Context, subscriptionID, planID string) ([]Plan, error) {
	q := url.Values{}
	if planID != "" {
		q.Set("planId", planID)
	}
	var out Plans
	if _, err := c.do(ctx, call{op: "list available plans", method: http.MethodGet, path: subscriptionPath(subscriptionID) + "/listAvailablePlans", query: q, out: &out, want: http.StatusOK}); err != nil {
		return nil, err
	}
	return out.Plans, nil
}

// ChangePlan asks Microsoft to move the subscription to planID and returns the operation to poll.
func (c *Client) ChangePlan(ctx context.Context, subscriptionID, planID string) (string, error) {
	if planID == "" {
		return "", &Error{Op: "change plan", StatusCode: http.StatusBadRequest, Code: "BadArgument", Message: "planId is required"}
	}
	return c.patchSubscription(ctx, "change plan", subscriptionID, SubscriberPlan{PlanID: planID})
}

// ChangeQuantity asks Microsoft to change the subscription's seats and returns the operation to poll.
func (c *Client) ChangeQuantity(ctx context.Context, subscriptionID string, quantity int64) (string, error) {
	if quantity < 1 {
		return "", &Error{Op: "change quantity", StatusCode: http.StatusBadRequest, Code: "BadArgument", Message: "quantity must be at least 1"}
	}
	return c.patchSubscription(ctx, "change quantity", subscriptionID, SubscriberPlan{Quantity: Quantity(quantity)})
}

func (c *Client) patchSubscription(ctx context.Context, op, subscriptionID string, body SubscriberPlan) (string, error) {
	h, err := c.do(ctx, call{op: op, method: http.MethodPatch, path: subscriptionPath(subscriptionID), in: body, want: http.StatusAccepted})
	if err != nil {
		return "", err
	}
	return operationIDFromHeader(op, h)
}

// DeleteSubscription cancels the subscription and returns the operation to poll. Deprovision only once the
// Unsubscribe webhook (or the operation) confirms it.
func (c *Client) DeleteSubscription(ctx context.Context, subscriptionID string) (string, error) {
	h, err := c.do(ctx, call{op: "delete subscription", method: http.MethodDelete, path: subscriptionPath(subscriptionID), want: http.StatusAccepted})
	if err != nil {
		return "", err
	}
	return operationIDFromHeader("delete subscription", h)
}

// ListOperations lists the subscription's outstanding operations: those waiting for the publisher.
func (c *Client) ListOperations(ctx context.Context, subscriptionID string) ([]Operation, error) {
	var out OperationList
	if _, err := c.do(ctx, call{op: "list operations", method: http.MethodGet, path: subscriptionPath(subscriptionID) + "/operations", out: &out, want: http.StatusOK}); err != nil {
		return nil, err
	}
	return out.Operations, nil
}

// GetOperation reads one operation of the subscription.
func (c *Client) GetOperation(ctx context.Context, subscriptionID, operationID string) (*Operation, error) {
	var out Operation
	if _, err := c.do(ctx, call{op: "get operation", method: http.MethodGet, path: operationPath(subscriptionID, operationID), out: &out, want: http.StatusOK}); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateOperation sends the publisher's decision on an operation. A 409 means the operation was already
// decided (auto-accepted, patched or superseded): re-read the subscription rather than retrying.
func (c *Client) UpdateOperation(ctx context.Context, subscriptionID, operationID string, update OperationUpdate) error {
	if update.Status != UpdateSuccess && update.Status != UpdateFailure {
		return &Error{Op: "update operation", StatusCode: http.StatusBadRequest, Code: "BadArgument", Message: fmt.Sprintf("status %q is neither Success nor Failure", update.Status)}
	}
	_, err := c.do(ctx, call{op: "update operation", method: http.MethodPatch, path: operationPath(subscriptionID, operationID), in: update, want: http.StatusOK})
	return err
}

// PostUsageEvent reports one usage event. A duplicate (same subscription, dimension and hour) fails with an
// *Error of status 409 whose Duplicate field holds the event Microsoft had accepted; for a resend of the same
// event that is success.
func (c *Client) PostUsageEvent(ctx context.Context, ev UsageEvent) (*UsageEventResult, error) {
	var out UsageEventResult
	if _, err := c.do(ctx, call{op: "post usage event", method: http.MethodPost, path: "/usageEvent", in: ev, out: &out, want: http.StatusOK}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ErrBatchSize is returned, before any request, for a batch of no events or more than MaxBatchSize.
var ErrBatchSize = fmt.Errorf("marketplace: a usage batch carries 1 to %d events", MaxBatchSize)

// PostBatchUsageEvents reports up to MaxBatchSize usage events. The answer has one result per event, in
// order: check each status, since HTTP 200 does not mean all were accepted.
func (c *Client) PostBatchUsageEvents(ctx context.Context, events []UsageEvent) (*BatchUsageEventResult, error) {
	if len(events) == 0 || len(events) > MaxBatchSize {
		return nil, fmt.Errorf("%w (got %d)", ErrBatchSize, len(events))
	}
	var out BatchUsageEventResult
	if _, err := c.do(ctx, call{op: "post usage batch", method: http.MethodPost, path: "/batchUsageEvent", in: BatchUsageEventRequest{Request: events}, out: &out, want: http.StatusOK}); err != nil {
		return nil, err
	}
	return &out, nil
}

// UsageEvents reads the usage-events report: daily aggregates of what was submitted.
func (c *Client) UsageEvents(ctx context.Context, q UsageReportQuery) ([]UsageReportItem, error) {
	if q.UsageStartDate.IsZero() {
		return nil, &Error{Op: "usage events", StatusCode: http.StatusBadRequest, Code: "BadArgument", Message: "usageStartDate is required"}
	}
	v := url.Values{}
	v.Set("usageStartDate", q.UsageStartDate.UTC().Format(time.RFC3339))
	if !q.UsageEndDate.IsZero() {
		v.Set("UsageEndDate", q.UsageEndDate.UTC().Format(time.RFC3339))
	}
	for k, s := range map[string]string{"offerId": q.OfferID, "planId": q.PlanID, "dimension": q.Dimension, "azureSubscriptionId": q.AzureSubscriptionID, "reconStatus": q.ReconStatus} {
		if s != "" {
			v.Set(k, s)
		}
	}
	var out []UsageReportItem
	if _, err := c.do(ctx, call{op: "usage events", method: http.MethodGet, path: "/usageEvents", query: v, out: &out, want: http.StatusOK}); err != nil {
		return nil, err
	}
	return out, nil
}

// call describes one request.
type call struct {
	op     string
	method string
	path   string // below the base URL, already escaped
	query  url.Values
	header http.Header
	in     any
	out    any
	want   int
}

// do sends one attempt and decodes the answer into c.out. It returns the response headers on success.
func (c *Client) do(ctx context.Context, cl call) (http.Header, error) {
	corr := correlationID(ctx)
	reqID := uuid.NewString()
	fail := func(e *Error) error {
		e.Op, e.RequestID, e.CorrelationID = cl.op, reqID, corr
		c.log.Warn("marketplace call failed",
			zap.String("op", cl.op), zap.String("path", cl.path), zap.Int("status", e.StatusCode), zap.String("code", e.Code),
			zap.String("message", e.Message), zap.Bool("retryable", e.Retryable), zap.Duration("retryAfter", e.RetryAfter),
			zap.String("requestId", e.RequestID), zap.String("correlationId", e.CorrelationID), zap.NamedError("cause", e.Err))
		return e
	}

	token, err := c.tokens.Token(ctx)
	if err != nil {
		// A rejected credential is a configuration problem and fails loudly; Entra throttling or failing is not.
		return nil, fail(tokenError(err, c.now()))
	}

	u := *c.base
	u.Path = c.base.Path + cl.path
	q := url.Values{}
	for k, vs := range cl.query {
		q[k] = vs
	}
	q.Set("api-version", APIVersion)
	u.RawQuery = q.Encode()

	var body io.Reader
	if cl.in != nil {
		b, err := json.Marshal(cl.in)
		if err != nil {
			return nil, fail(&Error{Err: fmt.Errorf("encode request: %w", err)})
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), body)
	if err != nil {
		return nil, fail(&Error{Err: fmt.Errorf("build request: %w", err)})
	}
	for k, vs := range cl.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("x-ms-requestid", reqID)
	req.Header.Set("x-ms-correlationid", corr)

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fail(&Error{Err: err, Retryable: retryableTransport(err)})
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, fail(&Error{StatusCode: resp.StatusCode, Err: fmt.Errorf("read response: %w", err), Retryable: true})
	}

	if resp.StatusCode != cl.want {
		e := &Error{StatusCode: resp.StatusCode, Retryable: retryableStatus(resp.StatusCode)}
		e.Code, e.Message, e.Details = decodeErrorBody(raw)
		e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		if resp.StatusCode == http.StatusConflict && strings.HasPrefix(cl.path, "/usageEvent") {
			var conflict UsageEventConflict
			if json.Unmarshal(raw, &conflict) == nil {
				e.Duplicate = conflict.AdditionalInfo.AcceptedMessage
			}
		}
		return nil, fail(e)
	}
	if cl.out != nil && len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, cl.out); err != nil {
			return nil, fail(&Error{StatusCode: resp.StatusCode, Code: "UndecodableResponse", Err: fmt.Errorf("decode response: %w", err)})
		}
	}
	return resp.Header, nil
}

// operationIDFromHeader takes the operation ID from Operation-Location: .../operations/{operationId}?...
func operationIDFromHeader(op string, h http.Header) (string, error) {
	loc := h.Get("Operation-Location")
	id, err := OperationIDFromLocation(loc)
	if err != nil {
		return "", &Error{Op: op, StatusCode: http.StatusAccepted, Code: "MissingOperationLocation", Err: err}
	}
	return id, nil
}

// OperationIDFromLocation extracts the operation ID from an Operation-Location URL.
func OperationIDFromLocation(loc string) (string, error) {
	if loc == "" {
		return "", errors.New("no Operation-Location header")
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("Operation-Location %q: %w", loc, err)
	}
	const marker = "/operations/"
	i := strings.LastIndex(u.Path, marker)
	id := ""
	if i >= 0 {
		id = strings.Trim(u.Path[i+len(marker):], "/")
	}
	if id == "" || strings.Contains(id, "/") {
		return "", fmt.Errorf("Operation-Location %q names no operation", loc)
	}
	return id, nil
}

// PurchaseTokenFromQuery returns the landing page's token parameter decoded exactly once. Go's url.Query
// decodes "+" to a space, which corrupts the token (Microsoft then answers "Failed to decrypt token"), so the
// raw query is read by hand; spaces that a proxy already produced from "+" are restored.
func PurchaseTokenFromQuery(rawQuery string) string {
	for _, part := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		if k != "token" {
			continue
		}
		if dec, err := url.PathUnescape(v); err == nil {
			v = dec
		}
		return strings.ReplaceAll(v, " ", "+")
	}
	return ""
}

func subscriptionPath(id string) string { return "/saas/subscriptions/" + url.PathEscape(id) }

func operationPath(subscriptionID, operationID string) string {
	return subscriptionPath(subscriptionID) + "/operations/" + url.PathEscape(operationID)
}
