// Package store owns fleetboot's database: by default one SQLite file in the data directory
// (modernc.org/sqlite, pure Go), or a PostgreSQL server shared by several fleetboot instances
// (--database postgres://…, pgx v5). Components write their queries once, in SQLite's
// placeholder style (?), through DB and Tx, which rewrite them to PostgreSQL's ($1, $2, …) on
// that backend; each component keeps its own schema per backend (see Schema and Apply). This
// package opens the database, records which migrations ran, and gives components the few
// primitives whose spelling differs between the two engines (Tx.Lock, IsUniqueViolation), and takes
// consistent snapshots of a SQLite database for backups (Snapshot).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib" // also the database/sql driver "pgx" others open
	_ "modernc.org/sqlite"           // database/sql driver "sqlite"
)

// Dialect is the database engine behind a Store.
type Dialect int

// Dialects.
const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Store is the opened database.
type Store struct {
	db   *DB
	path string // SQLite file, or the PostgreSQL URL without its password
	dsn  string // PostgreSQL: the connection string (Listen opens sessions of its own)

	// stop ends Listen's goroutines at Close; listeners counts them.
	stop      context.Context
	cancel    context.CancelFunc
	listeners sync.WaitGroup
	log       *slog.Logger
}

func newStore(db *DB, path, dsn string) *Store {
	s := &Store{db: db, path: path, dsn: dsn}
	s.stop, s.cancel = context.WithCancel(context.Background())
	return s
}

// SetLogger makes the store log what it does in the background (Listen's reconnections).
func (s *Store) SetLogger(l *slog.Logger) { s.log = l }

// Open opens (creating if needed) the database file fleetboot.db in dataDir.
//
// SQLite allows one writer at a time; WAL lets readers run beside it, and busy_timeout makes a
// second writer wait instead of failing with SQLITE_BUSY. One connection for writes would be
// stricter, but transactions here are short and the timeout is generous.
func Open(ctx context.Context, dataDir string) (*Store, error) {
	p := filepath.Join(dataDir, "fleetboot.db")
	return OpenPath(ctx, p)
}

// OpenPath opens the SQLite database at an explicit path (tests use a temp dir).
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
	// Several processes creating one database at once (instances started together, tests):
	// the first connection's switch to WAL answers SQLITE_BUSY to the others at once, without
	// waiting out busy_timeout. The switch is quick, so they try again, for as long as that
	// timeout would have let them wait.
	err = db.PingContext(ctx)
	for deadline := time.Now().Add(10 * time.Second); isBusy(err) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		err = db.PingContext(ctx)
	}
	if err != nil {
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
	return newStore(&DB{db: db, dialect: SQLite}, p, ""), nil
}

// isBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY).
func isBusy(err error) bool {
	return err != nil && strings.Contains(err.Error(), "SQLITE_BUSY")
}

// IsPostgresURL reports whether s names a PostgreSQL database (postgres:// or postgresql://)
// rather than a SQLite file.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// IdleInTransactionTimeout is how long PostgreSQL lets a fleetboot session sit idle inside a
// transaction before it ends the session (idle_in_transaction_session_timeout; a connection
// string that sets the parameter wins). Every fleetboot transaction is a few statements sent
// back to back, so only an instance that hangs mid-transaction — frozen, its machine without
// power, cut off from the database with its connection still open — ever reaches it; ending
// its session releases the advisory locks it held (the lease table's, the inventory's), which
// every other instance otherwise waits for until TCP gives up, hours later.
const IdleInTransactionTimeout = 15 * time.Second

const idleInTxParam = "idle_in_transaction_session_timeout"

