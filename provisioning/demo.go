package provisioning

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver the embedded Temporal server uses too

	"saasengine/marketplace"
)

// Demo is a provisioner that keeps tenants in a SQLite database: one row per tenant and one per
// idempotency key, written in one short transaction per call. It stands in for the ISV's service in dev
// mode and in tests, and shows what a real provisioner must do: apply each idempotency key once.
//
// A tenants file of the JSON format earlier versions kept is migrated when NewDemo first meets it.
type Demo struct {
	// MaxQuantity, when positive, makes DecideChange reject seat counts above it.
	MaxQuantity int64
	// RejectPlans are plans DecideChange refuses.
	RejectPlans []string

	db *sql.DB
	// writeMu serialises this process's write transactions: SQLite takes one writer at a time, and
	// waiting here is cheaper and fairer than SQLite's busy-wait (busy_timeout covers other processes).
	writeMu sync.Mutex
}

const demoSchema = `
CREATE TABLE IF NOT EXISTS tenants (
	subscription_id       TEXT PRIMARY KEY,
	offer_id              TEXT NOT NULL DEFAULT '',
	plan_id               TEXT NOT NULL DEFAULT '',
	quantity              INTEGER NOT NULL DEFAULT 0,
	beneficiary_tenant_id TEXT NOT NULL DEFAULT '',
	status                TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
	key             TEXT PRIMARY KEY,
	-- calls counts every call that carried the key, repeats included.
	calls           INTEGER NOT NULL DEFAULT 0,
	-- applied counts the state changes made under the key; it stays at 1 however often the key repeats.
	applied         INTEGER NOT NULL DEFAULT 0,
	-- done lists the methods applied under the key, space-separated.
	done            TEXT NOT NULL DEFAULT '',
	-- the decision on a change (DecideKey), once made; NULL before.
	decision_accept INTEGER,
	decision_reason TEXT NOT NULL DEFAULT ''
);`

// NewDemo opens (or creates) the SQLite database at path. If path holds a tenants file of the earlier JSON
// format, or path does not exist and a JSON file of the same name with the extension .json does (the old
// default, data/tenants.json, beside the new one, data/tenants.db), its tenants and idempotency keys are
// imported once and the JSON file is kept as <file>.migrated.
func NewDemo(path string) (*Demo, error) {
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("provisioning: demo database path %q must not contain '?'", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("provisioning: %w", err)
		}
	}
	if err := migrateLegacy(path); err != nil {
		return nil, err
	}
	db, err := openDemoDB(path, true)
	if err != nil {
		return nil, err
	}
	return &Demo{db: db}, nil
}

// openDemoDB opens the database and makes sure its tables exist. wal selects write-ahead logging, so that
// readers (queries from tests, the operator) never wait for the writer.
func openDemoDB(path string, wal bool) (*sql.DB, error) {
	dsn := path + "?_pragma=busy_timeout(10000)&_txlock=immediate"
	if wal {
		// NORMAL in WAL mode keeps every commit atomic and consistent; the last commits before a power cut
		// may be lost, as with the JSON file before (which was never synced either).
		dsn += "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("provisioning: open %s: %w", path, err)
	}
	// A few connections let reads run beside the one writer; each costs a page cache.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	if _, err := db.Exec(demoSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("provisioning: %s: create tables: %w", path, err)
	}
	return db, nil
}

// Close closes the database.
func (d *Demo) Close() error { return d.db.Close() }

// Tenant returns the tenant of a subscription.
func (d *Demo) Tenant(subscriptionID string) (Tenant, bool) {
	t, ok, err := getTenant(context.Background(), d.db, subscriptionID)
	if err != nil {
		return Tenant{}, false
	}
	return t, ok
}

