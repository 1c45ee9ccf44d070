package dhcp

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
)

// leaseMigrations is the "dhcp" component's schema in the SQLite lease file (store.LeasesFile;
// before it had a file of its own, in fleetboot.db). Append only.
//
// One row per address that was ever handed out; the row keeps the last MAC that held it, so
// that a machine gets its previous address back (RFC 2131 §4.3.1) while nobody else took it.
var leaseMigrations = []string{
	`CREATE TABLE dhcp_leases (
		ip         INTEGER PRIMARY KEY,  -- IPv4 address as a big-endian uint32
		mac        TEXT    NOT NULL,     -- chaddr, "aa:bb:cc:dd:ee:ff"
		state      TEXT    NOT NULL CHECK (state IN ('offered','bound','released','declined')),
		expires_ms INTEGER NOT NULL,     -- unix milliseconds; the address is free from then on
		hostname   TEXT    NOT NULL DEFAULT '',
		updated_ms INTEGER NOT NULL
	)`,
	`CREATE INDEX dhcp_leases_mac ON dhcp_leases(mac, updated_ms)`,
}

// leasePostgresMigrations is the table in a PostgreSQL database that several instances share
// (an HA pair on one segment). Addresses are BIGINT (a uint32 does not fit INTEGER); seq
// numbers every write, so that an instance catches up on the others' writes by reading only
// the rows whose seq is above the last it saw (LeaseDB.sync).
var leasePostgresMigrations = []string{
	`CREATE SEQUENCE dhcp_leases_seq;
	CREATE TABLE dhcp_leases (
		ip         BIGINT PRIMARY KEY,
		mac        TEXT   NOT NULL,
		state      TEXT   NOT NULL CHECK (state IN ('offered','bound','released','declined')),
		expires_ms BIGINT NOT NULL,
		hostname   TEXT   NOT NULL DEFAULT '',
		updated_ms BIGINT NOT NULL,
		seq        BIGINT NOT NULL
	);
	CREATE INDEX dhcp_leases_seq_idx ON dhcp_leases(seq);`,
	// The servers answering on the shared table (LeaseDB.Announce): how an instance tells its
	// HA partner's replies that name no address from a rogue server's.
	`CREATE TABLE dhcp_servers (
		server_ip BIGINT PRIMARY KEY,
		seen_ms   BIGINT NOT NULL
	);`,
}

// LeaseDB is the SQLite LeaseStore, in the "dhcp" component's tables of the shared store.
//
// Decisions are made on an in-memory copy of the table, loaded at open, under one mutex: an
// allocation is a few map lookups, where a query per step (and a walk over every row below
// the first free address) made a full-mode DORA cost milliseconds at a thousand leases and
// made the server collapse under a fleet's power-on burst (issue 13). The copy is
// authoritative: the data directory's lock keeps any other fleetboot off the file.
//
// Durability: every change is written to SQLite by one writer goroutine that commits whatever
// has queued up in one transaction (group commit). Bind and Free return only after their
// change is committed, so an ACK never goes out for a lease a crash (kill -9) could lose; an
// offer's hold is not waited for (a lost hold only means the client's REQUEST is judged
// against the committed table, which never hands one address to two clients).
//
// Shared (PostgreSQL, several instances on one segment): the copy is a cache. Every call runs
// in one transaction that first takes the lease table's advisory lock (store.Tx.Lock) — the
// same lock every instance takes — then reads the rows other instances wrote since this one
// last looked (seq above the last seen: writers hold the lock until they commit, so seqs
// become visible in order and none is skipped), decides on the copy exactly as above, writes
// its rows and commits before answering. So two instances never offer one address twice, and
// either alone keeps serving the pool with everything the other wrote.
type LeaseDB struct {
	db *sql.DB
	// shared is the PostgreSQL database in shared mode, nil with SQLite.
	shared *store.DB
	seq    int64 // shared: the highest seq read into the copy
	stale  bool  // shared: a failed write left the copy unlike the table; reload it

	mu    sync.Mutex
	rows  map[uint32]*leaseRow
	byMAC map[string]map[uint32]struct{} // every row naming the MAC
	// Allocation step 4 (the lowest never-used address) starts at hint: rows are never
	// deleted, so every address of the pool below it has a row or is excluded. It is kept
	// for one pool (hintPool) and starts over for another.
	hint     uint32
	hintPool string

	// turn admits one shared change at a time (changeShared); changeTimeout bounds a shared
	// change, its wait for its turn included (sharedChangeTimeout; tests shorten it).
	turn          chan struct{}
	changeTimeout time.Duration

	w      *leaseWriter
	closed bool         // shared: Close was called
	own    *store.Store // the lease file OpenLeaseFile opened; closed by Close
}