// SessionIdleInTransactionTimeout is the idle_in_transaction_session_timeout the server
// applies to this store's sessions (0: none; always 0 on SQLite). fleetboot asks for
// IdleInTransactionTimeout at connect, but a connection string may set another value, and a
// pooler in between (PgBouncer told to ignore the startup parameter) drops the request: then
// only the server's own setting for the role or database applies (README, "Behind
// PgBouncer").
func (s *Store) SessionIdleInTransactionTimeout(ctx context.Context) (time.Duration, error) {
	if s.db.dialect != Postgres {
		return 0, nil
	}
	var ms int64
	if err := s.db.QueryRowContext(ctx, `SELECT setting::bigint FROM pg_settings WHERE name = ?`, idleInTxParam).Scan(&ms); err != nil {
		return 0, fmt.Errorf("read %s: %w", idleInTxParam, err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// OpenPostgres connects to the PostgreSQL database named by dsn (a postgres:// URL or a libpq
// key=value string; see https://pkg.go.dev/github.com/jackc/pgx/v5/pgconn#ParseConfig) and
// creates the migration bookkeeping table if needed. Several fleetboot instances may do this
// at once: the table is created under the same advisory lock the migrations take.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgconn's errors may quote the whole connection string, password included.
		return nil, errors.New("open database: cannot parse the PostgreSQL connection string (want postgres://user:password@host:port/dbname?sslmode=…)")
	}
	name := fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	if _, set := cfg.RuntimeParams[idleInTxParam]; !set {
		cfg.RuntimeParams[idleInTxParam] = strconv.FormatInt(IdleInTransactionTimeout.Milliseconds(), 10)
	}
	db := stdlib.OpenDB(*cfg)
	// Each instance holds at most this many server connections (PostgreSQL's default
	// max_connections is 100, shared by every instance and whatever else uses the server).
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	s := newStore(&DB{db: db, dialect: Postgres}, name, dsn)
	err = s.inLockedTx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			component  TEXT NOT NULL,
			version    INTEGER NOT NULL,
			applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
			PRIMARY KEY (component, version))`)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init database %s: %w", name, err)
	}
	return s, nil
}

// DB returns the database handle for components' own queries.
func (s *Store) DB() *DB { return s.db }

// Dialect is the engine behind the store.
func (s *Store) Dialect() Dialect { return s.db.dialect }

// Path is the database file, or for PostgreSQL its URL without password.
func (s *Store) Path() string { return s.path }

// Close stops Listen's goroutines and closes the database.
func (s *Store) Close() error {
	s.cancel()
	s.listeners.Wait()
	s.db.stmts.stop()
	return s.db.db.Close()
}

// Schema is one component's migrations, per backend. Step i (0-based) of a list is version
// i+1; lists are append-only: never edit a released step. The two lists are independent (a
// PostgreSQL database never held an older SQLite schema), so PostgreSQL's may start with the
// component's current tables in one step.
type Schema struct {
	SQLite   []string
	Postgres []string
}

// Migrate applies SQLite-only migrations; on PostgreSQL it fails with an error that names
// the component (it has no PostgreSQL schema yet). Components that support both backends
// call Apply.
func (s *Store) Migrate(ctx context.Context, component string, steps []string) error {
	return s.Apply(ctx, component, Schema{SQLite: steps})
}

// migrationLockKey is the advisory lock that serialises migrations of every fleetboot
// instance sharing one PostgreSQL database.
const migrationLockKey = "fleetboot:schema_migrations"

// Apply applies, in order and each in its own transaction, the steps of component's schema
// for this backend that have not run yet. On PostgreSQL the whole run holds an advisory lock,
// so that instances starting together apply each step exactly once: the second waits, then
// reads the version the first wrote and has nothing left to do.
func (s *Store) Apply(ctx context.Context, component string, schema Schema) error {
	steps := schema.SQLite
	if s.db.dialect == Postgres {
		steps = schema.Postgres
		if steps == nil {
			return fmt.Errorf("migrate %s: this component cannot use a PostgreSQL database yet", component)
		}
	}
	for {
		done, err := s.applyNext(ctx, component, steps)
		if err != nil || done {
			return err
		}
	}
}

// applyNext applies the next missing step of component, if any, in one transaction.
func (s *Store) applyNext(ctx context.Context, component string, steps []string) (done bool, err error) {
	err = s.inLockedTx(ctx, func(tx *Tx) error {
		var have int
		if err := tx.QueryRowContext(ctx,
			`SELECT COALESCE(MAX(version),0) FROM schema_migrations WHERE component = ?`, component).Scan(&have); err != nil {
			return fmt.Errorf("migrate %s: read version: %w", component, err)
		}
		if have > len(steps) {
			return fmt.Errorf("migrate %s: database is at version %d but this fleetboot knows only %d; "+
				"it was written by a newer fleetboot", component, have, len(steps))
		}
		if have == len(steps) {
			done = true
			return nil
		}
		v := have + 1
		if _, err := tx.ExecContext(ctx, steps[v-1]); err != nil {
			return fmt.Errorf("migrate %s to %d: %w", component, v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(component, version) VALUES (?, ?)`, component, v); err != nil {
			return fmt.Errorf("migrate %s to %d: %w", component, v, err)
		}
		return nil
	})
	return done, err
}

// inLockedTx runs fn in a transaction holding the migration lock (PostgreSQL; SQLite's
// IMMEDIATE transactions already exclude other writers).
func (s *Store) inLockedTx(ctx context.Context, fn func(*Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.Lock(ctx, migrationLockKey); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// LeasesFile is the full-mode DHCP lease database in the data directory with SQLite
// (internal/dhcp's OpenLeaseFile). It is a file of its own so that a lease commit (which an
// ACK waits for) never waits for SQLite's one write lock behind the inventory and timeline
// writers of fleetboot.db.
const LeasesFile = "leases.db"

// Snapshot writes a consistent copy of the database in dataDir to dest (which must not exist)
// with SQLite's VACUUM INTO, while a server may be writing to it: the copy is one transaction's
// view, whole and compacted, with no WAL beside it.
func Snapshot(ctx context.Context, dataDir, dest string) error {
	return SnapshotFile(ctx, filepath.Join(dataDir, "fleetboot.db"), dest)
}

// SnapshotFile is Snapshot of the SQLite database at p (e.g. the lease file).
func SnapshotFile(ctx context.Context, p, dest string) error {
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
