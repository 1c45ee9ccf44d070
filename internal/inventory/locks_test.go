package inventory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// openNamed opens instances of one fresh PostgreSQL database, each with its own
// application_name, so that a test can see which of them waits for a lock (pg_locks joined
// with pg_stat_activity). Tests of other packages share the server and its advisory lock
// keys; the name tells this test's sessions apart.
func openNamed(t *testing.T, n int) ([]*Inventory, []string) {
	t.Helper()
	ctx := context.Background()
	dsn := storetest.DSN(t)
	var invs []*Inventory
	var names []string
	for i := 0; i < n; i++ {
		var b [4]byte
		rand.Read(b[:])
		name := fmt.Sprintf("fbinv%d_%s", i, hex.EncodeToString(b[:]))
		st, err := store.OpenPostgres(ctx, dsn+"&application_name="+name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		inv, err := Open(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		invs, names = append(invs, inv), append(names, name)
	}
	return invs, names
}

// waitForLockWaiter returns once a session named name waits for an advisory lock; it fails
// the test when none does within a minute (the wait starts within milliseconds; the minute is
// for a loaded machine).
func waitForLockWaiter(t *testing.T, db *store.DB, name string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = ?`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session of %s waited for a lock within a minute", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pauser makes the first write transaction of an instance that reaches stage stop there,
// holding its locks, until release is called.
type pauser struct {
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func pauseAt(inv *Inventory, stage string) *pauser {
	p := &pauser{reached: make(chan struct{}), release: make(chan struct{})}
	p.armed.Store(true)
	inv.hook = func(s string) {
		if s == stage && p.armed.CompareAndSwap(true, false) {
			close(p.reached)
			<-p.release
		}
	}
	return p
}

func (p *pauser) Release() { p.once.Do(func() { close(p.release) }) }

// pauseTransition makes machines a and c install-pending (a rule on a's first five bytes,
// through instance 1) and stops instance 0's transition of a install-pending → installing
// holding its locks; it returns the pause and the transition's result.
func pauseTransition(t *testing.T, invs []*Inventory, a, c string) (*pauser, <-chan error) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := invs[1].PutProfile(ctx, &Profile{Name: "p", ISO: "i"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := invs[1].AddRule(ctx, Rule{MACPrefix: a[:14], Profile: "p", Install: true}); err != nil {
		t.Fatal(err)
	}
	for _, mac := range []string{a, c} {
		if _, _, err := invs[1].See(ctx, Sighting{MAC: mac}); err != nil {
			t.Fatal(err)
		}
	}
	p := pauseAt(invs[0], "locked")
	paused := async(func() error {
		_, err := invs[0].Transition(ctx, a, []State{InstallPending}, Installing, "handed out")
		return err
	})
	done(t, p.reached, "the transition of A")
	return p, paused
}

// done waits for a result channel, failing the test after a minute: what it waits for would
// never finish if it queued behind the paused transaction.
func done[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("%s did not finish within a minute: it waits for another machine's transaction", what)
		panic("unreachable")
	}
}

// finishes runs fn, which must return nil within a minute (done).
func finishes(t *testing.T, what string, fn func() error) {
	t.Helper()
	if err := done(t, async(fn), what); err != nil {
		t.Fatal(err)
	}
}

func async(fn func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	return ch
}

// With PostgreSQL, a transaction on one machine holds that machine's lock, not the whole
// inventory: while one instance's transition of machine A is stopped holding its locks, the
// other instance creates machine B, moves machine C and records DHCP facts of D; only a
// change of A itself waits for it.
func TestWritesOnDifferentMachinesRunSideBySide(t *testing.T) {
	ctx := context.Background()
	invs, names := openNamed(t, 2)
	const a, b, c, d = "52:54:00:00:0b:01", "52:54:00:00:0b:02", "52:54:00:00:0b:03", "52:54:00:00:0b:04"
	p, paused := pauseTransition(t, invs, a, c)
	defer p.Release()

	finishes(t, "creating machine B", func() error {
		m, created, err := invs[1].See(ctx, Sighting{MAC: b, Hardware: map[string]string{"product": "X"}})
		if err == nil && (!created || m.State != InstallPending) {
			err = fmt.Errorf("B: created %v, %+v", created, m)
		}
		return err
	})
	finishes(t, "moving machine C", func() error {
		_, err := invs[1].Transition(ctx, c, []State{InstallPending}, Installing, "handed out")
		return err
	})
	finishes(t, "recording DHCP facts of D", func() error {
		return invs[1].RecordDHCP(ctx, []DHCPSighting{{MAC: d, Firmware: "uefi-http", Detail: "discover"}})
	})
	// A itself waits: the second transition of A takes A's lock after the first commits, and
	// then finds it installing.
	second := async(func() error {
		_, err := invs[1].Transition(ctx, a, []State{InstallPending}, Installing, "handed out")
		return err
	})
	waitForLockWaiter(t, invs[1].db, names[1])
	p.Release()
	if err := done(t, paused, "the paused transition of A"); err != nil {
		t.Fatal(err)
	}
	if err := done(t, second, "the second transition of A"); err == nil {
		t.Fatal("both transitions of A install-pending → installing succeeded")
	}
}

// With PostgreSQL, ids of events become visible in increasing order although writers run
// concurrently: an event write draws its ids only once it holds the event lock, and holds it
// until its commit. While another session holds the event lock, a transaction of one instance
// (a new machine) and a single event of the other both wait for it, and neither has drawn an
// id; a follower sees nothing until they commit, then both.
func TestEventIDsBecomeVisibleInOrder(t *testing.T) {
	ctx := context.Background()
	invs, names := openNamed(t, 2)
	const first, second = "52:54:00:00:0c:01", "52:54:00:00:0c:02"
	if err := invs[0].AddEvent(ctx, "52:54:00:00:0c:00", "boot", "before"); err != nil {
		t.Fatal(err)
	}
	last, err := invs[1].LastEventID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var seq string
	if err := invs[0].db.QueryRowContext(ctx, `SELECT pg_get_serial_sequence('events', 'id')`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	drawn := func() int64 {
		t.Helper()
		var n int64
		if err := invs[0].db.QueryRowContext(ctx, `SELECT last_value FROM `+seq).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := drawn()
	holder, err := invs[0].db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if err := holder.Lock(ctx, eventLock); err != nil {
		t.Fatal(err)
	}
	seen := async(func() error {
		_, _, err := invs[0].See(ctx, Sighting{MAC: first})
		return err
	})
	added := async(func() error { return invs[1].AddEvent(ctx, second, "boot", "after") })
	waitForLockWaiter(t, invs[0].db, names[0])
	waitForLockWaiter(t, invs[1].db, names[1])
	if n := drawn(); n != before {
		t.Fatalf("event ids drawn before the event lock was held: sequence at %d, was %d", n, before)
	}
	if ev, err := invs[1].EventsAfter(ctx, last, "", 10); err != nil || len(ev) != 0 {
		t.Fatalf("events visible while their writers wait for the event lock: %+v %v", ev, err)
	}
	holder.Rollback()
	if err := done(t, seen, "the sighting"); err != nil {
		t.Fatal(err)
	}
	if err := done(t, added, "the second machine's event"); err != nil {
		t.Fatal(err)
	}
	ev, err := invs[1].EventsAfter(ctx, last, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != 2 || ev[0].ID >= ev[1].ID {
		t.Fatalf("events after %d: %+v", last, ev)
	}
}

// Two instances write concurrently with every kind of write transaction (new machines with a
// rule that installs them: three events in one transaction; transitions; DHCP batches; single
// events) while a follower on one of them reads "id > last seen": it misses none.
func TestFollowerMissesNoEventOfConcurrentWriters(t *testing.T) {
	storetest.Run(t, testFollowerMissesNoEventOfConcurrentWriters)
}

func testFollowerMissesNoEventOfConcurrentWriters(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	invs := twoInstances(t, b)
	if _, _, err := invs[0].PutProfile(ctx, &Profile{Name: "p", ISO: "i"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := invs[0].AddRule(ctx, Rule{MACPrefix: "52:54:00:01", Profile: "p", Install: true}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 6, 12
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inv := invs[w%2]
			for i := 0; i < each; i++ {
				mac := fmt.Sprintf("52:54:00:01:%02x:%02x", w, i)
				err := inv.RecordDHCP(ctx, []DHCPSighting{{MAC: mac, Firmware: "bios-pxe", Detail: "discover"},
					{MAC: fmt.Sprintf("52:54:00:02:%02x:%02x", w, i), Detail: "discover"}})
				if err == nil {
					_, _, err = inv.See(ctx, Sighting{MAC: mac}) // discovered, profile, state
				}
				if err == nil {
					_, err = inv.Transition(ctx, mac, []State{InstallPending}, Installing, "handed out")
				}
				if err == nil {
					err = inv.AddEvent(ctx, mac, "boot", "kernel")
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	// Per iteration: 2 DHCP lines, discovered + profile + state, state, boot.
	if stored, missed := followAll(t, invs[1], finished); stored != writers*each*7 || missed != 0 {
		t.Fatalf("%d events stored (want %d); the follower missed %d", stored, writers*each*7, missed)
	}
}

// followAll follows reader's events as a live stream does (wait for a wake-up, read "id >
// last seen") until finished is closed, then reads once more; it returns how many events are
// stored and how many of those the follower did not see.
func followAll(t *testing.T, reader *Inventory, finished <-chan struct{}) (stored, missed int) {
	t.Helper()
	ctx := context.Background()
	seen := map[int64]bool{}
	var last int64
	follow := func() {
		for {
			ev, err := reader.EventsAfter(ctx, last, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ev {
				seen[e.ID] = true
				last = e.ID
			}
			if len(ev) < 100 {
				return
			}
		}
	}
	for stop := false; !stop; {
		wake := reader.EventsWritten()
		follow()
		select {
		case <-wake:
		case <-finished:
			stop = true
		case <-time.After(50 * time.Millisecond): // on SQLite only this process's commits wake
		}
	}
	follow()
	for after := int64(0); ; {
		ev, err := reader.EventsAfter(ctx, after, "", maxEventsPerMachine)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ev {
			if !seen[e.ID] {
				missed++
			}
		}
		stored += len(ev)
		if len(ev) < maxEventsPerMachine {
			return stored, missed
		}
		after = ev[len(ev)-1].ID
	}
}

// A sighting of a known machine that reports no fact it did not already have writes no event
// (it is one unlocked statement, seeKnown) but refreshes the last-seen data; a changed or new
// fact is recorded with its "hardware" event.
func TestSightingWithKnownFactsWritesNoEvent(t *testing.T) {
	storetest.Run(t, testSightingWithKnownFactsWritesNoEvent)
}

func testSightingWithKnownFactsWritesNoEvent(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	const mac = "52:54:00:00:0d:01"
	hw := map[string]string{"manufacturer": "QEMU", "product": "Standard PC"}
	if _, _, err := inv.See(ctx, Sighting{MAC: mac, Hardware: hw}); err != nil {
		t.Fatal(err)
	}
	clock := time.Now().UTC().Add(time.Hour)
	inv.now = func() time.Time { return clock }
	kinds := func() string {
		t.Helper()
		ev, err := inv.Events(ctx, mac, 0)
		if err != nil {
			t.Fatal(err)
		}
		var k []string
		for _, e := range ev {
			k = append(k, e.Kind)
		}
		return strings.Join(k, ",")
	}
	for _, s := range []Sighting{
		{MAC: mac, Hardware: hw, IP: "10.0.0.7"},
		{MAC: mac, Hardware: map[string]string{"product": "Standard PC"}},
		{MAC: mac},
	} {
		m, created, err := inv.See(ctx, s)
		if err != nil || created || !m.LastSeen.Equal(clock) || m.IP != "10.0.0.7" || m.Hardware["manufacturer"] != "QEMU" {
			t.Fatalf("sighting %+v: %+v created=%v %v", s, m, created, err)
		}
		if got := kinds(); got != "discovered" {
			t.Fatalf("after sighting %+v the timeline is %s", s, got)
		}
	}
	m, _, err := inv.See(ctx, Sighting{MAC: mac, Hardware: map[string]string{"product": "Other PC", "serial": "S1"}})
	if err != nil || m.Hardware["product"] != "Other PC" || m.Hardware["serial"] != "S1" || m.Hardware["manufacturer"] != "QEMU" {
		t.Fatalf("changed facts: %+v %v", m, err)
	}
	if got := kinds(); got != "discovered,hardware" {
		t.Fatalf("after changed facts the timeline is %s", got)
	}
}

// With PostgreSQL, an instance that hangs holding a machine's lock (here: paused holding its
// locks, as a frozen process would until PostgreSQL ends its session) holds up only that
// machine at the other instance, however often the machine asks: eight concurrent
// transitions of A (a firmware retrying its boot script) leave one session of the other
// instance waiting for A's lock in the database, the others wait in the process, and they
// take none of its writer slots — a new machine, a transition of another machine and DHCP
// facts and timeline lines (of A and of another machine) are all written meanwhile. A's DHCP
// facts, whose lock is held, are kept and written by a later RecordDHCP once the lock is free.
func TestHungMachineLockHoldsUpOnlyThatMachine(t *testing.T) {
	ctx := context.Background()
	invs, names := openNamed(t, 2)
	const a, b, c, d = "52:54:00:00:0c:01", "52:54:00:00:0c:02", "52:54:00:00:0c:03", "52:54:00:00:0c:04"
	p, paused := pauseTransition(t, invs, a, c)
	defer p.Release()

	retries, cancel := context.WithCancel(ctx)
	defer cancel()
	var waiting []<-chan error
	for range 2 * maxWriters {
		waiting = append(waiting, async(func() error {
			_, err := invs[1].Transition(retries, a, []State{InstallPending}, Installing, "handed out")
			return err
		}))
	}
	waitForLockWaiter(t, invs[1].db, names[1])

	finishes(t, "creating machine B", func() error {
		_, _, err := invs[1].See(ctx, Sighting{MAC: b})
		return err
	})
	finishes(t, "moving machine C", func() error {
		_, err := invs[1].Transition(ctx, c, []State{InstallPending}, Installing, "handed out")
		return err
	})
	finishes(t, "recording DHCP facts of A and D", func() error {
		return invs[1].RecordDHCP(ctx, []DHCPSighting{
			{MAC: a, Firmware: "uefi-http", UUID: "a-uuid", Detail: "discover of A"},
			{MAC: d, Firmware: "bios-pxe", Detail: "discover of D"},
		})
	})
	// All that happened while the paused instance held A's lock, not after PostgreSQL ended
	// its session (store.IdleInTransactionTimeout) and released it.
	if !holdsLock(t, invs[1].db, names[0], machineLock(a)) {
		t.Fatalf("the paused instance no longer holds A's lock: the other instance's writes waited for it")
	}
	var n int
	if err := invs[1].db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS s ON s.pid = l.pid
		WHERE l.locktype = 'advisory' AND NOT l.granted AND s.application_name = ?`, names[1]).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d sessions of the other instance wait for a lock, want 1 (A's, however often A is asked for)", n)
	}
	for _, mac := range []string{a, d} {
		evs, err := invs[1].Events(ctx, mac, 100)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range evs {
			found = found || e.Kind == "dhcp"
		}
		if !found {
			t.Errorf("no DHCP line of %s in its timeline while A's lock is held: %+v", mac, evs)
		}
	}
	if m, err := invs[1].Machine(ctx, a); err != nil || m.Firmware != "" {
		t.Fatalf("A while its lock is held: %+v %v (its DHCP facts must wait, not be written without the lock)", m, err)
	}

	p.Release()
	if err := done(t, paused, "the paused transition of A"); err != nil {
		t.Fatal(err)
	}
	conflicts := 0
	for i, ch := range waiting {
		switch err := done(t, ch, fmt.Sprintf("transition %d of A", i)); {
		case errors.Is(err, ErrConflict):
			conflicts++
		case err != nil:
			t.Errorf("transition %d of A: %v", i, err)
		}
	}
	if conflicts != len(waiting) {
		t.Errorf("%d of %d transitions of A after the first found it installing", conflicts, len(waiting))
	}
	// The next batch writes A's deferred facts.
	if err := invs[1].RecordDHCP(ctx, []DHCPSighting{{MAC: d, Detail: "request of D"}}); err != nil {
		t.Fatal(err)
	}
	if m, err := invs[1].Machine(ctx, a); err != nil || m.Firmware != "uefi-http" || m.UUID != "a-uuid" {
		t.Errorf("A after its lock was free and the next DHCP batch: %+v %v, want the deferred firmware and UUID", m, err)
	}
}

// holdsLock reports whether a session named name holds the advisory lock key.
func holdsLock(t *testing.T, db *store.DB, name, key string) bool {
	t.Helper()
	var held int
	if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_locks AS l JOIN pg_stat_activity AS s ON s.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND s.application_name = ?
		AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(?, 0)`, name, key).Scan(&held); err != nil {
		t.Fatal(err)
	}
	return held > 0
}
