// Package marketplace is a typed client for Microsoft's SaaS Fulfillment API v2, its Operations API and the
// Marketplace Metering API (api-version 2018-08-31), plus the types those APIs exchange.
//
// Decoding is deliberately lenient: Microsoft adds fields without notice, sends quantities as numbers, strings
// or empty strings, pads enum values with spaces and uses several time formats. Enums are open string types so
// that a value this package has never seen (a new term unit, a legacy webhook action) decodes instead of failing.
package marketplace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// APIVersion is the only api-version the Fulfillment, Operations and Metering APIs accept.
const APIVersion = "2018-08-31"

// ResourceAppID is the well-known application ID of the Marketplace SaaS API. It is the audience of the
// publisher's access token and the caller (appid/azp) of Microsoft's webhook calls.
const ResourceAppID = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7"

// Scope is the MSAL scope for tokens that call the Marketplace APIs.
const Scope = ResourceAppID + "/.default"

// DefaultBaseURL is the production base URL of both APIs.
const DefaultBaseURL = "https://marketplaceapi.microsoft.com/api"

// SubscriptionStatus is a SaaS subscription's saasSubscriptionStatus. It is an open set.
type SubscriptionStatus string

// Subscription statuses Microsoft documents.
const (
	StatusNotStarted              SubscriptionStatus = "NotStarted"
	StatusPendingFulfillmentStart SubscriptionStatus = "PendingFulfillmentStart"
	StatusSubscribed              SubscriptionStatus = "Subscribed"
	StatusSuspended               SubscriptionStatus = "Suspended"
	StatusUnsubscribed            SubscriptionStatus = "Unsubscribed"
)

// UnmarshalJSON trims the padding seen in Microsoft's samples (" Subscribed ").
func (s *SubscriptionStatus) UnmarshalJSON(b []byte) error {
	v, err := decodeOpenString(b)
	*s = SubscriptionStatus(v)
	return err
}

// Action is the kind of an operation or webhook notification. It is an open set: legacy deliveries carry
// Subscribe, Convert or Transfer.
type Action string

// Operation actions Microsoft documents.
const (
	ActionChangePlan     Action = "ChangePlan"
	ActionChangeQuantity Action = "ChangeQuantity"
	ActionRenew          Action = "Renew"
	ActionSuspend        Action = "Suspend"
	ActionReinstate      Action = "Reinstate"
	ActionUnsubscribe    Action = "Unsubscribe"
)

// UnmarshalJSON trims padding.
func (a *Action) UnmarshalJSON(b []byte) error {
	v, err := decodeOpenString(b)
	*a = Action(v)
	return err
}

// OperationStatus is the status of an operation. It is an open set.
type OperationStatus string

// Operation statuses Microsoft documents.
const (
	OperationNotStarted OperationStatus = "NotStarted"
	OperationInProgress OperationStatus = "InProgress"
	OperationSucceeded  OperationStatus = "Succeeded"
	OperationFailed     OperationStatus = "Failed"
	OperationConflict   OperationStatus = "Conflict"
)

// UnmarshalJSON trims padding.
func (s *OperationStatus) UnmarshalJSON(b []byte) error {
	v, err := decodeOpenString(b)
	*s = OperationStatus(v)
	return err
}

// Terminal reports whether an operation in this status will not change again.
func (s OperationStatus) Terminal() bool {
	return s == OperationSucceeded || s == OperationFailed || s == OperationConflict
}

// UpdateStatus is the decision a publisher sends when it acknowledges an operation.
type UpdateStatus string

// The two decisions the Operations API accepts.
const (
	UpdateSuccess UpdateStatus = "Success"
	UpdateFailure UpdateStatus = "Failure"
)

// Request sources of an operation.
const (
	SourceAzure   = "Azure"
	SourcePartner = "Partner"
)

// Quantity is a seat count. Microsoft sends it as a number, a numeric string, an empty string or not at all;
// zero means "not per-seat" (no plan allows zero seats), so it is omitted when encoding.
type Quantity int64

