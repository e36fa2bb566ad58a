package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"saasengine/marketplace"
)

// ErrNotFound is returned by control methods for an unknown subscription.
var ErrNotFound = errors.New("emulator: no such subscription")

// PurchaseRequest is a customer buying a plan.
type PurchaseRequest struct {
	OfferID  string `json:"offerId"`
	PlanID   string `json:"planId"`
	Quantity int64  `json:"quantity,omitempty"`
	Name     string `json:"name,omitempty"`
	// Beneficiary and Purchaser default to a generated buyer in a generated tenant; they differ for a
	// CSP purchase.
	Beneficiary *marketplace.AADIdentifier `json:"beneficiary,omitempty"`
	Purchaser   *marketplace.AADIdentifier `json:"purchaser,omitempty"`
	IsTest      bool                       `json:"isTest,omitempty"`
	// AutoRenew defaults to true.
	AutoRenew                 *bool    `json:"autoRenew,omitempty"`
	PrivateOfferID            string   `json:"privateOfferId,omitempty"`
	AllowedCustomerOperations []string `json:"allowedCustomerOperations,omitempty"`
	SandboxType               string   `json:"sandboxType,omitempty"`
	// Status seeds an existing subscription in that status (Subscribed, Suspended, Unsubscribed) as if
	// it had lived before the engine met it; empty is a fresh purchase awaiting activation.
	Status marketplace.SubscriptionStatus `json:"status,omitempty"`
}

// Purchase is the result of a purchase: where Microsoft sends the buyer.
type Purchase struct {
	SubscriptionID string                   `json:"subscriptionId"`
	Token          string                   `json:"token"`
	LandingURL     string                   `json:"landingUrl"`
	Subscription   marketplace.Subscription `json:"subscription"`
}

// Purchase creates a subscription and its purchase token.
func (e *Emulator) Purchase(req PurchaseRequest) (Purchase, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, err := e.purchaseLocked(req)
	if err == nil {
		e.changedLocked()
	}
	return p, err
}

func (e *Emulator) purchaseLocked(req PurchaseRequest) (Purchase, error) {
	pub, offer := e.offer(req.OfferID)
	if offer == nil {
		return Purchase{}, fmt.Errorf("unknown offer %q", req.OfferID)
	}
	pl := e.plan(req.OfferID, req.PlanID)
	if pl == nil {
		return Purchase{}, fmt.Errorf("offer %q has no plan %q", req.OfferID, req.PlanID)
	}
	if pl.IsPricePerSeat {
		if req.Quantity == 0 {
			req.Quantity = pl.MinQuantity
		}
		if req.Quantity < pl.MinQuantity || req.Quantity > pl.MaxQuantity {
			return Purchase{}, fmt.Errorf("quantity %d is outside plan %q's range %d to %d", req.Quantity, pl.ID, pl.MinQuantity, pl.MaxQuantity)
		}
	} else if req.Quantity != 0 {
		return Purchase{}, fmt.Errorf("plan %q is not priced per seat; omit quantity", pl.ID)
	}
	switch req.Status {
	case "", marketplace.StatusPendingFulfillmentStart, marketplace.StatusSubscribed, marketplace.StatusSuspended, marketplace.StatusUnsubscribed:
	default:
		return Purchase{}, fmt.Errorf("status %q: want PendingFulfillmentStart, Subscribed, Suspended or Unsubscribed", req.Status)
	}
	now := e.now()
	ben := buyer(req.Beneficiary)
	pur := ben
	if req.Purchaser != nil {
		pur = buyer(req.Purchaser)
	}
	if !pl.visibleTo(ben.TenantID) {
		return Purchase{}, fmt.Errorf("private plan %q is not offered to tenant %s", pl.ID, ben.TenantID)
	}
	name := req.Name
	if name == "" {
		name = fmt.Sprintf("%s %s", offer.DisplayName, pl.DisplayName)
	}
	autoRenew := true
	if req.AutoRenew != nil {
		autoRenew = *req.AutoRenew
	}
	e.st.Seq++
	s := &subscription{
		Publisher:      pub.ID,
		Seq:            e.st.Seq,
		PrivateOfferID: req.PrivateOfferID,
		Sub: marketplace.Subscription{
			ID:                        uuid.NewString(),
			PublisherID:               pub.ID,
			OfferID:                   offer.ID,
			Name:                      name,
			Status:                    marketplace.StatusPendingFulfillmentStart,
			Beneficiary:               ben,
			Purchaser:                 pur,
			PlanID:                    pl.ID,
			Quantity:                  marketplace.Quantity(req.Quantity),
			Term:                      marketplace.Term{TermUnit: pl.termUnit()},
			AutoRenew:                 autoRenew,
			IsTest:                    req.IsTest,
			IsFreeTrial:               pl.HasFreeTrials,
			AllowedCustomerOperations: req.AllowedCustomerOperations,
			SandboxType:               req.SandboxType,
			SessionMode:               "None",
			Created:                   marketplace.NewTime(now),
		},
	}
	if s.Sub.AllowedCustomerOperations == nil {
		s.Sub.AllowedCustomerOperations = []string{"Read", "Update", "Delete"}
	}
	if s.Sub.SandboxType == "" {
		s.Sub.SandboxType = "None"
	}
	if req.Status != "" && req.Status != marketplace.StatusPendingFulfillmentStart {
		s.Sub.Status = req.Status
		s.ActivatedAt = now
		s.Sub.Term.StartDate = marketplace.NewTime(day(now))
		s.Sub.Term.EndDate = marketplace.NewTime(termEnd(day(now), pl.termUnit()))
		if req.Status == marketplace.StatusUnsubscribed {
			s.UnsubscribedAt = now
		}
	}
	e.st.Subscriptions[s.Sub.ID] = s
	tok := e.newTokenLocked(s.Sub.ID, e.cfg.TokenTTL.D())
	return Purchase{SubscriptionID: s.Sub.ID, Token: tok, LandingURL: landingURL(pub.LandingURL, tok), Subscription: s.Sub}, nil
}