// leaseRow is one row of dhcp_leases.
type leaseRow struct {
	mac      string
	state    LeaseState
	expires  int64 // unix ms
	hostname string
	updated  int64 // unix ms
}

var _ LeaseStore = (*LeaseDB)(nil)

// OpenLeaseDB applies the lease schema to st, loads the table and returns the lease store over
// it. Close stops its writer; closing st is the caller's business (after Close).
func OpenLeaseDB(ctx context.Context, st *store.Store) (*LeaseDB, error) {
	if err := st.Apply(ctx, "dhcp", store.Schema{SQLite: leaseMigrations, Postgres: leasePostgresMigrations}); err != nil {
		return nil, fmt.Errorf("open dhcp lease table: %w", err)
	}
	l := &LeaseDB{db: st.DB().SQL(), rows: map[uint32]*leaseRow{}, byMAC: map[string]map[uint32]struct{}{}}
	if st.Dialect() == store.Postgres {
		l.shared = st.DB() // loaded by the first call's sync; no writer goroutine
		l.turn, l.changeTimeout = make(chan struct{}, 1), sharedChangeTimeout
		return l, nil
	}
	rows, err := l.db.QueryContext(ctx, `SELECT ip, mac, state, expires_ms, hostname, updated_ms FROM dhcp_leases`)
	if err != nil {
		return nil, fmt.Errorf("load dhcp leases: %w", err)
	}
	for rows.Next() {
		var ip uint32
		var r leaseRow
		var state string
		if err := rows.Scan(&ip, &r.mac, &state, &r.expires, &r.hostname, &r.updated); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load dhcp leases: %w", err)
		}
		r.state = LeaseState(state)
		l.set(ip, r)
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("load dhcp leases: %w", err)
	}
	l.w = newLeaseWriter(l.db)
	return l, nil
}

