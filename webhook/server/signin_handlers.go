package server

import (
	"errors"
	"net/http"
	"net/url"

	"go.uber.org/zap"
)

// buyerHandler serves a buyer's page; b is nil only when sign-in is off (SIGNIN_MODE=none).
type buyerHandler func(w http.ResponseWriter, r *http.Request, b *Buyer)

// withBuyer signs the buyer in before anything is shown: without a session, a page request goes to
// Entra and comes back to the same page; a form post comes back to its landing page; a script's request
// gets 401.
func (s *Server) withBuyer(next buyerHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.signIn == nil {
			next(w, r, nil)
			return
		}
		if b := s.signIn.current(r); b != nil {
			next(w, r, b)
			return
		}
		if r.URL.Query().Get("format") == "json" {
			writeJSON(w, http.StatusUnauthorized, apiError{Error: errorBody{Code: "SignInRequired", Message: "sign in again: reload the page"}})
			return
		}
		returnTo := r.URL.RequestURI()
		if r.Method != http.MethodGet {
			returnTo = "/landing/manage"
			r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
			if err := r.ParseForm(); err == nil && r.PostForm.Get("token") != "" {
				returnTo = "/landing?token=" + url.QueryEscape(r.PostForm.Get("token"))
			}
		}
		s.startSignIn(w, r, returnTo, false)
	}
}

func (s *Server) startSignIn(w http.ResponseWriter, r *http.Request, returnTo string, selectAccount bool) {
	if localReturn(returnTo) == "" {
		returnTo = "/landing/manage"
	}
	if err := s.signIn.start(r.Context(), w, r, returnTo, selectAccount); err != nil {
		s.log.Error("sign-in: Entra cannot be reached", zap.Error(err))
		s.render(w, r, http.StatusServiceUnavailable, "message.html", pageData{
			Title:   "We could not reach Microsoft to sign you in",
			Message: "Signing in goes through Microsoft, which did not answer just now. Nothing was lost: try again in a minute.",
			Action:  &action{Label: "Try again", URL: "/landing/login?return=" + url.QueryEscape(returnTo)},
		})
	}
}

// login starts a sign-in (the "Sign in again" links of the sign-in problem pages).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.signIn == nil {
		http.Redirect(w, r, "/landing/manage", http.StatusSeeOther)
		return
	}
	s.startSignIn(w, r, r.URL.Query().Get("return"), r.URL.Query().Get("switch") == "1")
}

// signInCallback is where Entra sends the buyer back, with a code or an error; with neither it is the
// way back from signing out.
func (s *Server) signInCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, ok := s.signIn.takePending(w, r, q.Get("state"))
	if !ok && q.Get("code") == "" && q.Get("error") == "" {
		if s.signIn.current(r) != nil {
			http.Redirect(w, r, "/landing/manage", http.StatusSeeOther)
			return
		}
		s.render(w, r, http.StatusOK, "message.html", pageData{
			Title:   "You are signed out",
			Message: "You signed out of this page and of your Microsoft account in this browser.",
			Action:  &action{Label: "Sign in again", URL: "/landing/login?return=" + url.QueryEscape("/landing/manage")},
		})
		return
	}
	if !ok {
		s.log.Info("sign-in: answer without a matching sign-in in this browser (state mismatch, replay or older than 10 minutes)")
		s.signInProblemPage(w, r, &signInProblem{Kind: problemMismatch, Err: errors.New("state")}, "/landing/manage")
		return
	}
	b, problem := s.signIn.finish(r.Context(), q, p)
	if problem != nil {
		if problem.Kind == problemUnavailable {
			s.log.Error("sign-in failed", zap.String("kind", problem.Kind), zap.Error(problem.Err))
		} else {
			s.log.Info("sign-in refused", zap.String("kind", problem.Kind), zap.Error(problem.Err))
		}
		s.signInProblemPage(w, r, problem, p.Return)
		return
	}
	if err := s.signIn.session.set(w, r, sessionCookie, b, false); err != nil {
		s.log.Error("sign-in: session cookie", zap.Error(err))
		s.render(w, r, http.StatusInternalServerError, "error.html", pageData{Title: "Please try again in a moment", Message: "We could not keep you signed in."})
		return
	}
	s.log.Info("buyer signed in", zap.String("tenant", b.TenantID), zap.String("objectId", b.ObjectID))
	http.Redirect(w, r, p.Return, http.StatusSeeOther)
}

