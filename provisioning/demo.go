package provisioning

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"saasengine/marketplace"
)

// Demo is a provisioner that keeps tenants in a JSON file. It stands in for the ISV's service in dev mode
// and in tests, and shows what a real provisioner must do: apply each idempotency key once.
type Demo struct {
	// MaxQuantity, when positive, makes DecideChange reject seat counts above it.
	MaxQuantity int64
	// RejectPlans are plans DecideChange refuses.
	RejectPlans []string

	path string
	mu   sync.Mutex
	data demoFile
}

type demoFile struct {
	Tenants map[string]Tenant     `json:"tenants"`
	Keys    map[string]*keyRecord `json:"keys"`
}

// keyRecord remembers what one idempotency key did, per method.
type keyRecord struct {
	// Applied counts the state changes made under the key; it stays at 1 however often the key repeats.
	Applied int `json:"applied"`
	// Calls counts every call that carried the key, repeats included.
	Calls     int                  `json:"calls"`
	Done      map[string]bool      `json:"done,omitempty"`
	Decisions map[string]*Decision `json:"decisions,omitempty"`
}

// NewDemo opens (or starts) the tenant file at path.
func NewDemo(path string) (*Demo, error) {
	d := &Demo{path: path, data: demoFile{Tenants: map[string]Tenant{}, Keys: map[string]*keyRecord{}}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return d, nil
	case err != nil:
		return nil, fmt.Errorf("provisioning: read %s: %w", path, err)
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &d.data); err != nil {
			return nil, fmt.Errorf("provisioning: decode %s: %w", path, err)
		}
	}
	if d.data.Tenants == nil {
		d.data.Tenants = map[string]Tenant{}
	}
	if d.data.Keys == nil {
		d.data.Keys = map[string]*keyRecord{}
	}
	return d, nil
}

// Tenant returns the tenant of a subscription.
func (d *Demo) Tenant(subscriptionID string) (Tenant, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.data.Tenants[subscriptionID]
	return t, ok
}

// Tenants returns every tenant, in no particular order.
func (d *Demo) Tenants() []Tenant {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Tenant, 0, len(d.data.Tenants))
	for _, t := range d.data.Tenants {
		out = append(out, t)
	}
	return out
}

// Applied returns how many state changes were made under an idempotency key; with correct callers it is
// never more than 1 per step.
func (d *Demo) Applied(key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r := d.data.Keys[key]; r != nil {
		return r.Applied
	}
	return 0
}

// Calls returns how many calls carried an idempotency key, repeats included.
func (d *Demo) Calls(key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r := d.data.Keys[key]; r != nil {
		return r.Calls
	}
	return 0
}

// Provision creates the subscription's tenant (or refreshes it when it exists).
func (d *Demo) Provision(ctx context.Context, r Request) error {
	return d.step(ctx, "provision", r.SubscriptionID, r.Key(), func(t *Tenant, exists bool) error {
		s := r.Subscription
		t.OfferID, t.PlanID = s.OfferID, s.PlanID
		t.Quantity = int64(s.Quantity)
		t.BeneficiaryTenantID = s.Beneficiary.TenantID
		t.Status = TenantActive
		return nil
	})
}

// DecideChange accepts a change unless its quantity exceeds MaxQuantity or its plan is in RejectPlans.
// A repeated key (the request's DecideKey) gets the first decision.
func (d *Demo) DecideChange(ctx context.Context, r ChangeRequest) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rec := d.record(r.DecideKey())
	rec.Calls++
	if dec, ok := rec.Decisions["decide"]; ok {
		return *dec, d.save()
	}
	dec := Decision{Accept: true}
	switch {
	case r.Action == marketplace.ActionChangeQuantity && d.MaxQuantity > 0 && r.Quantity > d.MaxQuantity:
		dec = Decision{Reason: fmt.Sprintf("quantity %d is above the limit of %d", r.Quantity, d.MaxQuantity)}
	case r.Action == marketplace.ActionChangePlan && slices.Contains(d.RejectPlans, r.PlanID):
		dec = Decision{Reason: fmt.Sprintf("plan %q is not offered to this tenant", r.PlanID)}
	}
	if rec.Decisions == nil {
		rec.Decisions = map[string]*Decision{}
	}
	rec.Decisions["decide"] = &dec
	return dec, d.save()
}

// ApplyChange moves the tenant to the new plan or quantity.
func (d *Demo) ApplyChange(ctx context.Context, r ChangeRequest) error {
	return d.step(ctx, "apply", r.SubscriptionID, r.Key(), func(t *Tenant, exists bool) error {
		if !exists {
			return &PermanentError{Message: "no tenant for subscription " + r.SubscriptionID}
		}
		if r.PlanID != "" {
			t.PlanID = r.PlanID
		}
		if r.Quantity > 0 {
			t.Quantity = r.Quantity
		}
		return nil
	})
}

// Suspend restricts the tenant, keeping its data.
func (d *Demo) Suspend(ctx context.Context, r Request) error {
	return d.setStatus(ctx, "suspend", r, TenantSuspended)
}

// Reinstate restores a suspended tenant.
func (d *Demo) Reinstate(ctx context.Context, r Request) error {
	return d.setStatus(ctx, "reinstate", r, TenantActive)
}

// Deprovision marks the tenant removed. An unknown subscription has nothing to remove and succeeds.
func (d *Demo) Deprovision(ctx context.Context, r Request) error {
	return d.step(ctx, "deprovision", r.SubscriptionID, r.Key(), func(t *Tenant, exists bool) error {
		if !exists {
			t.OfferID, t.PlanID = r.Subscription.OfferID, r.Subscription.PlanID
		}
		t.Status = TenantDeprovisioned
		return nil
	})
}

func (d *Demo) setStatus(ctx context.Context, method string, r Request, s TenantStatus) error {
	return d.step(ctx, method, r.SubscriptionID, r.Key(), func(t *Tenant, exists bool) error {
		if !exists {
			return &PermanentError{Message: "no tenant for subscription " + r.SubscriptionID}
		}
		if t.Status == TenantDeprovisioned {
			return &PermanentError{Message: "tenant of subscription " + r.SubscriptionID + " is deprovisioned"}
		}
		t.Status = s
		return nil
	})
}

// step applies change to the tenant once per (method, key) and saves the file. A failed change applies
// nothing and is not remembered, so a retry may succeed.
func (d *Demo) step(ctx context.Context, method, subscriptionID, key string, change func(t *Tenant, exists bool) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if subscriptionID == "" {
		return &PermanentError{Message: "subscription ID is empty"}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rec := d.record(key)
	rec.Calls++
	if rec.Done[method] {
		return d.save()
	}
	t, exists := d.data.Tenants[subscriptionID]
	t.SubscriptionID = subscriptionID
	if err := change(&t, exists); err != nil {
		return err
	}
	d.data.Tenants[subscriptionID] = t
	if rec.Done == nil {
		rec.Done = map[string]bool{}
	}
	rec.Done[method] = true
	rec.Applied++
	return d.save()
}

func (d *Demo) record(key string) *keyRecord {
	r := d.data.Keys[key]
	if r == nil {
		r = &keyRecord{}
		d.data.Keys[key] = r
	}
	return r
}

// save writes the file atomically: a temporary file in the same directory, then a rename.
func (d *Demo) save() error {
	b, err := json.MarshalIndent(d.data, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(d.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tenants-*.json")
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	tmp := f.Name()
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("provisioning: write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("provisioning: %w", err)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("provisioning: %w", err)
	}
	return nil
}
