package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestRebind(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`SELECT a FROM t WHERE x = ? AND y IN (?, ?)`, `SELECT a FROM t WHERE x = $1 AND y IN ($2, $3)`},
		{`SELECT '?' , "a?b", ? -- why?` + "\n" + `, ?`, `SELECT '?' , "a?b", $1 -- why?` + "\n" + `, $2`},
		{`SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{`SELECT 'unterminated ?`, `SELECT 'unterminated ?`},
	} {
		if got := Postgres.rebind(c.in); got != c.want {
			t.Errorf("rebind(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := SQLite.rebind(c.in); got != c.in {
			t.Errorf("sqlite rebind changed %q to %q", c.in, got)
		}
	}
}

// TestStatementsArePreparedOnce: a query run again reuses its prepared statement, outside and
// inside transactions, and a transaction's first use of a query neither stalls on the write
// lock it holds nor fails (the statement is prepared in the background).
func TestStatementsArePreparedOnce(t *testing.T) {
	ctx := context.Background()
	s, err := OpenPath(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db := s.DB()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)`); err != nil {
		t.Fatal(err)
	}
	const ins = `INSERT INTO t (k, v) VALUES (?, ?)`
	const sel = `SELECT v FROM t WHERE k = ?`
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 3; k++ { // the first run is unprepared, the others find it (or run unprepared meanwhile)
		if _, err := tx.ExecContext(ctx, ins, k, fmt.Sprint("v", k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= 3; k++ {
		var v string
		if err := db.QueryRowContext(ctx, sel, k).Scan(&v); err != nil || v != fmt.Sprint("v", k) {
			t.Fatalf("row %d: %q, %v", k, v, err)
		}
	}
	// The background preparation of the transaction's INSERT ends (bounded wait: it is one
	// prepare once the transaction has committed).
	for i := 0; i < 500; i++ {
		if _, ok := db.stmts.m.Load(ins); ok {
			break
		}
		if i == 499 {
			t.Fatal("the transaction's INSERT was never prepared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	first, ok := db.stmts.m.Load(sel)
	if !ok {
		t.Fatal("the SELECT run three times is not cached")
	}
	for range 5 {
		var v string
		if err := db.QueryRowContext(ctx, sel, 2).Scan(&v); err != nil {
			t.Fatal(err)
		}
	}
	if again, _ := db.stmts.m.Load(sel); again != first {
		t.Error("running a cached query again prepared it anew")
	}
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, ins, 4, "v4"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := tx.QueryRowContext(ctx, sel, 4).Scan(&v); err != nil || v != "v4" {
		t.Fatalf("the transaction does not see its own row through the cached statement: %q, %v", v, err)
	}
	// A failing query is an error, not a cached statement.
	if _, err := db.ExecContext(ctx, `INSERT INTO nosuch VALUES (1)`); err == nil {
		t.Error("a query on a missing table succeeded")
	}
	if _, ok := db.stmts.m.Load(`INSERT INTO nosuch VALUES (1)`); ok {
		t.Error("a statement that does not prepare was cached")
	}
}
