// Package emulator is a faithful, self-contained Microsoft commercial marketplace for one or more
// publishers: the SaaS Fulfillment API v2, the Operations API and the Metering API at the paths of
// Microsoft's OpenAPI files, signed webhooks with their OpenID discovery and JWKS endpoints, a control API
// to act as the customer or as Microsoft, fault injection, and a small purchase page.
//
// It runs in process (tests, the all-in-one development command) or alone (cmd/emulator). Its behaviour
// follows Microsoft's documentation and what real integrations observed; see README.md in this folder.
package emulator

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"saasengine/marketplace"
)

// Options configure an Emulator.
type Options struct {
	Config Config
	// StateFile keeps subscriptions, operations, tokens, usage and the signing key across restarts;
	// empty keeps everything in memory.
	StateFile string
	// PublicURL is the emulator's own base URL (scheme and host), used in Operation-Location, @nextLink,
	// landing links and as the token issuer. It may be set later with SetPublicURL.
	PublicURL string
	// HTTPClient delivers webhooks; default has a 10-second timeout, Microsoft's decision window.
	HTTPClient *http.Client
	Logger     *zap.Logger
	// Faults are injected from the start, as AddFault does.
	Faults []Fault
}

// Emulator is the emulated Marketplace. It is safe for concurrent use.
type Emulator struct {
	cfg       Config
	stateFile string
	log       *zap.Logger
	http      *http.Client

	mu         sync.Mutex
	st         *store
	publicURL  string
	faults     []*Fault
	usageIndex map[string]*usageRecord
	// calls counts API calls per endpoint and subscription, for tests ("was Activate called?").
	calls map[string]int
	// applied counts the API calls that took effect (answered 2xx, or lost after taking effect).
	applied map[string]int
	key     *rsa.PrivateKey
	keyID   string
	// posting holds, per operation, the connections of its webhook's posts awaiting the publisher's
	// response: Microsoft expects no PATCH of the operation before that response (answerconn.go,
	// store.PatchesBeforeAnswer).
	posting map[string][]*atomic.Pointer[watchedConn]
	// wake nudges the background loop when a delivery or operation became due.
	wake chan struct{}
	// signin holds buyers' authorization codes and sign-in faults (signin.go).
	signin *signInStore

	router *mux.Router
	stop   context.CancelFunc
	done   sync.WaitGroup
}

