package emulator

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"saasengine/marketplace"
)

// maxBatch is Microsoft's limit on events per batch.
const maxBatch = 25

func usageKey(resourceID, dimension string, start time.Time) string {
	return strings.ToLower(resourceID) + "|" + dimension + "|" + start.UTC().Truncate(time.Hour).Format(time.RFC3339)
}

// meterOutcome is what the metering service makes of one event.
type meterOutcome struct {
	status  marketplace.UsageEventStatus
	target  string
	message string
	result  marketplace.UsageEventResult
	// accepted is the earlier event a duplicate collides with.
	accepted *usageRecord
}

// meterLocked checks one usage event against Microsoft's rules and records it when accepted.
func (e *Emulator) meterLocked(pub *Publisher, ev marketplace.UsageEvent) meterOutcome {
	now := e.now()
	bad := func(status marketplace.UsageEventStatus, target, msg string) meterOutcome {
		return meterOutcome{status: status, target: target, message: msg, result: echo(ev, status)}
	}
	switch {
	case ev.ResourceID == "" && ev.ResourceURI == "":
		return bad(marketplace.UsageBadArgument, "resourceId", "resourceId or resourceUri is required.")
	case ev.ResourceID != "" && ev.ResourceURI != "":
		return bad(marketplace.UsageBadArgument, "resourceUri", "Send resourceId or resourceUri, not both.")
	case ev.Dimension == "":
		return bad(marketplace.UsageBadArgument, "dimension", "dimension is required.")
	case ev.PlanID == "":
		return bad(marketplace.UsageBadArgument, "planId", "planId is required.")
	case ev.EffectiveStartTime.IsZero():
		return bad(marketplace.UsageBadArgument, "effectiveStartTime", "effectiveStartTime is required.")
	case ev.Quantity <= 0:
		return bad(marketplace.UsageInvalidQuantity, "quantity", "quantity must be greater than 0.")
	}
	if ev.ResourceID != "" {
		if _, err := uuid.Parse(ev.ResourceID); err != nil {
			return bad(marketplace.UsageBadArgument, "resourceId", "resourceId must be a GUID.")
		}
	}
	s := e.st.Subscriptions[strings.ToLower(ev.ResourceID)]
	switch {
	case s == nil:
		// Managed-application resource URIs are not SaaS subscriptions; the emulator knows none.
		return bad(marketplace.UsageResourceNotFound, "resourceId", "The resource was not found.")
	case s.Publisher != pub.ID:
		return bad(marketplace.UsageResourceNotAuthorized, "resourceId", "Client is not authorized for this usage resource.")
	}
	start := ev.EffectiveStartTime.Time
	switch {
	case start.Before(now.Add(-24 * time.Hour)):
		return bad(marketplace.UsageExpired, "effectiveStartTime", "The usage event is older than 24 hours.")
	case start.After(now.Add(5 * time.Minute)):
		return bad(marketplace.UsageBadArgument, "effectiveStartTime", "effectiveStartTime is in the future.")
	}
	active := s.Sub.Status == marketplace.StatusSubscribed ||
		// Usage from before a cancellation may still be reported.
		(s.Sub.Status == marketplace.StatusUnsubscribed && !s.ActivatedAt.IsZero() && start.Before(s.UnsubscribedAt))
	if !active {
		return bad(marketplace.UsageResourceNotActive, "resourceId", fmt.Sprintf("The subscription is %s.", s.Sub.Status))
	}
	if ev.PlanID != s.Sub.PlanID {
		return bad(marketplace.UsageBadArgument, "planId", fmt.Sprintf("planId %q is not the subscription's plan.", ev.PlanID))
	}
	pl := e.plan(s.Sub.OfferID, s.Sub.PlanID)
	if pl == nil || !pl.dimension(ev.Dimension) {
		return bad(marketplace.UsageInvalidDimension, "dimension", fmt.Sprintf("Dimension %q is not defined for plan %q.", ev.Dimension, ev.PlanID))
	}
	key := usageKey(ev.ResourceID, ev.Dimension, start)
	if prev := e.usageIndex[key]; prev != nil {
		out := bad(marketplace.UsageDuplicate, "", "This usage event already exist.")
		out.accepted = prev
		return out
	}
	rec := &usageRecord{Publisher: pub.ID, OfferID: s.Sub.OfferID, Result: echo(ev, marketplace.UsageAccepted)}
	rec.Result.UsageEventID = uuid.NewString()
	rec.Result.MessageTime = marketplace.NewTime(now)
	e.st.Usage = append(e.st.Usage, rec)
	e.usageIndex[key] = rec
	return meterOutcome{status: marketplace.UsageAccepted, result: rec.Result}
}

func echo(ev marketplace.UsageEvent, status marketplace.UsageEventStatus) marketplace.UsageEventResult {
	return marketplace.UsageEventResult{
		Status: status, ResourceID: ev.ResourceID, ResourceURI: ev.ResourceURI, Quantity: ev.Quantity,
		Dimension: ev.Dimension, EffectiveStartTime: ev.EffectiveStartTime, PlanID: ev.PlanID,
	}
}

func duplicateBody(prev *usageRecord) map[string]any {
	accepted := prev.Result
	accepted.Status = marketplace.UsageDuplicate
	return map[string]any{
		"additionalInfo": map[string]any{"acceptedMessage": accepted},
		"message":        "This usage event already exist.",
		"code":           "Conflict",
	}
}