func buyer(id *marketplace.AADIdentifier) marketplace.AADIdentifier {
	var b marketplace.AADIdentifier
	if id != nil {
		b = *id
	}
	if b.TenantID == "" {
		b.TenantID = uuid.NewString()
	}
	if b.ObjectID == "" {
		b.ObjectID = uuid.NewString()
	}
	if b.EmailID == "" {
		b.EmailID = "buyer-" + prefix(b.ObjectID, 8) + "@example.com"
	}
	if b.PUID == "" {
		b.PUID = fmt.Sprintf("1003%012X", []byte(prefix(b.ObjectID, 6)))
	}
	return b
}

// prefix is the first n bytes of s, or s when shorter: a caller may send any object ID, not only a GUID.
func prefix(s string, n int) string {
	if len(s) < n {
		return s
	}
	return s[:n]
}

// newTokenLocked mints an opaque purchase token. Like Microsoft's, it is base64 with '+', '/' and '='
// in it, so a landing page that forgets to restore '+' from its query string fails here as it would there.
// Both '+' and '/' are required (a third of random tokens lack a '+', which let a mangling client pass).
func (e *Emulator) newTokenLocked(subscriptionID string, ttl time.Duration) string {
	var tok string
	for {
		b := make([]byte, 47) // not a multiple of 3, so the encoding ends in '='
		_, _ = rand.Read(b)
		tok = base64.StdEncoding.EncodeToString(b)
		if strings.Contains(tok, "+") && strings.Contains(tok, "/") {
			break
		}
	}
	e.st.Tokens[tok] = &tokenGrant{SubscriptionID: subscriptionID, Expires: e.now().Add(ttl)}
	// Expired tokens are forgotten after a week so the state file does not grow for ever.
	for k, g := range e.st.Tokens {
		if e.now().Sub(g.Expires) > 7*24*time.Hour {
			delete(e.st.Tokens, k)
		}
	}
	return tok
}

