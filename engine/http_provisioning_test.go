package engine_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/worker"

	"saasengine/engine"
	"saasengine/internal/stacktest"
	"saasengine/marketplace"
	"saasengine/provisioning"
	"saasengine/workflows/subscription"
)

// isvService is an ISV's provisioning service as the README describes it: it checks every callback's
// signature, applies an idempotency key once and answers repeats with the first answer, and refuses seat
// counts above maxSeats. Its first provision call fails with 503, as a service being deployed would.
type isvService struct {
	t        *testing.T
	secret   string
	maxSeats int64

	mu        sync.Mutex
	answers   map[string][]byte // idempotency key → first answer
	applied   map[string]int    // path → state changes made
	calls     int
	failFirst bool
	forged    int
	seats     int64
	suspended bool
	gone      bool
}

func (s *isvService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if !provisioning.VerifySignature(s.secret, body, r.Header.Get(provisioning.HeaderTimestamp), r.Header.Get(provisioning.HeaderSignature), provisioning.DefaultSignatureTolerance) {
		s.forged++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/isv/")
	key := r.Header.Get(provisioning.HeaderIdempotencyKey)
	if key == "" {
		s.t.Errorf("%s without an idempotency key", path)
	}
	if path == provisioning.PathProvision && s.failFirst {
		s.failFirst = false
		http.Error(w, "deploying", http.StatusServiceUnavailable)
		return
	}
	if prev, ok := s.answers[key]; ok {
		_, _ = w.Write(prev)
		return
	}
	answer := []byte(`{}`)
	switch path {
	case provisioning.PathDecideChange:
		var req provisioning.ChangeRequest
		_ = json.Unmarshal(body, &req)
		d := provisioning.Decision{Accept: req.Action != marketplace.ActionChangeQuantity || req.Quantity <= s.maxSeats}
		if !d.Accept {
			d.Reason = "your contract allows at most 30 seats"
		}
		answer, _ = json.Marshal(d)
	case provisioning.PathProvision:
		var req provisioning.Request
		_ = json.Unmarshal(body, &req)
		s.seats = int64(req.Subscription.Quantity)
		s.applied[path]++
	case provisioning.PathApplyChange:
		var req provisioning.ChangeRequest
		_ = json.Unmarshal(body, &req)
		if req.Quantity > 0 {
			s.seats = req.Quantity
		}
		s.applied[path]++
	case provisioning.PathSuspend:
		s.suspended = true
		s.applied[path]++
	case provisioning.PathReinstate:
		s.suspended = false
		s.applied[path]++
	case provisioning.PathDeprovision:
		s.gone = true
		s.applied[path]++
	default:
		http.NotFound(w, r)
		return
	}
	s.answers[key] = answer
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(answer)
}

func (s *isvService) view() (seats int64, suspended, gone bool, applied map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	applied = map[string]int{}
	for k, v := range s.applied {
		applied[k] = v
	}
	return s.seats, s.suspended, s.gone, applied
}

// A subscription's whole life against the ISV's own service over the signed HTTP callback
// (PROVISIONING_MODE=http): every step reaches it once, signed, with its idempotency key; a failing
// first call is retried; a refused seat change is refused to Microsoft too.
func TestLifecycleWithTheHTTPProvisioner(t *testing.T) {
	isv := &isvService{t: t, secret: "isv-secret", maxSeats: 30, answers: map[string][]byte{}, applied: map[string]int{}, failFirst: true}
	srv := httptest.NewServer(isv)
	defer srv.Close()

	s := stacktest.Start(t, stacktest.Options{NoWorker: true})
	w := engine.NewWorker(s.Client, s.TaskQueue, engine.Deps{Marketplace: s.Emu.Client,
		Provisioner: &provisioning.HTTP{BaseURL: srv.URL + "/isv", Secret: isv.secret}}, worker.Options{})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	emu := s.Emu.Emulator

	id := s.Activated(t, "team", 10)
	if seats, _, _, applied := isv.view(); seats != 10 || applied[provisioning.PathProvision] != 1 {
		t.Fatalf("after activation the ISV has %d seats, %v", seats, applied)
	}

	if _, err := emu.CustomerChangeQuantity(id, 20); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, id, "20 seats", func(st subscription.State) bool { return st.Quantity == 20 })
	if _, err := emu.CustomerChangeQuantity(id, 50); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, id, "the refusal decided", func(st subscription.State) bool {
		for _, a := range st.Audit {
			if a.Kind == "decided" && a.To == subscription.OutcomeRejected {
				return true
			}
		}
		return false
	})
	if sub, _ := emu.Subscription(id); sub.Quantity != 20 {
		t.Fatalf("Microsoft applied a seat change the ISV refused: %d", sub.Quantity)
	}

	if _, err := emu.Suspend(id); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, id, "suspended", func(st subscription.State) bool { return st.TenantSuspended })
	if _, err := emu.Reinstate(id); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, id, "reinstated", func(st subscription.State) bool {
		return st.Status == marketplace.StatusSubscribed && !st.TenantSuspended
	})
	if _, err := emu.Unsubscribe(id); err != nil {
		t.Fatal(err)
	}
	s.WaitState(t, id, "deprovisioned", func(st subscription.State) bool { return !st.DeprovisionedAt.IsZero() })

	seats, suspended, gone, applied := isv.view()
	if seats != 20 || suspended || !gone {
		t.Fatalf("the ISV ends with %d seats, suspended %v, gone %v", seats, suspended, gone)
	}
	want := map[string]int{provisioning.PathProvision: 1, provisioning.PathApplyChange: 1, provisioning.PathSuspend: 1,
		provisioning.PathReinstate: 1, provisioning.PathDeprovision: 1}
	for path, n := range want {
		if applied[path] != n {
			t.Errorf("%s applied %d times, want %d (all: %v)", path, applied[path], n, applied)
		}
	}
	isv.mu.Lock()
	defer isv.mu.Unlock()
	if isv.forged != 0 || isv.failFirst {
		t.Fatalf("%d callbacks failed the signature check; first provision failure served: %v", isv.forged, !isv.failFirst)
	}
}