// UnmarshalJSON accepts 20, 20.0, "20", "", and null.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*q = 0
		return nil
	}
	s := string(b)
	if b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("quantity: %w", err)
		}
		s = strings.TrimSpace(s)
		if s == "" {
			*q = 0
			return nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*q = Quantity(n)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt64/2 {
		return fmt.Errorf("quantity: %q is not a whole number", s)
	}
	*q = Quantity(f)
	return nil
}

// Time is a timestamp decoded from any of the formats the APIs use: RFC 3339 with or without a zone, up to
// seven fractional digits, or a plain date. The zero Time encodes as null and is omitted with omitzero.
// Timestamps without a zone are UTC, as Microsoft documents.
type Time struct{ time.Time }

// timeLayouts are tried in order; Go's fractional-second parsing accepts any number of digits after ".".
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// ParseTime parses a timestamp in any of the formats Time accepts.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q is in no known format", s)
}

// UnmarshalJSON accepts the formats of ParseTime, an empty string and null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time: %w", err)
	}
	if strings.TrimSpace(s) == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := ParseTime(s)
	if err != nil {
		return err
	}
	// Microsoft's "no value" (0001-01-01T00:00:00) is the zero time already.
	t.Time = v
	return nil
}

// MarshalJSON writes RFC 3339 in UTC, or null for the zero time.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// NewTime wraps t, dropping the monotonic reading so values compare and encode predictably.
func NewTime(t time.Time) Time { return Time{t.Round(0).UTC()} }

// AADIdentifier names an Entra ID user: the purchaser or the beneficiary of a subscription.
type AADIdentifier struct {
	EmailID  string `json:"emailId,omitempty"`
	ObjectID string `json:"objectId,omitempty"`
	TenantID string `json:"tenantId,omitempty"`
	PUID     string `json:"puid,omitempty"`
}

// Term is a subscription's billing term. StartDate and EndDate are set only once the subscription is active.
type Term struct {
	TermUnit       string `json:"termUnit,omitempty"`
	StartDate      Time   `json:"startDate,omitzero"`
	EndDate        Time   `json:"endDate,omitzero"`
	ChargeDuration string `json:"chargeDuration,omitempty"`
}

// Subscription is a SaaS subscription as Get, List, Resolve and webhook payloads carry it.
type Subscription struct {
	ID                        string             `json:"id"`
	PublisherID               string             `json:"publisherId,omitempty"`
	OfferID                   string             `json:"offerId,omitempty"`
	Name                      string             `json:"name,omitempty"`
	Status                    SubscriptionStatus `json:"saasSubscriptionStatus,omitempty"`
	Beneficiary               AADIdentifier      `json:"beneficiary"`
	Purchaser                 AADIdentifier      `json:"purchaser"`
	PlanID                    string             `json:"planId,omitempty"`
	Quantity                  Quantity           `json:"quantity,omitempty"`
	Term                      Term               `json:"term"`
	AutoRenew                 bool               `json:"autoRenew"`
	IsTest                    bool               `json:"isTest"`
	IsFreeTrial               bool               `json:"isFreeTrial"`
	AllowedCustomerOperations []string           `json:"allowedCustomerOperations,omitempty"`
	SandboxType               string             `json:"sandboxType,omitempty"`
	SessionMode               string             `json:"sessionMode,omitempty"`
	Created                   Time               `json:"created,omitzero"`
}

// Allows reports whether the customer may perform op ("Read", "Update" or "Delete"). An absent list allows all.
func (s Subscription) Allows(op string) bool {
	if len(s.AllowedCustomerOperations) == 0 {
		return true
	}
	for _, o := range s.AllowedCustomerOperations {
		if strings.EqualFold(strings.TrimSpace(o), op) {
			return true
		}
	}
	return false
}

