// Package server is the HTTP side of the engine: Microsoft's webhook, the buyer's landing page, the
// operators' admin API and the operations endpoints. It holds no state of its own: Temporal is the record,
// and a request is answered only after Temporal has accepted what it carries.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"saasengine/marketplace"
	"saasengine/tracing"
	"saasengine/workflows/subscription"
)

// Subscriptions is what the server asks of the subscription workflows.
type Subscriptions interface {
	// DeliverWebhook hands a verified notification to its subscription's workflow, starting it if needed,
	// and returns once Temporal has accepted it.
	DeliverWebhook(ctx context.Context, ev marketplace.WebhookEvent) error
	// DecideChange hands a ChangePlan or ChangeQuantity notification to the workflow and waits at most wait
	// for its decision (Decided false: none came in time, the webhook answers 200 and the workflow's own
	// PATCH stands alone).
	DecideChange(ctx context.Context, ev marketplace.WebhookEvent, wait time.Duration) (subscription.ChangeDecision, error)
	// WebhookAnswered tells the workflow that the response to its webhook has been sent: Microsoft
	// expects no PATCH of the operation before it.
	WebhookAnswered(ctx context.Context, ev marketplace.WebhookEvent) error

	// Land makes a resolved subscription known (starting its workflow if needed) and returns its view.
	Land(ctx context.Context, resolved marketplace.ResolvedSubscription) (View, error)
	// Confirm records the buyer's confirmation on the landing page (Update-With-Start).
	Confirm(ctx context.Context, resolved marketplace.ResolvedSubscription) (View, error)
	// View reads a subscription's current view; subscription.ErrNotFound if the engine does not know it.
	View(ctx context.Context, subscriptionID string) (View, error)

	// List, State and the commands serve the admin API. Refusals come back as *subscription.CommandError.
	// The commands wait at most wait for Microsoft's outcome: past it they return
	// *subscription.InProgressError if the workflow took the command, subscription.ErrNotAccepted if it
	// did not.
	List(ctx context.Context, f subscription.Filter) (subs []subscription.Summary, nextPageToken []byte, err error)
	State(ctx context.Context, subscriptionID string) (any, error)
	ChangePlan(ctx context.Context, subscriptionID, planID string, wait time.Duration) (any, error)
	ChangeQuantity(ctx context.Context, subscriptionID string, quantity int64, wait time.Duration) (any, error)
	Cancel(ctx context.Context, subscriptionID string, wait time.Duration) (any, error)
	Approve(ctx context.Context, subscriptionID string, wait time.Duration) (any, error)
	// Retry retries what failed and needs a person (an activation, a deprovisioning, a tenant sync).
	Retry(ctx context.Context, subscriptionID string, wait time.Duration) (any, error)
	// Reconcile starts a reconciliation run now and returns its handle.
	Reconcile(ctx context.Context) (any, error)
}

// Config wires a Server.
type Config struct {
	// WebhookPath is where Microsoft POSTs notifications (Partner Center's "Connection webhook"); default
	// "/webhook".
	WebhookPath string
	// Validator checks webhook tokens. Nil means no authentication, which New refuses unless
	// InsecureNoWebhookAuth is set on purpose.
	Validator             TokenValidator
	InsecureNoWebhookAuth bool
	// DecisionWait bounds how long a ChangePlan/ChangeQuantity webhook waits for the workflow's decision;
	// Microsoft's window is 10 s. Default 5 s; at most WebhookBudget less 2 s, which the fallback signal
	// needs.
	DecisionWait time.Duration
	// WebhookBudget bounds a whole webhook call (token check and every Temporal call), so that even with
	// Temporal down the answer (503) leaves inside Microsoft's 10-second window. Default 9 s.
	WebhookBudget time.Duration

	Subscriptions Subscriptions
	// Meter takes usage reports for the admin API and shows the meters; nil leaves
	// /admin/subscriptions/{id}/usage out.
	Meter Meter
	// Resolver resolves landing-page purchase tokens.
	Resolver Resolver
	// Plans gives the pages the plans' display names (List available plans); nil shows plan IDs.
	Plans PlanLister
	// Brand makes the buyer's pages look like the vendor's product.
	Brand Brand
	// SignIn is the Entra ID app buyers sign in with before the landing page shows anything. Nil means no
	// sign-in, which New refuses unless InsecureNoSignIn is set on purpose (an emulator without sign-in).
	SignIn           *SignInConfig
	InsecureNoSignIn bool
	// SessionKey signs the landing page's CSRF tokens and status links. Replicas behind one load balancer
	// must share it; empty means a random key (one replica, links die with a restart).
	SessionKey []byte
	// AdminToken is the bearer token of the admin API; empty disables the admin API.
	AdminToken string
	// Codec, when payloads are encrypted, serves Temporal's remote codec protocol at /codec (admin
	// bearer token) and, with CodecPathKey, at /codec/<CodecPathKey> for a Web UI; CodecOrigins are the
	// browser origins allowed to call it (see codec.go).
	Codec        converter.PayloadCodec
	CodecPathKey string
	CodecOrigins []string
	// CommandWait bounds how long an admin plan, quantity or cancel command waits for Microsoft's outcome
	// before answering 202 (the workflow keeps following the operation, which can take minutes). It must
	// stay below the HTTP server's WriteTimeout (30 s). Default 20 s.
	CommandWait time.Duration
	// Ready reports whether Temporal is reachable, for /readyz.
	Ready func(ctx context.Context) error

	Logger *zap.Logger
}

