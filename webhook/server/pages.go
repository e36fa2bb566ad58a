package server

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"go.uber.org/zap"

	"saasengine/marketplace"
)

// View is what the pages show of one subscription.
type View struct {
	SubscriptionID string
	Name           string
	OfferID        string
	PlanID         string
	Quantity       int64
	// Status is Microsoft's status; Stage the engine's phase. Internal names: the pages show standingOf.
	Status               string
	Stage                string
	Purchaser            marketplace.AADIdentifier
	Beneficiary          marketplace.AADIdentifier
	TermUnit             string
	TermStart, TermEnd   time.Time
	AutoRenew            bool
	FreeTrial            bool
	AwaitingConfirmation bool
	// Failed is set when activation failed and needs a person (the cause is in the workflow's state, for
	// operators; buyers are told what happens next).
	Failed bool
}

// presented is a View with what the buyer reads: the product's and the plan's names, the standing, where
// the product opens.
type presented struct {
	View
	Product  string
	PlanName string
	// FreeTrial: the plan starts with a free trial (the subscription says so, or the plan does).
	FreeTrial bool
	AppURL    string
	Standing  standing
	// StatusURL is the signed link to the subscription's status page (manage page).
	StatusURL string
}

// present completes a view with the brand's names and Microsoft's plan names.
func (s *Server) present(ctx context.Context, v View) presented {
	plan := s.plans.info(ctx, v.SubscriptionID, v.OfferID, v.PlanID)
	p := presented{
		View: v, Product: s.cfg.Brand.offerName(v.OfferID), PlanName: plan.Name,
		FreeTrial: v.FreeTrial || plan.FreeTrial, AppURL: s.cfg.Brand.appURL(v.OfferID),
	}
	p.Standing = standingOf(v, p.Product)
	return p
}

// Ready: the product can be opened.
func (p presented) Ready() bool { return p.Standing.Step == len(setupSteps) }

// Steps are the progress indicator's steps, with this subscription's place among them.
func (p presented) Steps() []progressStep {
	out := make([]progressStep, len(setupSteps))
	for i, name := range setupSteps {
		out[i] = progressStep{Name: name, Done: i+1 < p.Standing.Step || p.Ready(), Current: i+1 == p.Standing.Step}
	}
	return out
}

type progressStep struct {
	Name          string
	Done, Current bool
}

// OpenLabel is the label of the button that opens the product.
func (p presented) OpenLabel() string {
	if p.Product == "" {
		return "Open your application"
	}
	return "Open " + p.Product
}

// Renewal says what happens when the term ends; empty before activation.
func (p presented) Renewal() string {
	if p.TermEnd.IsZero() || p.Status == string(marketplace.StatusUnsubscribed) {
		return ""
	}
	if p.AutoRenew {
		return "Renews on " + p.TermEnd.AddDate(0, 0, 1).Format("2 January 2006")
	}
	return "Ends on " + p.TermEnd.Format("2 January 2006") + " (it does not renew)"
}

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
			return "starts when your account is ready"
		}
		return t.Format("2 January 2006")
	},
	"who": func(id marketplace.AADIdentifier) string {
		if id.EmailID != "" {
			return id.EmailID
		}
		return "an account without an e-mail address"
	},
	"same": func(a, b marketplace.AADIdentifier) bool { return a == b },
}).ParseFS(templateFS, "templates/*.html"))

type pageData struct {
	// SignOutCSRF guards the sign-out forms (csrfToken for signOutScope): another site cannot sign a
	// buyer out.
	SignOutCSRF string
	Title       string
	View        presented
	Token       string
	CSRF        string
	StatusURL   string
	Message     string
	Refresh     bool
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
	// Subscriptions are the manage page's.
	Subscriptions []presented
	// Brand and Theme are the vendor's; render fills them in.
	Brand Brand
	Theme template.CSS
	// Product names the header: the page's offer's product, else the brand's.
	Product string
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
	data.Brand, data.Theme = s.cfg.Brand, s.theme
	if data.Product == "" {
		data.Product = data.View.Product
	}
	if data.Product == "" {
		data.Product = s.cfg.Brand.ProductName
	}
	if data.Buyer != nil {
		data.SignOutCSRF = s.csrfToken(w, r, signOutScope)
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

// pageCSP allows the pages' own inline style and script, requests to this server only, the vendor's logo,
// and forms that lead here or, through a redirect, to Entra's sign-in and sign-out.
func pageCSP(si *signIn, b Brand) string {
	formAction := "'self'"
	if si != nil {
		formAction += " " + si.authorityOrigin()
	}
	img := "'self'"
	if o := b.logoOrigin(); o != "" {
		img += " " + o
	}
	return "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src " + img + "; form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
}
