package server

import (
	"encoding/json"
	"net/http"
	"strconv"

	"go.uber.org/zap"
)

// apiError is the one error envelope of every JSON endpoint: {"error":{"code":"…","message":"…"}}.
type apiError struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":{"code":"Internal","message":"the answer could not be encoded"}}`)
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// With its length known, a flushed answer is complete on the wire before the handler returns.
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fail answers a JSON error. Server-side failures (5xx) are logged with their cause; client mistakes are
// not, since a flood of bad requests must not flood the logs.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, message string, cause error) {
	if status >= 500 {
		s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.Int("status", status), zap.String("code", code), zap.Error(cause))
	}
	writeJSON(w, status, apiError{Error: errorBody{Code: code, Message: message}})
}
