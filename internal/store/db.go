package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
)

// DB is a database handle whose queries are written with ? placeholders whatever the
// backend. It has the query methods of *sql.DB that components use.
type DB struct {
	db      *sql.DB
	dialect Dialect
}

// Dialect is the engine behind db.
func (db *DB) Dialect() Dialect { return db.dialect }

// SQL is the underlying handle, for code that runs only on SQLite (its queries are not
// rewritten).
func (db *DB) SQL() *sql.DB { return db.db }

// ExecContext runs a statement.
func (db *DB) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return db.db.ExecContext(ctx, db.dialect.rebind(q), args...)
}

// QueryContext runs a query.
func (db *DB) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return db.db.QueryContext(ctx, db.dialect.rebind(q), args...)
}

// QueryRowContext runs a query that returns at most one row.
func (db *DB) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
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
	return &Tx{tx: tx, dialect: db.dialect}, nil
}

// Tx is a transaction with DB's placeholder rewriting.
type Tx struct {
	tx      *sql.Tx
	dialect Dialect
}

// ExecContext runs a statement in the transaction.
func (tx *Tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return tx.tx.ExecContext(ctx, tx.dialect.rebind(q), args...)
}

// QueryContext runs a query in the transaction.
func (tx *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return tx.tx.QueryContext(ctx, tx.dialect.rebind(q), args...)
}

// QueryRowContext runs a query that returns at most one row in the transaction.
func (tx *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(ctx, tx.dialect.rebind(q), args...)
}

// Commit commits the transaction.
func (tx *Tx) Commit() error { return tx.tx.Commit() }

// Rollback aborts the transaction; after Commit it is a harmless no-op (sql.ErrTxDone).
func (tx *Tx) Rollback() error { return tx.tx.Rollback() }

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
	_, err := tx.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, key)
	return err
}

// Notify wakes, when the transaction commits, every Store.Listen callback on channel in every
// instance sharing the PostgreSQL database (pg_notify; several notifications of one channel in
// one transaction are delivered once). On SQLite it does nothing: only one instance uses a
// SQLite file, and it wakes its own readers in process.
func (tx *Tx) Notify(ctx context.Context, channel string) error {
	if tx.dialect != Postgres {
		return nil
	}
	_, err := tx.tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, channel)
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
