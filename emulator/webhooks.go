package emulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"saasengine/marketplace"
)

var timeZero time.Time

func day(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryRejected  = "rejected" // answered 4xx to a ChangePlan/ChangeQuantity: the change is refused
	DeliveryGaveUp    = "gave-up"
	DeliveryDropped   = "dropped"
	DeliveryNoURL     = "no-webhook-url"
)

// delivery is one webhook notification and what became of it.
type delivery struct {
	ID         string                   `json:"id"`
	Publisher  string                   `json:"publisher"`
	Event      marketplace.WebhookEvent `json:"event"`
	State      string                   `json:"state"`
	Attempts   int                      `json:"attempts"`
	Created    time.Time                `json:"created"`
	NextAt     time.Time                `json:"nextAt,omitzero"`
	LastStatus int                      `json:"lastStatus,omitempty"`
	LastError  string                   `json:"lastError,omitempty"`
	// Hold is set by a reorder fault: the delivery waits until a later one was sent or the hold expires.
	Hold time.Time `json:"hold,omitzero"`
	// Copies is how many times a duplicate fault sends it on a successful attempt.
	Copies int `json:"copies,omitempty"`
}

// enqueueWebhookLocked queues the notification for op: Microsoft's payload, with the subscription as it is
// stored right now (for a pending change, still the old plan or quantity).
func (e *Emulator) enqueueWebhookLocked(s *subscription, op *operation) {
	ev := marketplace.WebhookEvent{
		ID:                     op.Op.ID,
		ActivityID:             op.Op.ActivityID,
		SubscriptionID:         s.Sub.ID,
		PublisherID:            s.Sub.PublisherID,
		OfferID:                s.Sub.OfferID,
		PlanID:                 op.Op.PlanID,
		Quantity:               op.Op.Quantity,
		TimeStamp:              marketplace.NewTime(e.now()),
		Action:                 op.Op.Action,
		Status:                 op.Op.Status,
		OperationRequestSource: op.Op.OperationRequestSource,
	}
	sub := s.Sub
	ev.Subscription = &sub
	d := &delivery{ID: uuid.NewString(), Publisher: s.Publisher, Event: ev, State: DeliveryPending, Created: time.Now().UTC(), NextAt: time.Now().UTC()}
	switch f := e.takeWebhookFaultLocked(string(op.Op.Action)); f {
	case WebhookDrop:
		d.State = DeliveryDropped
	case WebhookDuplicate:
		d.Copies = 2
	case WebhookReorder:
		d.Hold = time.Now().UTC().Add(e.cfg.ReorderHold.D())
	}
	e.st.Deliveries = append(e.st.Deliveries, d)
	e.trimDeliveriesLocked()
}

// trimDeliveriesLocked keeps the delivery log bounded: finished deliveries beyond the last 1000 go.
func (e *Emulator) trimDeliveriesLocked() {
	const keep = 1000
	if len(e.st.Deliveries) <= keep {
		return
	}
	var out []*delivery
	drop := len(e.st.Deliveries) - keep
	for _, d := range e.st.Deliveries {
		if drop > 0 && d.State != DeliveryPending {
			drop--
			continue
		}
		out = append(out, d)
	}
	e.st.Deliveries = out
}

// nextDeliveryLocked picks the oldest due delivery of a publisher. A held delivery is skipped while a
// later one can overtake it.
func (e *Emulator) nextDeliveryLocked(publisher string, now time.Time) *delivery {
	var due []*delivery
	for _, d := range e.st.Deliveries {
		if d.Publisher == publisher && d.State == DeliveryPending && !now.Before(d.NextAt) {
			due = append(due, d)
		}
	}
	sort.SliceStable(due, func(i, j int) bool { return due[i].Created.Before(due[j].Created) })
	for _, d := range due {
		if !d.Hold.IsZero() && now.Before(d.Hold) {
			continue
		}
		return d
	}
	return nil
}

func (e *Emulator) deliverLoop(ctx context.Context, publisher string, kick <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		for ctx.Err() == nil {
			e.mu.Lock()
			now := time.Now().UTC()
			d := e.nextDeliveryLocked(publisher, now)
			var url string
			var body []byte
			var token string
			if d != nil {
				url = e.publisherByID(publisher).WebhookURL
				body, _ = json.Marshal(d.Event)
				token = e.webhookTokenLocked(e.publisherByID(publisher))
				d.Attempts++
				if op := e.st.Operations[strings.ToLower(d.Event.ID)]; op != nil && op.PostedAt.IsZero() {
					op.PostedAt = now
				}
				// A held delivery that was overtaken no longer waits.
				for _, o := range e.st.Deliveries {
					if o != d && o.Publisher == publisher && !o.Hold.IsZero() && o.Created.Before(d.Created) {
						o.Hold = timeZero
					}
				}
			}
			e.mu.Unlock()
			if d == nil {
				break
			}
			if url == "" {
				e.mu.Lock()
				d.State = DeliveryNoURL
				e.mu.Unlock()
				continue
			}
			copies := max(d.Copies, 1)
			var status int
			var err error
			for range copies {
				slot := &atomic.Pointer[watchedConn]{}
				e.mu.Lock()
				e.postingLocked(d.Event.ID, slot, true)
				e.mu.Unlock()
				status, err = e.post(context.WithValue(ctx, connKey{}, slot), url, token, body)
				e.mu.Lock()
				e.postingLocked(d.Event.ID, slot, false)
				if op := e.st.Operations[strings.ToLower(d.Event.ID)]; err == nil && op != nil && !op.Answered {
					op.Answered, op.AnsweredAt = true, time.Now().UTC()
				}
				e.mu.Unlock()
			}
			e.mu.Lock()
			e.recordAttemptLocked(d, status, err)
			e.mu.Unlock()
		}
	}
}