func landingURL(base, token string) string {
	if base == "" {
		return ""
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "token=" + url.QueryEscape(token)
}

// NewToken issues a fresh purchase token for an existing subscription, as "Configure account" or
// "Manage account" in the Azure portal does. ttl 0 means the configured TokenTTL.
func (e *Emulator) NewToken(subscriptionID string, ttl time.Duration) (Purchase, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st.Subscriptions[strings.ToLower(subscriptionID)]
	if s == nil {
		return Purchase{}, ErrNotFound
	}
	if ttl == 0 {
		ttl = e.cfg.TokenTTL.D()
	}
	tok := e.newTokenLocked(s.Sub.ID, ttl)
	e.changedLocked()
	var landing string
	if pub := e.publisherByID(s.Publisher); pub != nil {
		landing = landingURL(pub.LandingURL, tok)
	}
	return Purchase{SubscriptionID: s.Sub.ID, Token: tok, LandingURL: landing, Subscription: s.Sub}, nil
}

// CustomerChangePlan is the customer changing plan in the Azure portal: an operation awaiting the
// publisher's decision, announced by webhook.
func (e *Emulator) CustomerChangePlan(subscriptionID, planID string) (marketplace.Operation, error) {
	return e.customerChange(subscriptionID, marketplace.SubscriberPlan{PlanID: planID})
}

// CustomerChangeQuantity is the customer changing seats in the Microsoft 365 admin center.
func (e *Emulator) CustomerChangeQuantity(subscriptionID string, quantity int64) (marketplace.Operation, error) {
	return e.customerChange(subscriptionID, marketplace.SubscriberPlan{Quantity: marketplace.Quantity(quantity)})
}

func (e *Emulator) customerChange(subscriptionID string, body marketplace.SubscriberPlan) (marketplace.Operation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st.Subscriptions[strings.ToLower(subscriptionID)]
	if s == nil {
		return marketplace.Operation{}, ErrNotFound
	}
	if err := e.checkChangeLocked(s, body); err != nil {
		return marketplace.Operation{}, err
	}
	action := marketplace.ActionChangePlan
	if body.Quantity != 0 {
		action = marketplace.ActionChangeQuantity
	}
	op := e.newOperationLocked(s, action, marketplace.SourceAzure, body.PlanID, body.Quantity)
	e.openAcceptWindowLocked(op)
	e.enqueueWebhookLocked(s, op)
	e.changedLocked()
	return op.Op, nil
}

// openAcceptWindowLocked starts the publisher's decision window of a customer's change or reinstatement
// when the operation is created, not when the webhook is delivered: Microsoft auto-accepts an undecided
// operation whether or not the notification reached anyone (no webhook URL, a dropped delivery), so the
// subscription is never locked for good. A PATCH or a 4xx answer inside the window decides it first.
func (e *Emulator) openAcceptWindowLocked(op *operation) {
	op.AcceptAt = e.now().Add(e.cfg.AutoAcceptAfter.D())
}

// Suspend is Microsoft suspending a subscription whose payment failed.
func (e *Emulator) Suspend(subscriptionID string) (marketplace.Operation, error) {
	return e.notify(subscriptionID, marketplace.ActionSuspend, func(s *subscription) error {
		if s.Sub.Status != marketplace.StatusSubscribed {
			return fmt.Errorf("only Subscribed subscriptions can be suspended; this one is %s", s.Sub.Status)
		}
		s.Sub.Status = marketplace.StatusSuspended
		return nil
	})
}

// Renew is the subscription's term renewing.
func (e *Emulator) Renew(subscriptionID string) (marketplace.Operation, error) {
	return e.notify(subscriptionID, marketplace.ActionRenew, func(s *subscription) error {
		if s.Sub.Status != marketplace.StatusSubscribed {
			return fmt.Errorf("only Subscribed subscriptions renew; this one is %s", s.Sub.Status)
		}
		start := s.Sub.Term.EndDate.Time.AddDate(0, 0, 1)
		s.Sub.Term.StartDate = marketplace.NewTime(start)
		s.Sub.Term.EndDate = marketplace.NewTime(termEnd(start, s.Sub.Term.TermUnit))
		s.Sub.IsFreeTrial = false
		return nil
	})
}

// Unsubscribe is the customer cancelling (or Microsoft ending a long suspension). Pending operations die
// with the subscription.
func (e *Emulator) Unsubscribe(subscriptionID string) (marketplace.Operation, error) {
	return e.notify(subscriptionID, marketplace.ActionUnsubscribe, func(s *subscription) error {
		if s.Sub.Status == marketplace.StatusUnsubscribed {
			return fmt.Errorf("the subscription is already unsubscribed")
		}
		for _, op := range e.st.Operations {
			if op.Op.SubscriptionID == s.Sub.ID && !op.Op.Status.Terminal() {
				e.failLocked(op, "409", "The subscription was unsubscribed.")
			}
		}
		s.Sub.Status = marketplace.StatusUnsubscribed
		s.UnsubscribedAt = e.now()
		return nil
	})
}

// notify applies a notify-only action and announces it.
func (e *Emulator) notify(subscriptionID string, action marketplace.Action, apply func(*subscription) error) (marketplace.Operation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st.Subscriptions[strings.ToLower(subscriptionID)]
	if s == nil {
		return marketplace.Operation{}, ErrNotFound
	}
	before := s.Sub
	if err := apply(s); err != nil {
		return marketplace.Operation{}, &changeError{http.StatusBadRequest, "BadArgument", err.Error()}
	}
	s.lag(before, e.now(), e.cfg.readLag())
	op := e.newOperationLocked(s, action, marketplace.SourceAzure, "", 0)
	op.Op.Status = marketplace.OperationSucceeded
	e.enqueueWebhookLocked(s, op)
	e.changedLocked()
	return op.Op, nil
}

// Reinstate is the customer's payment going through: the subscription stays Suspended until the
// publisher accepts (or does not object within the window).
func (e *Emulator) Reinstate(subscriptionID string) (marketplace.Operation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st.Subscriptions[strings.ToLower(subscriptionID)]
	if s == nil {
		return marketplace.Operation{}, ErrNotFound
	}
	if s.Sub.Status != marketplace.StatusSuspended {
		return marketplace.Operation{}, &changeError{http.StatusBadRequest, "BadArgument", fmt.Sprintf("only Suspended subscriptions can be reinstated; this one is %s", s.Sub.Status)}
	}
	if e.st.outstanding(s.Sub.ID) != nil {
		return marketplace.Operation{}, &changeError{http.StatusConflict, "Conflict", "the subscription has a pending operation"}
	}
	op := e.newOperationLocked(s, marketplace.ActionReinstate, marketplace.SourceAzure, "", 0)
	e.openAcceptWindowLocked(op)
	e.enqueueWebhookLocked(s, op)
	e.changedLocked()
	return op.Op, nil
}

// AdvanceClock moves the emulated clock forward (token expiry, the metering window, auto-accept).
func (e *Emulator) AdvanceClock(d time.Duration) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.ClockOffset += d
	e.changedLocked()
	return e.now()
}

