package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"saasengine/workflows/subscription"
)

// listing is one page of the admin listing.
type listing struct {
	Subscriptions []subscription.Summary `json:"subscriptions"`
	NextPageToken string                 `json:"nextPageToken,omitempty"`
}

// adminAuth requires the configured bearer token, compared in constant time.
func (s *Server) adminAuth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || s.cfg.AdminToken == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="admin"`)
			s.fail(w, r, http.StatusUnauthorized, "Unauthorized", "a valid admin bearer token is required", nil)
			return
		}
		next(w, r)
	}
}

func (s *Server) adminList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// The filter's values are checked where the visibility query is built (subscription.Filter.Query):
	// an unknown status or a quote is a 400 BadFilter.
	f := subscription.Filter{Status: q.Get("status"), Offer: q.Get("offer"), Plan: q.Get("plan")}
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			s.fail(w, r, http.StatusBadRequest, "BadPageSize", fmt.Sprintf("pageSize must be a number from 1 to %d", maxPageSize), nil)
			return
		}
		f.PageSize = n
	}
	if v := q.Get("pageToken"); v != "" {
		token, ok := s.openPageToken(v)
		if !ok {
			s.fail(w, r, http.StatusBadRequest, "BadPageToken", "pageToken is not one this API gave out (replicas must share SESSION_KEY)", nil)
			return
		}
		f.PageToken = token
	}
	subs, next, err := s.cfg.Subscriptions.List(r.Context(), f)
	if err != nil {
		s.commandFailed(w, r, err)
		return
	}
	out := listing{Subscriptions: subs}
	if out.Subscriptions == nil {
		out.Subscriptions = []subscription.Summary{}
	}
	if len(next) > 0 {
		out.NextPageToken = s.sealPageToken(next)
	}
	writeJSON(w, http.StatusOK, out)
}

// maxPageSize bounds a listing page, as Temporal's visibility does.
const maxPageSize = 1000

// Page tokens are handed out signed, so that one this API did not give out is refused at once: Temporal
// cannot tell an invented token from a stale one quickly, and would make the caller wait for a 503.
const pageTokenMACSize = 16

func (s *Server) pageTokenMAC(token []byte) []byte {
	key := hmac.New(sha256.New, s.csrfKey)
	key.Write([]byte("admin page token"))
	m := hmac.New(sha256.New, key.Sum(nil))
	m.Write(token)
	return m.Sum(nil)[:pageTokenMACSize]
}

func (s *Server) sealPageToken(token []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(s.pageTokenMAC(token), token...))
}

func (s *Server) openPageToken(sealed string) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) <= pageTokenMACSize {
		return nil, false
	}
	token := b[pageTokenMACSize:]
	return token, hmac.Equal(b[:pageTokenMACSize], s.pageTokenMAC(token))
}

func (s *Server) adminGet(w http.ResponseWriter, r *http.Request) {
	state, err := s.cfg.Subscriptions.State(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.commandFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, state)
}

type changeRequest struct {
	PlanID   string `json:"planId"`
	Quantity int64  `json:"quantity"`
}

func (s *Server) adminChangePlan(w http.ResponseWriter, r *http.Request) {
	var req changeRequest
	if !s.decodeCommand(w, r, &req) {
		return
	}
	res, err := s.cfg.Subscriptions.ChangePlan(r.Context(), mux.Vars(r)["id"], req.PlanID, s.cfg.CommandWait)
	s.commandResult(w, r, res, err)
}

func (s *Server) adminChangeQuantity(w http.ResponseWriter, r *http.Request) {
	var req changeRequest
	if !s.decodeCommand(w, r, &req) {
		return
	}
	res, err := s.cfg.Subscriptions.ChangeQuantity(r.Context(), mux.Vars(r)["id"], req.Quantity, s.cfg.CommandWait)
	s.commandResult(w, r, res, err)
}

func (s *Server) adminCancel(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Subscriptions.Cancel(r.Context(), mux.Vars(r)["id"], s.cfg.CommandWait)
	s.commandResult(w, r, res, err)
}

func (s *Server) adminApprove(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Subscriptions.Approve(r.Context(), mux.Vars(r)["id"], s.cfg.CommandWait)
	s.commandResult(w, r, res, err)
}

func (s *Server) adminRetry(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Subscriptions.Retry(r.Context(), mux.Vars(r)["id"], s.cfg.CommandWait)
	s.commandResult(w, r, res, err)
}

func (s *Server) adminReconcile(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Subscriptions.Reconcile(r.Context())
	s.commandResult(w, r, res, err)
}

func (s *Server) decodeCommand(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		s.fail(w, r, http.StatusBadRequest, "MalformedRequest", "the body is not valid JSON for this command: "+err.Error(), nil)
		return false
	}
	return true
}

// inProgress is the 202 body of a command still running at Microsoft.
type inProgress struct {
	Status      string `json:"status"`
	OperationID string `json:"operationId,omitempty"`
	Message     string `json:"message"`
	// Subscription is where to follow the outcome (also the Location header).
	Subscription string `json:"subscription"`
}

func (s *Server) commandResult(w http.ResponseWriter, r *http.Request, res any, err error) {
	var ip *subscription.InProgressError
	if errors.As(err, &ip) {
		// The answer must leave before the write timeout drops the connection; the command is durable
		// in the workflow, which keeps following Microsoft's operation.
		loc := subscriptionPath(mux.Vars(r)["id"])
		s.log.Info("admin command in progress past its wait", zap.String("path", r.URL.Path), zap.String("operationId", ip.OperationID))
		w.Header().Set("Location", loc)
		writeJSON(w, http.StatusAccepted, inProgress{
			Status: "InProgress", OperationID: ip.OperationID, Subscription: loc,
			Message: "the command was accepted and Microsoft's operation is still in progress; GET the subscription to follow it (its pending operation, then its audit)",
		})
		return
	}
	if err != nil {
		s.commandFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// subscriptionPath is the admin API's address of one subscription.
func subscriptionPath(id string) string { return "/admin/subscriptions/" + url.PathEscape(id) }

// commandFailed maps a Subscriptions error to its status: refusals are 4xx with the workflow's code and
// message, a missing subscription 404, anything else 503 (Temporal unreachable; try again).
func (s *Server) commandFailed(w http.ResponseWriter, r *http.Request, err error) {
	var ve *subscription.CommandError
	switch {
	case errors.As(err, &ve):
		status := http.StatusBadRequest
		switch ve.Code {
		case "Conflict", "ChangePending", "CommandQueued", "NotSubscribed", "Ended", "NothingToRetry":
			// The request was fine; the subscription's state is not.
			status = http.StatusConflict
		}
		s.fail(w, r, status, ve.Code, ve.Message, nil)
	case errors.Is(err, subscription.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "NotFound", "no such subscription", nil)
	case errors.Is(err, subscription.ErrNotAccepted):
		s.fail(w, r, http.StatusServiceUnavailable, "NotAccepted",
			"the subscription's workflow did not take the command in time (is a worker running?); it may still take it, so check GET "+
				subscriptionPath(mux.Vars(r)["id"])+" before sending it again", err)
	default:
		s.fail(w, r, http.StatusServiceUnavailable, "Unavailable", "the engine could not be reached; try again", err)
	}
}
