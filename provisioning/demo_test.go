package provisioning

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"saasengine/marketplace"
)

func openDemo(t testing.TB, path string) *Demo {
	t.Helper()
	d, err := NewDemo(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// legacyFixture is a tenants file written by the JSON-file demo provisioner this one replaces: s1
// provisioned (twice), two changes decided (one refused), one applied, then suspended; s2 provisioned and
// deprovisioned.
const legacyFixture = "testdata/tenants-v1.json"

func copyFixture(t *testing.T, to string) []byte {
	t.Helper()
	b, err := os.ReadFile(legacyFixture)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o600))
	return b
}

func isSQLite(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return bytes.HasPrefix(b, sqliteHeader)
}

// assertLegacyImported checks that everything the fixture recorded is in d, and that its keys still
// apply once and its decisions still stand.
func assertLegacyImported(t *testing.T, d *Demo) {
	t.Helper()
	ctx := context.Background()
	s1, ok := d.Tenant("s1")
	require.True(t, ok)
	assert.Equal(t, Tenant{SubscriptionID: "s1", OfferID: "offer", PlanID: "gold", Quantity: 5, BeneficiaryTenantID: "tenant-s1", Status: TenantSuspended}, s1)
	s2, ok := d.Tenant("s2")
	require.True(t, ok)
	assert.Equal(t, TenantDeprovisioned, s2.Status)
	assert.Len(t, d.Tenants(), 2)

	assert.Equal(t, 1, d.Applied("s1/activate"))
	assert.Equal(t, 2, d.Calls("s1/activate"))
	assert.Equal(t, 1, d.Applied("s1/op2"))
	assert.Equal(t, 1, d.Calls("s1/op1/decide"))

	// A repeated provision is not applied again: the tenant stays suspended on the gold plan.
	require.NoError(t, d.Provision(ctx, Request{SubscriptionID: "s1", OperationID: "activate", Subscription: sub("s1")}))
	s1, _ = d.Tenant("s1")
	assert.Equal(t, TenantSuspended, s1.Status)
	assert.Equal(t, "gold", s1.PlanID)
	assert.Equal(t, 1, d.Applied("s1/activate"))
	assert.Equal(t, 3, d.Calls("s1/activate"))

	// A repeated decision keeps its first answer, though nothing limits quantities now.
	dec, err := d.DecideChange(ctx, ChangeRequest{SubscriptionID: "s1", OperationID: "op1", Action: marketplace.ActionChangeQuantity, Quantity: 11})
	require.NoError(t, err)
	assert.Equal(t, Decision{Reason: "quantity 11 is above the limit of 10"}, dec)
	dec, err = d.DecideChange(ctx, ChangeRequest{SubscriptionID: "s1", OperationID: "op2", Action: marketplace.ActionChangePlan, PlanID: "gold"})
	require.NoError(t, err)
	assert.Equal(t, Decision{Accept: true}, dec)

	// The deprovisioned tenant still refuses a suspension.
	assert.True(t, IsPermanent(d.Suspend(ctx, Request{SubscriptionID: "s2", OperationID: "op4"})))
}

// A deployment that kept PROVISIONING_DEMO_FILE pointing at its JSON file: the database takes the file's
// place, and the JSON is kept aside.
func TestDemoMigratesJSONFileInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.json")
	orig := copyFixture(t, path)

	d := openDemo(t, path)
	assertLegacyImported(t, d)
	assert.True(t, isSQLite(t, path), "the database replaced the JSON file")
	kept, err := os.ReadFile(path + ".migrated")
	require.NoError(t, err)
	assert.Equal(t, orig, kept)
	_, err = os.Stat(path + ".migrating")
	assert.ErrorIs(t, err, os.ErrNotExist, "no temporary database left behind")

	// Opened again, it is read as a database: nothing is imported twice.
	require.NoError(t, d.Close())
	d2 := openDemo(t, path)
	assert.Equal(t, 3, d2.Calls("s1/activate"))
	assert.Equal(t, 1, d2.Applied("s1/activate"))
}

// The new default (data/tenants.db) finds the old default (data/tenants.json) beside it.
func TestDemoMigratesJSONFileBeside(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "tenants.json")
	orig := copyFixture(t, legacy)
	path := filepath.Join(dir, "tenants.db")

	d := openDemo(t, path)
	assertLegacyImported(t, d)
	_, err := os.Stat(legacy)
	assert.ErrorIs(t, err, os.ErrNotExist, "the JSON file is renamed once migrated")
	kept, err := os.ReadFile(legacy + ".migrated")
	require.NoError(t, err)
	assert.Equal(t, orig, kept)

	require.NoError(t, d.Close())
	d2 := openDemo(t, path)
	assert.Equal(t, 3, d2.Calls("s1/activate"))
}