// writeTimeout is the HTTP server's WriteTimeout: past it the client gets a dropped connection, so every
// handler must answer before it.
const writeTimeout = 30 * time.Second

// defaultWebhookBudget keeps a webhook's answer inside Microsoft's 10-second window, with a second for the
// network.
const defaultWebhookBudget = 9 * time.Second

// fallbackReserve is the part of the webhook budget kept for the signal that records a change whose
// decision did not come in time.
const fallbackReserve = 2 * time.Second

// defaultCommandWait leaves an admin command's answer well inside writeTimeout.
const defaultCommandWait = 20 * time.Second

// Server is the engine's HTTP handler.
type Server struct {
	cfg     Config
	csrfKey []byte
	log     *zap.Logger
	metrics *metrics
	router  *mux.Router
	// handler is the router, in a server span per request while tracing is on.
	handler http.Handler
	// signIn is nil when sign-in is off.
	signIn *signIn
	// csp is the Content-Security-Policy of the buyer's pages.
	csp string
	// theme is the pages' colours derived from the brand's accent.
	theme template.CSS
	plans *plans
	// refusals logs refused webhooks at a bounded rate.
	refusals *limitedLog
}

// New checks the configuration and builds the routes.
func New(cfg Config) (*Server, error) {
	if cfg.Subscriptions == nil || cfg.Resolver == nil {
		return nil, errors.New("server: Subscriptions and Resolver are required")
	}
	if cfg.Validator == nil && !cfg.InsecureNoWebhookAuth {
		return nil, errors.New("server: webhook authentication is required; set InsecureNoWebhookAuth only for an emulator that cannot sign")
	}
	if cfg.SignIn == nil && !cfg.InsecureNoSignIn {
		return nil, errors.New("server: buyers' sign-in is required (Microsoft's certification asks for Entra ID single sign-on on the landing page); set InsecureNoSignIn only with an emulator")
	}
	if cfg.WebhookPath == "" {
		cfg.WebhookPath = "/webhook"
	}
	if cfg.WebhookBudget <= 0 {
		cfg.WebhookBudget = defaultWebhookBudget
	}
	if cfg.WebhookBudget <= fallbackReserve {
		return nil, fmt.Errorf("server: WebhookBudget %s leaves no time for Temporal; it must exceed %s", cfg.WebhookBudget, fallbackReserve)
	}
	if cfg.DecisionWait <= 0 {
		cfg.DecisionWait = 5 * time.Second
	}
	clampedWait := cfg.DecisionWait > cfg.WebhookBudget-fallbackReserve
	if clampedWait {
		cfg.DecisionWait = cfg.WebhookBudget - fallbackReserve
	}
	if cfg.CommandWait <= 0 {
		cfg.CommandWait = defaultCommandWait
	}
	if cfg.CommandWait >= writeTimeout {
		return nil, fmt.Errorf("server: CommandWait %s must stay below the write timeout %s", cfg.CommandWait, writeTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Server{cfg: cfg, csrfKey: cfg.SessionKey, log: cfg.Logger, metrics: newMetrics(), router: mux.NewRouter()}
	if len(s.csrfKey) == 0 {
		s.csrfKey = make([]byte, 32)
		if _, err := rand.Read(s.csrfKey); err != nil {
			return nil, fmt.Errorf("server: session key: %w", err)
		}
	}
	if cfg.SignIn != nil {
		si, err := newSignIn(*cfg.SignIn, s.csrfKey)
		if err != nil {
			return nil, err
		}
		switch si.callbackPath() {
		case "/landing", "/landing/confirm", "/landing/manage", "/landing/login", "/landing/signout", cfg.WebhookPath:
			return nil, fmt.Errorf("server: the sign-in redirect URL's path %s is taken by another page; use /landing/signin", si.callbackPath())
		}
		s.signIn = si
	} else {
		s.log.Warn("BUYER SIGN-IN IS OFF: anyone holding a purchase link sees the purchase and can confirm it, without signing in. Use this only with an emulator.")
	}
	if err := checkBrand(cfg.Brand); err != nil {
		return nil, err
	}
	s.csp, s.theme = pageCSP(s.signIn, cfg.Brand), themeCSS(cfg.Brand.AccentColor)
	s.plans = &plans{lister: cfg.Plans, log: s.log, byKey: map[string]cachedPlan{}}
	s.refusals = newLimitedLog(s.log, refusalLogWindow, refusalLogBurst)
	if clampedWait {
		s.log.Warn("webhook decision wait shortened so that the fallback signal fits the webhook budget",
			zap.Duration("decisionWait", cfg.DecisionWait), zap.Duration("webhookBudget", cfg.WebhookBudget))
	}
	if cfg.Validator == nil {
		s.log.Warn("WEBHOOK AUTHENTICATION IS OFF: anyone who can reach " + cfg.WebhookPath + " can forge Marketplace events. Use this only with an emulator that cannot sign.")
	}
	s.routes()
	s.handler = tracing.Handler(s.router)
	return s, nil
}

// ServeHTTP serves every route.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() {
	r := s.router
	r.Use(s.instrument)
	r.HandleFunc(s.cfg.WebhookPath, s.webhook).Methods(http.MethodPost)
	r.HandleFunc("/landing", s.withBuyer(s.landing)).Methods(http.MethodGet)
	r.HandleFunc("/landing/confirm", s.withBuyer(s.confirm)).Methods(http.MethodPost)
	r.HandleFunc("/landing/status/{id}", s.withBuyer(s.status)).Methods(http.MethodGet)
	r.HandleFunc("/landing/manage", s.withBuyer(s.manage)).Methods(http.MethodGet)
	r.HandleFunc("/landing/login", s.login).Methods(http.MethodGet)
	r.HandleFunc("/landing/signout", s.signOut).Methods(http.MethodPost)
	if s.signIn != nil {
		r.HandleFunc(s.signIn.callbackPath(), s.signInCallback).Methods(http.MethodGet)
	}
	if s.cfg.AdminToken != "" {
		a := r.PathPrefix("/admin").Subrouter()
		a.HandleFunc("/subscriptions", s.adminAuth(s.adminList)).Methods(http.MethodGet)
		a.HandleFunc("/subscriptions/{id}", s.adminAuth(s.adminGet)).Methods(http.MethodGet)
		a.HandleFunc("/subscriptions/{id}/plan", s.adminAuth(s.adminChangePlan)).Methods(http.MethodPost)
		a.HandleFunc("/subscriptions/{id}/quantity", s.adminAuth(s.adminChangeQuantity)).Methods(http.MethodPost)
		a.HandleFunc("/subscriptions/{id}/cancel", s.adminAuth(s.adminCancel)).Methods(http.MethodPost)
		a.HandleFunc("/subscriptions/{id}/approve", s.adminAuth(s.adminApprove)).Methods(http.MethodPost)
		a.HandleFunc("/subscriptions/{id}/retry", s.adminAuth(s.adminRetry)).Methods(http.MethodPost)
		a.HandleFunc("/reconcile", s.adminAuth(s.adminReconcile)).Methods(http.MethodPost)
		if s.cfg.Meter != nil {
			a.HandleFunc("/subscriptions/{id}/usage", s.adminAuth(s.adminReportUsage)).Methods(http.MethodPost)
			a.HandleFunc("/subscriptions/{id}/usage", s.adminAuth(s.adminUsage)).Methods(http.MethodGet)
		}
	}
	if s.cfg.Codec != nil {
		s.codecRoutes(r)
	}
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet)
	r.Handle("/metrics", s.metrics.handler()).Methods(http.MethodGet)
	r.NotFoundHandler = s.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "NotFound", "no such endpoint", nil)
	}))
	r.MethodNotAllowedHandler = s.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed here", nil)
	}))
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			s.fail(w, r, http.StatusServiceUnavailable, "TemporalUnreachable", "Temporal cannot be reached", err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// HTTPServer wraps h with the timeouts an Internet-facing endpoint needs: a slow client cannot hold a
// connection open for ever.
func HTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
