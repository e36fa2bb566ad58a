package emulator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"saasengine/marketplace"
)

// Endpoint names, used by fault injection and in logs. They follow the operations of Microsoft's OpenAPI
// files.
const (
	EndpointResolve            = "Resolve"
	EndpointActivate           = "Activate"
	EndpointListSubscriptions  = "ListSubscriptions"
	EndpointGetSubscription    = "GetSubscription"
	EndpointListAvailablePlans = "ListAvailablePlans"
	EndpointUpdateSubscription = "UpdateSubscription"
	EndpointDeleteSubscription = "DeleteSubscription"
	EndpointListOperations     = "ListOperations"
	EndpointGetOperation       = "GetOperation"
	EndpointUpdateOperation    = "UpdateOperation"
	EndpointUsageEvent         = "UsageEvent"
	EndpointBatchUsageEvent    = "BatchUsageEvent"
	EndpointUsageEvents        = "UsageEvents"
)

type apiHandler func(w http.ResponseWriter, r *http.Request, pub *Publisher)

func (e *Emulator) routes() *mux.Router {
	r := mux.NewRouter()
	api := r.PathPrefix("/api").Subrouter()
	handle := func(path, method, endpoint string, h apiHandler) {
		api.Handle(path, e.apiMiddleware(endpoint, h)).Methods(method)
	}
	handle("/saas/subscriptions/resolve", http.MethodPost, EndpointResolve, e.resolve)
	handle("/saas/subscriptions", http.MethodGet, EndpointListSubscriptions, e.listSubscriptions)
	handle("/saas/subscriptions/", http.MethodGet, EndpointListSubscriptions, e.listSubscriptions)
	handle("/saas/subscriptions/{subscriptionId}", http.MethodGet, EndpointGetSubscription, e.getSubscription)
	handle("/saas/subscriptions/{subscriptionId}", http.MethodPatch, EndpointUpdateSubscription, e.updateSubscription)
	handle("/saas/subscriptions/{subscriptionId}", http.MethodDelete, EndpointDeleteSubscription, e.deleteSubscription)
	handle("/saas/subscriptions/{subscriptionId}/activate", http.MethodPost, EndpointActivate, e.activate)
	handle("/saas/subscriptions/{subscriptionId}/listAvailablePlans", http.MethodGet, EndpointListAvailablePlans, e.listAvailablePlans)
	handle("/saas/subscriptions/{subscriptionId}/operations", http.MethodGet, EndpointListOperations, e.listOperations)
	handle("/saas/subscriptions/{subscriptionId}/operations/{operationId}", http.MethodGet, EndpointGetOperation, e.getOperation)
	handle("/saas/subscriptions/{subscriptionId}/operations/{operationId}", http.MethodPatch, EndpointUpdateOperation, e.updateOperation)
	handle("/usageEvent", http.MethodPost, EndpointUsageEvent, e.usageEvent)
	handle("/batchUsageEvent", http.MethodPost, EndpointBatchUsageEvent, e.batchUsageEvent)
	handle("/usageEvents", http.MethodGet, EndpointUsageEvents, e.usageEvents)
	api.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "NotFound", "The requested resource does not exist.")
	})
	api.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The HTTP method is not supported by this resource.")
	})

	// Entra stand-in: the webhook side discovers the signing keys here exactly as it does at
	// login.microsoftonline.com, and buyers sign in to landing pages (signin.go).
	e.signInRoutes(r)
	r.HandleFunc("/{tenant}/discovery/v2.0/keys", e.jwks).Methods(http.MethodGet)

	e.controlRoutes(r.PathPrefix("/control").Subrouter())
	e.pageRoutes(r)
	return r
}

