package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"saasengine/marketplace"
)

// Resolver turns a purchase token into its subscription (marketplace.Client in production).
type Resolver interface {
	Resolve(ctx context.Context, purchaseToken string) (*marketplace.ResolvedSubscription, error)
}

// View is what the pages show of one subscription.
type View struct {
	SubscriptionID string
	Name           string
	OfferID        string
	PlanID         string
	Quantity       int64
	// Status is Microsoft's status; Stage says what the engine is doing.
	Status               string
	Stage                string
	Purchaser            marketplace.AADIdentifier
	Beneficiary          marketplace.AADIdentifier
	TermUnit             string
	TermStart, TermEnd   time.Time
	AwaitingConfirmation bool
	// Failed is set when activation failed and needs a person; Problem says what went wrong.
	Failed  bool
	Problem string
}

// ErrNotFound is returned by Subscriptions when no workflow exists for a subscription.
var ErrNotFound = errors.New("subscription not found")

//go:embed templates/*.html
var templateFS embed.FS

// termLength reads Microsoft's term unit (an ISO 8601 period such as P1M, P1Y, P3Y) as a buyer would say
// it; a unit it does not know is shown as Microsoft sent it (enums are open).
func termLength(unit string) string {
	var n int
	var u byte
	if _, err := fmt.Sscanf(unit, "P%d%c", &n, &u); err != nil || n <= 0 || fmt.Sprintf("P%d%c", n, u) != unit {
		return unit
	}
	names := map[byte]string{'D': "day", 'W': "week", 'M': "month", 'Y': "year"}
	name, ok := names[u]
	if !ok {
		return unit
	}
	if n > 1 {
		name += "s"
	}
	return fmt.Sprintf("%d %s", n, name)
}

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"term": termLength,
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "starts when your account is activated"
		}
		return t.Format("2 January 2006")
	},
	"who": func(id marketplace.AADIdentifier) string {
		if id.EmailID != "" {
			return id.EmailID
		}
		if id.ObjectID != "" {
			return "user " + id.ObjectID
		}
		return "not given"
	},
}).ParseFS(templateFS, "templates/*.html"))

type pageData struct {
	Title     string
	View      View
	Token     string
	CSRF      string
	StatusURL string
	Message   string
	Refresh   bool
	// Settled stops the status page's polling.
	Settled bool
	// Buyer is who is signed in (nil when sign-in is off); render fills it in.
	Buyer *Buyer
	// Return is the page a "sign in with another account" comes back to.
	Return string
	// Hints name the accounts that may use the page, half hidden (a…@fabrikam.example).
	Hints []string
	// Action is the page's one button, a link.
	Action *action
	// Code is Entra's error code on a sign-in problem page, for support.
	Code string
}

// action is a page's button: a link to follow.
type action struct {
	Label string
	URL   string
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, data pageData) {
	if data.Buyer == nil && s.signIn != nil {
		data.Buyer = s.signIn.current(r)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", s.csp)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer") // the landing URL carries the purchase token
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		s.log.Error("render page", zap.String("page", name), zap.Error(err))
	}
}

// pageCSP allows the pages' own inline style and script, requests to this server only, and forms that lead
// here or, through a redirect, to Entra's sign-in and sign-out.
func pageCSP(si *signIn) string {
	formAction := "'self'"
	if si != nil {
		formAction += " " + si.authorityOrigin()
	}
	return "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
}

