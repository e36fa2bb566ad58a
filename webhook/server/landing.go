package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// Resolver turns a purchase token into its subscription (marketplace.Client in production).
type Resolver interface {
	Resolve(ctx context.Context, purchaseToken string) (*marketplace.ResolvedSubscription, error)
}

// landing is the page Microsoft sends the buyer to with ?token=…: resolve the token, make the subscription
// known to the engine, and show what was bought with a button to set the account up. A later "Manage
// account" visit of the same subscription shows its current state.
func (s *Server) landing(w http.ResponseWriter, r *http.Request, b *Buyer) {
	token := marketplace.PurchaseTokenFromQuery(r.URL.RawQuery)
	if token == "" {
		s.render(w, r, http.StatusBadRequest, "help.html", pageData{Title: "This link is not valid", Message: "The link you followed does not say which purchase it is for: part of it may have been lost when it was copied."})
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
	p := s.present(r.Context(), view)
	title := "Your subscription"
	if p.AwaitingConfirmation {
		title = "Set up your subscription"
	}
	s.render(w, r, http.StatusOK, "landing.html", pageData{
		Title: title, View: p, Token: token,
		CSRF: s.csrfToken(w, r, resolved.ID), StatusURL: s.statusURL(resolved.ID), Settled: settled(view),
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
		var ve *subscription.CommandError
		if errors.As(err, &ve) {
			// The workflow's reason is for operators; the buyer learns where the subscription stands.
			s.log.Info("landing: confirmation refused", zap.String("subscriptionId", resolved.ID), zap.String("code", ve.Code))
			s.render(w, r, http.StatusConflict, "message.html", pageData{
				Title:   "Your subscription cannot be set up now",
				Message: "It may already be set up, or have been cancelled. Nothing was changed.",
				Action:  &action{Label: "See where it stands", URL: s.statusURL(resolved.ID)},
			})
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
		if errors.Is(err, subscription.ErrNotFound) {
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
		st := standingOf(view, s.cfg.Brand.offerName(view.OfferID))
		writeJSON(w, http.StatusOK, statusJSON{Status: view.Status, Stage: view.Stage, Failed: view.Failed, Label: st.Label, Message: st.Message, Step: st.Step, Done: settled(view)})
		return
	}
	s.render(w, r, http.StatusOK, "status.html", pageData{Title: "Your subscription", View: s.present(r.Context(), view), StatusURL: s.statusURL(id), Settled: settled(view)})
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

// statusJSON is the status page's poll (and scripts'): status and stage are the internal names, for
// scripts; label, message and step are what the page shows.
type statusJSON struct {
	Status  string `json:"status"`
	Stage   string `json:"stage"`
	Failed  bool   `json:"failed"`
	Label   string `json:"label"`
	Message string `json:"message"`
	Step    int    `json:"step"`
	Done    bool   `json:"done"`
}

// resolve resolves a token, rendering the right page when it cannot be. An expired link and one that is not
// valid (garbled, cut, made up) are told apart when Microsoft's answer says which, since each is fixed in its
// own way; nothing is created either way.
func (s *Server) resolve(w http.ResponseWriter, r *http.Request, token string) (*marketplace.ResolvedSubscription, bool) {
	resolved, err := s.cfg.Resolver.Resolve(r.Context(), token)
	if err == nil {
		return resolved, true
	}
	var me *marketplace.Error
	errors.As(err, &me)
	switch code := marketplace.StatusCode(err); {
	case code == http.StatusBadRequest && me != nil && strings.Contains(strings.ToLower(me.Message), "expired"):
		s.log.Info("landing: token not resolved: expired", zap.Int("status", code))
		s.render(w, r, http.StatusBadRequest, "help.html", pageData{Title: "This link has expired",
			Message: "Links from Microsoft to this page work for 24 hours, and this one is older. Nothing is lost: get a fresh link as below and you will carry on where you left off."})
	case code == http.StatusBadRequest || code == http.StatusNotFound:
		s.log.Info("landing: token not resolved: not valid", zap.Int("status", code))
		s.render(w, r, http.StatusBadRequest, "help.html", pageData{Title: "This link is not valid",
			Message: "Microsoft does not recognise this link: part of it may have been lost or changed when it was copied. Open it again from Microsoft rather than copying it."})
	case code == http.StatusForbidden:
		// Microsoft gives the same 403 for a token of another publisher's offer and for our own credentials
		// being refused: operators learn both, the buyer the likely one.
		s.log.Warn("landing: Microsoft refused to resolve the token (403): a purchase of another publisher's offer, or the Marketplace credentials are wrong", zap.Int("status", code))
		product := s.cfg.Brand.ProductName
		if product == "" {
			product = "this product"
		}
		s.render(w, r, http.StatusBadRequest, "help.html", pageData{Title: "This link is for another product",
			Message: "The link you followed was made for a subscription to another company's product, not " + product + ". Nothing was set up. Open the subscription you meant to set up, and use its own Configure account button."})
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
