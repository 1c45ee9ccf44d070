package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// schema of a test component: the same tables in each dialect's spelling.
func schema(steps ...string) store.Schema { return store.Schema{SQLite: steps, Postgres: steps} }

func TestMigrateAppliesOnceAndSurvivesReopen(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		open := b.Fresh(t)
		steps := schema(`CREATE TABLE a (x INTEGER)`, `ALTER TABLE a ADD COLUMN y TEXT`)
		s, err := open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(ctx, "t", steps); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DB().ExecContext(ctx, `INSERT INTO a(x, y) VALUES (?, ?)`, 1, "one"); err != nil {
			t.Fatal(err)
		}
		s.Close()

		s, err = open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		// Running again must not re-apply step 1 (CREATE TABLE would fail).
		if err := s.Apply(ctx, "t", steps); err != nil {
			t.Fatalf("second migrate: %v", err)
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM a WHERE y = ?`, "one").Scan(&n); err != nil || n != 1 {
			t.Fatalf("rows after reopen = %d, %v; want 1", n, err)
		}
	})
}

func TestMigrateRefusesNewerDatabase(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := b.Open(t)
		if err := s.Apply(ctx, "t", schema(`CREATE TABLE a (x INTEGER)`, `CREATE TABLE b (x INTEGER)`)); err != nil {
			t.Fatal(err)
		}
		err := s.Apply(ctx, "t", schema(`CREATE TABLE a (x INTEGER)`))
		if err == nil || !strings.Contains(err.Error(), "newer fleetboot") {
			t.Fatalf("want newer-fleetboot error, got %v", err)
		}
	})
}

func TestMigrateFailedStepRollsBack(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := b.Open(t)
		err := s.Apply(ctx, "t", schema(`CREATE TABLE a (x INTEGER)`, `THIS IS NOT SQL`))
		if err == nil {
			t.Fatal("want error")
		}
		var v int
		s.DB().QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations WHERE component=?`, "t").Scan(&v)
		if v != 1 {
			t.Fatalf("version after failed step = %d, want 1", v)
		}
	})
}

// Several instances starting at once against one PostgreSQL database apply each step exactly
// once: a step that is not idempotent (CREATE TABLE, an INSERT) would fail or double otherwise.
func TestMigrateConcurrentInstancesApplyOnce(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		open := b.Fresh(t)
		steps := schema(
			`CREATE TABLE counted (n INTEGER NOT NULL)`,
			`INSERT INTO counted(n) VALUES (1)`,
			`INSERT INTO counted(n) VALUES (2)`,
		)
		const instances = 8
		var wg sync.WaitGroup
		errs := make(chan error, instances)
		for i := 0; i < instances; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := open(ctx)
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				errs <- s.Apply(ctx, "race", steps)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("instance: %v", err)
			}
		}
		s2, err := open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		var rows, sum, versions int
		s2.DB().QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(n),0) FROM counted`).Scan(&rows, &sum)
		s2.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE component = ?`, "race").Scan(&versions)
		if rows != 2 || sum != 3 || versions != 3 {
			t.Fatalf("after %d concurrent starts: %d rows (sum %d), %d versions; want 2 rows (sum 3), 3 versions", instances, rows, sum, versions)
		}
	})
}

func TestPostgresOnlyComponentsSaySo(t *testing.T) {
	s := storetest.Backends[1].Open(t)
	err := s.Migrate(context.Background(), "sqlite-only", []string{`CREATE TABLE x (y INTEGER)`})
	if err == nil || !strings.Contains(err.Error(), "sqlite-only") || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("want an error naming the component and PostgreSQL, got %v", err)
	}
}

func TestIsUniqueViolation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := b.Open(t)
		if err := s.Apply(ctx, "u", schema(`CREATE TABLE u (k TEXT PRIMARY KEY, v TEXT UNIQUE)`)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DB().ExecContext(ctx, `INSERT INTO u VALUES (?, ?)`, "a", "1"); err != nil {
			t.Fatal(err)
		}
		_, errPK := s.DB().ExecContext(ctx, `INSERT INTO u VALUES (?, ?)`, "a", "2")
		_, errU := s.DB().ExecContext(ctx, `INSERT INTO u VALUES (?, ?)`, "b", "1")
		_, errOther := s.DB().ExecContext(ctx, `INSERT INTO nosuch VALUES (?)`, "x")
		if !store.IsUniqueViolation(errPK) || !store.IsUniqueViolation(errU) || store.IsUniqueViolation(errOther) ||
			store.IsUniqueViolation(errors.New("x")) || store.IsUniqueViolation(nil) {
			t.Fatalf("IsUniqueViolation: pk %v, unique %v, other %v", errPK, errU, errOther)
		}
	})
}

