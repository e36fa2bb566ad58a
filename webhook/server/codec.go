package server

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"
	"go.temporal.io/sdk/converter"
)

// The codec endpoint lets Temporal's Web UI and CLI show the payloads the engine encrypts
// (encryption.Codec), speaking Temporal's remote codec protocol: POST {"payloads": [...]} to .../encode
// or .../decode. It decrypts whatever it is given, so it is never open: the CLI sends the admin bearer
// token (temporal --codec-endpoint <url>/codec --codec-auth "Bearer <ADMIN_TOKEN>"); a browser UI, which
// cannot, is given an address with CodecPathKey in it, and its origin must be in CodecOrigins.

// maxCodecBody bounds one codec request (a page of history's payloads).
const maxCodecBody = 4 << 20

func (s *Server) codecRoutes(r *mux.Router) {
	h := converter.NewPayloadCodecHTTPHandler(s.cfg.Codec)
	serve := func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxCodecBody)
		h.ServeHTTP(w, r)
	}
	if s.cfg.AdminToken != "" {
		r.HandleFunc("/codec/{op:encode|decode}", s.codecCORS(s.adminAuth(serve))).Methods(http.MethodPost, http.MethodOptions)
	}
	if s.cfg.CodecPathKey != "" {
		r.HandleFunc("/codec/{key}/{op:encode|decode}", s.codecCORS(func(w http.ResponseWriter, r *http.Request) {
			if subtle.ConstantTimeCompare([]byte(mux.Vars(r)["key"]), []byte(s.cfg.CodecPathKey)) != 1 {
				s.fail(w, r, http.StatusNotFound, "NotFound", "no such endpoint", nil)
				return
			}
			serve(w, r)
		})).Methods(http.MethodPost, http.MethodOptions)
	}
}

// codecCORS answers a browser's preflight, and allows its request, when its origin is one of
// CodecOrigins (the Web UI's); other origins get no CORS headers, so their browsers refuse the answer.
func (s *Server) codecCORS(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && slices.Contains(s.cfg.CodecOrigins, strings.TrimRight(origin, "/"))
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			w.Header().Add("Vary", "Origin")
		}
		if r.Method == http.MethodOptions {
			if allowed {
				w.Header().Set("Access-Control-Allow-Methods", "POST")
				w.Header().Set("Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization")
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next(w, r)
	}
}