// meteringBadRequest is the Metering API's 400 shape.
func meteringBadRequest(w http.ResponseWriter, code, target, message string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{
		"message": "One or more errors have occurred.",
		"target":  "usageEventRequest",
		"code":    "BadArgument",
		"details": []map[string]string{{"message": message, "target": target, "code": code}},
	})
}

func (e *Emulator) usageEvent(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	var ev marketplace.UsageEvent
	if err := decodeBody(r, &ev); err != nil {
		meteringBadRequest(w, "BadArgument", "usageEventRequest", "The request body is not valid: "+err.Error())
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.meterLocked(pub, ev)
	switch out.status {
	case marketplace.UsageAccepted:
		e.changedLocked()
		writeJSON(w, http.StatusOK, out.result)
	case marketplace.UsageDuplicate:
		writeJSON(w, http.StatusConflict, duplicateBody(out.accepted))
	case marketplace.UsageResourceNotAuthorized:
		writeJSON(w, http.StatusForbidden, map[string]string{"message": out.message, "code": "Forbidden"})
	default:
		meteringBadRequest(w, string(out.status), out.target, out.message)
	}
}

func (e *Emulator) batchUsageEvent(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	var body marketplace.BatchUsageEventRequest
	if err := decodeBody(r, &body); err != nil {
		meteringBadRequest(w, "BadArgument", "request", "The request body is not valid: "+err.Error())
		return
	}
	if len(body.Request) == 0 || len(body.Request) > maxBatch {
		meteringBadRequest(w, "BadArgument", "request", fmt.Sprintf("A batch holds 1 to %d usage events; got %d.", maxBatch, len(body.Request)))
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	res := marketplace.BatchUsageEventResult{Count: len(body.Request)}
	for _, ev := range body.Request {
		out := e.meterLocked(pub, ev)
		item := out.result
		switch out.status {
		case marketplace.UsageAccepted:
		case marketplace.UsageDuplicate:
			item.Error = &marketplace.UsageEventConflict{Message: out.message, Code: "Conflict"}
			acc := out.accepted.Result
			acc.Status = marketplace.UsageDuplicate
			item.Error.AdditionalInfo.AcceptedMessage = &acc
		default:
			item.Error = &marketplace.UsageEventConflict{Message: out.message, Code: string(out.status)}
		}
		res.Result = append(res.Result, item)
	}
	e.changedLocked()
	writeJSON(w, http.StatusOK, res)
}

func (e *Emulator) usageEvents(w http.ResponseWriter, r *http.Request, pub *Publisher) {
	q := r.URL.Query()
	start, err := marketplace.ParseTime(q.Get("usageStartDate"))
	if q.Get("usageStartDate") == "" || err != nil {
		meteringBadRequest(w, "BadArgument", "usageStartDate", "usageStartDate is required, as an ISO 8601 date or time.")
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	end := e.now()
	if v := q.Get("UsageEndDate"); v != "" {
		if end, err = marketplace.ParseTime(v); err != nil {
			meteringBadRequest(w, "BadArgument", "UsageEndDate", "UsageEndDate is not an ISO 8601 date or time.")
			return
		}
		if len(v) == len("2006-01-02") {
			end = end.Add(24*time.Hour - time.Nanosecond)
		}
	}
	type key struct {
		day                 time.Time
		resource, dim, plan string
	}
	agg := map[key]*marketplace.UsageReportItem{}
	var keys []key
	for _, u := range e.st.Usage {
		t := u.Result.EffectiveStartTime.Time
		if u.Publisher != pub.ID || t.Before(start) || t.After(end) ||
			(q.Get("offerId") != "" && q.Get("offerId") != u.OfferID) ||
			(q.Get("planId") != "" && q.Get("planId") != u.Result.PlanID) ||
			(q.Get("dimension") != "" && q.Get("dimension") != u.Result.Dimension) {
			continue
		}
		k := key{day(t), u.Result.ResourceID, u.Result.Dimension, u.Result.PlanID}
		it := agg[k]
		if it == nil {
			pl := e.plan(u.OfferID, u.Result.PlanID)
			_, offer := e.offer(u.OfferID)
			it = &marketplace.UsageReportItem{
				UsageDate: marketplace.NewTime(k.day), UsageResourceID: k.resource, Dimension: k.dim, PlanID: k.plan,
				OfferID: u.OfferID, OfferType: "SaaS", ReconStatus: "Submitted",
			}
			if pl != nil {
				it.PlanName = pl.DisplayName
			}
			if offer != nil {
				it.OfferName = offer.DisplayName
			}
			agg[k] = it
			keys = append(keys, k)
		}
		it.SubmittedQuantity += u.Result.Quantity
		it.ProcessedQuantity += u.Result.Quantity
		it.SubmittedCount++
	}
	sort.Slice(keys, func(i, j int) bool {
		if !keys[i].day.Equal(keys[j].day) {
			return keys[i].day.Before(keys[j].day)
		}
		return keys[i].resource+keys[i].dim < keys[j].resource+keys[j].dim
	})
	out := make([]marketplace.UsageReportItem, 0, len(keys))
	for _, k := range keys {
		if q.Get("reconStatus") == "" || q.Get("reconStatus") == agg[k].ReconStatus {
			out = append(out, *agg[k])
		}
	}
	writeJSON(w, http.StatusOK, out)
}
