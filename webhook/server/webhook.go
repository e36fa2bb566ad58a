package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"saasengine/entra"
	"saasengine/marketplace"
	"saasengine/workflows/subscription"
)

// maxWebhookBody bounds a webhook body; Microsoft's payloads are about 2 KiB.
const maxWebhookBody = 64 << 10

// maxOperationID bounds the operation ID, which names the workflow's update: Microsoft's are GUIDs, or
// were once "org:<guid>,<guid>".
const maxOperationID = 200

// answeredTimeout bounds telling the workflow its webhook was answered; the answer has gone already.
const answeredTimeout = 2 * time.Second

// ErrUnknownSubscription is a notification for a subscription Microsoft did not know lately: it changes
// nothing and is answered 200, so that Microsoft stops delivering it.
var ErrUnknownSubscription = errors.New("server: Microsoft does not know this subscription")

// ErrInvalidEvent is a notification that cannot be recorded as it stands; delivering it again cannot help,
// so it is answered 400, never 503.
var ErrInvalidEvent = errors.New("server: the notification cannot be recorded as it stands")

// TokenValidator checks the bearer token of a webhook call (entra.Validator in production).
type TokenValidator interface {
	Validate(ctx context.Context, authorization string) (*entra.Claims, error)
}

// webhook receives Microsoft's notifications. It answers only after Temporal has accepted the event, so
// a 200 means the event is durable and anything else makes Microsoft deliver again.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	action := "unknown"
	outcome := func(o string) { s.metrics.webhooks.WithLabelValues(action, o).Inc() }
	// One budget for everything that may wait (keys, Temporal): an answer after Microsoft's 10-second
	// window counts as a failure anyway, and 503 in time at least says "deliver again".
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WebhookBudget)
	defer cancel()

	if s.cfg.Validator != nil {
		if _, err := s.cfg.Validator.Validate(ctx, r.Header.Get("Authorization")); err != nil {
			if errors.Is(err, entra.ErrKeysUnavailable) {
				outcome("unavailable")
				s.fail(w, r, http.StatusServiceUnavailable, "KeysUnavailable", "the token cannot be checked right now; deliver again", err)
				return
			}
			outcome("unauthorized")
			// The reason is logged (at a bounded rate: anyone can send these), never the token; the caller
			// learns only that it was refused.
			s.refusals.Info("webhook refused", zap.String("reason", err.Error()), zap.String("remote", r.RemoteAddr))
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			s.fail(w, r, http.StatusUnauthorized, "Unauthorized", "the bearer token is missing or invalid", nil)
			return
		}
	}

	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		outcome("malformed")
		s.fail(w, r, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "the body must be application/json", nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		outcome("malformed")
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "PayloadTooLarge", "the body exceeds 64 KiB", nil)
			return
		}
		s.fail(w, r, http.StatusBadRequest, "UnreadableBody", "the body could not be read", nil)
		return
	}
	var ev marketplace.WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		outcome("malformed")
		s.fail(w, r, http.StatusBadRequest, "MalformedPayload", "the body is not a webhook payload: "+err.Error(), nil)
		return
	}
	if msg := missingFields(ev); msg != "" {
		outcome("malformed")
		s.fail(w, r, http.StatusBadRequest, "MalformedPayload", msg, nil)
		return
	}
	action = actionLabel(ev.Action)
	log := s.log.With(zap.String("action", string(ev.Action)), zap.String("subscriptionId", ev.SubscriptionID), zap.String("operationId", ev.ID))

	// failed answers a failed hand-over: only Temporal out of reach is worth delivering again.
	failed := func(err error) {
		switch {
		case errors.Is(err, ErrUnknownSubscription):
			outcome("accepted")
			log.Info("webhook for a subscription Microsoft does not know; nothing started")
			writeJSON(w, http.StatusOK, map[string]string{"status": "ignored", "reason": "Microsoft does not know this subscription"})
		case errors.Is(err, ErrInvalidEvent):
			outcome("malformed")
			s.fail(w, r, http.StatusBadRequest, "MalformedPayload", "the payload cannot be recorded as it stands", nil)
		default:
			outcome("unavailable")
			s.fail(w, r, http.StatusServiceUnavailable, "Unavailable", "the event could not be recorded; deliver again", err)
		}
	}

	if isDecidable(ev) {
		d, err := s.cfg.Subscriptions.DecideChange(ctx, ev, s.cfg.DecisionWait)
		if err != nil {
			failed(err)
			return
		}
		if d.Decided && !d.Accepted {
			// Microsoft has been seen to apply a change despite a PATCH Failure; a 4xx inside the 10-second
			// window is the refusal it honours. The workflow PATCHes Failure as well.
			outcome("rejected")
			log.Info("webhook change rejected", zap.String("reason", d.Reason))
			s.fail(w, r, http.StatusBadRequest, "ChangeRejected", d.Reason, nil)
			s.answered(ctx, w, ev, log)
			return
		}
		outcome("accepted")
		if !d.Decided {
			s.metrics.fallbacks.WithLabelValues(action).Inc()
		}
		log.Info("webhook change recorded", zap.Bool("decided", d.Decided), zap.Bool("accepted", d.Accepted))
		writeJSON(w, http.StatusOK, map[string]string{"status": "accepted"})
		s.answered(ctx, w, ev, log)
		return
	}

	if err := s.cfg.Subscriptions.DeliverWebhook(ctx, ev); err != nil {
		failed(err)
		return
	}
	outcome("accepted")
	log.Info("webhook recorded")
	writeJSON(w, http.StatusOK, map[string]string{"status": "accepted"})
	s.answered(ctx, w, ev, log)
}

// answered sends the response on its way, then tells the workflow, which PATCHes the operation only
// after this word (or, should it never come, once the answer's time has surely passed).
func (s *Server) answered(ctx context.Context, w http.ResponseWriter, ev marketplace.WebhookEvent, log *zap.Logger) {
	if err := http.NewResponseController(w).Flush(); err != nil {
		// The answer then leaves only when the handler returns, after the workflow heard it had gone.
		log.Warn("webhook answer not flushed before telling the workflow", zap.Error(err))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), answeredTimeout)
	defer cancel()
	if err := s.cfg.Subscriptions.WebhookAnswered(ctx, ev); err != nil {
		log.Info("could not tell the workflow the webhook was answered; it acknowledges after a wait", zap.Error(err))
	}
}

// isDecidable reports the notifications the publisher may still refuse: a customer's or Microsoft's plan or
// quantity change awaiting its decision.
func isDecidable(ev marketplace.WebhookEvent) bool {
	if ev.Action != marketplace.ActionChangePlan && ev.Action != marketplace.ActionChangeQuantity {
		return false
	}
	return ev.Status == "" || ev.Status == marketplace.OperationInProgress || ev.Status == marketplace.OperationNotStarted
}

// missingFields names what a payload lacks to be routed to a subscription, or what in it cannot be.
func missingFields(ev marketplace.WebhookEvent) string {
	var missing []string
	if strings.TrimSpace(ev.ID) == "" {
		missing = append(missing, "id")
	}
	if strings.TrimSpace(ev.SubscriptionID) == "" {
		missing = append(missing, "subscriptionId")
	}
	if ev.Action == "" {
		missing = append(missing, "action")
	}
	if len(missing) > 0 {
		return "the payload lacks " + strings.Join(missing, ", ")
	}
	switch {
	case !subscription.ValidID(ev.SubscriptionID):
		return "subscriptionId is not a GUID"
	case len(ev.ID) > maxOperationID:
		return fmt.Sprintf("id is longer than %d characters", maxOperationID)
	}
	return ""
}