// Tenants returns every tenant, in no particular order.
func (d *Demo) Tenants() []Tenant {
	rows, err := d.db.Query(`SELECT subscription_id, offer_id, plan_id, quantity, beneficiary_tenant_id, status FROM tenants`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []Tenant
	for rows.Next() {
		var t Tenant
		if err := rows.Scan(&t.SubscriptionID, &t.OfferID, &t.PlanID, &t.Quantity, &t.BeneficiaryTenantID, &t.Status); err != nil {
			return out
		}
		out = append(out, t)
	}
	return out
}

// Applied returns how many state changes were made under an idempotency key; with correct callers it is
// never more than 1 per step.
func (d *Demo) Applied(key string) int {
	var n int
	_ = d.db.QueryRow(`SELECT applied FROM idempotency_keys WHERE key = ?`, key).Scan(&n)
	return n
}

// Calls returns how many calls carried an idempotency key, repeats included.
func (d *Demo) Calls(key string) int {
	var n int
	_ = d.db.QueryRow(`SELECT calls FROM idempotency_keys WHERE key = ?`, key).Scan(&n)
	return n
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
	var dec Decision
	err := d.write(ctx, func(tx *sql.Tx) error {
		key := r.DecideKey()
		if err := countCall(ctx, tx, key); err != nil {
			return err
		}
		var accept sql.NullBool
		var reason string
		if err := tx.QueryRowContext(ctx, `SELECT decision_accept, decision_reason FROM idempotency_keys WHERE key = ?`, key).Scan(&accept, &reason); err != nil {
			return err
		}
		if accept.Valid {
			dec = Decision{Accept: accept.Bool, Reason: reason}
			return nil
		}
		dec = Decision{Accept: true}
		switch {
		case r.Action == marketplace.ActionChangeQuantity && d.MaxQuantity > 0 && r.Quantity > d.MaxQuantity:
			dec = Decision{Reason: fmt.Sprintf("quantity %d is above the limit of %d", r.Quantity, d.MaxQuantity)}
		case r.Action == marketplace.ActionChangePlan && slices.Contains(d.RejectPlans, r.PlanID):
			dec = Decision{Reason: fmt.Sprintf("plan %q is not offered to this tenant", r.PlanID)}
		}
		_, err := tx.ExecContext(ctx, `UPDATE idempotency_keys SET decision_accept = ?, decision_reason = ? WHERE key = ?`, dec.Accept, dec.Reason, key)
		return err
	})
	if err != nil {
		return Decision{}, err
	}
	return dec, nil
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

// step applies change to the tenant once per (method, key), in one transaction with the key's record. A
// failed change applies nothing and is not remembered, so a retry may succeed; the call is counted.
func (d *Demo) step(ctx context.Context, method, subscriptionID, key string, change func(t *Tenant, exists bool) error) error {
	if subscriptionID == "" {
		return &PermanentError{Message: "subscription ID is empty"}
	}
	var refused error
	err := d.write(ctx, func(tx *sql.Tx) error {
		if err := countCall(ctx, tx, key); err != nil {
			return err
		}
		var done string
		if err := tx.QueryRowContext(ctx, `SELECT done FROM idempotency_keys WHERE key = ?`, key).Scan(&done); err != nil {
			return err
		}
		if slices.Contains(strings.Fields(done), method) {
			return nil
		}
		t, exists, err := getTenant(ctx, tx, subscriptionID)
		if err != nil {
			return err
		}
		t.SubscriptionID = subscriptionID
		if err := change(&t, exists); err != nil {
			// Commit the call's count, nothing else.
			refused = err
			return nil
		}
		if err := putTenant(ctx, tx, t); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE idempotency_keys SET done = ?, applied = applied + 1 WHERE key = ?`,
			strings.TrimSpace(done+" "+method), key)
		return err
	})
	if err != nil {
		return err
	}
	return refused
}

// write runs fn in a write transaction, committed when fn returns nil.
func (d *Demo) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("provisioning: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("provisioning: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("provisioning: commit: %w", err)
	}
	return nil
}

// querier is what reads need of *sql.DB and *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func countCall(ctx context.Context, tx execer, key string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (key, calls) VALUES (?, 1)
		ON CONFLICT (key) DO UPDATE SET calls = calls + 1`, key)
	return err
}

func getTenant(ctx context.Context, q querier, subscriptionID string) (Tenant, bool, error) {
	var t Tenant
	err := q.QueryRowContext(ctx, `SELECT subscription_id, offer_id, plan_id, quantity, beneficiary_tenant_id, status
		FROM tenants WHERE subscription_id = ?`, subscriptionID).
		Scan(&t.SubscriptionID, &t.OfferID, &t.PlanID, &t.Quantity, &t.BeneficiaryTenantID, &t.Status)
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, false, nil
	}
	if err != nil {
		return Tenant{}, false, err
	}
	return t, true, nil
}

func putTenant(ctx context.Context, tx execer, t Tenant) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO tenants (subscription_id, offer_id, plan_id, quantity, beneficiary_tenant_id, status)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (subscription_id) DO UPDATE SET offer_id = excluded.offer_id, plan_id = excluded.plan_id,
			quantity = excluded.quantity, beneficiary_tenant_id = excluded.beneficiary_tenant_id, status = excluded.status`,
		t.SubscriptionID, t.OfferID, t.PlanID, t.Quantity, t.BeneficiaryTenantID, t.Status)
	return err
}