// signInProblemPage tells the buyer why the sign-in did not complete and offers to sign in again.
func (s *Server) signInProblemPage(w http.ResponseWriter, r *http.Request, p *signInProblem, returnTo string) {
	again := &action{Label: "Sign in again", URL: "/landing/login?return=" + url.QueryEscape(returnTo)}
	d := pageData{Action: again, Code: p.Code}
	status := http.StatusBadRequest
	switch p.Kind {
	case problemCancelled:
		status = http.StatusOK
		d.Title = "Sign-in was cancelled"
		d.Message = "You need to sign in with your work or school account before you can set up or manage your subscription. Nothing was set up or changed."
		d.Action.Label = "Sign in"
	case problemMismatch:
		d.Title = "This sign-in did not start here"
		d.Message = "The answer from Microsoft does not belong to a sign-in started in this browser, or it came back more than 10 minutes later. For your security it was not used, and nothing was changed."
	case problemCodeUsed:
		d.Title = "This sign-in has already been used or has expired"
		d.Message = "Each answer from Microsoft can be used once, within a few minutes. This one was used before or is too old, so it was not accepted. Nothing was changed."
	case problemTenant:
		status = http.StatusForbidden
		d.Title = "This account's organisation is not accepted here"
		d.Message = "You signed in with an account that this page does not accept. Sign in with the work account of the organisation that bought the subscription. Nothing was changed."
		d.Action = &action{Label: "Sign in with another account", URL: "/landing/login?switch=1&return=" + url.QueryEscape(returnTo)}
	case problemInvalid:
		d.Title = "We could not verify your sign-in"
		d.Message = "The answer from Microsoft could not be verified, so it was not used. Nothing was changed."
	case problemDenied:
		d.Title = "Microsoft could not sign you in"
		d.Message = "Microsoft did not complete the sign-in. If this keeps happening, your organisation's administrator may need to allow this app. Nothing was changed."
	default:
		status = http.StatusServiceUnavailable
		d.Title = "We could not complete your sign-in"
		d.Message = "Signing in with Microsoft did not work just now. Nothing was lost: try again in a minute."
		d.Action.Label = "Try again"
	}
	s.render(w, r, status, "message.html", d)
}

// signOut ends the buyer's session here, then at Entra (which comes back to the callback, which then says
// so). With switch=1 it signs in again straight away, letting the buyer pick another account.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	_ = r.ParseForm()
	if !s.csrfValid(r, signOutScope, r.PostForm.Get("signout_csrf")) {
		// A form on another site: signing the buyer out (or into another account) is not its to do.
		s.render(w, r, http.StatusForbidden, "message.html", pageData{
			Title: "This sign-out did not come from this page", Message: "Nothing was changed. Use the Sign out button on the page itself.",
		})
		return
	}
	clearCookie(w, r, sessionCookie)
	if s.signIn == nil {
		http.Redirect(w, r, "/landing/manage", http.StatusSeeOther)
		return
	}
	if r.PostForm.Get("switch") == "1" {
		s.startSignIn(w, r, r.PostForm.Get("return"), true)
		return
	}
	if u := s.signIn.logoutURL(r.Context()); u != "" {
		http.Redirect(w, r, u, http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "message.html", pageData{
		Title: "You are signed out", Message: "You signed out of this page.",
		Action: &action{Label: "Sign in again", URL: "/landing/login?return=" + url.QueryEscape("/landing/manage")},
	})
}
