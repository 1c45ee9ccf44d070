// Package audit owns the audit log: one row per API call that changes something (who: the
// token's scope and the source address; what: method, route, target, result; when), kept in the
// database so that it survives restarts and backups, and listed newest first.
package audit

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
)

// Entry is one audited call.
type Entry struct {
	ID   int64     `json:"id"`
	Time time.Time `json:"time"`
	// Scope is the scope of the token used (admin, or read for a refused change).
	Scope string `json:"scope"`
	// IP is the source address of the call.
	IP     string `json:"ip"`
	Method string `json:"method"`
	// Route is the route template (/api/v1/machines/:mac); Target what it named
	// (mac=52:54:00:12:34:56), empty for routes without parameters.
	Route  string `json:"route"`
	Target string `json:"target,omitempty"`
	// Status is the HTTP status answered; Error the message of a failed call.
	Status     int    `json:"status"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// maxError bounds a stored error message (a hostile body could make a long one).
const maxError = 512

var migrations = []string{
	`CREATE TABLE audit (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		at          TEXT NOT NULL,
		scope       TEXT NOT NULL,
		ip          TEXT NOT NULL,
		method      TEXT NOT NULL,
		route       TEXT NOT NULL,
		target      TEXT NOT NULL DEFAULT '',
		status      INTEGER NOT NULL,
		error       TEXT NOT NULL DEFAULT '',
		duration_ms INTEGER NOT NULL DEFAULT 0)`,
}

// DefaultKeep is how many entries the log keeps: the oldest beyond it are deleted, so that a
// script changing things in a loop cannot grow the database without bound. 100 000 rows are a
// few tens of MiB and, for people, years of changes.
const DefaultKeep = 100_000

// pruneEvery is how many records pass between two prunes (one DELETE per batch, not per row).
const pruneEvery = 1000

// Log is the audit log in the database.
type Log struct {
	db *sql.DB
	// Keep is how many entries are kept (Open sets DefaultKeep).
	Keep int

	mu      sync.Mutex
	records int // since the last prune
}

// Open migrates the audit table and returns the log.
func Open(ctx context.Context, s *store.Store) (*Log, error) {
	if err := s.Migrate(ctx, "audit", migrations); err != nil {
		return nil, err
	}
	return &Log{db: s.DB(), Keep: DefaultKeep}, nil
}

// Record appends e (its ID is assigned; a zero Time is now).
func (l *Log) Record(ctx context.Context, e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if len(e.Error) > maxError {
		e.Error = e.Error[:maxError] + "…"
	}
	_, err := l.db.ExecContext(ctx, `INSERT INTO audit(at, scope, ip, method, route, target, status, error, duration_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Time.UTC().Format(time.RFC3339Nano), e.Scope, e.IP, e.Method, e.Route, e.Target,
		e.Status, e.Error, e.DurationMS)
	if err != nil {
		return fmt.Errorf("audit: record %s %s: %w", e.Method, e.Route, err)
	}
	l.mu.Lock()
	l.records++
	prune := l.records >= pruneEvery
	if prune {
		l.records = 0
	}
	l.mu.Unlock()
	if prune {
		return l.Prune(ctx)
	}
	return nil
}

// Prune deletes the oldest entries beyond Keep.
func (l *Log) Prune(ctx context.Context) error {
	if l.Keep <= 0 {
		return nil
	}
	if _, err := l.db.ExecContext(ctx, `DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?`, l.Keep); err != nil {
		return fmt.Errorf("audit: prune to %d entries: %w", l.Keep, err)
	}
	return nil
}

// Query selects entries: newest first, at most Limit (0: 100, at most 1000), only those with
// an ID below Before when it is set (the next page), only those at or after Since when set.
type Query struct {
	Limit  int
	Before int64
	Since  time.Time
}

// MaxLimit is the most entries one List returns.
const MaxLimit = 1000

// List returns the entries q selects.
func (l *Log) List(ctx context.Context, q Query) ([]Entry, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if q.Limit > MaxLimit {
		q.Limit = MaxLimit
	}
	where, args := "1=1", []any{}
	if q.Before > 0 {
		where += " AND id < ?"
		args = append(args, q.Before)
	}
	if !q.Since.IsZero() {
		where += " AND at >= ?"
		args = append(args, q.Since.UTC().Format(time.RFC3339Nano))
	}
	args = append(args, q.Limit)
	rows, err := l.db.QueryContext(ctx, `SELECT id, at, scope, ip, method, route, target, status, error, duration_ms
		FROM audit WHERE `+where+` ORDER BY id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		var e Entry
		var at string
		if err := rows.Scan(&e.ID, &at, &e.Scope, &e.IP, &e.Method, &e.Route, &e.Target, &e.Status, &e.Error, &e.DurationMS); err != nil {
			return nil, fmt.Errorf("audit: list: %w", err)
		}
		if e.Time, err = time.Parse(time.RFC3339Nano, at); err != nil {
			return nil, fmt.Errorf("audit: entry %d has a bad time %q: %w", e.ID, at, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	return out, nil
}