// OpenLeaseFile opens the SQLite lease store in its own database file, store.LeasesFile in
// dataDir (WAL, synchronous=NORMAL: a committed lease survives kill -9 of the server), so that
// lease commits — which every ACK waits for — never queue for SQLite's one write lock behind
// the inventory's and the DHCP timeline's transactions in fleetboot.db (issue 13: under a
// fleet's power-on burst most DHCP handlers were found waiting in Bind for that lock). With
// PostgreSQL the leases stay in the shared database (OpenLeaseDB), where HA pairs need them.
//
// Leases that an older fleetboot kept in main's dhcp_leases table are moved into the file
// once: copied in one transaction (a row already in the file is kept when it is newer, so a
// move interrupted by a crash and repeated is harmless), then the old table is dropped. Close
// closes the file.
func OpenLeaseFile(ctx context.Context, dataDir string, main *store.Store) (*LeaseDB, error) {
	st, err := store.OpenPath(ctx, filepath.Join(dataDir, store.LeasesFile))
	if err != nil {
		return nil, err
	}
	if err := st.Apply(ctx, "dhcp", store.Schema{SQLite: leaseMigrations, Postgres: leasePostgresMigrations}); err != nil {
		st.Close()
		return nil, fmt.Errorf("open dhcp lease file: %w", err)
	}
	if main != nil && main.Dialect() == store.SQLite {
		if err := moveLeases(ctx, main.DB().SQL(), st.DB().SQL()); err != nil {
			st.Close()
			return nil, err
		}
	}
	l, err := OpenLeaseDB(ctx, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	l.own = st
	return l, nil
}

// moveLeases moves the rows of main's dhcp_leases table (where leases were kept before the
// lease file) into the lease file's, and drops main's table.
func moveLeases(ctx context.Context, main, leases *sql.DB) error {
	fail := func(err error) error { return fmt.Errorf("move dhcp leases to %s: %w", store.LeasesFile, err) }
	var n int
	if err := main.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'dhcp_leases'`).Scan(&n); err != nil {
		return fail(err)
	}
	if n == 0 {
		return nil
	}
	rows, err := main.QueryContext(ctx, `SELECT ip, mac, state, expires_ms, hostname, updated_ms FROM dhcp_leases`)
	if err != nil {
		return fail(err)
	}
	type row struct {
		ip                   uint32
		mac, state, hostname string
		expires, updated     int64
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ip, &r.mac, &r.state, &r.expires, &r.hostname, &r.updated); err != nil {
			rows.Close()
			return fail(err)
		}
		all = append(all, r)
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	tx, err := leases.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	for _, r := range all {
		if _, err := tx.ExecContext(ctx, `INSERT INTO dhcp_leases (ip, mac, state, expires_ms, hostname, updated_ms)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac, state = excluded.state, expires_ms = excluded.expires_ms,
				hostname = excluded.hostname, updated_ms = excluded.updated_ms
			WHERE excluded.updated_ms > dhcp_leases.updated_ms`,
			r.ip, r.mac, r.state, r.expires, r.hostname, r.updated); err != nil {
			tx.Rollback()
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	// Only once the copy is committed: the old table and its migration records go together.
	tx, err = main.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	for _, q := range []string{`DROP TABLE dhcp_leases`, `DELETE FROM schema_migrations WHERE component = 'dhcp'`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			tx.Rollback()
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return nil
}

// Close writes what is queued and stops the writer (and closes the lease file OpenLeaseFile
// opened). Calls after Close fail.
func (l *LeaseDB) Close() error {
	if l.shared != nil {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		return nil
	}
	err := l.w.close()
	if l.own != nil {
		if cerr := l.own.Close(); err == nil {
			err = cerr
		}
		l.own = nil
	}
	return err
}

// change runs decide (which reads and changes the in-memory copy under l.mu and returns the
// rows to write) and persists its writes: with SQLite through the group-commit writer,
// waiting for the commit when wait is set; shared, in decide's own locked transaction,
// always committed before change returns.
func (l *LeaseDB) change(ctx context.Context, wait bool, decide func() ([]leaseWrite, error)) error {
	if l.shared != nil {
		return l.changeShared(ctx, decide)
	}
	l.mu.Lock()
	writes, err := decide()
	l.mu.Unlock()
	if err != nil || len(writes) == 0 {
		return err
	}
	ch := l.w.queue(writes, wait)
	if !wait {
		return nil
	}
	return l.w.wait(ch)
}

// leaseLockKey is the advisory lock every shared lease transaction takes.
const leaseLockKey = "fleetboot:dhcp_leases"

// sharedChangeTimeout bounds one shared lease change, its wait for its turn included. It is
// above store.IdleInTransactionTimeout, so that a partner that hangs holding the lease lock
// (PostgreSQL ends its session after that long) delays this instance's change rather than
// failing it; and it is finite, so that a database that stops answering without closing the
// connection (a cut-off network, no reset) fails the changes waiting on it — each DHCP
// packet's handler gives up, the client retransmits — instead of holding every handler
// until TCP gives up on the connection, a quarter of an hour later.
const sharedChangeTimeout = store.IdleInTransactionTimeout + 5*time.Second

func (l *LeaseDB) changeShared(ctx context.Context, decide func() ([]leaseWrite, error)) error {
	ctx, cancel := context.WithTimeout(ctx, l.changeTimeout)
	defer cancel()
	// One transaction of this instance at a time holds or waits for the lease lock. Were
	// several of its sessions queued for it when the process hangs (frozen, its machine
	// without power, cut off with its connections open), PostgreSQL would grant the lock to
	// each of them in turn, and each would keep it until the server ends it for sitting idle
	// in its transaction (store.IdleInTransactionTimeout): the other instance would wait that
	// long once per queued session instead of once. The others wait for their turn here,
	// each within its own deadline: queued behind a change that waits on a silent database,
	// they fail with it rather than one after another.
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for this instance's lease transaction: %w", context.Cause(ctx))
	}
	defer func() { <-l.turn }()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errLeasesClosed
	}
	// Measured side by side on one PostgreSQL (BenchmarkDORAHAPair), sending the lock with
	// the BEGIN and the rows with the COMMIT in simple-protocol messages (store.BeginLocked,
	// CommitWith) cost ~8 % more per DORA than these prepared statements: PostgreSQL parses
	// and plans the simple-protocol text on every change.
	tx, err := l.shared.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.Lock(ctx, leaseLockKey); err != nil {
		return err
	}
	if err := l.sync(ctx, tx); err != nil {
		return err
	}
	writes, err := decide()
	if err != nil {
		return err
	}
	for _, w := range writes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO dhcp_leases (ip, mac, state, expires_ms, hostname, updated_ms, seq)
			VALUES (?, ?, ?, ?, ?, ?, nextval('dhcp_leases_seq'))
			ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac, state = excluded.state, expires_ms = excluded.expires_ms,
				hostname = excluded.hostname, updated_ms = excluded.updated_ms, seq = excluded.seq`,
			w.ip, w.row.mac, string(w.row.state), w.row.expires, w.row.hostname, w.row.updated); err != nil {
			l.stale = true
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		l.stale = true
		return err
	}
	return nil
}