// apiMiddleware applies, in Microsoft's order as far as it can be observed: request IDs, injected faults,
// api-version, then the caller's token.
func (e *Emulator) apiMiddleware(endpoint string, h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqID := r.Header.Get("x-ms-requestid")
		if reqID == "" {
			reqID = uuid.NewString()
		}
		corrID := r.Header.Get("x-ms-correlationid")
		if corrID == "" {
			corrID = uuid.NewString()
		}
		w.Header().Set("x-ms-requestid", reqID)
		w.Header().Set("x-ms-correlationid", corrID)
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)

		key := endpoint + "|" + strings.ToLower(mux.Vars(r)["subscriptionId"])
		e.mu.Lock()
		e.calls[key]++
		e.mu.Unlock()
		if e.applyFault(w, r, endpoint) {
			return
		}
		aw := &answerWriter{ResponseWriter: w, lost: e.takeLostAnswer(endpoint)}
		w = aw
		defer func() {
			if aw.status >= 200 && aw.status < 300 {
				e.mu.Lock()
				e.applied[key]++
				e.mu.Unlock()
			}
		}()
		switch v := r.URL.Query().Get("api-version"); {
		case v == "":
			apiError(w, http.StatusBadRequest, "ApiVersionUnspecified", "An API version is required, but was not specified.")
			return
		case v != marketplace.APIVersion:
			apiError(w, http.StatusBadRequest, "UnsupportedApiVersion", fmt.Sprintf("The HTTP resource does not support the API version '%s'.", v))
			return
		}
		pub, err := e.authenticate(r.Header.Get("Authorization"))
		if err != nil {
			e.log.Info("emulator: rejected caller", zap.String("endpoint", endpoint), zap.Error(err))
			apiError(w, http.StatusForbidden, "Forbidden", "The authorization token is invalid, expired, missing or this request is attempting to access a SaaS subscription for an offer that was published with a different Azure AD App ID from the one used to create the authorization token.")
			return
		}
		h(w, r, pub)
	})
}

// authenticate finds the publisher from the bearer token's tid and appid (or azp), as Microsoft does.
// Tokens must be meant for the Marketplace API and unexpired; a publisher configured with a token secret
// also gets its signature checked.
func (e *Emulator) authenticate(header string) (*Publisher, error) {
	raw, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("no bearer token")
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err != nil {
		return nil, fmt.Errorf("malformed token: %w", err)
	}
	tid, _ := claims["tid"].(string)
	app, _ := claims["appid"].(string)
	if app == "" {
		app, _ = claims["azp"].(string)
	}
	pub := e.publisher(tid, app)
	if pub == nil {
		return nil, fmt.Errorf("no publisher for tenant %q and app %q", tid, app)
	}
	opts := []jwt.ParserOption{jwt.WithAudience(marketplace.ResourceAppID), jwt.WithExpirationRequired(), jwt.WithLeeway(time.Minute)}
	if pub.TokenSecret != "" {
		_, err := jwt.NewParser(append(opts, jwt.WithValidMethods([]string{"HS256"}))...).Parse(raw, func(*jwt.Token) (any, error) { return []byte(pub.TokenSecret), nil })
		if err != nil {
			return nil, fmt.Errorf("token: %w", err)
		}
		return pub, nil
	}
	// Without a secret the signature cannot be checked, but the claims still must be right.
	v := jwt.NewValidator(opts...)
	if err := v.Validate(claims); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return pub, nil
}

func (e *Emulator) publisher(tenantID, appID string) *Publisher {
	for i := range e.cfg.Publishers {
		p := &e.cfg.Publishers[i]
		if strings.EqualFold(p.TenantID, tenantID) && strings.EqualFold(p.AppID, appID) {
			return p
		}
	}
	return nil
}

func (e *Emulator) publisherByID(id string) *Publisher {
	for i := range e.cfg.Publishers {
		if e.cfg.Publishers[i].ID == id {
			return &e.cfg.Publishers[i]
		}
	}
	return nil
}

// offer finds an offer and its publisher.
func (e *Emulator) offer(offerID string) (*Publisher, *Offer) {
	for i := range e.cfg.Publishers {
		p := &e.cfg.Publishers[i]
		for j := range p.Offers {
			if p.Offers[j].ID == offerID {
				return p, &p.Offers[j]
			}
		}
	}
	return nil, nil
}

func (e *Emulator) plan(offerID, planID string) *Plan {
	_, o := e.offer(offerID)
	if o == nil {
		return nil
	}
	for i := range o.Plans {
		if o.Plans[i].ID == planID {
			return &o.Plans[i]
		}
	}
	return nil
}

// apiError writes the Fulfillment API's error shape.
func apiError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

// internalError is Microsoft's 500 for a state the emulator cannot serve (a subscription whose plan or offer
// left the configuration): an answer the client retries or reports, never a panic.
func internalError(w http.ResponseWriter, detail string) {
	apiError(w, http.StatusInternalServerError, "InternalServerError", "Internal server error. Retry the API call. If the error persists, contact Microsoft support. ("+detail+")")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody decodes a JSON request body; an empty body leaves v as is.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		if err.Error() == "EOF" {
			return nil
		}
		return err
	}
	return nil
}

// sleepCtx waits d or until the request is gone.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