// postingLocked adds or removes the connection slot of a post of an operation's webhook.
func (e *Emulator) postingLocked(operationID string, slot *atomic.Pointer[watchedConn], add bool) {
	id := strings.ToLower(operationID)
	if e.posting == nil {
		e.posting = map[string][]*atomic.Pointer[watchedConn]{}
	}
	if add {
		e.posting[id] = append(e.posting[id], slot)
		return
	}
	e.posting[id] = slices.DeleteFunc(e.posting[id], func(s *atomic.Pointer[watchedConn]) bool { return s == slot })
	if len(e.posting[id]) == 0 {
		delete(e.posting, id)
	}
}

// awaitingAnswerLocked reports whether a post of the operation's webhook is waiting for its response
// and none of that response has reached the emulator (sent but not yet read counts as reached).
func (e *Emulator) awaitingAnswerLocked(operationID string) bool {
	slots := e.posting[strings.ToLower(operationID)]
	for _, slot := range slots {
		if c := slot.Load(); c != nil {
			if responded, known := c.responded(); known && responded {
				return false
			}
		}
	}
	return len(slots) > 0
}

func (e *Emulator) post(ctx context.Context, url, token string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil
}

// recordAttemptLocked applies Microsoft's rules to the publisher's answer: 2xx delivers (the auto-accept
// window of a change or reinstatement has been running since the operation was created), 4xx to a
// ChangePlan/ChangeQuantity rejects it, anything else is redelivered with backoff until Microsoft gives up,
// failing the operation if it is still undecided.
func (e *Emulator) recordAttemptLocked(d *delivery, status int, err error) {
	d.LastStatus = status
	d.LastError = ""
	if err != nil {
		d.LastError = err.Error()
	}
	op := e.st.Operations[d.Event.ID]
	awaiting := op != nil && op.Op.Status == marketplace.OperationInProgress && op.Op.OperationRequestSource == marketplace.SourceAzure
	change := d.Event.Action == marketplace.ActionChangePlan || d.Event.Action == marketplace.ActionChangeQuantity
	now := time.Now().UTC()
	switch {
	case err == nil && status >= 200 && status < 300:
		d.State = DeliveryDelivered
		if awaiting && op.AcceptAt.IsZero() {
			// An operation from a state file written before the window opened at creation.
			op.AcceptAt = e.now().Add(e.cfg.AutoAcceptAfter.D())
		}
	case err == nil && status >= 400 && status < 500 && change:
		d.State = DeliveryRejected
		if awaiting {
			e.failLocked(op, fmt.Sprint(status), "The publisher's webhook rejected the change.")
		}
	case now.Sub(d.Created) >= e.cfg.RedeliveryFor.D():
		d.State = DeliveryGaveUp
		if awaiting {
			e.failLocked(op, "500", "The publisher's webhook never accepted the notification.")
		}
	default:
		backoff := e.cfg.RedeliveryBase.D() << min(d.Attempts-1, 16)
		d.NextAt = now.Add(min(backoff, e.cfg.RedeliveryMax.D()))
	}
	e.log.Debug("emulator: webhook attempt", zap.String("action", string(d.Event.Action)), zap.String("operationId", d.Event.ID),
		zap.Int("status", status), zap.Int("attempt", d.Attempts), zap.String("state", d.State))
	e.changedLocked()
}

// webhookTokenLocked signs the token Microsoft's Entra would issue for a webhook call to pub: audience the
// publisher's app, the publisher's tenant, the Marketplace app as caller.
func (e *Emulator) webhookTokenLocked(pub *Publisher) string {
	now := time.Now()
	claims := jwt.MapClaims{
		"aud":   pub.AppID,
		"iss":   e.baseLocked() + "/" + pub.TenantID + "/v2.0",
		"tid":   pub.TenantID,
		"azp":   marketplace.ResourceAppID,
		"appid": marketplace.ResourceAppID,
		"sub":   marketplace.ResourceAppID,
		"ver":   "2.0",
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = e.keyID
	s, err := t.SignedString(e.key)
	if err != nil {
		// RSA signing with a valid in-memory key does not fail; an empty token would be rejected anyway.
		e.log.Error("signing webhook token", zap.Error(err))
	}
	return s
}

func (e *Emulator) jwks(w http.ResponseWriter, r *http.Request) {
	pub := e.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kty": "RSA",
		"use": "sig",
		"alg": "RS256",
		"kid": e.keyID,
		"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}
