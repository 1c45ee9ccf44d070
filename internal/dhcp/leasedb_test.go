package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// openTestStore opens the lease store in the database open opens (storetest.Backend.Fresh).
func openTestStore(t testing.TB, open func(context.Context) (*store.Store, error)) (*store.Store, *LeaseDB) {
	t.Helper()
	ctx := context.Background()
	st, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenLeaseDB(ctx, st)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return st, db
}

// newLeaseDB is a lease store in a fresh SQLite database (the server tests' default).
func newLeaseDB(t *testing.T) *LeaseDB { return newLeaseDBOn(t, storetest.Backends[0]) }

// newLeaseDBOn is a lease store in a fresh database of backend b. The tests of this file run
// against each backend (TestX/sqlite, TestX/postgres); on PostgreSQL the store is in shared
// mode (several instances).
func newLeaseDBOn(t *testing.T, b storetest.Backend) *LeaseDB {
	t.Helper()
	st, db := openTestStore(t, b.Fresh(t))
	t.Cleanup(func() { db.Close(); st.Close() })
	return db
}

func macN(i int) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)} }

func ip4(d byte) net.IP { return net.IPv4(10, 99, 0, d).To4() }

func pool(first, last byte, exclude ...byte) Pool {
	p := Pool{Start: ip4(first), End: ip4(last)}
	for _, x := range exclude {
		p.Exclude = append(p.Exclude, ip4(x))
	}
	return p
}

func reserve(t *testing.T, db LeaseStore, p Pool, mac net.HardwareAddr, want net.IP, now time.Time) net.IP {
	t.Helper()
	ip, err := db.Reserve(context.Background(), LeaseRequest{Pool: p, MAC: mac, IP: want, Now: now, Until: now.Add(offerHold)})
	if err != nil {
		t.Fatalf("Reserve(%s): %v", mac, err)
	}
	return ip
}

func bind(t *testing.T, db LeaseStore, p Pool, mac net.HardwareAddr, ip net.IP, now time.Time) {
	t.Helper()
	if err := db.Bind(context.Background(), LeaseRequest{Pool: p, MAC: mac, IP: ip, Now: now, Until: now.Add(time.Hour)}); err != nil {
		t.Fatalf("Bind(%s, %s): %v", mac, ip, err)
	}
}

func TestReserveNeverHandsOutOneAddressTwiceUnderConcurrency(t *testing.T) {
	storetest.Run(t, testReserveNeverHandsOutOneAddressTwiceUnderConcurrency)
}

func testReserveNeverHandsOutOneAddressTwiceUnderConcurrency(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := pool(10, 39) // 30 addresses for 40 clients at once
	var (
		mu        sync.Mutex
		byIP      = map[string]net.HardwareAddr{}
		exhausted int
		wg        sync.WaitGroup
	)
	for i := range 40 {
		wg.Go(func() {
			ip, err := db.Reserve(context.Background(), LeaseRequest{Pool: p, MAC: macN(i), Now: t0, Until: t0.Add(offerHold)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrPoolExhausted):
				exhausted++
			case err != nil:
				t.Errorf("client %d: %v", i, err)
			default:
				if prev, dup := byIP[ip.String()]; dup {
					t.Errorf("%s offered to both %s and %s", ip, prev, macN(i))
				}
				if !p.Contains(ip) {
					t.Errorf("%s is outside the pool", ip)
				}
				byIP[ip.String()] = macN(i)
			}
		})
	}
	wg.Wait()
	if len(byIP) != 30 || exhausted != 10 {
		t.Errorf("%d addresses handed out, %d clients refused; want 30 and 10", len(byIP), exhausted)
	}
}

func TestReserveRepeatedDiscoverGetsSameAddress(t *testing.T) {
	storetest.Run(t, testReserveRepeatedDiscoverGetsSameAddress)
}

func testReserveRepeatedDiscoverGetsSameAddress(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := pool(10, 20)
	a := reserve(t, db, p, macN(1), nil, t0)
	b := reserve(t, db, p, macN(1), nil, t0.Add(5*time.Second))
	if !a.Equal(b) {
		t.Errorf("retransmitted DISCOVER got %s then %s", a, b)
	}
	if c := reserve(t, db, p, macN(2), a, t0); c.Equal(a) {
		t.Errorf("second client got the reserved %s by requesting it", a)
	}
}

