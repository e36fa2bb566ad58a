package provisioning

import "strings"

// KeyRecord is what the demo provisioner remembers of one idempotency key.
type KeyRecord struct {
	Key     string
	Calls   int
	Applied int
	// Done are the methods applied under the key.
	Done []string
}

// Keys returns every idempotency key with its counts, in no particular order: what a check of effects
// (the chaos run) counts to find a step applied twice under different keys.
func (d *Demo) Keys() ([]KeyRecord, error) {
	rows, err := d.db.Query(`SELECT key, calls, applied, done FROM idempotency_keys`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []KeyRecord
	for rows.Next() {
		var k KeyRecord
		var done string
		if err := rows.Scan(&k.Key, &k.Calls, &k.Applied, &done); err != nil {
			return nil, err
		}
		k.Done = strings.Fields(done)
		out = append(out, k)
	}
	return out, rows.Err()
}