// sync reads into the copy the rows written since the last sync (all of them after a failed
// write). tx holds the lease lock; l.mu is held.
func (l *LeaseDB) sync(ctx context.Context, tx *store.Tx) error {
	if l.stale {
		l.rows, l.byMAC, l.seq, l.hint, l.hintPool, l.stale = map[uint32]*leaseRow{}, map[string]map[uint32]struct{}{}, 0, 0, "", false
	}
	rows, err := tx.QueryContext(ctx, `SELECT ip, mac, state, expires_ms, hostname, updated_ms, seq FROM dhcp_leases
		WHERE seq > ? ORDER BY seq`, l.seq)
	if err != nil {
		return fmt.Errorf("read dhcp leases: %w", err)
	}
	for rows.Next() {
		var ip uint32
		var r leaseRow
		var state string
		if err := rows.Scan(&ip, &r.mac, &state, &r.expires, &r.hostname, &r.updated, &l.seq); err != nil {
			rows.Close()
			l.stale = true
			return fmt.Errorf("read dhcp leases: %w", err)
		}
		r.state = LeaseState(state)
		l.set(ip, r)
	}
	if err := closeRows(rows); err != nil {
		l.stale = true
		return fmt.Errorf("read dhcp leases: %w", err)
	}
	return nil
}

// set stores row ip in memory, keeping byMAC in step.
func (l *LeaseDB) set(ip uint32, r leaseRow) {
	if old := l.rows[ip]; old != nil && old.mac != r.mac {
		if m := l.byMAC[old.mac]; m != nil {
			delete(m, ip)
			if len(m) == 0 {
				delete(l.byMAC, old.mac)
			}
		}
	}
	row := r
	l.rows[ip] = &row
	m := l.byMAC[r.mac]
	if m == nil {
		m = map[uint32]struct{}{}
		l.byMAC[r.mac] = m
	}
	m[ip] = struct{}{}
}

