package emulator

import (
	"embed"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"saasengine/marketplace"
)

//go:embed templates/*.html
var pageFS embed.FS

var pageTemplates = template.Must(template.ParseFS(pageFS, "templates/*.html"))

// pageRoutes serve a small storefront: buy a plan (which sends the browser to the publisher's landing
// page, as Microsoft's "Configure account now" does) and act as the customer or Microsoft on existing
// subscriptions. Every action is also in the control API.
func (e *Emulator) pageRoutes(r *mux.Router) {
	r.HandleFunc("/", e.storefront).Methods(http.MethodGet)
	r.HandleFunc("/ui/purchase", e.uiPurchase).Methods(http.MethodPost)
	r.HandleFunc("/ui/subscriptions/{id}/{action}", e.uiAction).Methods(http.MethodPost)
}

type storeOffer struct {
	Publisher string
	Offer     Offer
}

func (e *Emulator) storefront(w http.ResponseWriter, r *http.Request) {
	var offers []storeOffer
	for _, p := range e.cfg.Publishers {
		for _, o := range p.Offers {
			offers = append(offers, storeOffer{Publisher: p.ID, Offer: o})
		}
	}
	snap := e.State()
	// Newest first: the buyer just made the last one.
	subs := make([]marketplace.Subscription, 0, len(snap.Subscriptions))
	for i := len(snap.Subscriptions) - 1; i >= 0 && len(subs) < 200; i-- {
		subs = append(subs, snap.Subscriptions[i])
	}
	plans := map[string][]Plan{}
	for _, o := range offers {
		plans[o.Offer.ID] = o.Offer.Plans
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:")
	_ = pageTemplates.ExecuteTemplate(w, "storefront.html", map[string]any{
		"Offers":        offers,
		"Plans":         plans,
		"Subscriptions": subs,
		"Message":       r.URL.Query().Get("msg"),
		"Error":         r.URL.Query().Get("err"),
		"Now":           snap.Now,
	})
}

func back(w http.ResponseWriter, r *http.Request, key, msg string) {
	http.Redirect(w, r, "/?"+url.Values{key: {msg}}.Encode(), http.StatusSeeOther)
}

func (e *Emulator) uiPurchase(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		back(w, r, "err", "invalid form")
		return
	}
	offerID, planID, _ := strings.Cut(r.PostForm.Get("plan"), "/")
	qty, _ := strconv.ParseInt(r.PostForm.Get("quantity"), 10, 64)
	req := PurchaseRequest{OfferID: offerID, PlanID: planID, Quantity: qty, Name: r.PostForm.Get("name")}
	switch r.PostForm.Get("buyer") {
	case "purchaser":
		ada := DemoBuyer(BuyerPurchaser).Identity()
		req.Beneficiary = &ada
	case "csp":
		pat, kim := DemoBuyer(BuyerCSPPartner).Identity(), DemoBuyer(BuyerCSPBeneficiary).Identity()
		req.Purchaser, req.Beneficiary = &pat, &kim
	default:
		if email := strings.TrimSpace(r.PostForm.Get("email")); email != "" {
			req.Beneficiary = &marketplace.AADIdentifier{EmailID: email}
		}
	}
	if pl := e.plan(offerID, planID); pl != nil && !pl.IsPricePerSeat {
		req.Quantity = 0
	}
	p, err := e.Purchase(req)
	if err != nil {
		back(w, r, "err", err.Error())
		return
	}
	if p.LandingURL == "" {
		back(w, r, "msg", "Purchased "+p.SubscriptionID+"; no landing page is configured. Token: "+p.Token)
		return
	}
	http.Redirect(w, r, p.LandingURL, http.StatusSeeOther)
}

func (e *Emulator) uiAction(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		back(w, r, "err", "invalid form")
		return
	}
	id, action := mux.Vars(r)["id"], mux.Vars(r)["action"]
	var err error
	switch action {
	case "configure":
		p, err := e.NewToken(id, 0)
		if err == nil && p.LandingURL != "" {
			http.Redirect(w, r, p.LandingURL, http.StatusSeeOther)
			return
		}
		if err == nil {
			err = errNoLanding
		}
		back(w, r, "err", err.Error())
		return
	case "change-plan":
		_, err = e.CustomerChangePlan(id, r.PostForm.Get("planId"))
	case "change-quantity":
		q, _ := strconv.ParseInt(r.PostForm.Get("quantity"), 10, 64)
		_, err = e.CustomerChangeQuantity(id, q)
	case "suspend":
		_, err = e.Suspend(id)
	case "reinstate":
		_, err = e.Reinstate(id)
	case "renew":
		_, err = e.Renew(id)
	case "unsubscribe":
		_, err = e.Unsubscribe(id)
	default:
		back(w, r, "err", "unknown action "+action)
		return
	}
	if err != nil {
		back(w, r, "err", err.Error())
		return
	}
	back(w, r, "msg", action+" sent for "+id)
}

type constError string

func (c constError) Error() string { return string(c) }

const errNoLanding = constError("no landing page URL is configured for this publisher")