// landing is the page Microsoft sends the buyer to with ?token=…: resolve the token, make the subscription
// known to the engine, and show what was bought with a button to set the account up. A later "Manage
// account" visit of the same subscription shows its current state.
func (s *Server) landing(w http.ResponseWriter, r *http.Request, b *Buyer) {
	token := marketplace.PurchaseTokenFromQuery(r.URL.RawQuery)
	if token == "" {
		s.render(w, r, http.StatusBadRequest, "help.html", pageData{Title: "We could not find your purchase", Message: "The link you followed has no purchase token."})
		return
	}
	resolved, ok := s.resolve(w, r, token)
	if !ok {
		return
	}
	if b != nil && !b.mayManage(resolved.Subscription.Purchaser, resolved.Subscription.Beneficiary) {
		// Nothing is started for someone who may not confirm.
		s.wrongAccount(w, r, "/landing?token="+url.QueryEscape(token), resolved.Subscription.Purchaser, resolved.Subscription.Beneficiary)
		return
	}
	view, err := s.cfg.Subscriptions.Land(r.Context(), *resolved)
	if err != nil {
		s.log.Error("landing: record subscription", zap.String("subscriptionId", resolved.ID), zap.Error(err))
		s.render(w, r, http.StatusServiceUnavailable, "error.html", pageData{Title: "Please try again in a moment", Message: "We could not record your subscription just now. Nothing was lost: reload this page in a minute."})
		return
	}
	s.render(w, r, http.StatusOK, "landing.html", pageData{
		Title: "Set up your subscription", View: view, Token: token,
		CSRF: s.csrfToken(w, r, resolved.ID), StatusURL: s.statusURL(resolved.ID),
	})
}

// confirm is the landing page's button: the buyer asks to set the account up.
func (s *Server) confirm(w http.ResponseWriter, r *http.Request, b *Buyer) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusBadRequest, "help.html", pageData{Title: "We could not read that request", Message: "Please go back and press the button again."})
		return
	}
	subscriptionID := r.PostForm.Get("subscription")
	if !s.csrfValid(r, subscriptionID, r.PostForm.Get("csrf")) {
		s.render(w, r, http.StatusForbidden, "help.html", pageData{Title: "This confirmation has expired", Message: "For your security, please open the link from Microsoft again and confirm from there."})
		return
	}
	// The token is resolved again so that confirming needs the purchase token, not only the page.
	resolved, ok := s.resolve(w, r, r.PostForm.Get("token"))
	if !ok {
		return
	}
	if resolved.ID != subscriptionID {
		s.render(w, r, http.StatusBadRequest, "help.html", pageData{Title: "This confirmation does not match your purchase", Message: "Please open the link from Microsoft again."})
		return
	}
	if b != nil && !b.mayManage(resolved.Subscription.Purchaser, resolved.Subscription.Beneficiary) {
		s.wrongAccount(w, r, "/landing?token="+url.QueryEscape(r.PostForm.Get("token")), resolved.Subscription.Purchaser, resolved.Subscription.Beneficiary)
		return
	}
	if _, err := s.cfg.Subscriptions.Confirm(r.Context(), *resolved); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			s.render(w, r, http.StatusConflict, "error.html", pageData{Title: "Your subscription cannot be set up now", Message: ve.Message})
			return
		}
		s.log.Error("landing: confirm", zap.String("subscriptionId", resolved.ID), zap.Error(err))
		s.render(w, r, http.StatusServiceUnavailable, "error.html", pageData{Title: "Please try again in a moment", Message: "We could not record your confirmation just now. Go back and press the button again in a minute."})
		return
	}
	http.Redirect(w, r, s.statusURL(resolved.ID), http.StatusSeeOther)
}

// status follows the subscription until it is active, or shows what went wrong. Its URL is signed, so
// knowing a subscription ID is not enough to see its purchaser.
func (s *Server) status(w http.ResponseWriter, r *http.Request, b *Buyer) {
	id := mux.Vars(r)["id"]
	if !hmac.Equal([]byte(r.URL.Query().Get("sig")), []byte(s.statusSig(id))) {
		s.render(w, r, http.StatusNotFound, "help.html", pageData{Title: "We could not find that page", Message: "Open the link from Microsoft again to see your subscription."})
		return
	}
	view, err := s.cfg.Subscriptions.View(r.Context(), id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			s.render(w, r, http.StatusNotFound, "help.html", pageData{Title: "We could not find your subscription", Message: "Open the link from Microsoft again."})
			return
		}
		s.log.Error("status page", zap.String("subscriptionId", id), zap.Error(err))
		s.render(w, r, http.StatusServiceUnavailable, "error.html", pageData{Title: "Please try again in a moment", Message: "We could not read your subscription's state just now.", Refresh: true})
		return
	}
	if b != nil && !b.mayManage(view.Purchaser, view.Beneficiary) {
		if r.URL.Query().Get("format") == "json" {
			writeJSON(w, http.StatusForbidden, apiError{Error: errorBody{Code: "NotYours", Message: "the signed-in account is neither the purchaser nor the beneficiary"}})
			return
		}
		s.wrongAccount(w, r, r.URL.RequestURI(), view.Purchaser, view.Beneficiary)
		return
	}
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, http.StatusOK, statusJSON{Status: view.Status, Stage: view.Stage, Failed: view.Failed, Problem: view.Problem, Done: settled(view)})
		return
	}
	s.render(w, r, http.StatusOK, "status.html", pageData{Title: "Your subscription", View: view, StatusURL: s.statusURL(id), Settled: settled(view)})
}

