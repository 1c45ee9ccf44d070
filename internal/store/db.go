package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
)

// DB is a database handle whose queries are written with ? placeholders whatever the
// backend. It has the query methods of *sql.DB that components use.
type DB struct {
	db      *sql.DB
	dialect Dialect
	stmts   stmtCache // SQLite: prepared statements by query text
}

// maxCachedStmts bounds the prepared statements a DB keeps. Queries are constants in the code
// (a few hundred at most); a query text built at run time past the bound runs unprepared.
const maxCachedStmts = 1024

// stmtCache keeps one prepared statement per query text. database/sql prepares a *sql.Stmt
// on each pooled connection the first time it runs there and reuses it after: without it every
// query was parsed and planned anew (sqlite3_prepare_v2 was 16–27 % of the server's CPU under a
// DHCP flood, issue 13). Only SQLite uses it: pgx caches PostgreSQL statements itself.
type stmtCache struct {
	m         sync.Map // query text → *sql.Stmt
	n         atomic.Int64
	preparing sync.Map // query text → true while cachedStmt prepares it
	// background counts cachedStmt's preparations; once stopped (Store.Close) none starts.
	mu         sync.Mutex
	stopped    bool
	background sync.WaitGroup
}

// stop waits for background preparations and refuses new ones: Close must not leave a
// goroutine opening the database file behind it.
func (c *stmtCache) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.background.Wait()
}

// goPrepare runs fn in the background unless the cache is stopped.
func (c *stmtCache) goPrepare(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		fn()
	}()
}

// stmt returns the prepared statement for q, preparing it on a miss, or nil when q is not to
// be cached (PostgreSQL, the cache is full, or preparing failed: the caller then runs q
// unprepared and gets the error, if any, from there).
func (db *DB) stmt(q string) *sql.Stmt {
	if db.dialect != SQLite {
		return nil
	}
	if v, ok := db.stmts.m.Load(q); ok {
		return v.(*sql.Stmt)
	}
	if db.stmts.n.Load() >= maxCachedStmts {
		return nil
	}
	// Not the caller's context: the statement outlives this call.
	st, err := db.db.PrepareContext(context.Background(), q)
	if err != nil {
		return nil
	}
	if v, loaded := db.stmts.m.LoadOrStore(q, st); loaded {
		st.Close()
		return v.(*sql.Stmt)
	}
	db.stmts.n.Add(1)
	return st
}

// cachedStmt is stmt for a transaction: it never prepares in the caller's goroutine. Preparing
// takes a pooled connection, and a new connection's pragmas wait for the write lock that the
// calling transaction holds (a stall of busy_timeout). On a miss it prepares in the
// background — that waits for the transaction's commit if it must, and nobody waits for it —
// and returns nil: this one run is unprepared, the next finds the statement.
func (db *DB) cachedStmt(q string) *sql.Stmt {
	if db.dialect != SQLite {
		return nil
	}
	if v, ok := db.stmts.m.Load(q); ok {
		return v.(*sql.Stmt)
	}
	if db.stmts.n.Load() < maxCachedStmts {
		if _, busy := db.stmts.preparing.LoadOrStore(q, true); !busy {
			db.stmts.goPrepare(func() {
				defer db.stmts.preparing.Delete(q)
				db.stmt(q)
			})
		}
	}
	return nil
}

// Dialect is the engine behind db.
func (db *DB) Dialect() Dialect { return db.dialect }

// SQL is the underlying handle, for code that runs only on SQLite (its queries are not
// rewritten).
func (db *DB) SQL() *sql.DB { return db.db }

// ExecContext runs a statement.
func (db *DB) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := db.stmt(q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return db.db.ExecContext(ctx, db.dialect.rebind(q), args...)
}