// ResolvedSubscription is the answer to Resolve: the subscription a purchase token stands for.
type ResolvedSubscription struct {
	ID               string       `json:"id"`
	SubscriptionName string       `json:"subscriptionName,omitempty"`
	OfferID          string       `json:"offerId,omitempty"`
	PlanID           string       `json:"planId,omitempty"`
	Quantity         Quantity     `json:"quantity,omitempty"`
	Subscription     Subscription `json:"subscription"`
}

// SubscriptionsPage is one page of List subscriptions.
type SubscriptionsPage struct {
	Subscriptions []Subscription `json:"subscriptions"`
	NextLink      string         `json:"@nextLink,omitempty"`
}

// SubscriberPlan is the body of Activate and of a plan or quantity change. A change carries exactly one field.
type SubscriberPlan struct {
	PlanID   string   `json:"planId,omitempty"`
	Quantity Quantity `json:"quantity,omitempty"`
}

// Plans is the answer to List available plans.
type Plans struct {
	Plans []Plan `json:"plans"`
}

// UnmarshalJSON accepts both the documented object and a bare array: Microsoft's own emulator answers
// 200 [] for a subscription it does not know, which is no plans rather than an undecodable answer.
func (p *Plans) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		return json.Unmarshal(b, &p.Plans)
	}
	type plain Plans
	return json.Unmarshal(b, (*plain)(p))
}

// Plan is a plan a subscription may move to (including its current one).
type Plan struct {
	PlanID         string         `json:"planId"`
	DisplayName    string         `json:"displayName,omitempty"`
	IsPrivate      bool           `json:"isPrivate"`
	Description    string         `json:"description,omitempty"`
	MinQuantity    Quantity       `json:"minQuantity,omitempty"`
	MaxQuantity    Quantity       `json:"maxQuantity,omitempty"`
	HasFreeTrials  bool           `json:"hasFreeTrials"`
	IsPricePerSeat bool           `json:"isPricePerSeat"`
	IsStopSell     bool           `json:"isStopSell"`
	Market         string         `json:"market,omitempty"`
	PlanComponents PlanComponents `json:"planComponents"`
	SourceOffers   []SourceOffer  `json:"sourceOffers,omitempty"`
}

// PlanComponents are a plan's prices and metering dimensions.
type PlanComponents struct {
	RecurrentBillingTerms []RecurrentBillingTerm `json:"recurrentBillingTerms,omitempty"`
	MeteringDimensions    []MeteringDimension    `json:"meteringDimensions,omitempty"`
}

// RecurrentBillingTerm is one price of a plan for one term.
type RecurrentBillingTerm struct {
	Currency                string                    `json:"currency,omitempty"`
	Price                   float64                   `json:"price"`
	TermUnit                string                    `json:"termUnit,omitempty"`
	TermDescription         string                    `json:"termDescription,omitempty"`
	MeteredQuantityIncluded []MeteredQuantityIncluded `json:"meteredQuantityIncluded,omitempty"`
}

// MeteredQuantityIncluded is how many units of a dimension the base price covers.
type MeteredQuantityIncluded struct {
	DimensionID string `json:"dimensionId"`
	Units       string `json:"units"`
}

// MeteringDimension is a custom meter of a plan.
type MeteringDimension struct {
	ID            string  `json:"id"`
	Currency      string  `json:"currency,omitempty"`
	PricePerUnit  float64 `json:"pricePerUnit"`
	UnitOfMeasure string  `json:"unitOfMeasure,omitempty"`
	DisplayName   string  `json:"displayName,omitempty"`
}

// SourceOffer names a private offer a purchase came through.
type SourceOffer struct {
	ExternalID string `json:"externalId"`
}