// Reserve implements LeaseStore.
func (l *LeaseDB) Reserve(ctx context.Context, r LeaseRequest) (net.IP, error) {
	if err := checkRequest(r, false); err != nil {
		return nil, err
	}
	var v uint32
	// An offer's hold is not waited for with SQLite (LeaseDB); shared, it is committed before
	// the OFFER goes out, so the other instance cannot offer the address meanwhile.
	err := l.change(ctx, false, func() ([]leaseWrite, error) {
		var err error
		if v, err = l.pickAddress(r); err != nil {
			return nil, err
		}
		if w := l.stage(v); w != nil {
			return []leaseWrite{*w}, nil
		}
		return nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("reserve address for %s: %w", r.MAC, err)
	}
	return uintToIP(v), nil
}

// stage returns the write for row ip as it is in memory now (nil when the row does not exist).
func (l *LeaseDB) stage(ip uint32) *leaseWrite {
	row := l.rows[ip]
	if row == nil {
		return nil
	}
	return &leaseWrite{ip: ip, row: *row}
}

// pickAddress chooses and holds an address for r.MAC; see LeaseStore.Reserve. l.mu is held.
func (l *LeaseDB) pickAddress(r LeaseRequest) (uint32, error) {
	now := r.Now.UnixMilli()
	mac := r.MAC.String()
	start, _ := ipToUint(r.Pool.Start)
	end, _ := ipToUint(r.Pool.End)
	mine := l.byMAC[mac]

	// 1. The client's current binding or reservation: a retransmitted DISCOVER or a client
	// that rebooted within its lease gets the same address. A bound lease stays bound.
	var cur uint32
	var curRow *leaseRow
	for ip := range mine {
		row := l.rows[ip]
		if row.expires <= now || (row.state != StateOffered && row.state != StateBound) || !r.Pool.Contains(uintToIP(ip)) {
			continue // expired, given back, or the pool shrank since (the row expires)
		}
		better := curRow == nil ||
			(row.state == StateBound) != (curRow.state == StateBound) && row.state == StateBound ||
			(row.state == StateBound) == (curRow.state == StateBound) && (row.updated > curRow.updated || row.updated == curRow.updated && ip < cur)
		if better {
			cur, curRow = ip, row
		}
	}
	if curRow != nil {
		if curRow.state == StateBound {
			return cur, nil
		}
		return cur, l.holdOffer(cur, r)
	}

	// 2. The client's previous address, if nobody took it since (the row still names it).
	var prev uint32
	var prevRow *leaseRow
	for ip := range mine {
		row := l.rows[ip]
		if row.expires > now || row.state == StateDeclined || !r.Pool.Contains(uintToIP(ip)) {
			continue
		}
		if prevRow == nil || row.updated > prevRow.updated || row.updated == prevRow.updated && ip < prev {
			prev, prevRow = ip, row
		}
	}
	if prevRow != nil {
		return prev, l.holdOffer(prev, r)
	}

	// 3. The address the client asked for, when it is free.
	if req, ok := ipToUint(r.IP); ok && r.Pool.Contains(r.IP) {
		if row := l.rows[req]; row == nil || row.expires <= now {
			return req, l.holdOffer(req, r)
		}
	}

	// 4. The lowest address never handed out: keeps other machines' previous addresses for
	// them as long as possible.
	key := poolKey(r.Pool)
	if l.hintPool != key || l.hint < start {
		l.hint, l.hintPool = start, key
	}
	for v := uint64(l.hint); v <= uint64(end); v++ {
		if _, used := l.rows[uint32(v)]; used || r.Pool.excluded(uint32(v)) {
			continue
		}
		l.hint = uint32(v)
		return uint32(v), l.holdOffer(uint32(v), r)
	}
	l.hint = end

	// 5. The address that has been free the longest.
	var lru uint32
	var lruRow *leaseRow
	for ip, row := range l.rows {
		if ip < start || ip > end || row.expires > now || r.Pool.excluded(ip) {
			continue
		}
		if lruRow == nil || row.expires < lruRow.expires || row.expires == lruRow.expires && ip < lru {
			lru, lruRow = ip, row
		}
	}
	if lruRow != nil {
		return lru, l.holdOffer(lru, r)
	}
	return 0, ErrPoolExhausted
}

// poolKey identifies a pool for the allocation hint.
func poolKey(p Pool) string {
	return fmt.Sprint(p.Start, p.End, p.Exclude)
}

// holdOffer marks ip as offered to r.MAC until r.Until (in memory; the caller stages it).
func (l *LeaseDB) holdOffer(ip uint32, r LeaseRequest) error {
	l.set(ip, leaseRow{mac: r.MAC.String(), state: StateOffered, expires: r.Until.UnixMilli(), hostname: r.Hostname, updated: r.Now.UnixMilli()})
	return nil
}

// Bind implements LeaseStore.
func (l *LeaseDB) Bind(ctx context.Context, r LeaseRequest) error {
	if err := checkRequest(r, true); err != nil {
		return err
	}
	if !r.Pool.Contains(r.IP) {
		return fmt.Errorf("bind %s to %s: %w", r.IP, r.MAC, ErrNotInPool)
	}
	ip, _ := ipToUint(r.IP)
	now := r.Now.UnixMilli()
	mac := r.MAC.String()
	err := l.change(ctx, true, func() ([]leaseWrite, error) {
		return l.bind(r, ip, now, mac)
	})
	if err != nil {
		return fmt.Errorf("bind %s to %s: %w", r.IP, r.MAC, err)
	}
	return nil
}

// bind changes the copy for Bind and returns the rows to write. l.mu is held.
func (l *LeaseDB) bind(r LeaseRequest, ip uint32, now int64, mac string) ([]leaseWrite, error) {
	if row := l.rows[ip]; row != nil && row.expires > now && (row.mac != mac || row.state == StateDeclined) {
		return nil, ErrAddressTaken
	}
	host := r.Hostname
	if old := l.rows[ip]; host == "" && old != nil {
		host = old.hostname
	}
	l.set(ip, leaseRow{mac: mac, state: StateBound, expires: r.Until.UnixMilli(), hostname: host, updated: now})
	writes := []leaseWrite{*l.stage(ip)}
	// A client uses one address per interface: whatever else this MAC held is given back
	// (e.g. the reservation of an OFFER it did not take, when it INIT-REBOOTed instead).
	for other := range l.byMAC[mac] {
		row := l.rows[other]
		if other == ip || row.expires <= now || (row.state != StateOffered && row.state != StateBound) {
			continue
		}
		row.state, row.expires = StateReleased, now
		writes = append(writes, *l.stage(other))
	}
	return writes, nil
}

// Free implements LeaseStore.
func (l *LeaseDB) Free(ctx context.Context, r LeaseRequest) error {
	if err := checkRequest(r, true); err != nil {
		return err
	}
	ip, _ := ipToUint(r.IP)
	now := r.Now.UnixMilli()
	state, until := StateReleased, now
	if r.Until.After(r.Now) {
		state, until = StateDeclined, r.Until.UnixMilli()
	}
	err := l.change(ctx, true, func() ([]leaseWrite, error) {
		row := l.rows[ip]
		if row == nil || row.mac != r.MAC.String() || row.state == StateDeclined {
			return nil, ErrNoLease
		}
		row.state, row.expires, row.updated = state, until, now
		return []leaseWrite{*l.stage(ip)}, nil
	})
	if err != nil {
		return fmt.Errorf("free %s of %s: %w", r.IP, r.MAC, err)
	}
	return nil
}

// List implements LeaseStore.
func (l *LeaseDB) List(ctx context.Context) ([]Lease, error) {
	if l.shared != nil { // catch up on the other instances' writes first
		if err := l.change(ctx, false, func() ([]leaseWrite, error) { return nil, nil }); err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
	}
	l.mu.Lock()
	out := make([]Lease, 0, len(l.rows))
	for ip, row := range l.rows {
		hw, _ := hex.DecodeString(strings.ReplaceAll(row.mac, ":", ""))
		out = append(out, Lease{IP: uintToIP(ip), MAC: hw, State: row.state, Expires: time.UnixMilli(row.expires),
			Hostname: row.hostname, Updated: time.UnixMilli(row.updated)})
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b Lease) int {
		x, _ := ipToUint(a.IP)
		y, _ := ipToUint(b.IP)
		return cmp.Compare(x, y)
	})
	return out, nil
}

