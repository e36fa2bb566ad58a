package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"saasengine/marketplace"
)

// Config is the emulated Marketplace: its publishers, their offers and plans, and Microsoft's timings.
type Config struct {
	Publishers []Publisher `json:"publishers"`

	// PageSize is how many subscriptions one List page holds (Microsoft documents 100).
	PageSize int `json:"pageSize,omitempty"`
	// OperationDelay is how long a publisher-initiated PATCH or DELETE stays InProgress.
	OperationDelay Duration `json:"operationDelay,omitempty"`
	// AutoAcceptAfter is the window, from the creation of a customer's ChangePlan/ChangeQuantity (or
	// Reinstate), in which the publisher may reject it; past it the operation succeeds, whether or not the
	// webhook was delivered.
	AutoAcceptAfter Duration `json:"autoAcceptAfter,omitempty"`
	// TokenTTL is how long a purchase token resolves (24 h per Microsoft's current documentation).
	TokenTTL Duration `json:"tokenTTL,omitempty"`
	// RedeliveryBase and RedeliveryMax bound the backoff between webhook redeliveries; RedeliveryFor is
	// how long Microsoft keeps trying (8 h).
	RedeliveryBase Duration `json:"redeliveryBase,omitempty"`
	RedeliveryMax  Duration `json:"redeliveryMax,omitempty"`
	RedeliveryFor  Duration `json:"redeliveryFor,omitempty"`
	// ReorderHold is how long a webhook held back by a "reorder" fault waits for a later one to overtake it.
	ReorderHold Duration `json:"reorderHold,omitempty"`
	// ReadLag is how long Get and List subscription keep showing a subscription as it was before an
	// operation changed it, while Get operation already shows the operation's terminal status: Microsoft's
	// reads lag its operations by a second or two. Nil means DefaultReadLag; NewDuration(0) turns it off.
	ReadLag *Duration `json:"readLag,omitempty"`

	// SignIn is the Entra ID buyers sign in to landing pages with: test users and registered apps
	// (buyers.go, signin.go).
	SignIn SignIn `json:"signIn,omitzero"`
}

// DefaultReadLag is the read lag of a configuration that sets none: what Microsoft's own emulator documents.
const DefaultReadLag = 2 * time.Second

// NewDuration returns a pointer to d, for Config.ReadLag.
func NewDuration(d time.Duration) *Duration {
	v := Duration(d)
	return &v
}

// Publisher is one ISV: the Entra tenant and app its tokens carry, where its webhook and landing page are,
// and its offers.
type Publisher struct {
	ID       string `json:"id"`
	TenantID string `json:"tenantId"`
	AppID    string `json:"appId"`
	// TokenSecret, when set, is the HS256 key the publisher's development tokens must be signed with;
	// empty accepts any well-formed token carrying the right claims (as a local emulator may).
	TokenSecret string  `json:"tokenSecret,omitempty"`
	WebhookURL  string  `json:"webhookUrl,omitempty"`
	LandingURL  string  `json:"landingUrl,omitempty"`
	Offers      []Offer `json:"offers"`
}

// Offer is a SaaS offer with its plans.
type Offer struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName,omitempty"`
	Plans       []Plan `json:"plans"`
}

// Plan is one plan of an offer, as List available plans describes it.
type Plan struct {
	ID             string `json:"id"`
	DisplayName    string `json:"displayName,omitempty"`
	Description    string `json:"description,omitempty"`
	IsPricePerSeat bool   `json:"isPricePerSeat,omitempty"`
	MinQuantity    int64  `json:"minQuantity,omitempty"`
	MaxQuantity    int64  `json:"maxQuantity,omitempty"`
	HasFreeTrials  bool   `json:"hasFreeTrials,omitempty"`
	IsPrivate      bool   `json:"isPrivate,omitempty"`
	IsStopSell     bool   `json:"isStopSell,omitempty"`
	// Audience lists the buyer tenants that may see a private plan.
	Audience   []string    `json:"audience,omitempty"`
	TermUnit   string      `json:"termUnit,omitempty"`
	Price      float64     `json:"price,omitempty"`
	Currency   string      `json:"currency,omitempty"`
	Dimensions []Dimension `json:"dimensions,omitempty"`
}