// Operation is an asynchronous change to a subscription: publisher-initiated (PATCH, DELETE) or announced
// by a webhook.
type Operation struct {
	ID                     string          `json:"id"`
	ActivityID             string          `json:"activityId,omitempty"`
	SubscriptionID         string          `json:"subscriptionId"`
	OfferID                string          `json:"offerId,omitempty"`
	PublisherID            string          `json:"publisherId,omitempty"`
	PlanID                 string          `json:"planId,omitempty"`
	Quantity               Quantity        `json:"quantity,omitempty"`
	Action                 Action          `json:"action"`
	TimeStamp              Time            `json:"timeStamp,omitzero"`
	Status                 OperationStatus `json:"status"`
	OperationRequestSource string          `json:"operationRequestSource,omitempty"`
	ErrorStatusCode        string          `json:"errorStatusCode,omitempty"`
	ErrorMessage           string          `json:"errorMessage,omitempty"`
}

// UnmarshalJSON also accepts the key "id  " of Microsoft's documented sample, and
// operationRequestedSource, the spelling Microsoft's own emulator uses, for operationRequestSource.
func (o *Operation) UnmarshalJSON(b []byte) error {
	type plain Operation
	var v struct {
		plain
		PaddedID        string `json:"id  "`
		RequestedSource string `json:"operationRequestedSource"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*o = Operation(v.plain)
	if o.ID == "" {
		o.ID = strings.TrimSpace(v.PaddedID)
	}
	if o.OperationRequestSource == "" {
		o.OperationRequestSource = v.RequestedSource
	}
	return nil
}

// OperationList is the answer to List outstanding operations.
type OperationList struct {
	Operations []Operation `json:"operations"`
}

// UnmarshalJSON accepts both the documented object and the bare array some emulators return.
func (l *OperationList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		return json.Unmarshal(b, &l.Operations)
	}
	type plain OperationList
	return json.Unmarshal(b, (*plain)(l))
}

// OperationUpdate is the body of PATCH operation: the publisher's decision.
type OperationUpdate struct {
	PlanID   string       `json:"planId,omitempty"`
	Quantity Quantity     `json:"quantity,omitempty"`
	Status   UpdateStatus `json:"status"`
}

// WebhookEvent is the payload Microsoft POSTs to the publisher's connection webhook. Subscription shows the
// subscription as Microsoft stores it at send time: for ChangePlan and ChangeQuantity still the old plan and
// quantity, while PlanID and Quantity at the top are the new ones.
type WebhookEvent struct {
	ID                     string          `json:"id"`
	ActivityID             string          `json:"activityId,omitempty"`
	SubscriptionID         string          `json:"subscriptionId"`
	PublisherID            string          `json:"publisherId,omitempty"`
	OfferID                string          `json:"offerId,omitempty"`
	PlanID                 string          `json:"planId,omitempty"`
	Quantity               Quantity        `json:"quantity,omitempty"`
	TimeStamp              Time            `json:"timeStamp,omitzero"`
	Action                 Action          `json:"action"`
	Status                 OperationStatus `json:"status,omitempty"`
	OperationRequestSource string          `json:"operationRequestSource,omitempty"`
	Subscription           *Subscription   `json:"subscription,omitempty"`
	PurchaseToken          *string         `json:"purchaseToken"`
}

// UnmarshalJSON also accepts operationRequestedSource for operationRequestSource, as on Operation.
func (e *WebhookEvent) UnmarshalJSON(b []byte) error {
	type plain WebhookEvent
	var v struct {
		plain
		RequestedSource string `json:"operationRequestedSource"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*e = WebhookEvent(v.plain)
	if e.OperationRequestSource == "" {
		e.OperationRequestSource = v.RequestedSource
	}
	return nil
}

// UsageEvent is one metered usage record: units of one dimension of one subscription in one hour.
type UsageEvent struct {
	ResourceID         string  `json:"resourceId,omitempty"`
	ResourceURI        string  `json:"resourceUri,omitempty"`
	Quantity           float64 `json:"quantity"`
	Dimension          string  `json:"dimension"`
	EffectiveStartTime Time    `json:"effectiveStartTime"`
	PlanID             string  `json:"planId"`
}

// UsageEventStatus is the status of a usage event. It is an open set.
type UsageEventStatus string

// Usage event statuses Microsoft documents.
const (
	UsageAccepted              UsageEventStatus = "Accepted"
	UsageExpired               UsageEventStatus = "Expired"
	UsageDuplicate             UsageEventStatus = "Duplicate"
	UsageError                 UsageEventStatus = "Error"
	UsageResourceNotFound      UsageEventStatus = "ResourceNotFound"
	UsageResourceNotAuthorized UsageEventStatus = "ResourceNotAuthorized"
	UsageResourceNotActive     UsageEventStatus = "ResourceNotActive"
	UsageInvalidDimension      UsageEventStatus = "InvalidDimension"
	UsageInvalidQuantity       UsageEventStatus = "InvalidQuantity"
	UsageBadArgument           UsageEventStatus = "BadArgument"
)

// UnmarshalJSON trims padding.
func (s *UsageEventStatus) UnmarshalJSON(b []byte) error {
	v, err := decodeOpenString(b)
	*s = UsageEventStatus(v)
	return err
}

// UsageEventResult is Microsoft's record of a usage event: the answer to a single event, one item of a batch
// answer, and the accepted event a duplicate refers to.
type UsageEventResult struct {
	UsageEventID       string              `json:"usageEventId,omitempty"`
	Status             UsageEventStatus    `json:"status"`
	MessageTime        Time                `json:"messageTime,omitzero"`
	ResourceID         string              `json:"resourceId,omitempty"`
	ResourceURI        string              `json:"resourceUri,omitempty"`
	Quantity           float64             `json:"quantity"`
	Dimension          string              `json:"dimension,omitempty"`
	EffectiveStartTime Time                `json:"effectiveStartTime,omitzero"`
	PlanID             string              `json:"planId,omitempty"`
	Error              *UsageEventConflict `json:"error,omitempty"`
}

// UsageEventConflict is the body of a duplicate (409) answer and the error of a failed batch item.
type UsageEventConflict struct {
	AdditionalInfo struct {
		AcceptedMessage *UsageEventResult `json:"acceptedMessage,omitempty"`
	} `json:"additionalInfo"`
	Message string `json:"message,omitempty"`
	Code    string `json:"code,omitempty"`
}

// BatchUsageEventRequest is the body of a batch of usage events.
type BatchUsageEventRequest struct {
	Request []UsageEvent `json:"request"`
}

// BatchUsageEventResult is the answer to a batch: one result per event, in order. HTTP 200 does not mean
// every event was accepted.
type BatchUsageEventResult struct {
	Count  int                `json:"count"`
	Result []UsageEventResult `json:"result"`
}

// UsageReportQuery filters the usage-events report. UsageStartDate is required.
type UsageReportQuery struct {
	UsageStartDate      time.Time
	UsageEndDate        time.Time
	OfferID             string
	PlanID              string
	Dimension           string
	AzureSubscriptionID string
	ReconStatus         string
}

// UsageReportItem is one daily aggregate of the usage-events report.
type UsageReportItem struct {
	UsageDate           Time    `json:"usageDate,omitzero"`
	UsageResourceID     string  `json:"usageResourceId,omitempty"`
	Dimension           string  `json:"dimension,omitempty"`
	PlanID              string  `json:"planId,omitempty"`
	PlanName            string  `json:"planName,omitempty"`
	OfferID             string  `json:"offerId,omitempty"`
	OfferName           string  `json:"offerName,omitempty"`
	OfferType           string  `json:"offerType,omitempty"`
	AzureSubscriptionID string  `json:"azureSubscriptionId,omitempty"`
	ReconStatus         string  `json:"reconStatus,omitempty"`
	SubmittedQuantity   float64 `json:"submittedQuantity"`
	ProcessedQuantity   float64 `json:"processedQuantity"`
	SubmittedCount      float64 `json:"submittedCount"`
}

// decodeOpenString decodes a JSON string (or null) and trims surrounding white space.
func decodeOpenString(b []byte) (string, error) {
	if string(bytes.TrimSpace(b)) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", err
	}
	return strings.TrimSpace(s), nil
}