// Tx.Lock excludes other transactions locking the same key until commit: a read-then-write
// counter incremented by many concurrent transactions loses no update.
func TestTxLockSerialisesReadThenWrite(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := b.Open(t)
		if err := s.Apply(ctx, "c", schema(`CREATE TABLE c (n INTEGER NOT NULL)`, `INSERT INTO c VALUES (0)`)); err != nil {
			t.Fatal(err)
		}
		const workers, each = 6, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if err := increment(ctx, s); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var n int
		s.DB().QueryRowContext(ctx, `SELECT n FROM c`).Scan(&n)
		if n != workers*each {
			t.Fatalf("counter = %d, want %d (lost updates)", n, workers*each)
		}
	})
}

func increment(ctx context.Context, s *store.Store) error {
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.Lock(ctx, "counter"); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT n FROM c`).Scan(&n); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE c SET n = ?`, n+1); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return tx.Commit()
}

// Tx.LockKeys on PostgreSQL: transactions holding a key shared run side by side, one that
// wants it exclusive waits for all of them, and the exclusive keys of one call are all held.
func TestLockKeysSharedAndExclusive(t *testing.T) {
	ctx := context.Background()
	s := storetest.Backends[1].Open(t)
	begin := func(l store.Locks) *store.Tx {
		t.Helper()
		tx, err := s.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Rollback() })
		if err := tx.LockKeys(ctx, l); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	key := "test:lockkeys:" + t.Name()
	// Two shared holders at once: the second would wait forever if shared were exclusive.
	r1 := begin(store.Locks{Shared: []string{key}})
	r2 := begin(store.Locks{Shared: []string{key}, Exclusive: []string{key + ":a", key + ":b"}})
	var held int
	if err := r2.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()`).Scan(&held); err != nil || held != 3 {
		t.Fatalf("locks held after LockKeys: %d, %v (want 3)", held, err)
	}
	w, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Rollback()
	var pid int
	if err := w.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	locked := make(chan error, 1)
	go func() { locked <- w.LockKeys(ctx, store.Locks{Exclusive: []string{key}}) }()
	// The writer waits (bounded poll: it starts waiting within milliseconds).
	for i := 0; ; i++ {
		var waiting bool
		if err := s.DB().QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = ? AND NOT granted)`, pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if i == 6000 {
			t.Fatal("the exclusive lock did not wait for the shared holders within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r1.Commit()
	r2.Commit()
	select {
	case err := <-locked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the exclusive lock was not granted within a minute of the shared holders' commits")
	}
}

// TestHungInstanceSessionEndsAndReleasesItsLocks: an instance that hangs inside a transaction
// (frozen, without power, cut off with its connection open) must not hold its advisory lock —
// the lease table's, the inventory's — forever, or every other instance waits for it. Its
// sessions carry idle_in_transaction_session_timeout (store.IdleInTransactionTimeout unless the
// connection string sets it), so PostgreSQL ends the session and the lock is free again.
func TestHungInstanceSessionEndsAndReleasesItsLocks(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	open := func(dsn string) *store.Store {
		s, err := store.OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	var timeout string
	if err := open(dsn).DB().QueryRowContext(ctx, `SHOW idle_in_transaction_session_timeout`).Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%ds", int(store.IdleInTransactionTimeout.Seconds())); timeout != want {
		t.Errorf("idle_in_transaction_session_timeout %s, want %s", timeout, want)
	}

	// The hung instance (1 s, set in its connection string: the operator's value wins) takes
	// the lock and then says nothing more; the other one gets the lock once its session ends.
	hung, other := open(dsn+"&idle_in_transaction_session_timeout=1000"), open(dsn)
	tx, err := hung.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Lock(ctx, "test:hung"); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, time.Minute) // only a lock held for good reaches it
	defer cancel()
	tx2, err := other.DB().BeginTx(wait, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback()
	if err := tx2.Lock(wait, "test:hung"); err != nil {
		t.Fatalf("the lock of a session idle in its transaction was never released: %v", err)
	}
	if err := tx.Commit(); err == nil {
		t.Error("the hung instance's transaction committed after its session was ended")
	}
}

// BeginLocked, ExecAll and CommitWith on both backends: statements, and the last ones with the
// commit, go together (on PostgreSQL as one message, its arguments written into the text by pgx: quotes,
// backslashes and arrays survive); a failed last statement commits nothing, and the
// connection goes back to the pool outside any transaction.
func TestBeginLockedCommitWith(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := b.Open(t)
		if err := s.Apply(ctx, "c", schema(`CREATE TABLE c (v TEXT NOT NULL)`)); err != nil {
			t.Fatal(err)
		}
		// One connection: what a transaction leaves on it, the next query finds.
		s.DB().SQL().SetMaxOpenConns(1)
		tricky := []string{`it's`, `back\slash`, `"quoted"`, `{brace,comma}`, `ünïcode`, ``}
		tx, err := s.DB().BeginLocked(ctx, store.Locks{Shared: []string{"test:bl:shared"}, Exclusive: []string{"test:bl:a", "test:bl:b"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO c VALUES (?)`, "first"); err != nil {
			t.Fatal(err)
		}
		q, arg := `INSERT INTO c SELECT value FROM json_each(?)`, any(jsonArray(tricky))
		if s.Dialect() == store.Postgres {
			q, arg = `INSERT INTO c SELECT unnest(?::text[])`, tricky
		}
		if err := tx.ExecAll(ctx, store.Stmt{Query: `INSERT INTO c VALUES (?)`, Args: []any{"second"}},
			store.Stmt{Query: `INSERT INTO c VALUES (?)`, Args: []any{"third"}}); err != nil {
			t.Fatal(err)
		}
		if err := tx.CommitWith(ctx, store.Stmt{Query: `DELETE FROM c WHERE v = ?`, Args: []any{"third"}}, store.Stmt{Query: q, Args: []any{arg}}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); !errors.Is(err, sql.ErrTxDone) {
			t.Fatalf("rollback after commit: %v", err)
		}
		got := values(t, s)
		if want := append([]string{"first", "second"}, tricky...); strings.Join(got, "|") != strings.Join(sorted(want), "|") {
			t.Fatalf("rows %q, want %q", got, sorted(want))
		}

		tx, err = s.DB().BeginLocked(ctx, store.Locks{Exclusive: []string{"test:bl:a"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO c VALUES (?)`, "rolled back"); err != nil {
			t.Fatal(err)
		}
		if err := tx.CommitWith(ctx, store.Stmt{Query: `INSERT INTO c VALUES (?)`, Args: []any{nil}}); err == nil {
			t.Fatal("a NULL in a NOT NULL column committed")
		}
		if err := tx.Rollback(); err != nil {
			t.Fatalf("rollback after a failed commit: %v", err)
		}
		if got2 := values(t, s); len(got2) != len(got) {
			t.Fatalf("a failed CommitWith committed: %q", got2)
		}

		// Rollback of a transaction still open ends it on the server at once: another
		// session takes its lock without waiting, and its row is gone. (pgx would drop a
		// connection left in a transaction only when it is taken from the pool again.)
		tx, err = s.DB().BeginLocked(ctx, store.Locks{Exclusive: []string{"test:bl:c"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO c VALUES (?)`, "rolled back"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if s.Dialect() == store.Postgres {
			var free bool
			if err := b.Open(t).DB().QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended(?, 0))`, "test:bl:c").Scan(&free); err != nil || !free {
				t.Fatalf("the rolled back transaction's lock is still held (%v)", err)
			}
		}
		if got2 := values(t, s); len(got2) != len(got) {
			t.Fatalf("a rolled back transaction committed: %q", got2)
		}
		if s.Dialect() == store.Postgres {
			// SAVEPOINT works only inside a transaction block.
			if _, err := s.DB().ExecContext(ctx, `SAVEPOINT probe`); err == nil || !strings.Contains(err.Error(), "can only be used in transaction blocks") {
				t.Fatalf("the pooled connection is still in a transaction after Rollback (SAVEPOINT: %v)", err)
			}
		}
	})
}

func values(t *testing.T, s *store.Store) []string {
	t.Helper()
	rows, err := s.DB().QueryContext(context.Background(), `SELECT v FROM c ORDER BY v`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		rows.Scan(&v)
		out = append(out, v)
	}
	return out
}

func sorted(l []string) []string {
	out := append([]string(nil), l...)
	sort.Strings(out)
	return out
}

func jsonArray(l []string) string {
	b, _ := json.Marshal(l)
	return string(b)
}

// A Commit that reports success has committed the transaction's rows. On PostgreSQL a failed
// statement aborts the transaction, and the server answers a later COMMIT with ROLLBACK and
// no error: Commit must say so rather than report the lost rows as written.
func TestBeginLockedCommitAfterFailedStatementIsNoSilentRollback(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		s := b.Open(t)
		if err := s.Apply(ctx, "c", schema(`CREATE TABLE c (v TEXT NOT NULL)`)); err != nil {
			t.Fatal(err)
		}
		tx, err := s.DB().BeginLocked(ctx, store.Locks{Exclusive: []string{"test:abort"}})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `INSERT INTO c VALUES (?)`, "kept?"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO c VALUES (?)`, nil); err == nil {
			t.Fatal("a NULL in a NOT NULL column was accepted")
		}
		err = tx.Commit()
		got := values(t, s)
		if err == nil && len(got) != 1 {
			t.Fatalf("Commit reported success, but the table holds %q", got)
		}
		if err != nil && len(got) != 0 {
			t.Fatalf("Commit failed (%v), but the table holds %q", err, got)
		}
	})
}

// The timeout the server applies to the sessions is what the store reports: a pooler or a
// connection string may leave them without one, which fleetboot warns about at start.
func TestSessionIdleInTransactionTimeout(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	for _, c := range []struct {
		query string
		want  time.Duration
	}{{"", store.IdleInTransactionTimeout}, {"&idle_in_transaction_session_timeout=0", 0}, {"&idle_in_transaction_session_timeout=30000", 30 * time.Second}} {
		s, err := store.OpenPostgres(ctx, dsn+c.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.SessionIdleInTransactionTimeout(ctx)
		s.Close()
		if err != nil || got != c.want {
			t.Errorf("connection string %q: timeout %v (%v), want %v", c.query, got, err, c.want)
		}
	}
}