// PeerHolds implements LeaseStore. It reads the row itself, without the lease lock and without
// touching the copy: the caller is the watch on other servers' replies, which must not queue
// behind this instance's lease decisions, and a partner's row is committed before its reply
// is on the wire. With SQLite no other instance shares the table: false.
func (l *LeaseDB) PeerHolds(ctx context.Context, ip net.IP, mac net.HardwareAddr, now time.Time) (bool, error) {
	v, ok := ipToUint(ip)
	if l.shared == nil || !ok || len(mac) == 0 {
		return false, nil
	}
	var held int
	err := l.shared.QueryRowContext(ctx, `SELECT count(*) FROM dhcp_leases
		WHERE ip = ? AND mac = ? AND state IN ('offered', 'bound') AND expires_ms > ?`,
		v, mac.String(), now.UnixMilli()).Scan(&held)
	if err != nil {
		return false, fmt.Errorf("read dhcp lease %s: %w", ip, err)
	}
	return held > 0, nil
}

// Announce implements LeaseStore.
func (l *LeaseDB) Announce(ctx context.Context, id net.IP, now time.Time) error {
	v, ok := ipToUint(id)
	if l.shared == nil || !ok {
		return nil
	}
	if _, err := l.shared.ExecContext(ctx, `INSERT INTO dhcp_servers (server_ip, seen_ms) VALUES (?, ?)
		ON CONFLICT (server_ip) DO UPDATE SET seen_ms = excluded.seen_ms`, v, now.UnixMilli()); err != nil {
		return fmt.Errorf("announce DHCP server %s: %w", id, err)
	}
	return nil
}

