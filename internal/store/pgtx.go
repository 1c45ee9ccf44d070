package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// BeginLocked starts a transaction holding the locks l (Tx.LockKeys). On PostgreSQL the BEGIN
// and the locks are one round trip, Tx.ExecAll sends several statements in one, and
// Tx.CommitWith sends the last statements together with the COMMIT: a transaction that takes a contended lock in its last statement holds it only
// while the server runs that statement and the commit, never across a round trip to this
// process (on a loaded machine a round trip is milliseconds: the client must be scheduled).
// On SQLite it is BeginTx: the IMMEDIATE transaction already excludes every other writer.
func (db *DB) BeginLocked(ctx context.Context, l Locks) (*Tx, error) {
	if db.dialect != Postgres {
		return db.BeginTx(ctx, nil)
	}
	conn, err := db.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	tx := &Tx{dialect: db.dialect, db: db, pg: &pgTx{conn: conn}}
	// Several statements in one message need the simple protocol, where pgx writes the
	// arguments into the text (quoted by pgx, with standard_conforming_strings, which pgx
	// requires).
	if _, err := conn.ExecContext(ctx, "BEGIN; "+db.dialect.rebind(lockKeysSQL), append([]any{pgx.QueryExecModeSimpleProtocol}, l.args()...)...); err != nil {
		tx.pg.rollback()
		return nil, err
	}
	return tx, nil
}

// Stmt is a statement and its arguments (? placeholders), for ExecAll and CommitWith.
type Stmt struct {
	Query string
	Args  []any
}

// joined is stmts as one text (placeholders numbered across all of it) and its arguments,
// preceded by pgx's simple-protocol mode: several statements in one message.
func (d Dialect) joined(stmts []Stmt, tail string) (string, []any) {
	qs := make([]string, 0, len(stmts)+1)
	args := []any{pgx.QueryExecModeSimpleProtocol}
	for _, st := range stmts {
		qs = append(qs, st.Query)
		args = append(args, st.Args...)
	}
	if tail != "" {
		qs = append(qs, tail)
	}
	return d.rebind(strings.Join(qs, ";\n")), args
}

// ExecAll runs stmts in order, in the transaction. On PostgreSQL, in a transaction of
// BeginLocked, they go in one message: one round trip for all; elsewhere each is an
// ExecContext. When one fails, the ones after it do not run (and on PostgreSQL the
// transaction can only be rolled back).
func (tx *Tx) ExecAll(ctx context.Context, stmts ...Stmt) error {
	if len(stmts) == 0 {
		return nil
	}
	if tx.pg == nil {
		for _, st := range stmts {
			if _, err := tx.ExecContext(ctx, st.Query, st.Args...); err != nil {
				return err
			}
		}
		return nil
	}
	q, args := tx.dialect.joined(stmts, "")
	_, err := tx.pg.conn.ExecContext(ctx, q, args...)
	return err
}

// CommitWith runs stmts, then commits the transaction. On PostgreSQL, in a transaction of
// BeginLocked, all of it goes in one message (see BeginLocked); elsewhere it is ExecAll and
// Commit. When it fails the transaction is not committed; Rollback ends it.
func (tx *Tx) CommitWith(ctx context.Context, stmts ...Stmt) error {
	if tx.pg == nil || len(stmts) == 0 {
		if err := tx.ExecAll(ctx, stmts...); err != nil {
			return err
		}
		return tx.Commit()
	}
	q, args := tx.dialect.joined(stmts, "COMMIT")
	return tx.pg.commit(ctx, q, args...)
}

// ErrTxAborted is Commit's error for a PostgreSQL transaction in which a statement failed:
// the server rolled all of it back. Rollback ends it.
var ErrTxAborted = errors.New("store: a statement of the transaction failed, so PostgreSQL rolled it back: nothing was committed")

// pgTx is a PostgreSQL transaction run by hand on one pooled connection (database/sql's own
// transactions send BEGIN and COMMIT as round trips of their own).
type pgTx struct {
	conn *sql.Conn
	done bool
}

// commit sends q, which ends with COMMIT (or COMMIT alone when q is ""), then gives the
// connection back.
func (t *pgTx) commit(ctx context.Context, q string, args ...any) error {
	if t.done {
		return sql.ErrTxDone
	}
	if q == "" {
		// PostgreSQL answers the COMMIT of a transaction that a failed statement aborted with
		// ROLLBACK and no error: refuse instead, so that a caller which went on after an
		// error does not take its lost writes for committed. (With statements before the
		// COMMIT the first of them fails in an aborted transaction, with an error.)
		if err := t.conn.Raw(func(dc any) error {
			if c, ok := dc.(*stdlib.Conn); ok && c.Conn().PgConn().TxStatus() == 'E' {
				return ErrTxAborted
			}
			return nil
		}); err != nil {
			return err
		}
		q = "COMMIT"
	}
	if _, err := t.conn.ExecContext(ctx, q, args...); err != nil {
		// A failed statement skips the COMMIT after it and leaves the transaction aborted:
		// Rollback ends it.
		return err
	}
	t.done = true
	return t.release()
}

// rollback ends the transaction unless it committed, then gives the connection back.
func (t *pgTx) rollback() error {
	if t.done {
		return sql.ErrTxDone
	}
	t.done = true
	return t.release()
}

// release rolls back whatever transaction is still open on the connection and returns the
// connection to the pool — or, when that fails or the connection is broken, closes it, so
// that no connection goes back in the middle of a transaction.
func (t *pgTx) release() error {
	err := t.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: unexpected PostgreSQL driver connection %T", dc)
		}
		pc := c.Conn()
		if pc.IsClosed() {
			return driver.ErrBadConn
		}
		if pc.PgConn().TxStatus() == 'I' {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pc.Exec(ctx, "ROLLBACK"); err != nil || pc.PgConn().TxStatus() != 'I' {
			return driver.ErrBadConn
		}
		return nil
	})
	if errors.Is(err, driver.ErrBadConn) {
		// database/sql closed the connection (and is done with the Conn): nothing of the
		// transaction survives.
		t.conn.Close()
		return nil
	}
	return errors.Join(err, t.conn.Close())
}
