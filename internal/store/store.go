// Package store owns fleetboot's embedded database: one SQLite file in the data directory
// (modernc.org/sqlite, pure Go, through database/sql so that PostgreSQL can follow). Each
// component keeps its own schema and migrations (see Migrate); this package opens the database
// (WAL, a busy timeout so a second writer waits instead of failing, IMMEDIATE transactions),
// records which migrations ran and takes consistent snapshots for backups (Snapshot).
package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Store is the opened database.
type Store struct {
	db   *sql.DB
	path string
}

// Open opens (creating if needed) the database file fleetboot.db in dataDir.
//
// SQLite allows one writer at a time; WAL lets readers run beside it, and busy_timeout makes a
// second writer wait instead of failing with SQLITE_BUSY. One connection for writes would be
// stricter, but transactions here are short and the timeout is generous.
func Open(ctx context.Context, dataDir string) (*Store, error) {
	p := filepath.Join(dataDir, "fleetboot.db")
	return OpenPath(ctx, p)
}

// OpenPath opens the database at an explicit path (tests use a temp dir).
func OpenPath(ctx context.Context, p string) (*Store, error) {
	dsn := "file:" + p + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", p, err)
	}
	// Keep connections open: database/sql keeps only 2 idle ones by default, so under load
	// (a fleet's DHCP and boot requests reading machines while the lease and timeline writers
	// commit) connections were opened and closed all the time, each open running the pragmas
	// above — journal_mode(WAL) takes a lock and waits out busy_timeout behind a writer — and
	// re-reading the schema. Seen in the fleet simulator as DHCP handlers blocked with the CPU
	// idle (issue 13).
	db.SetMaxIdleConns(64)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", p, err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL,
		version   INTEGER NOT NULL,
		applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
		PRIMARY KEY (component, version))`); err != nil {
		db.Close()
		return nil, fmt.Errorf("init database %s: %w", p, err)
	}
	return &Store{db: db, path: p}, nil
}

// DB returns the database handle for components' own queries.
func (s *Store) DB() *sql.DB { return s.db }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Migrate applies, in order and each in its own transaction, the steps of component that have
// not run yet. Step i (0-based) is version i+1; steps are append-only: never edit a released one.
func (s *Store) Migrate(ctx context.Context, component string, steps []string) error {
	var have int
	if err := s.db.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version),0) FROM schema_migrations WHERE component = ?`, component).Scan(&have); err != nil {
		return fmt.Errorf("migrate %s: read version: %w", component, err)
	}
	if have > len(steps) {
		return fmt.Errorf("migrate %s: database is at version %d but this fleetboot knows only %d; "+
			"it was written by a newer fleetboot", component, have, len(steps))
	}
	for v := have + 1; v <= len(steps); v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate %s to %d: %w", component, v, err)
		}
		if _, err := tx.ExecContext(ctx, steps[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s to %d: %w", component, v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(component, version) VALUES (?, ?)`, component, v); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s to %d: %w", component, v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate %s to %d: %w", component, v, err)
		}
	}
	return nil
}

// Snapshot writes a consistent copy of the database in dataDir to dest (which must not exist)
// with SQLite's VACUUM INTO, while a server may be writing to it: the copy is one transaction's
// view, whole and compacted, with no WAL beside it.
func Snapshot(ctx context.Context, dataDir, dest string) error {
	p := filepath.Join(dataDir, "fleetboot.db")
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+p+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("open database %s: %w", p, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		return fmt.Errorf("snapshot database %s: %w", p, err)
	}
	return nil
}