// Dimension is a custom metering dimension of a plan.
type Dimension struct {
	ID            string  `json:"id"`
	DisplayName   string  `json:"displayName,omitempty"`
	UnitOfMeasure string  `json:"unitOfMeasure,omitempty"`
	PricePerUnit  float64 `json:"pricePerUnit,omitempty"`
	Included      int64   `json:"included,omitempty"`
}

// Duration is a time.Duration written as "10s" in configuration files.
type Duration time.Duration

// UnmarshalJSON accepts "1m30s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want \"10s\" or seconds, got %s", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as "10s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Demo IDs: fixed so that a development setup's configuration and bookmarks survive restarts.
const (
	DemoTenantID    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	DemoAppID       = "5b1c2f3e-8a4d-4f60-9c1e-0d2b7a6e4c11"
	DemoPublisherID = "contoso"
	DemoOfferID     = "contoso-analytics"
)

// DemoConfig is a publisher with one offer that exercises every kind of plan: flat rate, per seat with
// bounds, metered with dimensions, and a free trial.
func DemoConfig() Config {
	return Config{
		Publishers: []Publisher{{
			ID:       DemoPublisherID,
			TenantID: DemoTenantID,
			AppID:    DemoAppID,
			Offers: []Offer{{
				ID:          DemoOfferID,
				DisplayName: "Contoso Analytics",
				Plans: []Plan{
					{ID: "basic", DisplayName: "Basic", Description: "Flat monthly fee for small teams.", TermUnit: "P1M", Price: 49, Currency: "USD"},
					{ID: "team", DisplayName: "Team", Description: "Per seat, 5 to 500 seats.", IsPricePerSeat: true, MinQuantity: 5, MaxQuantity: 500, TermUnit: "P1M", Price: 12, Currency: "USD"},
					{ID: "enterprise", DisplayName: "Enterprise", Description: "Per seat, yearly, 50 to 10000 seats.", IsPricePerSeat: true, MinQuantity: 50, MaxQuantity: 10000, TermUnit: "P1Y", Price: 99, Currency: "USD"},
					{ID: "metered", DisplayName: "Pay as you go", Description: "Base fee plus metered API calls and storage.", TermUnit: "P1M", Price: 10, Currency: "USD",
						Dimensions: []Dimension{
							{ID: "api_calls", DisplayName: "API calls (per 1000)", UnitOfMeasure: "1000 calls", PricePerUnit: 0.5, Included: 100},
							{ID: "storage_gb", DisplayName: "Storage", UnitOfMeasure: "GB-hour", PricePerUnit: 0.01},
						}},
					{ID: "trial", DisplayName: "Free trial", Description: "One month free, then Basic pricing.", HasFreeTrials: true, TermUnit: "P1M", Price: 49, Currency: "USD"},
				},
			}},
		}},
	}
}

// LoadConfig reads a JSON configuration file.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("emulator config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("emulator config %s: %w", path, err)
	}
	return c, c.validate()
}

func (c *Config) withDefaults() {
	if c.PageSize <= 0 {
		c.PageSize = 100
	}
	if c.OperationDelay <= 0 {
		c.OperationDelay = Duration(2 * time.Second)
	}
	if c.AutoAcceptAfter <= 0 {
		c.AutoAcceptAfter = Duration(10 * time.Second)
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = Duration(24 * time.Hour)
	}
	if c.RedeliveryBase <= 0 {
		c.RedeliveryBase = Duration(time.Second)
	}
	if c.RedeliveryMax <= 0 {
		c.RedeliveryMax = Duration(time.Minute)
	}
	if c.RedeliveryFor <= 0 {
		c.RedeliveryFor = Duration(8 * time.Hour)
	}
	if c.ReorderHold <= 0 {
		c.ReorderHold = Duration(3 * time.Second)
	}
	if c.ReadLag == nil {
		c.ReadLag = NewDuration(DefaultReadLag)
	}
}

// readLag is the configured read lag (after withDefaults).
func (c *Config) readLag() time.Duration {
	if c.ReadLag == nil {
		return DefaultReadLag
	}
	return c.ReadLag.D()
}