// A file that is neither a database nor a tenants file is refused and left as it was.
func TestDemoRefusesUnknownFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenants.db")
	require.NoError(t, os.WriteFile(path, []byte("tenants: s1\n"), 0o600))
	_, err := NewDemo(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "neither a SQLite database nor a JSON tenants file")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "tenants: s1\n", string(b))
	_, err = os.Stat(path + ".migrating")
	assert.ErrorIs(t, err, os.ErrNotExist)

	_, err = NewDemo(filepath.Join(t.TempDir(), "a?b.db"))
	assert.Error(t, err)
}

// Activities call the provisioner concurrently, repeats of one key included (Temporal retries, Microsoft
// redelivers): every key is applied exactly once and every call counted.
func TestDemoConcurrentCalls(t *testing.T) {
	ctx := context.Background()
	d := openDemo(t, filepath.Join(t.TempDir(), "tenants.db"))
	d.MaxQuantity = 10
	const subs, callers = 40, 8
	var wg sync.WaitGroup
	var failures atomic.Int64
	decisions := make([][]Decision, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range subs {
				id := fmt.Sprintf("s%d", i)
				if d.Provision(ctx, Request{SubscriptionID: id, OperationID: "activate", Subscription: sub(id)}) != nil {
					failures.Add(1)
				}
				// Each caller asks for a different quantity under the same key: the first one decides.
				dec, err := d.DecideChange(ctx, ChangeRequest{SubscriptionID: id, OperationID: "op", Action: marketplace.ActionChangeQuantity, Quantity: int64(5 + c)})
				if err != nil {
					failures.Add(1)
				}
				decisions[c] = append(decisions[c], dec)
				if d.ApplyChange(ctx, ChangeRequest{SubscriptionID: id, OperationID: "op", Quantity: int64(20 + c)}) != nil {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, failures.Load())
	assert.Len(t, d.Tenants(), subs)
	for i := range subs {
		id := fmt.Sprintf("s%d", i)
		assert.Equal(t, 1, d.Applied(IdempotencyKey(id, "activate")), id)
		assert.Equal(t, callers, d.Calls(IdempotencyKey(id, "activate")), id)
		assert.Equal(t, callers, d.Calls(DecideKey(id, "op")), id)
		assert.Equal(t, 1, d.Applied(IdempotencyKey(id, "op")), id)
		for c := 1; c < callers; c++ {
			assert.Equal(t, decisions[0][i], decisions[c][i], "every caller gets the first decision on %s", id)
		}
		tn, _ := d.Tenant(id)
		assert.GreaterOrEqual(t, tn.Quantity, int64(20), "one apply of %s took effect", id)
	}
}

// BenchmarkDemoDecideChange decides new changes from many goroutines at once, as concurrent
// ChangePlan webhooks do: each decision is one write transaction. Run:
//
//	go test ./provisioning -run '^$' -bench DemoDecideChange -cpu 1,2,8
func BenchmarkDemoDecideChange(b *testing.B) {
	ctx := context.Background()
	d := openDemo(b, filepath.Join(b.TempDir(), "tenants.db"))
	d.MaxQuantity = 100
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			_, err := d.DecideChange(ctx, ChangeRequest{SubscriptionID: fmt.Sprintf("s%d", n%1000), OperationID: fmt.Sprintf("op%d", n),
				Action: marketplace.ActionChangeQuantity, Quantity: n % 200})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDemoProvision provisions new subscriptions into a database that already holds 10,000, as an
// adoption does: the cost of a call does not grow with the tenants already kept. Run:
//
//	go test ./provisioning -run '^$' -bench DemoProvision
func BenchmarkDemoProvision(b *testing.B) {
	ctx := context.Background()
	d := openDemo(b, filepath.Join(b.TempDir(), "tenants.db"))
	for i := range 10000 {
		id := fmt.Sprintf("pre%d", i)
		if err := d.Provision(ctx, Request{SubscriptionID: id, OperationID: "activate", Subscription: sub(id)}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("s%d", next.Add(1))
			if err := d.Provision(ctx, Request{SubscriptionID: id, OperationID: "activate", Subscription: sub(id)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