// QueryContext runs a query.
func (db *DB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := db.stmt(q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.db.QueryContext(ctx, db.dialect.rebind(q), args...)
}

// QueryRowContext runs a query that returns at most one row.
func (db *DB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := db.stmt(q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.db.QueryRowContext(ctx, db.dialect.rebind(q), args...)
}

// BeginTx starts a transaction. On SQLite it is IMMEDIATE (it holds the write lock from its
// start, see OpenPath); on PostgreSQL it is READ COMMITTED, so check-then-write sequences that
// other instances may run concurrently take a Tx.Lock first.
func (db *DB) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	tx, err := db.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &Tx{tx: tx, dialect: db.dialect, db: db}, nil
}

// Tx is a transaction with DB's placeholder rewriting.
type Tx struct {
	tx      *sql.Tx
	dialect Dialect
	db      *DB
	// pg, instead of tx, runs a transaction of BeginLocked on PostgreSQL.
	pg *pgTx
}

// stmt is DB.stmt bound to the transaction's connection (database/sql reuses the statement
// prepared there, and closes the binding at commit or rollback), or nil.
func (tx *Tx) stmt(ctx context.Context, q string) *sql.Stmt {
	if st := tx.db.cachedStmt(q); st != nil {
		return tx.tx.StmtContext(ctx, st)
	}
	return nil
}

// ExecContext runs a statement in the transaction.
func (tx *Tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if tx.pg != nil {
		return tx.pg.conn.ExecContext(ctx, tx.dialect.rebind(q), args...)
	}
	if st := tx.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.tx.ExecContext(ctx, tx.dialect.rebind(q), args...)
}

// QueryContext runs a query in the transaction.
func (tx *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if tx.pg != nil {
		return tx.pg.conn.QueryContext(ctx, tx.dialect.rebind(q), args...)
	}
	if st := tx.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.tx.QueryContext(ctx, tx.dialect.rebind(q), args...)
}

// QueryRowContext runs a query that returns at most one row in the transaction.
func (tx *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if tx.pg != nil {
		return tx.pg.conn.QueryRowContext(ctx, tx.dialect.rebind(q), args...)
	}
	if st := tx.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.tx.QueryRowContext(ctx, tx.dialect.rebind(q), args...)
}

// Commit commits the transaction.
func (tx *Tx) Commit() error {
	if tx.pg != nil {
		return tx.pg.commit(context.Background(), "")
	}
	return tx.tx.Commit()
}

// Rollback aborts the transaction; after Commit it is a harmless no-op (sql.ErrTxDone).
func (tx *Tx) Rollback() error {
	if tx.pg != nil {
		return tx.pg.rollback()
	}
	return tx.tx.Rollback()
}

// Lock makes the rest of the transaction exclusive with every other transaction, in any
// process sharing the database, that locks the same key; it is released at commit or
// rollback. On PostgreSQL it is pg_advisory_xact_lock of a 64-bit hash of key. On SQLite it
// does nothing: a transaction there already holds the database's single write lock from its
// start (IMMEDIATE), which excludes every other writer, whatever the key.
//
// Use it for read-then-write sequences that must not interleave across instances (pick a free
// address, then take it; read a machine's state, then move it).
func (tx *Tx) Lock(ctx context.Context, key string) error {
	if tx.dialect != Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, key)
	return err
}

// Locks is a set of lock keys for Tx.LockKeys.
type Locks struct {
	// Shared keys are held in shared mode: transactions sharing a key run side by side, and
	// all of them exclude one that holds the key exclusively.
	Shared []string
	// Exclusive keys are held by one transaction at a time (as Tx.Lock).
	Exclusive []string
}

// LockKeys takes several locks of the transaction in one round trip, released at commit or
// rollback: first every Shared key, then every Exclusive key in the order of their 64-bit
// hashes (the same keys in a different order, or two keys of one hash, lock the same way).
// Transactions that all take their locks through LockKeys, each at most once and before any
// other lock, cannot deadlock on them. On SQLite it does nothing, as Lock.
func (tx *Tx) LockKeys(ctx context.Context, l Locks) error {
	if tx.dialect != Postgres || len(l.Shared)+len(l.Exclusive) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, lockKeysSQL, l.args()...)
	return err
}

// lockKeysSQL takes Locks (args): Append runs its branches in order, and each branch's
// subquery sorts its keys before the outer projection calls the lock function on them, one by
// one.
const lockKeysSQL = `SELECT count(*) FROM (
		SELECT pg_advisory_xact_lock_shared(k)::text FROM (SELECT DISTINCT hashtextextended(s, 0) AS k FROM unnest(?::text[]) AS s ORDER BY 1) AS sh
		UNION ALL
		SELECT pg_advisory_xact_lock(k)::text FROM (SELECT DISTINCT hashtextextended(x, 0) AS k FROM unnest(?::text[]) AS x ORDER BY 1) AS ex) AS locked`

func (l Locks) args() []any {
	if l.Shared == nil {
		l.Shared = []string{}
	}
	if l.Exclusive == nil {
		l.Exclusive = []string{}
	}
	return []any{l.Shared, l.Exclusive}
}

// Dialect is the engine the transaction runs on.
func (tx *Tx) Dialect() Dialect { return tx.dialect }

// Notify wakes, when the transaction commits, every Store.Listen callback on channel in every
// instance sharing the PostgreSQL database (pg_notify; several notifications of one channel in
// one transaction are delivered once). On SQLite it does nothing: only one instance uses a
// SQLite file, and it wakes its own readers in process.
func (tx *Tx) Notify(ctx context.Context, channel string) error {
	if tx.dialect != Postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, `SELECT pg_notify(?, '')`, channel)
	return err
}

// IsUniqueViolation reports whether err is a unique or primary-key constraint violation, on
// either backend.
func IsUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	// modernc.org/sqlite: "constraint failed: UNIQUE constraint failed: t.c (2067)"
	return err != nil && (strings.Contains(err.Error(), "UNIQUE constraint failed") ||
		strings.Contains(err.Error(), "PRIMARY KEY constraint failed"))
}

var rebound sync.Map // query text → PostgreSQL text

// rebind rewrites ? placeholders to $1, $2, … for PostgreSQL. A ? inside a quoted string,
// quoted identifier or comment is left alone. Queries are constants, so results are cached.
func (d Dialect) rebind(q string) string {
	if d != Postgres || !strings.Contains(q, "?") {
		return q
	}
	if v, ok := rebound.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(q[i+1:], c)
			if j < 0 {
				b.WriteString(q[i:])
				i = len(q)
				continue
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i - 1
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	out := b.String()
	rebound.Store(q, out)
	return out
}