func (c *Config) validate() error {
	if len(c.Publishers) == 0 {
		return errors.New("emulator config: no publishers")
	}
	if c.ReadLag != nil && *c.ReadLag < 0 {
		return fmt.Errorf("emulator config: readLag %s is negative; use 0 for none", c.ReadLag.D())
	}
	offers := map[string]bool{}
	pubs := map[string]bool{}
	for _, p := range c.Publishers {
		if p.TenantID == "" || p.AppID == "" {
			return fmt.Errorf("emulator config: publisher %q needs tenantId and appId", p.ID)
		}
		if pubs[p.TenantID+"/"+p.AppID] {
			return fmt.Errorf("emulator config: tenant %s and app %s are used by two publishers", p.TenantID, p.AppID)
		}
		pubs[p.TenantID+"/"+p.AppID] = true
		for _, o := range p.Offers {
			if o.ID == "" || offers[o.ID] {
				return fmt.Errorf("emulator config: offer ID %q is empty or not unique", o.ID)
			}
			offers[o.ID] = true
			if len(o.Plans) == 0 {
				return fmt.Errorf("emulator config: offer %q has no plans", o.ID)
			}
			for _, pl := range o.Plans {
				if pl.ID == "" {
					return fmt.Errorf("emulator config: offer %q has a plan without id", o.ID)
				}
				if pl.IsPricePerSeat && (pl.MinQuantity < 1 || pl.MaxQuantity < pl.MinQuantity) {
					return fmt.Errorf("emulator config: per-seat plan %s/%s needs 1 <= minQuantity <= maxQuantity", o.ID, pl.ID)
				}
			}
		}
	}
	return nil
}

// apiPlan is the plan as List available plans returns it.
func (p Plan) apiPlan() marketplace.Plan {
	out := marketplace.Plan{
		PlanID:         p.ID,
		DisplayName:    p.DisplayName,
		Description:    p.Description,
		IsPrivate:      p.IsPrivate,
		HasFreeTrials:  p.HasFreeTrials,
		IsPricePerSeat: p.IsPricePerSeat,
		IsStopSell:     p.IsStopSell,
		Market:         "US",
	}
	if p.IsPricePerSeat {
		out.MinQuantity = marketplace.Quantity(p.MinQuantity)
		out.MaxQuantity = marketplace.Quantity(p.MaxQuantity)
	}
	term := marketplace.RecurrentBillingTerm{Currency: p.Currency, Price: p.Price, TermUnit: p.termUnit(), TermDescription: termDescription(p.termUnit())}
	for _, d := range p.Dimensions {
		out.PlanComponents.MeteringDimensions = append(out.PlanComponents.MeteringDimensions, marketplace.MeteringDimension{
			ID: d.ID, Currency: p.Currency, PricePerUnit: d.PricePerUnit, UnitOfMeasure: d.UnitOfMeasure, DisplayName: d.DisplayName,
		})
		if d.Included > 0 {
			term.MeteredQuantityIncluded = append(term.MeteredQuantityIncluded, marketplace.MeteredQuantityIncluded{DimensionID: d.ID, Units: fmt.Sprint(d.Included)})
		}
	}
	out.PlanComponents.RecurrentBillingTerms = []marketplace.RecurrentBillingTerm{term}
	return out
}

func (p Plan) termUnit() string {
	if p.TermUnit == "" {
		return "P1M"
	}
	return p.TermUnit
}

func (p Plan) visibleTo(tenantID string) bool {
	if !p.IsPrivate {
		return true
	}
	for _, t := range p.Audience {
		if t == tenantID {
			return true
		}
	}
	return false
}

func (p Plan) dimension(id string) bool {
	for _, d := range p.Dimensions {
		if d.ID == id {
			return true
		}
	}
	return false
}

func termDescription(unit string) string {
	switch unit {
	case "P1M":
		return "1 month"
	case "P1Y":
		return "1 year"
	case "P2Y":
		return "2 years"
	case "P3Y":
		return "3 years"
	}
	return unit
}

// termEnd is the last day of a term that starts at start: Microsoft's endDate is the last valid day and
// the renewal happens the next day.
func termEnd(start time.Time, unit string) time.Time {
	switch unit {
	case "P1Y":
		return start.AddDate(1, 0, -1)
	case "P2Y":
		return start.AddDate(2, 0, -1)
	case "P3Y":
		return start.AddDate(3, 0, -1)
	case "P4Y":
		return start.AddDate(4, 0, -1)
	case "P5Y":
		return start.AddDate(5, 0, -1)
	}
	return start.AddDate(0, 1, -1)
}