// Subscription returns Microsoft's view of one subscription.
func (e *Emulator) Subscription(id string) (marketplace.Subscription, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st.Subscriptions[strings.ToLower(id)]
	if s == nil {
		return marketplace.Subscription{}, false
	}
	return s.Sub, true
}

// Operations returns every operation of a subscription, oldest first.
func (e *Emulator) Operations(subscriptionID string) []marketplace.Operation {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []marketplace.Operation
	for _, op := range e.st.Operations {
		if op.Op.SubscriptionID == strings.ToLower(subscriptionID) {
			out = append(out, op.Op)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TimeStamp.Before(out[j].TimeStamp.Time) })
	return out
}

// PatchedAt reports when the publisher's first well-formed PATCH (Success or Failure) of an operation
// arrived, in real time (not the emulated clock): applied, or refused with 409 because the operation was
// decided already. ok is false until one has. It is for tests; Microsoft's API does not show it.
func (e *Emulator) PatchedAt(operationID string) (at time.Time, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	op := e.st.Operations[strings.ToLower(operationID)]
	if op == nil || op.PatchedAt.IsZero() {
		return time.Time{}, false
	}
	return op.PatchedAt, true
}

// PatchesBeforeAnswer lists the operations the publisher PATCHed while their webhook still awaited its
// response, which Microsoft expects never to happen. It is for tests; Microsoft's API does not show it.
func (e *Emulator) PatchesBeforeAnswer() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.st.PatchesBeforeAnswer)
}

// AnswerTimes returns, for an operation, when its webhook was first posted, when a post first had its
// response and when the first PATCH arrived (zero where that has not happened), to explain a PATCH
// before the answer.
func (e *Emulator) AnswerTimes(operationID string) (posted, answered, patched time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if op := e.st.Operations[strings.ToLower(operationID)]; op != nil {
		return op.PostedAt, op.AnsweredAt, op.PatchedAt
	}
	return
}

// Delivery is one webhook notification as the control API reports it.
type Delivery struct {
	ID         string                   `json:"id"`
	Event      marketplace.WebhookEvent `json:"event"`
	State      string                   `json:"state"`
	Attempts   int                      `json:"attempts"`
	LastStatus int                      `json:"lastStatus,omitempty"`
	LastError  string                   `json:"lastError,omitempty"`
}

// Deliveries returns the webhook log, oldest first.
func (e *Emulator) Deliveries() []Delivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Delivery, 0, len(e.st.Deliveries))
	for _, d := range e.st.Deliveries {
		out = append(out, Delivery{ID: d.ID, Event: d.Event, State: d.State, Attempts: d.Attempts, LastStatus: d.LastStatus, LastError: d.LastError})
	}
	return out
}