// PeerServer implements LeaseStore.
func (l *LeaseDB) PeerServer(ctx context.Context, id net.IP, now time.Time) (bool, error) {
	v, ok := ipToUint(id)
	if l.shared == nil || !ok {
		return false, nil
	}
	var n int
	if err := l.shared.QueryRowContext(ctx, `SELECT count(*) FROM dhcp_servers WHERE server_ip = ? AND seen_ms > ?`,
		v, now.Add(-PeerWindow).UnixMilli()).Scan(&n); err != nil {
		return false, fmt.Errorf("read DHCP server %s: %w", id, err)
	}
	return n > 0, nil
}

// leaseWrite is one row to upsert.
type leaseWrite struct {
	ip  uint32
	row leaseRow
}

// leaseWriter commits queued rows in batches (group commit): while one transaction commits,
// the rows changed meanwhile queue up and go together in the next.
type leaseWriter struct {
	db      *sql.DB
	upsert  *sql.Stmt // leaseUpsert, prepared at the first commit (run's goroutine only)
	conn    *sql.Conn // the writer's connection, without automatic checkpoints (run only)
	commits int       // since the last checkpoint (run only)
	// checkpointBusy is set while a checkpoint runs; checkpointing waits for it at close.
	checkpointBusy atomic.Bool
	checkpointing  sync.WaitGroup
	mu             sync.Mutex
	pending        map[uint32]leaseRow // the latest version of each changed row
	waiters        []chan error
	closed         bool
	kick           chan struct{}
	done           chan struct{}
	// failures counts the commits that failed in a row (run only); closeErr is the last
	// commit's error when the writer stopped (read by close after done).
	failures int
	closeErr error
}