// settled reports a state the status page stops following: nothing more happens without someone acting
// (Microsoft reinstating a suspended subscription, a person fixing a failed activation), so polling on
// would only load the engine.
func settled(v View) bool {
	if v.Failed {
		return true
	}
	switch marketplace.SubscriptionStatus(v.Status) {
	case marketplace.StatusSubscribed, marketplace.StatusSuspended, marketplace.StatusUnsubscribed:
		return true
	}
	return false
}

type statusJSON struct {
	Status  string `json:"status"`
	Stage   string `json:"stage"`
	Failed  bool   `json:"failed"`
	Problem string `json:"problem,omitempty"`
	Done    bool   `json:"done"`
}

// resolve resolves a token, rendering the right page when it cannot be.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request, token string) (*marketplace.ResolvedSubscription, bool) {
	resolved, err := s.cfg.Resolver.Resolve(r.Context(), token)
	if err == nil {
		return resolved, true
	}
	switch code := marketplace.StatusCode(err); {
	case code == http.StatusBadRequest || code == http.StatusNotFound:
		// Expired, garbled or unknown tokens: nothing is created, and the buyer learns how to get a fresh link.
		s.log.Info("landing: token not resolved", zap.Int("status", code))
		s.render(w, r, http.StatusBadRequest, "help.html", pageData{Title: "This link has expired", Message: "Purchase links are valid for a limited time."})
	default:
		s.log.Error("landing: resolve failed", zap.Error(err))
		s.render(w, r, http.StatusServiceUnavailable, "error.html", pageData{Title: "Please try again in a moment", Message: "We could not reach Microsoft to look up your purchase. Reload this page in a minute."})
	}
	return nil, false
}

func (s *Server) statusSig(id string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("status\x00" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) statusURL(id string) string {
	return "/landing/status/" + url.PathEscape(id) + "?sig=" + s.statusSig(id)
}

// wrongAccount tells a signed-in buyer who is neither the purchaser nor the beneficiary that this
// subscription is not theirs, with a hint of the accounts that may use it, and offers to sign in with
// another account (coming back to returnTo). Nothing is shown of the subscription.
func (s *Server) wrongAccount(w http.ResponseWriter, r *http.Request, returnTo string, purchaser, beneficiary marketplace.AADIdentifier) {
	var hints []string
	for _, id := range []marketplace.AADIdentifier{purchaser, beneficiary} {
		if h := maskEmail(id.EmailID); h != "" && !slices.Contains(hints, h) {
			hints = append(hints, h)
		}
	}
	s.render(w, r, http.StatusForbidden, "wrong_account.html", pageData{Title: "Sign in with the account that bought this subscription", Return: returnTo, Hints: hints})
}

// maskEmail keeps the first letter and the domain of an address: enough for buyers to recognise their
// account, not enough to learn someone else's.
func maskEmail(email string) string {
	local, domain, ok := strings.Cut(strings.TrimSpace(email), "@")
	if !ok || local == "" || domain == "" {
		return ""
	}
	r, _ := utf8.DecodeRuneInString(local)
	return string(r) + "…@" + domain
}