// Snapshot is the emulator's whole state, for tests and the control API.
type Snapshot struct {
	Now           time.Time                      `json:"now"`
	Subscriptions []marketplace.Subscription     `json:"subscriptions"`
	Operations    []marketplace.Operation        `json:"operations"`
	Usage         []marketplace.UsageEventResult `json:"usage"`
	Deliveries    []Delivery                     `json:"deliveries"`
	Faults        []Fault                        `json:"faults"`
	// PatchesBeforeAnswer lists the operations PATCHed while their webhook awaited its first response.
	PatchesBeforeAnswer []string `json:"patchesBeforeAnswer,omitempty"`
}

// State returns a snapshot of everything.
func (e *Emulator) State() Snapshot {
	deliveries := e.Deliveries()
	e.mu.Lock()
	defer e.mu.Unlock()
	snap := Snapshot{Now: e.now(), Deliveries: deliveries, Subscriptions: []marketplace.Subscription{}, Operations: []marketplace.Operation{}, Usage: []marketplace.UsageEventResult{}, Faults: []Fault{}}
	subs := make([]*subscription, 0, len(e.st.Subscriptions))
	for _, s := range e.st.Subscriptions {
		subs = append(subs, s)
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].Seq < subs[j].Seq })
	for _, s := range subs {
		snap.Subscriptions = append(snap.Subscriptions, s.Sub)
	}
	for _, op := range e.st.Operations {
		snap.Operations = append(snap.Operations, op.Op)
	}
	sort.Slice(snap.Operations, func(i, j int) bool { return snap.Operations[i].TimeStamp.Before(snap.Operations[j].TimeStamp.Time) })
	for _, u := range e.st.Usage {
		snap.Usage = append(snap.Usage, u.Result)
	}
	for _, f := range e.faults {
		snap.Faults = append(snap.Faults, *f)
	}
	snap.PatchesBeforeAnswer = slices.Clone(e.st.PatchesBeforeAnswer)
	return snap
}

// controlRoutes is the documented control API (see README.md): acting as the customer or as Microsoft,
// reading state, injecting faults. It has no authentication: keep the emulator on loopback.
func (e *Emulator) controlRoutes(r *mux.Router) {
	r.HandleFunc("/state", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, e.State()) }).Methods(http.MethodGet)
	r.HandleFunc("/purchases", e.controlPurchase).Methods(http.MethodPost)
	r.HandleFunc("/seed", e.controlSeed).Methods(http.MethodPost)
	r.HandleFunc("/subscriptions/{id}", e.controlGet).Methods(http.MethodGet)
	r.HandleFunc("/subscriptions/{id}/token", e.controlToken).Methods(http.MethodPost)
	r.HandleFunc("/subscriptions/{id}/change-plan", e.controlAction).Methods(http.MethodPost)
	r.HandleFunc("/subscriptions/{id}/change-quantity", e.controlAction).Methods(http.MethodPost)
	r.HandleFunc("/subscriptions/{id}/suspend", e.controlAction).Methods(http.MethodPost)
	r.HandleFunc("/subscriptions/{id}/reinstate", e.controlAction).Methods(http.MethodPost)
	r.HandleFunc("/subscriptions/{id}/renew", e.controlAction).Methods(http.MethodPost)
	r.HandleFunc("/subscriptions/{id}/unsubscribe", e.controlAction).Methods(http.MethodPost)
	r.HandleFunc("/webhooks", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, e.Deliveries()) }).Methods(http.MethodGet)
	r.HandleFunc("/faults", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, e.State().Faults) }).Methods(http.MethodGet)
	r.HandleFunc("/faults", e.controlAddFault).Methods(http.MethodPost)
	r.HandleFunc("/faults", func(w http.ResponseWriter, r *http.Request) { e.ClearFaults(); w.WriteHeader(http.StatusNoContent) }).Methods(http.MethodDelete)
	r.HandleFunc("/calls", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, e.CallCounts()) }).Methods(http.MethodGet)
	r.HandleFunc("/clock", e.controlClock).Methods(http.MethodGet, http.MethodPost)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "NotFound", "no such control endpoint; see emulator/README.md")
	})
}