func newLeaseWriter(db *sql.DB) *leaseWriter {
	w := &leaseWriter{db: db, pending: map[uint32]leaseRow{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

var errLeasesClosed = errors.New("lease store closed")

// queue adds rows to the next batch; with wait, the returned channel gets the commit's result.
func (w *leaseWriter) queue(rows []leaseWrite, wait bool) chan error {
	var ch chan error
	if wait {
		ch = make(chan error, 1)
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		if ch != nil {
			ch <- errLeasesClosed
		}
		return ch
	}
	for _, r := range rows {
		w.pending[r.ip] = r.row
	}
	if ch != nil {
		w.waiters = append(w.waiters, ch)
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return ch
}

func (w *leaseWriter) wait(ch chan error) error { return <-ch }

// minCommitInterval spaces the lease writer's commits. A SQLite commit has a fixed cost (the
// write lock, a WAL frame per changed page, the shared-memory index) that a batch of one row
// pays alone: under a DHCP flood the writer committed thousands of tiny batches a second and
// was a third of the server's CPU (issue 13). Waiting for what queues up meanwhile delays an
// ACK by at most this much, next to the seconds a client waits before it retransmits.
const minCommitInterval = 5 * time.Millisecond

// Commit failures: the writer gives up its connection (a connection that failed may stay
// broken: an I/O error on its file descriptors, a file replaced underneath; SQLite then fails
// every later statement on it) and opens another for the next commit, after a pause that
// doubles with each failure in a row, from minRetryPause up to maxRetryPause. The rows of the
// failed batch stay queued — the in-memory copy already has them — and go with the next
// commit; the callers waiting for the failed one get its error, so no ACK goes out for a lease
// that is not committed.
const (
	minRetryPause = 50 * time.Millisecond
	maxRetryPause = 2 * time.Second
)

func (w *leaseWriter) run() {
	defer close(w.done)
	var last time.Time
	for range w.kick {
		pause := minCommitInterval
		if w.failures > 0 {
			pause = min(minRetryPause<<min(w.failures-1, 10), maxRetryPause)
		}
		if wait := time.Until(last.Add(pause)); wait > 0 {
			time.Sleep(wait)
		}
		last = time.Now()
		w.mu.Lock()
		batch, waiters, closed := w.pending, w.waiters, w.closed
		w.pending, w.waiters = map[uint32]leaseRow{}, nil
		w.mu.Unlock()
		var err error
		if len(batch) > 0 {
			if err = w.commit(batch); err != nil {
				w.failed(batch)
			} else {
				w.failures = 0
			}
		}
		for _, ch := range waiters {
			ch <- err
		}
		if closed {
			w.closeErr = err
		}
		if len(batch) > 0 && err == nil {
			if w.commits++; w.commits >= checkpointEvery && !closed {
				w.commits = 0
				w.checkpoint()
			}
		}
		if closed {
			w.checkpointing.Wait()
			if w.conn != nil {
				w.conn.Close()
			}
			return
		}
	}
}

// failed handles a commit of batch that failed: the connection is given up (reopened by the
// next commit), and the batch's rows are queued again under the versions changed since, and
// another round is kicked off (it waits out the retry pause).
func (w *leaseWriter) failed(batch map[uint32]leaseRow) {
	w.failures++
	if w.conn != nil {
		// driver.ErrBadConn from Raw makes database/sql close the connection rather than put
		// it back in the pool, where the next Conn would get it again.
		w.conn.Raw(func(any) error { return driver.ErrBadConn })
		w.conn.Close()
		w.conn = nil
	}
	w.mu.Lock()
	for ip, r := range batch {
		if _, newer := w.pending[ip]; !newer {
			w.pending[ip] = r
		}
	}
	closed := w.closed
	w.mu.Unlock()
	if !closed {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// checkpointEvery is how many lease commits go by between two checkpoints of the lease file's
// WAL (at most 200 commits a second: about one a second under load).
const checkpointEvery = 200

// checkpoint copies the WAL into the lease file on a connection of the pool, beside the
// writer (PASSIVE: it waits for nobody, and the writer does not wait for it), unless the last
// one is still running. Closing the file checkpoints what is left.
func (w *leaseWriter) checkpoint() {
	if !w.checkpointBusy.CompareAndSwap(false, true) {
		return
	}
	w.checkpointing.Add(1)
	go func() {
		defer w.checkpointing.Done()
		defer w.checkpointBusy.Store(false)
		// An error (the file closing) only leaves the WAL longer until the next one.
		w.db.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`)
	}()
}

// leaseUpsert writes one row of the SQLite lease table.
const leaseUpsert = `INSERT INTO dhcp_leases (ip, mac, state, expires_ms, hostname, updated_ms)
	VALUES (?, ?, ?, ?, ?, ?)
	ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac, state = excluded.state, expires_ms = excluded.expires_ms,
		hostname = excluded.hostname, updated_ms = excluded.updated_ms`

func (w *leaseWriter) commit(batch map[uint32]leaseRow) error {
	ctx := context.Background()
	if w.upsert == nil {
		// Prepared once for the writer's life (the writer is the only goroutine here); a
		// failure is retried at the next commit.
		st, err := w.db.PrepareContext(ctx, leaseUpsert)
		if err != nil {
			return err
		}
		w.upsert = st
	}
	if w.conn == nil {
		// The writer's own connection, which never checkpoints: with SQLite's automatic
		// checkpoint the commit that crosses 1000 WAL pages copies them into the database and
		// fsyncs, and every ACK waiting for that commit waited for the disk too — under other
		// I/O, stalls of a few hundred ms that filled every DHCP slot (issue 13). checkpoint
		// does it beside the writer instead.
		conn, err := w.db.Conn(ctx)
		if err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
			conn.Close()
			return err
		}
		w.conn = conn
	}
	tx, err := w.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	stmt := tx.StmtContext(ctx, w.upsert)
	for ip, r := range batch {
		if _, err := stmt.ExecContext(ctx, ip, r.mac, string(r.state), r.expires, r.hostname, r.updated); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// close flushes the queue and stops the writer.
func (w *leaseWriter) close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	select { // a kick already queued does as well: the writer sees closed when it takes it
	case w.kick <- struct{}{}:
	default:
	}
	<-w.done
	if w.upsert != nil {
		w.upsert.Close()
	}
	if w.closeErr != nil {
		return fmt.Errorf("write dhcp leases at close: %w", w.closeErr)
	}
	return nil
}

func closeRows(rows *sql.Rows) error {
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	return rows.Close()
}

// checkRequest rejects requests the store cannot key or place.
func checkRequest(r LeaseRequest, needIP bool) error {
	if len(r.MAC) == 0 {
		return errors.New("lease request without a hardware address")
	}
	s, okS := ipToUint(r.Pool.Start)
	e, okE := ipToUint(r.Pool.End)
	if !needIP && (!okS || !okE || s > e) {
		return fmt.Errorf("lease request with an invalid pool %v-%v", r.Pool.Start, r.Pool.End)
	}
	if needIP && r.IP.To4() == nil {
		return errors.New("lease request without an IPv4 address")
	}
	return nil
}
