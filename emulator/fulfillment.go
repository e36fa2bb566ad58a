package emulator

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"saasengine/marketplace"
)

const forbiddenSubscription = "This request is attempting to access a SaaS subscription for an offer that was published with a different Azure AD App ID from the one used to create the authorization token."

// subscriptionLocked finds a subscription of the calling publisher, writing Microsoft's error if there is
// none.
func (e *Emulator) subscriptionLocked(w http.ResponseWriter, pub *Publisher, id string) *subscription {
	s := e.st.Subscriptions[strings.ToLower(id)]
	if s == nil {
		apiError(w, http.StatusNotFound, "EntityNotFound", fmt.Sprintf("Subscription %s was not found.", id))
		return nil
	}
	if s.Publisher != pub.ID {
		apiError(w, http.StatusForbidden, "Forbidden", forbiddenSubscription)
		return nil
	}
	return s
}

func (e *Emulator) resolve(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	token := r.Header.Get("x-ms-marketplace-token")
	if token == "" {
		apiError(w, http.StatusBadRequest, "BadArgument", "The x-ms-marketplace-token header is required.")
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.st.Tokens[token]
	if g == nil {
		// Microsoft's own words when a token was garbled (typically by URL decoding '+' into ' ').
		apiError(w, http.StatusBadRequest, "InvalidValue", "Failed to decrypt token with either primary or secondary secret.")
		return
	}
	if !e.now().Before(g.Expires) {
		apiError(w, http.StatusBadRequest, "InvalidValue", "The marketplace token has expired. Open the subscription in the Azure portal or Microsoft 365 admin center and select Configure account again.")
		return
	}
	s := e.st.Subscriptions[g.SubscriptionID]
	if s == nil {
		apiError(w, http.StatusNotFound, "EntityNotFound", "The subscription of this token was not found.")
		return
	}
	if s.Publisher != pub.ID {
		apiError(w, http.StatusForbidden, "Forbidden", forbiddenSubscription)
		return
	}
	writeJSON(w, http.StatusOK, marketplace.ResolvedSubscription{
		ID:               s.Sub.ID,
		SubscriptionName: s.Sub.Name,
		OfferID:          s.Sub.OfferID,
		PlanID:           s.Sub.PlanID,
		Quantity:         s.Sub.Quantity,
		Subscription:     s.Sub,
	})
}

func (e *Emulator) activate(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	var body marketplace.SubscriberPlan
	if err := decodeBody(r, &body); err != nil {
		apiError(w, http.StatusBadRequest, "BadArgument", "The request body is not valid JSON: "+err.Error())
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.subscriptionLocked(w, pub, mux.Vars(r)["subscriptionId"])
	if s == nil {
		return
	}
	switch s.Sub.Status {
	case marketplace.StatusUnsubscribed:
		apiError(w, http.StatusNotFound, "EntityNotFound", "The subscription is unsubscribed.")
		return
	case marketplace.StatusSuspended:
		apiError(w, http.StatusBadRequest, "BadArgument", "The subscription is suspended and cannot be activated.")
		return
	case marketplace.StatusSubscribed:
		apiError(w, http.StatusBadRequest, "BadArgument", "The subscription is already activated.")
		return
	}
	// Microsoft's current documentation shows no body and the real API does not check the plan (API.md
	// §3.2), so an empty body or another planId activates the purchased plan; the mismatch is only logged.
	if body.PlanID != "" && body.PlanID != s.Sub.PlanID {
		e.log.Info("emulator: activate names another plan than the purchased one; Microsoft ignores it",
			zap.String("subscriptionId", s.Sub.ID), zap.String("planId", body.PlanID), zap.String("purchased", s.Sub.PlanID))
	}
	pl := e.plan(s.Sub.OfferID, s.Sub.PlanID)
	if pl == nil {
		internalError(w, fmt.Sprintf("plan %q of offer %q is not configured", s.Sub.PlanID, s.Sub.OfferID))
		return
	}
	now := e.now()
	s.Sub.Status = marketplace.StatusSubscribed
	s.Sub.Term.StartDate = marketplace.NewTime(day(now))
	s.Sub.Term.EndDate = marketplace.NewTime(termEnd(day(now), pl.termUnit()))
	s.ActivatedAt = now
	e.changedLocked()
	w.WriteHeader(http.StatusOK)
}

// continuation is what a List continuationToken stands for. Microsoft's token is an opaque blob with
// URL-unsafe characters; this one is too, so clients that mangle it fail here as they would there.
type continuation struct {
	After int64 `json:"after"`
}

func (e *Emulator) listSubscriptions(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	after := int64(0)
	if tok := r.URL.Query().Get("continuationToken"); tok != "" {
		var c continuation
		b, err := base64.StdEncoding.DecodeString(tok)
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err != nil {
			apiError(w, http.StatusBadRequest, "BadArgument", "The continuation token is invalid.")
			return
		}
		after = c.After
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var mine []*subscription
	for _, s := range e.st.Subscriptions {
		if s.Publisher == pub.ID && s.Seq > after {
			mine = append(mine, s)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Seq < mine[j].Seq })
	page := marketplace.SubscriptionsPage{Subscriptions: []marketplace.Subscription{}}
	now := e.now()
	for i, s := range mine {
		if i == e.cfg.PageSize {
			b, _ := json.Marshal(continuation{After: mine[i-1].Seq})
			q := url.Values{"continuationToken": {base64.StdEncoding.EncodeToString(b)}, "api-version": {marketplace.APIVersion}}
			page.NextLink = e.baseLocked() + "/api/saas/subscriptions/?" + q.Encode()
			break
		}
		page.Subscriptions = append(page.Subscriptions, s.read(now))
	}
	writeJSON(w, http.StatusOK, page)
}

func (e *Emulator) getSubscription(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.subscriptionLocked(w, pub, mux.Vars(r)["subscriptionId"]); s != nil {
		writeJSON(w, http.StatusOK, s.read(e.now()))
	}
}

func (e *Emulator) listAvailablePlans(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.subscriptionLocked(w, pub, mux.Vars(r)["subscriptionId"])
	if s == nil {
		return
	}
	if s.Sub.Status == marketplace.StatusUnsubscribed {
		apiError(w, http.StatusForbidden, "Forbidden", "The subscription is unsubscribed.")
		return
	}
	filter := r.URL.Query().Get("planId")
	out := marketplace.Plans{Plans: []marketplace.Plan{}}
	_, offer := e.offer(s.Sub.OfferID)
	if offer == nil {
		internalError(w, fmt.Sprintf("offer %q is not configured", s.Sub.OfferID))
		return
	}
	for _, pl := range offer.Plans {
		if !pl.visibleTo(s.Sub.Beneficiary.TenantID) || (filter != "" && pl.ID != filter) {
			continue
		}
		p := pl.apiPlan()
		if filter != "" && pl.ID == s.Sub.PlanID && s.PrivateOfferID != "" {
			p.SourceOffers = []marketplace.SourceOffer{{ExternalID: s.PrivateOfferID}}
		}
		out.Plans = append(out.Plans, p)
	}
	writeJSON(w, http.StatusOK, out)
}

// changeError is a refused plan or quantity change, with the status Microsoft answers it with.
type changeError struct {
	status  int
	code    string
	message string
}

func (c *changeError) Error() string { return c.message }

// checkChangeLocked applies Microsoft's rules for a plan or quantity change, whoever asks for it.
func (e *Emulator) checkChangeLocked(s *subscription, body marketplace.SubscriberPlan) *changeError {
	bad := func(msg string) *changeError { return &changeError{http.StatusBadRequest, "BadArgument", msg} }
	switch {
	case body.PlanID != "" && body.Quantity != 0:
		return bad("Plan and quantity cannot be changed in the same request.")
	case body.PlanID == "" && body.Quantity == 0:
		return bad("Either planId or quantity is required.")
	case s.Sub.Status != marketplace.StatusSubscribed:
		return bad(fmt.Sprintf("The subscription is %s; only Subscribed subscriptions can be updated.", s.Sub.Status))
	case !s.Sub.Allows("Update"):
		return bad("Update is not an allowed operation for this subscription.")
	case e.st.outstanding(s.Sub.ID) != nil:
		return bad("Patch cannot be completed because the subscription is locked due to pending operations.")
	}
	if body.PlanID != "" {
		if body.PlanID == s.Sub.PlanID {
			return bad("The subscription already has plan " + body.PlanID + ".")
		}
		pl := e.plan(s.Sub.OfferID, body.PlanID)
		if pl == nil || !pl.visibleTo(s.Sub.Beneficiary.TenantID) || pl.IsStopSell {
			return bad(fmt.Sprintf("Plan %q is not available for this subscription.", body.PlanID))
		}
		return nil
	}
	pl := e.plan(s.Sub.OfferID, s.Sub.PlanID)
	q := int64(body.Quantity)
	switch {
	case pl == nil:
		return &changeError{http.StatusInternalServerError, "InternalServerError", fmt.Sprintf("The subscription's plan %q is not configured.", s.Sub.PlanID)}
	case !pl.IsPricePerSeat:
		return bad(fmt.Sprintf("Plan %q is not priced per seat; its quantity cannot change.", pl.ID))
	case q == int64(s.Sub.Quantity):
		return bad(fmt.Sprintf("The subscription already has quantity %d.", q))
	case q < pl.MinQuantity || q > pl.MaxQuantity:
		return bad(fmt.Sprintf("Quantity %d is outside the plan's range %d to %d.", q, pl.MinQuantity, pl.MaxQuantity))
	}
	return nil
}

func (e *Emulator) updateSubscription(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	var body marketplace.SubscriberPlan
	if err := decodeBody(r, &body); err != nil {
		apiError(w, http.StatusBadRequest, "BadArgument", "The request body is not valid: "+err.Error())
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.subscriptionLocked(w, pub, mux.Vars(r)["subscriptionId"])
	if s == nil {
		return
	}
	if err := e.checkChangeLocked(s, body); err != nil {
		apiError(w, err.status, err.code, err.message)
		return
	}
	action := marketplace.ActionChangePlan
	if body.Quantity != 0 {
		action = marketplace.ActionChangeQuantity
	}
	op := e.newOperationLocked(s, action, marketplace.SourcePartner, body.PlanID, body.Quantity)
	op.CompleteAt = e.now().Add(e.cfg.OperationDelay.D())
	op.Outcome = e.takeOutcomeLocked(string(action))
	e.changedLocked()
	w.Header().Set("Operation-Location", e.operationURLLocked(s.Sub.ID, op.Op.ID))
	w.WriteHeader(http.StatusAccepted)
}

func (e *Emulator) deleteSubscription(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.subscriptionLocked(w, pub, mux.Vars(r)["subscriptionId"])
	if s == nil {
		return
	}
	switch {
	case s.Sub.Status == marketplace.StatusUnsubscribed:
		apiError(w, http.StatusNotFound, "EntityNotFound", "The subscription is already unsubscribed.")
		return
	case !s.Sub.Allows("Delete"):
		apiError(w, http.StatusBadRequest, "BadArgument", "Delete is not an allowed operation for this subscription.")
		return
	case e.st.outstanding(s.Sub.ID) != nil:
		apiError(w, http.StatusConflict, "Conflict", "Delete cannot be completed because subscription is locked due to pending operation(s).")
		return
	}
	op := e.newOperationLocked(s, marketplace.ActionUnsubscribe, marketplace.SourcePartner, "", 0)
	op.CompleteAt = e.now().Add(e.cfg.OperationDelay.D())
	op.Outcome = e.takeOutcomeLocked(string(marketplace.ActionUnsubscribe))
	e.changedLocked()
	w.Header().Set("Operation-Location", e.operationURLLocked(s.Sub.ID, op.Op.ID))
	w.WriteHeader(http.StatusAccepted)
}

func (e *Emulator) operationURLLocked(subID, opID string) string {
	return fmt.Sprintf("%s/api/saas/subscriptions/%s/operations/%s?api-version=%s", e.baseLocked(), subID, opID, marketplace.APIVersion)
}

// newOperationLocked records an operation on s. Plan and quantity are the target ones, defaulting to the
// subscription's current values as Microsoft's operations show them.
func (e *Emulator) newOperationLocked(s *subscription, action marketplace.Action, source, planID string, quantity marketplace.Quantity) *operation {
	if planID == "" {
		planID = s.Sub.PlanID
	}
	if quantity == 0 {
		quantity = s.Sub.Quantity
	}
	op := &operation{Op: marketplace.Operation{
		ID:                     uuid.NewString(),
		ActivityID:             uuid.NewString(),
		SubscriptionID:         s.Sub.ID,
		OfferID:                s.Sub.OfferID,
		PublisherID:            s.Sub.PublisherID,
		PlanID:                 planID,
		Quantity:               quantity,
		Action:                 action,
		TimeStamp:              marketplace.NewTime(e.now()),
		Status:                 marketplace.OperationInProgress,
		OperationRequestSource: source,
	}}
	e.st.Operations[op.Op.ID] = op
	return op
}

func (e *Emulator) listOperations(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.subscriptionLocked(w, pub, mux.Vars(r)["subscriptionId"])
	if s == nil {
		return
	}
	out := marketplace.OperationList{Operations: []marketplace.Operation{}}
	for _, op := range e.st.Operations {
		// Outstanding means: waiting for the publisher. Partner-initiated operations complete on their own.
		if op.Op.SubscriptionID == s.Sub.ID && op.Op.Status == marketplace.OperationInProgress && op.Op.OperationRequestSource == marketplace.SourceAzure {
			out.Operations = append(out.Operations, op.Op)
		}
	}
	sort.Slice(out.Operations, func(i, j int) bool { return out.Operations[i].TimeStamp.Before(out.Operations[j].TimeStamp.Time) })
	writeJSON(w, http.StatusOK, out)
}

func (e *Emulator) operationLocked(w http.ResponseWriter, r *http.Request, pub *Publisher) (*subscription, *operation) {
	s := e.subscriptionLocked(w, pub, mux.Vars(r)["subscriptionId"])
	if s == nil {
		return nil, nil
	}
	id := mux.Vars(r)["operationId"]
	op := e.st.Operations[strings.ToLower(id)]
	if op == nil || op.Op.SubscriptionID != s.Sub.ID {
		apiError(w, http.StatusNotFound, "EntityNotFound", fmt.Sprintf("Operation %s was not found for subscription %s.", id, s.Sub.ID))
		return nil, nil
	}
	return s, op
}

func (e *Emulator) getOperation(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, op := e.operationLocked(w, r, pub); op != nil {
		writeJSON(w, http.StatusOK, op.Op)
	}
}

func (e *Emulator) updateOperation(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	var body marketplace.OperationUpdate
	if err := decodeBody(r, &body); err != nil {
		apiError(w, http.StatusBadRequest, "BadArgument", "The request body is not valid: "+err.Error())
		return
	}
	if body.Status != marketplace.UpdateSuccess && body.Status != marketplace.UpdateFailure {
		apiError(w, http.StatusBadRequest, "BadArgument", `status must be "Success" or "Failure".`)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	s, op := e.operationLocked(w, r, pub)
	if op == nil {
		return
	}
	if op.PatchedAt.IsZero() {
		op.PatchedAt = time.Now().UTC()
	}
	if !op.Answered && e.awaitingAnswerLocked(op.Op.ID) {
		// Microsoft expects no PATCH before the webhook's response has been sent (its own emulator
		// flags it); the PATCH is applied all the same, and the breach is kept for tests to see.
		e.st.PatchesBeforeAnswer = append(e.st.PatchesBeforeAnswer, op.Op.ID)
		e.log.Warn("emulator: PATCH of an operation before the response to its webhook", zap.String("operationId", op.Op.ID))
	}
	switch {
	case op.Op.Status != marketplace.OperationInProgress:
		apiError(w, http.StatusConflict, "Conflict", fmt.Sprintf("The operation is already %s.", op.Op.Status))
		return
	case op.Op.OperationRequestSource == marketplace.SourcePartner:
		apiError(w, http.StatusBadRequest, "BadArgument", "Operations the publisher started cannot be acknowledged.")
		return
	case op.Op.Action != marketplace.ActionChangePlan && op.Op.Action != marketplace.ActionChangeQuantity && op.Op.Action != marketplace.ActionReinstate:
		apiError(w, http.StatusBadRequest, "BadArgument", fmt.Sprintf("%s operations do not take an acknowledgement.", op.Op.Action))
		return
	}
	if body.Status == marketplace.UpdateSuccess {
		e.succeedLocked(s, op)
	} else {
		e.failLocked(op, "400", "The publisher rejected the operation.")
	}
	e.changedLocked()
	w.WriteHeader(http.StatusOK)
}

// succeedLocked applies an operation to its subscription and marks it Succeeded. Get operation shows
// Succeeded at once; Get and List subscription show the change only after the read lag.
func (e *Emulator) succeedLocked(s *subscription, op *operation) {
	now := e.now()
	before := s.Sub
	op.Op.Status = marketplace.OperationSucceeded
	op.AcceptAt, op.CompleteAt = timeZero, timeZero
	switch op.Op.Action {
	case marketplace.ActionChangePlan:
		s.Sub.PlanID = op.Op.PlanID
		pl := e.plan(s.Sub.OfferID, op.Op.PlanID)
		if pl != nil && !pl.IsPricePerSeat {
			s.Sub.Quantity = 0
		} else if pl != nil && int64(s.Sub.Quantity) < pl.MinQuantity {
			s.Sub.Quantity = marketplace.Quantity(pl.MinQuantity)
		}
		if pl != nil && !pl.HasFreeTrials {
			// Moving to a plan without a trial ends the trial at once.
			s.Sub.IsFreeTrial = false
		}
	case marketplace.ActionChangeQuantity:
		s.Sub.Quantity = op.Op.Quantity
	case marketplace.ActionReinstate:
		s.Sub.Status = marketplace.StatusSubscribed
	case marketplace.ActionUnsubscribe:
		s.Sub.Status = marketplace.StatusUnsubscribed
		s.UnsubscribedAt = now
	}
	s.lag(before, now, e.cfg.readLag())
}

func (e *Emulator) failLocked(op *operation, code, message string) {
	op.Op.Status = marketplace.OperationFailed
	op.Op.ErrorStatusCode = code
	op.Op.ErrorMessage = message
	op.AcceptAt, op.CompleteAt = timeZero, timeZero
}

// advanceOperationsLocked finishes publisher-initiated operations whose delay is over and auto-accepts
// customer changes whose window passed, announcing each with a webhook as Microsoft does.
func (e *Emulator) advanceOperationsLocked() {
	now := e.now()
	changed := false
	for _, op := range e.st.Operations {
		if op.Op.Status != marketplace.OperationInProgress {
			continue
		}
		s := e.st.Subscriptions[op.Op.SubscriptionID]
		switch {
		case s == nil:
			// New refuses such a state; should one arise anyway, end the operation rather than apply it to nothing.
			changed = true
			e.failLocked(op, "500", "The subscription of this operation no longer exists.")
		case !op.CompleteAt.IsZero() && !now.Before(op.CompleteAt):
			changed = true
			switch op.Outcome {
			case marketplace.OperationFailed:
				e.failLocked(op, "500", "The operation failed on Microsoft's side (injected).")
				continue
			case marketplace.OperationConflict:
				op.Op.Status = marketplace.OperationConflict
				op.CompleteAt = timeZero
				continue
			}
			e.succeedLocked(s, op)
			e.enqueueWebhookLocked(s, op)
		case !op.AcceptAt.IsZero() && !now.Before(op.AcceptAt):
			changed = true
			e.succeedLocked(s, op)
		}
	}
	if changed {
		if err := e.saveLocked(); err != nil {
			e.log.Sugar().Errorf("saving emulator state: %v", err)
		}
	}
}
