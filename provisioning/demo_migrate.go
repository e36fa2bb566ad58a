package provisioning

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// legacyFile is the tenants file earlier versions kept: one JSON document rewritten on every call.
type legacyFile struct {
	Tenants map[string]Tenant     `json:"tenants"`
	Keys    map[string]*legacyKey `json:"keys"`
}

type legacyKey struct {
	Applied   int                  `json:"applied"`
	Calls     int                  `json:"calls"`
	Done      map[string]bool      `json:"done,omitempty"`
	Decisions map[string]*Decision `json:"decisions,omitempty"`
}

// sqliteHeader starts every SQLite database file.
var sqliteHeader = []byte("SQLite format 3\x00")

// migrateLegacy imports a JSON tenants file into a new database at path, once. The database is built
// beside it and renamed into place, so a crash part-way leaves the JSON file to be migrated again; the
// JSON file itself is kept as <file>.migrated.
func migrateLegacy(path string) error {
	src, err := legacySource(path)
	if err != nil || src == "" {
		return err
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("provisioning: read %s: %w", src, err)
	}
	var data legacyFile
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &data); err != nil {
			return fmt.Errorf("provisioning: %s is neither a SQLite database nor a JSON tenants file of an earlier version: %w", src, err)
		}
	}
	tmp := path + ".migrating"
	removeDatabase(tmp)
	db, err := openDemoDB(tmp, false)
	if err != nil {
		return err
	}
	if err := importLegacy(db, data); err != nil {
		db.Close()
		removeDatabase(tmp)
		return fmt.Errorf("provisioning: migrate %s: %w", src, err)
	}
	if err := db.Close(); err != nil {
		removeDatabase(tmp)
		return fmt.Errorf("provisioning: migrate %s: %w", src, err)
	}
	if src == path {
		// The database takes the JSON file's place in one rename; the JSON is copied aside first.
		if err := os.WriteFile(src+".migrated", b, 0o600); err != nil {
			removeDatabase(tmp)
			return fmt.Errorf("provisioning: keep %s: %w", src, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			removeDatabase(tmp)
			return fmt.Errorf("provisioning: %w", err)
		}
		return nil
	}
	if err := os.Rename(tmp, path); err != nil {
		removeDatabase(tmp)
		return fmt.Errorf("provisioning: %w", err)
	}
	if err := os.Rename(src, src+".migrated"); err != nil {
		return fmt.Errorf("provisioning: %s was migrated to %s but could not be renamed: %w", src, path, err)
	}
	return nil
}

// legacySource names the JSON file to migrate: path itself when it holds something other than a SQLite
// database, or, when path does not exist, the file of the same name with the extension .json. "" when
// there is nothing to migrate.
func legacySource(path string) (string, error) {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		head := make([]byte, len(sqliteHeader))
		n, err := io.ReadFull(f, head)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return "", fmt.Errorf("provisioning: read %s: %w", path, err)
		}
		if n == 0 || bytes.Equal(head, sqliteHeader) {
			return "", nil // empty (SQLite makes it a database) or a database already
		}
		return path, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("provisioning: %w", err)
	}
	ext := filepath.Ext(path)
	if ext == ".json" {
		return "", nil
	}
	sibling := strings.TrimSuffix(path, ext) + ".json"
	if _, err := os.Stat(sibling); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("provisioning: %w", err)
	}
	return sibling, nil
}

func importLegacy(db *sql.DB, data legacyFile) error {
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for id, t := range data.Tenants {
		if t.SubscriptionID == "" {
			t.SubscriptionID = id
		}
		if err := putTenant(ctx, tx, t); err != nil {
			return fmt.Errorf("tenant %s: %w", id, err)
		}
	}
	for key, r := range data.Keys {
		if r == nil {
			continue
		}
		var done []string
		for m, ok := range r.Done {
			if ok {
				done = append(done, m)
			}
		}
		sort.Strings(done)
		var accept sql.NullBool
		var reason string
		// "decide" is the only decision earlier versions recorded.
		if d := r.Decisions["decide"]; d != nil {
			accept = sql.NullBool{Bool: d.Accept, Valid: true}
			reason = d.Reason
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (key, calls, applied, done, decision_accept, decision_reason)
			VALUES (?, ?, ?, ?, ?, ?)`, key, r.Calls, r.Applied, strings.Join(done, " "), accept, reason)
		if err != nil {
			return fmt.Errorf("key %s: %w", key, err)
		}
	}
	return tx.Commit()
}

// removeDatabase removes a database file and SQLite's files beside it.
func removeDatabase(path string) {
	for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
		_ = os.Remove(path + suffix)
	}
}