func TestReserveChoosesLowestFreeAndSkipsExclusions(t *testing.T) {
	storetest.Run(t, testReserveChoosesLowestFreeAndSkipsExclusions)
}

func testReserveChoosesLowestFreeAndSkipsExclusions(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := pool(1, 10, 1, 2, 4) // e.g. network, server and router addresses
	var got []string
	for i := range 4 {
		got = append(got, reserve(t, db, p, macN(i), nil, t0).String())
	}
	if want := "[10.99.0.3 10.99.0.5 10.99.0.6 10.99.0.7]"; fmt.Sprint(got) != want {
		t.Errorf("allocation order %v, want %s", got, want)
	}
	if ip := reserve(t, db, p, macN(9), ip4(2), t0); ip.Equal(ip4(2)) {
		t.Errorf("excluded address %s handed out on request", ip)
	}
}

func TestReserveHonoursRequestedAddress(t *testing.T) {
	storetest.Run(t, testReserveHonoursRequestedAddress)
}

func testReserveHonoursRequestedAddress(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := pool(10, 20)
	if ip := reserve(t, db, p, macN(1), ip4(15), t0); !ip.Equal(ip4(15)) {
		t.Errorf("requested 10.99.0.15, got %s", ip)
	}
	if ip := reserve(t, db, p, macN(2), ip4(99), t0); !ip.Equal(ip4(10)) {
		t.Errorf("request outside the pool: got %s, want the lowest free 10.99.0.10", ip)
	}
}

func TestOfferReservationExpires(t *testing.T) { storetest.Run(t, testOfferReservationExpires) }

func testOfferReservationExpires(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := pool(10, 10) // one address
	reserve(t, db, p, macN(1), nil, t0)
	_, err := db.Reserve(context.Background(), LeaseRequest{Pool: p, MAC: macN(2), Now: t0.Add(offerHold / 2), Until: t0.Add(2 * offerHold)})
	if !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("while the offer holds: err = %v, want ErrPoolExhausted", err)
	}
	if ip := reserve(t, db, p, macN(2), nil, t0.Add(offerHold+time.Second)); !ip.Equal(ip4(10)) {
		t.Errorf("after the offer hold: got %s", ip)
	}
}

func TestExpiredLeaseIsReusable(t *testing.T) { storetest.Run(t, testExpiredLeaseIsReusable) }

func testExpiredLeaseIsReusable(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := pool(10, 10)
	bind(t, db, p, macN(1), ip4(10), t0) // until t0+1h
	if _, err := db.Reserve(context.Background(), LeaseRequest{Pool: p, MAC: macN(2), Now: t0.Add(30 * time.Minute), Until: t0.Add(31 * time.Minute)}); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("during the lease: err = %v", err)
	}
	if ip := reserve(t, db, p, macN(2), nil, t0.Add(2*time.Hour)); !ip.Equal(ip4(10)) {
		t.Errorf("after expiry: got %s", ip)
	}
}

func TestSameMACGetsPreviousAddressBack(t *testing.T) {
	storetest.Run(t, testSameMACGetsPreviousAddressBack)
}