func controlFailure(w http.ResponseWriter, err error) {
	var ce *changeError
	switch {
	case errors.Is(err, ErrNotFound):
		apiError(w, http.StatusNotFound, "EntityNotFound", err.Error())
	case errors.As(err, &ce):
		apiError(w, ce.status, ce.code, ce.message)
	default:
		apiError(w, http.StatusBadRequest, "BadArgument", err.Error())
	}
}

func (e *Emulator) controlPurchase(w http.ResponseWriter, r *http.Request) {
	var req PurchaseRequest
	if err := decodeBody(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "BadArgument", "invalid JSON: "+err.Error())
		return
	}
	p, err := e.Purchase(req)
	if err != nil {
		controlFailure(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

// SeedRequest creates many subscriptions at once: Count copies of each purchase, typically in states
// other than PendingFulfillmentStart, standing for a publisher's existing customers.
type SeedRequest struct {
	Subscriptions []struct {
		PurchaseRequest
		Count int `json:"count"`
	} `json:"subscriptions"`
}

// maxSeed bounds one seed request: the whole batch is created under the emulator's lock, so an absurd
// count would stall every other caller (and exhaust memory) rather than fail.
const maxSeed = 100_000

// Seed creates the subscriptions of req and returns their IDs.
func (e *Emulator) Seed(req SeedRequest) ([]string, error) {
	total := 0
	for _, s := range req.Subscriptions {
		if s.Count < 0 || s.Count > maxSeed {
			return nil, fmt.Errorf("count %d: want 0 to %d", s.Count, maxSeed)
		}
		total += max(s.Count, 1)
	}
	if total > maxSeed {
		return nil, fmt.Errorf("%d subscriptions in one seed request: at most %d", total, maxSeed)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for _, s := range req.Subscriptions {
		for range max(s.Count, 1) {
			p, err := e.purchaseLocked(s.PurchaseRequest)
			if err != nil {
				return ids, err
			}
			ids = append(ids, p.SubscriptionID)
		}
	}
	e.changedLocked()
	return ids, nil
}

func (e *Emulator) controlSeed(w http.ResponseWriter, r *http.Request) {
	var req SeedRequest
	if err := decodeBody(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "BadArgument", "invalid JSON: "+err.Error())
		return
	}
	ids, err := e.Seed(req)
	if err != nil {
		controlFailure(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"subscriptionIds": ids})
}

func (e *Emulator) controlGet(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	s, ok := e.Subscription(id)
	if !ok {
		controlFailure(w, ErrNotFound)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"subscription": s, "operations": e.Operations(id)})
}

func (e *Emulator) controlToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TTL Duration `json:"ttl"`
	}
	if err := decodeBody(r, &body); err != nil {
		apiError(w, http.StatusBadRequest, "BadArgument", "invalid JSON: "+err.Error())
		return
	}
	p, err := e.NewToken(mux.Vars(r)["id"], body.TTL.D())
	if err != nil {
		controlFailure(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (e *Emulator) controlAction(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	var body struct {
		PlanID   string `json:"planId"`
		Quantity int64  `json:"quantity"`
	}
	if err := decodeBody(r, &body); err != nil {
		apiError(w, http.StatusBadRequest, "BadArgument", "invalid JSON: "+err.Error())
		return
	}
	var op marketplace.Operation
	var err error
	switch action := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]; action {
	case "change-plan":
		op, err = e.CustomerChangePlan(id, body.PlanID)
	case "change-quantity":
		op, err = e.CustomerChangeQuantity(id, body.Quantity)
	case "suspend":
		op, err = e.Suspend(id)
	case "reinstate":
		op, err = e.Reinstate(id)
	case "renew":
		op, err = e.Renew(id)
	case "unsubscribe":
		op, err = e.Unsubscribe(id)
	}
	if err != nil {
		controlFailure(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, op)
}

func (e *Emulator) controlAddFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := decodeBody(r, &f); err != nil {
		apiError(w, http.StatusBadRequest, "BadArgument", "invalid JSON: "+err.Error())
		return
	}
	if err := e.AddFault(f); err != nil {
		controlFailure(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

func (e *Emulator) controlClock(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		var body struct {
			Advance Duration `json:"advance"`
		}
		if err := decodeBody(r, &body); err != nil || body.Advance <= 0 {
			apiError(w, http.StatusBadRequest, "BadArgument", `want {"advance":"25h"} with a positive duration`)
			return
		}
		e.AdvanceClock(body.Advance.D())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"now": e.now(), "offset": e.st.ClockOffset.String()})
}