// New builds an emulator, loading its state file if there is one, and starts its background loop
// (operation completion, auto-accept, webhook delivery). Close stops it.
func New(opts Options) (*Emulator, error) {
	cfg := opts.Config
	if len(cfg.Publishers) == 0 {
		cfg = DemoConfig()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.withDefaults()
	e := &Emulator{
		cfg:        cfg,
		stateFile:  opts.StateFile,
		log:        opts.Logger,
		http:       opts.HTTPClient,
		publicURL:  strings.TrimRight(opts.PublicURL, "/"),
		usageIndex: map[string]*usageRecord{},
		calls:      map[string]int{},
		applied:    map[string]int{},
		wake:       make(chan struct{}, 1),
	}
	if e.log == nil {
		e.log = zap.NewNop()
	}
	if e.http == nil {
		e.http = webhookClient(10 * time.Second)
	}
	st := newStore()
	if e.stateFile != "" {
		var err error
		if st, err = loadStore(e.stateFile); err != nil {
			return nil, err
		}
	}
	e.st = st
	if err := e.checkState(); err != nil {
		return nil, err
	}
	for _, u := range st.Usage {
		e.usageIndex[usageKey(u.Result.ResourceID, u.Result.Dimension, u.Result.EffectiveStartTime.Time)] = u
	}
	if err := e.loadOrCreateKey(); err != nil {
		return nil, err
	}
	for _, f := range opts.Faults {
		if err := e.AddFault(f); err != nil {
			return nil, err
		}
	}
	e.router = e.routes()
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	e.done.Add(1)
	go e.loop(ctx)
	return e, nil
}

// Close stops background work and saves the state.
func (e *Emulator) Close() error {
	e.stop()
	e.done.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.saveLocked()
}

// ServeHTTP serves the Marketplace APIs, the OpenID endpoints, the control API and the purchase page.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.router.ServeHTTP(w, r) }

// SetPublicURL tells the emulator its own base URL once it is listening.
func (e *Emulator) SetPublicURL(u string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.publicURL = strings.TrimRight(u, "/")
}

// SetWebhookURL points a publisher's connection webhook somewhere (the all-in-one command learns the
// webhook server's address only after it listens). An empty publisherID means every publisher.
func (e *Emulator) SetWebhookURL(publisherID, url string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.cfg.Publishers {
		if publisherID == "" || e.cfg.Publishers[i].ID == publisherID {
			e.cfg.Publishers[i].WebhookURL = url
		}
	}
}

// SetLandingURL sets a publisher's landing page URL, like SetWebhookURL.
func (e *Emulator) SetLandingURL(publisherID, url string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.cfg.Publishers {
		if publisherID == "" || e.cfg.Publishers[i].ID == publisherID {
			e.cfg.Publishers[i].LandingURL = url
		}
	}
}

// Calls reports how many API calls reached endpoint (one of the Endpoint names) for a subscription;
// an empty subscriptionID counts calls not about one subscription (List, metering).
func (e *Emulator) Calls(endpoint, subscriptionID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[endpoint+"|"+strings.ToLower(subscriptionID)]
}

// Applied reports how many API calls of endpoint for a subscription took effect: answered with success,
// or taken effect before a lost-answer fault replaced the answer.
func (e *Emulator) Applied(endpoint, subscriptionID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.applied[endpoint+"|"+strings.ToLower(subscriptionID)]
}

// CallCount is how many calls of one endpoint about one subscription arrived and took effect.
type CallCount struct {
	Endpoint       string `json:"endpoint"`
	SubscriptionID string `json:"subscriptionId,omitempty"`
	Calls          int    `json:"calls"`
	Applied        int    `json:"applied"`
}

// CallCounts returns every endpoint's calls per subscription, sorted by endpoint and subscription.
func (e *Emulator) CallCounts() []CallCount {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]CallCount, 0, len(e.calls))
	for k, n := range e.calls {
		endpoint, sub, _ := strings.Cut(k, "|")
		out = append(out, CallCount{Endpoint: endpoint, SubscriptionID: sub, Calls: n, Applied: e.applied[k]})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Endpoint != out[j].Endpoint {
			return out[i].Endpoint < out[j].Endpoint
		}
		return out[i].SubscriptionID < out[j].SubscriptionID
	})
	return out
}

// APIBaseURL is the base URL a marketplace.Client uses to talk to this emulator.
func (e *Emulator) APIBaseURL() string { return e.base() + "/api" }

// Authority is what a webhook-side Entra validator uses in place of https://login.microsoftonline.com.
func (e *Emulator) Authority() string { return e.base() }

func (e *Emulator) base() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.baseLocked()
}

func (e *Emulator) baseLocked() string {
	if e.publicURL == "" {
		return "http://localhost"
	}
	return e.publicURL
}

// now is the emulated clock: real time moved by the control API's clock offset.
func (e *Emulator) now() time.Time { return time.Now().UTC().Add(e.st.ClockOffset) }

func (e *Emulator) saveLocked() error {
	if e.stateFile == "" {
		return nil
	}
	return e.st.save(e.stateFile)
}

