package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"saasengine/workflows/metering"
)

// Meter is what the admin API's usage endpoint asks of metering; metering.Client is the production one.
type Meter interface {
	// Report checks the reports and hands them to the subscription's meter in one go; a refused report is
	// a *metering.InvalidUsageError.
	Report(ctx context.Context, subscriptionID string, reports ...metering.Usage) error
	// State is the meter's open hours and recent outcomes; metering.ErrNotFound when none ran lately.
	State(ctx context.Context, subscriptionID string) (metering.State, error)
}

var _ Meter = metering.Client{}

// usageTimeout bounds the signal, so that an unreachable Temporal is a 503 well inside the write timeout.
const usageTimeout = 10 * time.Second

// usageAccepted is the 202 body.
type usageAccepted struct {
	Status  string `json:"status"`
	Reports int    `json:"reports"`
	// Meter is the metering workflow's ID, whose query metering-state shows the outcome.
	Meter string `json:"meter"`
}

// adminReportUsage takes one usage report or a JSON array of them. 202 means Temporal has them all; the
// meter posts them to Microsoft after their hour closes.
func (s *Server) adminReportUsage(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		s.fail(w, r, http.StatusRequestEntityTooLarge, "TooLarge", "the body is over 64 KiB", nil)
		return
	}
	var reports []metering.Usage
	body = bytes.TrimSpace(body)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if len(body) > 0 && body[0] == '[' {
		err = dec.Decode(&reports)
	} else {
		var one metering.Usage
		err = dec.Decode(&one)
		reports = append(reports, one)
	}
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "MalformedRequest",
			`the body must be a usage report {"dimension","quantity","time","id","planId"} or an array of them: `+err.Error(), nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), usageTimeout)
	defer cancel()
	err = s.cfg.Meter.Report(ctx, id, reports...)
	var invalid *metering.InvalidUsageError
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, usageAccepted{Status: "Accepted", Reports: len(reports), Meter: metering.WorkflowID(id)})
	case errors.As(err, &invalid):
		s.fail(w, r, http.StatusBadRequest, "InvalidUsage", invalid.Error(), nil)
	case errors.Is(err, metering.ErrInvalidSubscription):
		s.fail(w, r, http.StatusBadRequest, "InvalidSubscription", "the subscription ID is not a GUID", nil)
	default:
		s.fail(w, r, http.StatusServiceUnavailable, "Unavailable", "the engine could not be reached; nothing was recorded, try again", err)
	}
}

// adminUsage shows the subscription's meter (its query metering-state).
func (s *Server) adminUsage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), usageTimeout)
	defer cancel()
	st, err := s.cfg.Meter.State(ctx, mux.Vars(r)["id"])
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, st)
	case errors.Is(err, metering.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "NotFound", "no meter has run for this subscription in the last day", nil)
	default:
		s.fail(w, r, http.StatusServiceUnavailable, "Unavailable", "the engine could not be reached; try again", err)
	}
}