func testSameMACGetsPreviousAddressBack(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := pool(10, 20)
	bind(t, db, p, macN(1), ip4(10), t0)
	if err := db.Free(context.Background(), LeaseRequest{MAC: macN(1), IP: ip4(10), Now: t0.Add(time.Minute), Until: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(3 * time.Hour)
	// Another machine gets a never-used address rather than the released one.
	if ip := reserve(t, db, p, macN(2), nil, later); !ip.Equal(ip4(11)) {
		t.Errorf("other client got %s, want 10.99.0.11", ip)
	}
	if ip := reserve(t, db, p, macN(1), nil, later); !ip.Equal(ip4(10)) {
		t.Errorf("returning client got %s, want its previous 10.99.0.10", ip)
	}
	// A current binding wins over a requested address and stays bound.
	bind(t, db, p, macN(3), ip4(15), later)
	if ip := reserve(t, db, p, macN(3), ip4(18), later); !ip.Equal(ip4(15)) {
		t.Errorf("bound client DISCOVERing got %s, want 10.99.0.15", ip)
	}
	assertState(t, db, ip4(15), StateBound)
}

func TestLeasesSurviveRestart(t *testing.T) { storetest.Run(t, testLeasesSurviveRestart) }

func testLeasesSurviveRestart(t *testing.T, be storetest.Backend) {
	open := be.Fresh(t)
	p := pool(10, 20)
	st, db := openTestStore(t, open)
	a := reserve(t, db, p, macN(1), nil, t0)
	bind(t, db, p, macN(1), a, t0)
	// The lease store first: its writer may still commit a queued offer hold, and a commit
	// after the database was closed recreated SQLite's files while TempDir removed them.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, db = openTestStore(t, open)
	defer func() { db.Close(); st.Close() }()
	now := t0.Add(10 * time.Minute)
	if got := reserve(t, db, p, macN(1), nil, now); !got.Equal(a) {
		t.Errorf("after restart the same MAC got %s, want %s", got, a)
	}
	if got := reserve(t, db, p, macN(2), a, now); got.Equal(a) {
		t.Errorf("after restart another MAC got the leased %s", a)
	}
	if err := db.Bind(context.Background(), LeaseRequest{Pool: p, MAC: macN(2), IP: a, Now: now, Until: now.Add(time.Hour)}); !errors.Is(err, ErrAddressTaken) {
		t.Errorf("after restart another MAC binding %s: err = %v, want ErrAddressTaken", a, err)
	}
}

func TestBindRefusesAddressesItMustNotGive(t *testing.T) {
	storetest.Run(t, testBindRefusesAddressesItMustNotGive)
}

func testBindRefusesAddressesItMustNotGive(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := pool(10, 20, 12)
	bind(t, db, p, macN(1), ip4(10), t0)
	ctx := context.Background()
	tests := []struct {
		name string
		ip   net.IP
		want error
	}{
		{"held by another client", ip4(10), ErrAddressTaken},
		{"outside the pool", ip4(30), ErrNotInPool},
		{"excluded", ip4(12), ErrNotInPool},
	}
	for _, tt := range tests {
		err := db.Bind(ctx, LeaseRequest{Pool: p, MAC: macN(2), IP: tt.ip, Now: t0, Until: t0.Add(time.Hour)})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	// Renewal by the holder succeeds and extends the lease.
	bind(t, db, p, macN(1), ip4(10), t0.Add(30*time.Minute))
	l := leaseOf(t, db, ip4(10))
	if !l.Expires.Equal(t0.Add(90*time.Minute)) || l.State != StateBound {
		t.Errorf("after renewal: %+v", l)
	}
}

func TestBindReleasesOtherAddressesOfTheMAC(t *testing.T) {
	storetest.Run(t, testBindReleasesOtherAddressesOfTheMAC)
}

func testBindReleasesOtherAddressesOfTheMAC(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := pool(10, 20)
	offered := reserve(t, db, p, macN(1), nil, t0) // 10.99.0.10
	bind(t, db, p, macN(1), ip4(15), t0)           // INIT-REBOOT with an older address instead
	assertState(t, db, offered, StateReleased)
	if ip := reserve(t, db, p, macN(2), offered, t0); !ip.Equal(offered) {
		t.Errorf("released reservation not reusable: got %s", ip)
	}
}

func TestDeclineQuarantinesAddress(t *testing.T) { storetest.Run(t, testDeclineQuarantinesAddress) }

func testDeclineQuarantinesAddress(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := pool(10, 11)
	ctx := context.Background()
	a := reserve(t, db, p, macN(1), nil, t0)
	if err := db.Free(ctx, LeaseRequest{MAC: macN(2), IP: a, Now: t0, Until: t0.Add(declineHold)}); !errors.Is(err, ErrNoLease) {
		t.Errorf("decline by a client that does not hold it: err = %v", err)
	}
	if err := db.Free(ctx, LeaseRequest{MAC: macN(1), IP: a, Now: t0, Until: t0.Add(declineHold)}); err != nil {
		t.Fatal(err)
	}
	assertState(t, db, a, StateDeclined)
	// The decliner itself moves on to another address, and so does everyone else.
	if ip := reserve(t, db, p, macN(1), nil, t0.Add(time.Second)); ip.Equal(a) {
		t.Errorf("declined %s offered again to its decliner", a)
	}
	if _, err := db.Reserve(ctx, LeaseRequest{Pool: p, MAC: macN(3), IP: a, Now: t0.Add(time.Minute), Until: t0.Add(2 * time.Minute)}); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("during quarantine: err = %v, want ErrPoolExhausted", err)
	}
	if err := db.Bind(ctx, LeaseRequest{Pool: p, MAC: macN(1), IP: a, Now: t0.Add(time.Minute), Until: t0.Add(time.Hour)}); !errors.Is(err, ErrAddressTaken) {
		t.Errorf("binding a quarantined address: err = %v", err)
	}
	if ip := reserve(t, db, p, macN(3), a, t0.Add(declineHold+time.Second)); !ip.Equal(a) {
		t.Errorf("after quarantine: got %s, want %s", ip, a)
	}
}

func TestLeaseRequestValidation(t *testing.T) { storetest.Run(t, testLeaseRequestValidation) }

func testLeaseRequestValidation(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	ctx := context.Background()
	if _, err := db.Reserve(ctx, LeaseRequest{Pool: pool(10, 20), Now: t0, Until: t0}); err == nil {
		t.Error("Reserve without MAC accepted")
	}
	if _, err := db.Reserve(ctx, LeaseRequest{Pool: pool(20, 10), MAC: macN(1), Now: t0, Until: t0}); err == nil {
		t.Error("Reserve with an inverted pool accepted")
	}
	if err := db.Bind(ctx, LeaseRequest{Pool: pool(10, 20), MAC: macN(1), Now: t0, Until: t0}); err == nil {
		t.Error("Bind without IP accepted")
	}
}

func TestReserveFullRangeEdges(t *testing.T) { storetest.Run(t, testReserveFullRangeEdges) }

func testReserveFullRangeEdges(t *testing.T, be storetest.Backend) {
	db := newLeaseDBOn(t, be)
	p := Pool{Start: net.IPv4(255, 255, 255, 254).To4(), End: net.IPv4(255, 255, 255, 255).To4()}
	a := reserve(t, db, p, macN(1), nil, t0)
	b := reserve(t, db, p, macN(2), nil, t0)
	if a.Equal(b) || !p.Contains(a) || !p.Contains(b) {
		t.Errorf("got %s and %s", a, b)
	}
	if _, err := db.Reserve(context.Background(), LeaseRequest{Pool: p, MAC: macN(3), Now: t0, Until: t0.Add(time.Minute)}); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("third client: %v", err)
	}
}

func leaseOf(t *testing.T, db LeaseStore, ip net.IP) Lease {
	t.Helper()
	all, err := db.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range all {
		if l.IP.Equal(ip) {
			return l
		}
	}
	t.Fatalf("no lease row for %s", ip)
	return Lease{}
}

func assertState(t *testing.T, db LeaseStore, ip net.IP, want LeaseState) {
	t.Helper()
	if l := leaseOf(t, db, ip); l.State != want {
		t.Errorf("%s state %s, want %s", ip, l.State, want)
	}
}

// TestOfferHoldsReachTheDatabaseOnClose: an offer is not waited for (group commit), but Close
// writes it before it returns, and the reopened table holds it.
func TestOfferHoldsReachTheDatabaseOnClose(t *testing.T) {
	storetest.Run(t, testOfferHoldsReachTheDatabaseOnClose)
}

func testOfferHoldsReachTheDatabaseOnClose(t *testing.T, be storetest.Backend) {
	open := be.Fresh(t)
	p := pool(10, 20)
	st, db := openTestStore(t, open)
	var offered []net.IP
	for i := 1; i <= 5; i++ {
		offered = append(offered, reserve(t, db, p, macN(i), nil, t0))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Bind(context.Background(), LeaseRequest{Pool: p, MAC: macN(1), IP: offered[0], Now: t0, Until: t0.Add(time.Hour)}); err == nil {
		t.Error("Bind after Close succeeded: an ACK would go out for a lease never written")
	}
	st.Close()
	st, db = openTestStore(t, open)
	defer st.Close()
	leases, err := db.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 5 {
		t.Fatalf("%d rows after reopening, want the 5 offers: %+v", len(leases), leases)
	}
	for i, l := range leases {
		if !l.IP.Equal(offered[i]) || l.State != StateOffered || l.MAC.String() != macN(i+1).String() {
			t.Errorf("row %d: %+v, want %s offered to %s", i, l, offered[i], macN(i+1))
		}
	}
}

// haPair opens two lease stores on one fresh PostgreSQL database: the two instances of an HA
// pair serving one segment.
func haPair(t testing.TB) [2]*LeaseDB {
	t.Helper()
	open := storetest.Backends[1].Fresh(t)
	var dbs [2]*LeaseDB
	for i := range dbs {
		st, db := openTestStore(t, open)
		t.Cleanup(func() { db.Close(); st.Close() })
		dbs[i] = db
	}
	return dbs
}

// Two lease stores on one PostgreSQL database — the two instances of an HA pair serving one
// segment — racing for one pool never hand out an address twice, a client DISCOVERing at both
// gets one address, and either one alone serves what the other bound.
func TestTwoInstancesNeverOfferOneAddressTwice(t *testing.T) {
	dbs := haPair(t)
	p := pool(10, 49) // 40 addresses for 50 clients, each DISCOVERing at both instances
	var (
		mu        sync.Mutex
		byMAC     = map[string]string{}
		byIP      = map[string]string{}
		exhausted int
		wg        sync.WaitGroup
	)
	for i := range 100 {
		wg.Go(func() {
			mac := macN(i / 2)
			ip, err := dbs[i%2].Reserve(context.Background(), LeaseRequest{Pool: p, MAC: mac, Now: t0, Until: t0.Add(offerHold)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrPoolExhausted):
				exhausted++
			case err != nil:
				t.Errorf("client %s: %v", mac, err)
			default:
				if prev, ok := byIP[ip.String()]; ok && prev != mac.String() {
					t.Errorf("%s offered to both %s and %s", ip, prev, mac)
				}
				if prev, ok := byMAC[mac.String()]; ok && prev != ip.String() {
					t.Errorf("%s offered %s by one instance and %s by the other", mac, prev, ip)
				}
				byIP[ip.String()], byMAC[mac.String()] = mac.String(), ip.String()
			}
		})
	}
	wg.Wait()
	if len(byIP) != 40 {
		t.Errorf("%d addresses handed out (%d refusals), want all 40", len(byIP), exhausted)
	}
	// A lease bound through instance 0 is known to instance 1: another client cannot bind it
	// there, and its holder renews it there. The holder is a client the race gave an address
	// (which ten of the fifty got none depends on scheduling: the pool is full).
	var holder net.HardwareAddr
	for i := range 50 {
		if _, ok := byMAC[macN(i).String()]; ok {
			holder = macN(i)
			break
		}
	}
	if holder == nil {
		t.Fatal("no client got an address")
	}
	a := reserve(t, dbs[0], p, holder, nil, t0)
	bind(t, dbs[0], p, holder, a, t0)
	if err := dbs[1].Bind(context.Background(), LeaseRequest{Pool: p, MAC: macN(77), IP: a, Now: t0, Until: t0.Add(time.Hour)}); !errors.Is(err, ErrAddressTaken) {
		t.Errorf("instance 1 binding instance 0's lease %s to another client: %v, want ErrAddressTaken", a, err)
	}
	bind(t, dbs[1], p, holder, a, t0.Add(time.Minute))
}

// openLeaseFile opens fleetboot.db in dir and the lease store in dir's lease file, as the
// server does with SQLite (tests that restart or kill a process on it).
func openLeaseFile(t testing.TB, dir string) (*store.Store, *LeaseDB) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	db, err := OpenLeaseFile(ctx, dir, st)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return st, db
}

// TestOneInstanceQueuesOneSessionForTheLeaseLock: while the lease lock is taken elsewhere, an
// instance's concurrent lease decisions wait in the process, not as sessions queued in
// PostgreSQL. Were several queued and the instance hung, the server would hand the lock to
// each of them in turn and each would sit on it for the idle-in-transaction timeout
// (store.IdleInTransactionTimeout) before being ended — the partner stalled that many times
// over.
func TestOneInstanceQueuesOneSessionForTheLeaseLock(t *testing.T) {
	dsn := storetest.DSN(t)
	ctx := context.Background()
	st, db := openTestStore(t, func(ctx context.Context) (*store.Store, error) {
		return store.OpenPostgres(ctx, dsn+"&application_name=leasetest-a")
	})
	t.Cleanup(func() { db.Close(); st.Close() })
	other, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	// The partner holds the lock; five clients DISCOVER at this instance meanwhile.
	holder, err := other.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if err := holder.Lock(ctx, leaseLockKey); err != nil {
		t.Fatal(err)
	}
	p := pool(10, 49)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			if _, err := db.Reserve(ctx, LeaseRequest{Pool: p, MAC: macN(i), Now: t0, Until: t0.Add(offerHold)}); err != nil {
				t.Errorf("client %d: %v", i, err)
			}
		})
	}
	// Watch the instance's sessions waiting for the lock until one is (bounded; it takes
	// milliseconds), and a while longer: the others would queue right behind it.
	waiting := func() int {
		var n int
		if err := other.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE a.application_name = 'leasetest-a' AND l.locktype = 'advisory' AND NOT l.granted`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	most, seen := 0, 0
	for i := 0; i < 3000 && seen < 100; i++ {
		n := waiting()
		most = max(most, n)
		if n > 0 {
			seen++
		}
		time.Sleep(time.Millisecond)
	}
	if seen == 0 {
		t.Fatal("no session of the instance ever waited for the lease lock")
	}
	if most != 1 {
		t.Errorf("%d sessions of one instance queued for the lease lock at once, want 1", most)
	}
	holder.Rollback()
	wg.Wait()
}

// A shared lease change gives up within its deadline when the lease lock does not come — a
// partner's session holding it while it runs (not idle, so PostgreSQL does not end it), as
// a database that stops answering without closing the connection would look — and so do the
// changes queued behind it at this instance, each within its own deadline, not one after
// another. Once the lock is free again the store serves as before.
func TestSharedLeaseChangeGivesUpWhenTheLockDoesNotCome(t *testing.T) {
	open := storetest.Backends[1].Fresh(t)
	holder, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	st, db := openTestStore(t, open)
	defer st.Close()
	defer db.Close()
	db.changeTimeout = time.Second

	hctx, stopHolder := context.WithCancel(context.Background())
	defer stopHolder()
	locked, held := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(held)
		tx, err := holder.DB().BeginTx(hctx, nil)
		if err == nil {
			err = tx.Lock(hctx, leaseLockKey)
		}
		locked <- err
		if err == nil {
			defer tx.Rollback()
			tx.ExecContext(hctx, "SELECT pg_sleep(120)") // ended by stopHolder
		}
	}()
	if err := <-locked; err != nil {
		t.Fatal(err)
	}

	p := pool(10, 49)
	const waiting = 4
	errs := make(chan error, waiting)
	for i := range waiting {
		go func() {
			_, err := db.Reserve(context.Background(), LeaseRequest{Pool: p, MAC: macN(i), Now: t0, Until: t0.Add(offerHold)})
			errs <- err
		}()
	}
	for i := range waiting {
		select {
		case err := <-errs:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("change %d with the lock held elsewhere: %v, want it to give up at its deadline", i, err)
			}
		case <-time.After(liveness):
			t.Fatalf("%d of %d changes still waiting for the lock after %s (deadline 1s)", waiting-i, waiting, liveness)
		}
	}
	stopHolder()
	<-held
	ip, err := db.Reserve(context.Background(), LeaseRequest{Pool: p, MAC: macN(9), Now: t0, Until: t0.Add(offerHold)})
	if err != nil || ip == nil {
		t.Fatalf("reserve once the lock is free: %v, %v", ip, err)
	}
}
