package dhcp

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
)

// Leases live in their own file, not in fleetboot.db: a lease commit must never wait for the
// main database's write lock. A transaction holding that lock does not delay a Bind.
func TestLeasesAreInTheirOwnFile(t *testing.T) {
	dir := t.TempDir()
	st, db := openLeaseFile(t, dir)
	defer st.Close()
	if _, err := os.Stat(filepath.Join(dir, store.LeasesFile)); err != nil {
		t.Fatalf("no lease file: %v", err)
	}
	var n int
	if err := st.DB().SQL().QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'dhcp_leases'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("fleetboot.db has a dhcp_leases table (%d, %v)", n, err)
	}

	// Hold fleetboot.db's write lock (an IMMEDIATE transaction) while a lease is bound.
	ctx := context.Background()
	tx, err := st.DB().SQL().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`CREATE TABLE held (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	p := pool(10, 20)
	done := make(chan error, 1)
	go func() {
		ip, err := db.Reserve(ctx, LeaseRequest{Pool: p, MAC: macN(1), Now: t0, Until: t0.Add(offerHold)})
		if err == nil {
			err = db.Bind(ctx, LeaseRequest{Pool: p, MAC: macN(1), IP: ip, Now: t0, Until: t0.Add(time.Hour)})
		}
		done <- err
	}()
	// The main database's busy timeout is 10 s; a Bind waiting for its lock would still be
	// waiting when this transaction ends, so it must finish while the lock is held.
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Bind waited for the main database's write lock")
	}
}

// A data directory whose leases an older fleetboot kept in fleetboot.db's dhcp_leases table
// gets them moved into the lease file once, the old table dropped; a second open changes
// nothing.
func TestLeasesMoveFromTheMainDatabaseOnce(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.OpenPath(ctx, filepath.Join(dir, "fleetboot.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The layout before the lease file: the lease schema in the main database.
	old, err := OpenLeaseDB(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	p := pool(10, 20)
	a := reserve(t, old, p, macN(1), nil, t0)
	bind(t, old, p, macN(1), a, t0)
	b := reserve(t, old, p, macN(2), nil, t0)
	bind(t, old, p, macN(2), b, t0)
	if err := old.Free(ctx, LeaseRequest{Pool: p, MAC: macN(2), IP: b, Now: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	for round := range 2 {
		db, err := OpenLeaseFile(ctx, dir, st)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		got := leaseOf(t, db, a)
		if got.MAC.String() != macN(1).String() || got.State != StateBound || !got.Expires.Equal(t0.Add(time.Hour)) {
			t.Errorf("round %d: moved lease %s: %+v", round, a, got)
		}
		assertState(t, db, b, StateReleased)
		if round == 1 {
			// The moved table decides: macN(2) gets its previous address back.
			if ip := reserve(t, db, p, macN(2), nil, t0.Add(2*time.Minute)); !ip.Equal(b) {
				t.Errorf("macN(2) offered %s, want its previous %s", ip, b)
			}
		}
		db.Close()
		var n int
		if err := st.DB().SQL().QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'dhcp_leases'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("round %d: fleetboot.db still has dhcp_leases (%d, %v)", round, n, err)
		}
		if err := st.DB().SQL().QueryRow(`SELECT count(*) FROM schema_migrations WHERE component = 'dhcp'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("round %d: fleetboot.db still records dhcp migrations (%d, %v)", round, n, err)
		}
	}
}
