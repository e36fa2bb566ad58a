package emulator

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"saasengine/marketplace"
)

// store is the emulator's whole state. It is what the control API returns and what the state file holds.
type store struct {
	Subscriptions map[string]*subscription `json:"subscriptions"`
	// Seq orders subscriptions by creation, for stable paging.
	Seq        int64                  `json:"seq"`
	Operations map[string]*operation  `json:"operations"`
	Tokens     map[string]*tokenGrant `json:"tokens"`
	Usage      []*usageRecord         `json:"usage"`
	Deliveries []*delivery            `json:"deliveries"`
	// PatchesBeforeAnswer lists the operations PATCHed while their webhook awaited its first response.
	PatchesBeforeAnswer []string `json:"patchesBeforeAnswer,omitempty"`
	// SigningKeyPEM keeps the webhook signing key across restarts, so tokens issued before a restart
	// still verify against the published JWKS.
	SigningKeyPEM string `json:"signingKeyPem"`
	// ClockOffset is how far the control API has moved the emulated clock ahead of real time.
	ClockOffset time.Duration `json:"clockOffset"`
}

type subscription struct {
	Sub            marketplace.Subscription `json:"subscription"`
	Publisher      string                   `json:"publisher"`
	Seq            int64                    `json:"seq"`
	PrivateOfferID string                   `json:"privateOfferId,omitempty"`
	ActivatedAt    time.Time                `json:"activatedAt,omitzero"`
	UnsubscribedAt time.Time                `json:"unsubscribedAt,omitzero"`
	// VisibleAt is when Sub, as the last operation left it, shows in Get and List subscription; until then
	// they serve the newest visible version in Earlier (Microsoft's reads lag its operations).
	VisibleAt time.Time `json:"visibleAt,omitzero"`
	// Earlier are the versions of Sub that operations replaced while reads may still show them, oldest
	// first.
	Earlier []version `json:"earlier,omitempty"`
}

// version is a subscription as it was, and when it became visible to reads.
type version struct {
	Sub       marketplace.Subscription `json:"subscription"`
	VisibleAt time.Time                `json:"visibleAt,omitzero"`
}

// read is the subscription as Get and List subscription show it at now: the newest version that is
// visible by then.
func (s *subscription) read(now time.Time) marketplace.Subscription {
	if !now.Before(s.VisibleAt) {
		return s.Sub
	}
	for i := len(s.Earlier) - 1; i >= 0; i-- {
		if !now.Before(s.Earlier[i].VisibleAt) {
			return s.Earlier[i].Sub
		}
	}
	// Earlier always starts with a version visible before the first lagged change; should it not, the
	// truth is the only thing left to show.
	return s.Sub
}

// lag records that an operation just changed Sub from before: reads keep showing the versions visible so
// far until now+lag, then Sub. Versions no read can show any more are dropped.
func (s *subscription) lag(before marketplace.Subscription, now time.Time, lag time.Duration) {
	if lag <= 0 {
		s.VisibleAt, s.Earlier = time.Time{}, nil
		return
	}
	s.Earlier = append(s.Earlier, version{Sub: before, VisibleAt: s.VisibleAt})
	s.VisibleAt = now.Add(lag)
	// Keep from the newest version visible at now on: older ones are hidden behind it for good.
	for i := len(s.Earlier) - 1; i >= 0; i-- {
		if !now.Before(s.Earlier[i].VisibleAt) {
			s.Earlier = s.Earlier[i:]
			break
		}
	}
}

type operation struct {
	Op marketplace.Operation `json:"operation"`
	// CompleteAt is when a publisher-initiated operation finishes.
	CompleteAt time.Time `json:"completeAt,omitzero"`
	// AcceptAt is when a customer-initiated change (or Reinstate) succeeds on its own unless the publisher
	// decided it first (PATCH, or a 4xx webhook answer to a change); set when the operation is created.
	AcceptAt time.Time `json:"acceptAt,omitzero"`
	// Outcome forces the terminal status of a publisher-initiated operation (fault injection).
	Outcome marketplace.OperationStatus `json:"outcome,omitempty"`
	// PatchedAt is when the publisher's first well-formed PATCH of the operation arrived (real time),
	// applied or refused; benchmarks time acknowledgements with it. Microsoft's API does not show it.
	PatchedAt time.Time `json:"patchedAt,omitzero"`
	// Answered is set once a post of the operation's webhook has had its response: a PATCH while a
	// later copy or redelivery is in flight is no breach.
	Answered bool `json:"answered,omitempty"`
	// PostedAt is when the first post of the operation's webhook went out, AnsweredAt when a post first had
	// its response (real time): with PatchedAt, they show how a PATCH before the answer came about.
	PostedAt   time.Time `json:"postedAt,omitzero"`
	AnsweredAt time.Time `json:"answeredAt,omitzero"`
}

type tokenGrant struct {
	SubscriptionID string    `json:"subscriptionId"`
	Expires        time.Time `json:"expires"`
}

type usageRecord struct {
	Result    marketplace.UsageEventResult `json:"result"`
	Publisher string                       `json:"publisher"`
	OfferID   string                       `json:"offerId"`
}

func newStore() *store {
	return &store{
		Subscriptions: map[string]*subscription{},
		Operations:    map[string]*operation{},
		Tokens:        map[string]*tokenGrant{},
	}
}

func loadStore(path string) (*store, error) {
	s := newStore()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("emulator state: %w", err)
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("emulator state %s: %w", path, err)
	}
	if s.Subscriptions == nil {
		s.Subscriptions = map[string]*subscription{}
	}
	if s.Operations == nil {
		s.Operations = map[string]*operation{}
	}
	if s.Tokens == nil {
		s.Tokens = map[string]*tokenGrant{}
	}
	return s, nil
}

// save writes the state atomically: a crash mid-write leaves the previous file intact.
func (s *store) save(path string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("emulator state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("emulator state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("emulator state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("emulator state: %w", err)
	}
	return nil
}

// outstanding is the operation of a subscription that still waits for a decision or completion.
func (s *store) outstanding(subscriptionID string) *operation {
	for _, op := range s.Operations {
		if op.Op.SubscriptionID == subscriptionID && !op.Op.Status.Terminal() {
			return op
		}
	}
	return nil
}