// changed persists the state after a mutation and wakes the background loop. Persistence failures are
// logged, not returned: the in-memory state stays authoritative for this process.
func (e *Emulator) changedLocked() {
	if err := e.saveLocked(); err != nil {
		e.log.Error("saving emulator state", zap.Error(err))
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// checkState refuses a state file whose subscriptions or pending operations name a publisher, offer or plan
// the configuration does not have (a file written with another or older configuration): serving it would
// fail on the first call about such a subscription, far from the cause.
func (e *Emulator) checkState() error {
	var problems []string
	ids := make([]string, 0, len(e.st.Subscriptions))
	for id := range e.st.Subscriptions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		s := e.st.Subscriptions[id]
		if s == nil {
			problems = append(problems, fmt.Sprintf("subscription %s: empty entry", id))
			continue
		}
		if e.publisherByID(s.Publisher) == nil {
			problems = append(problems, fmt.Sprintf("subscription %s: publisher %q is not configured", id, s.Publisher))
			continue
		}
		pub, offer := e.offer(s.Sub.OfferID)
		switch {
		case offer == nil:
			problems = append(problems, fmt.Sprintf("subscription %s: offer %q is not configured", id, s.Sub.OfferID))
		case pub.ID != s.Publisher:
			problems = append(problems, fmt.Sprintf("subscription %s: offer %q belongs to publisher %q, not %q", id, s.Sub.OfferID, pub.ID, s.Publisher))
		case e.plan(s.Sub.OfferID, s.Sub.PlanID) == nil:
			problems = append(problems, fmt.Sprintf("subscription %s: plan %q of offer %q is not configured", id, s.Sub.PlanID, s.Sub.OfferID))
		}
	}
	opIDs := make([]string, 0, len(e.st.Operations))
	for id, op := range e.st.Operations {
		if op != nil && !op.Op.Status.Terminal() {
			opIDs = append(opIDs, id)
		}
	}
	sort.Strings(opIDs)
	for _, id := range opIDs {
		op := e.st.Operations[id]
		s := e.st.Subscriptions[op.Op.SubscriptionID]
		switch {
		case s == nil:
			problems = append(problems, fmt.Sprintf("pending operation %s: subscription %s is not in the state", id, op.Op.SubscriptionID))
		case op.Op.Action == marketplace.ActionChangePlan && e.plan(s.Sub.OfferID, op.Op.PlanID) == nil:
			problems = append(problems, fmt.Sprintf("pending operation %s: target plan %q of offer %q is not configured", id, op.Op.PlanID, s.Sub.OfferID))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	const show = 5
	msg := strings.Join(problems[:min(len(problems), show)], "; ")
	if len(problems) > show {
		msg += fmt.Sprintf("; and %d more", len(problems)-show)
	}
	return fmt.Errorf("emulator state %s does not match the configuration (written with another one? fix the configuration or remove the file): %s", e.stateFile, msg)
}

func (e *Emulator) loadOrCreateKey() error {
	if e.st.SigningKeyPEM != "" {
		block, _ := pem.Decode([]byte(e.st.SigningKeyPEM))
		if block == nil {
			return errors.New("emulator state: signing key is not PEM")
		}
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return fmt.Errorf("emulator state: signing key: %w", err)
		}
		e.key = k
	} else {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return fmt.Errorf("emulator: signing key: %w", err)
		}
		e.key = k
		e.st.SigningKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	}
	// The key ID is derived from the key, so it stays stable across restarts.
	e.keyID = uuid.NewSHA1(uuid.NameSpaceOID, e.key.N.Bytes()).String()
	return nil
}

// loop completes operations that are due and delivers webhooks, one goroutine per publisher so that one
// publisher's deliveries keep their order while another's endpoint is slow.
func (e *Emulator) loop(ctx context.Context) {
	defer e.done.Done()
	var senders sync.WaitGroup
	kicks := make([]chan struct{}, len(e.cfg.Publishers))
	for i := range e.cfg.Publishers {
		kicks[i] = make(chan struct{}, 1)
		senders.Add(1)
		go func(i int) {
			defer senders.Done()
			e.deliverLoop(ctx, e.cfg.Publishers[i].ID, kicks[i])
		}(i)
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			senders.Wait()
			return
		case <-t.C:
		case <-e.wake:
		}
		e.mu.Lock()
		e.advanceOperationsLocked()
		e.mu.Unlock()
		for _, k := range kicks {
			select {
			case k <- struct{}{}:
			default:
			}
		}
	}
}
