package server

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// BuyerSubscriptions lists the subscriptions bought for an organisation, for the buyers' manage page.
// Temporal implements it; with a Subscriptions that does not, the page says it cannot list them.
type BuyerSubscriptions interface {
	OfTenant(ctx context.Context, tenantID string) (TenantSubscriptions, error)
}

// TenantSubscriptions are an organisation's subscriptions, newest first; Unreadable counts those whose
// state could not be read just now.
type TenantSubscriptions struct {
	Views      []View
	Unreadable int
}

// manageLimit bounds how many of an organisation's subscriptions the page reads.
const manageLimit = 50

// manage shows the signed-in buyer the subscriptions of their organisation that they bought or use, with
// where each stands, and where Microsoft lets them change plans, seats and billing.
func (s *Server) manage(w http.ResponseWriter, r *http.Request, b *Buyer) {
	bs, ok := s.cfg.Subscriptions.(BuyerSubscriptions)
	if b == nil || !ok {
		s.render(w, r, http.StatusNotFound, "message.html", pageData{Title: "This page is not available",
			Message: "Your subscriptions can be listed only for a signed-in account. Open your subscription from the Azure portal or the Microsoft 365 admin center instead."})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	res, err := bs.OfTenant(ctx, b.TenantID)
	if err != nil {
		s.log.Error("manage page: listing the organisation's subscriptions", zap.String("tenant", b.TenantID), zap.Error(err))
		s.render(w, r, http.StatusServiceUnavailable, "error.html", pageData{Title: "Please try again in a moment", Message: "We could not read your subscriptions just now. This page reloads by itself.", Refresh: true})
		return
	}
	var mine []presented
	for _, v := range res.Views {
		if !b.mayManage(v.Purchaser, v.Beneficiary) {
			continue
		}
		p := s.present(ctx, v)
		p.StatusURL = s.statusURL(v.SubscriptionID)
		mine = append(mine, p)
	}
	d := pageData{Title: "Your subscriptions", Subscriptions: mine, Return: "/landing/manage"}
	if res.Unreadable > 0 {
		d.Message = "Some subscriptions could not be read just now: reload this page in a minute to see them all."
	}
	s.render(w, r, http.StatusOK, "manage.html", d)
}
