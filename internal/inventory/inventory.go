// Package inventory owns what fleetboot knows about machines, install profiles, assignment
// rules and each machine's event timeline, persisted in the embedded database. A machine is
// identified by its MAC address (lower-case, colon-separated); its UUID (SMBIOS, from DHCP
// option 97 or iPXE) and firmware kind (from DHCP) are recorded when seen, also when DHCP saw
// the machine before its first boot script (RecordDHCP). State moves discovered →
// install-pending → installing → installed (or failed, when the installer reports a
// failure), by the boot path and the installer's callbacks
// (Transition, which checks the state it moves from), by the operator (UpdateMachine) or by a
// rule; every change is a timeline event written in the same transaction.
package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/store"
)

// State is where a machine is in its install life.
type State string

// Machine states.
const (
	// Discovered: seen on the network, nothing to install.
	Discovered State = "discovered"
	// InstallPending: the next network boot installs the assigned profile.
	InstallPending State = "install-pending"
	// Installing: the installer was handed out; waiting for the done callback.
	Installing State = "installing"
	// Installed: the installer reported done; the machine boots from its disk.
	Installed State = "installed"
	// Failed: the installer reported that the install failed (a progress hook, e.g.
	// kickstart's %onerror or an autoinstall FAIL event); the reason is the state event's
	// detail. The machine gets the boot menu, not the installer again, until an operator
	// reinstalls it.
	Failed State = "failed"
)

// States lists every machine state, in life order (metrics pre-initialise one series each).
var States = []State{Discovered, InstallPending, Installing, Installed, Failed}

// ValidState reports whether s is a known state.
func ValidState(s State) bool {
	switch s {
	case Discovered, InstallPending, Installing, Installed, Failed:
		return true
	}
	return false
}

// Errors callers map to HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// Machine is one machine.
type Machine struct {
	MAC      string            `json:"mac"`
	UUID     string            `json:"uuid,omitempty"`
	Hostname string            `json:"hostname,omitempty"`
	Labels   map[string]string `json:"labels"`
	Profile  string            `json:"profile,omitempty"`
	State    State             `json:"state"`
	Arch     string            `json:"arch,omitempty"`
	Platform string            `json:"platform,omitempty"`
	Firmware string            `json:"firmware,omitempty"`
	IP       string            `json:"ip,omitempty"`
	// Hardware is what iPXE reported at the machine's last boot (ipxe.HardwareFacts:
	// manufacturer, product, serial, asset, memsize, cpuvendor, cpumodel, nic_chip,
	// nic_bustype); facts it did not report keep their earlier value.
	Hardware     map[string]string `json:"hardware,omitempty"`
	FirstSeen    time.Time         `json:"first_seen"`
	LastSeen     time.Time         `json:"last_seen"`
	StateChanged time.Time         `json:"state_changed"`
}

// Profile modes: what a machine with the profile boots, and how often.
const (
	// ModeInstallOnce (the default) boots the installer until it calls back done
	// (install-pending → installing → installed), then the local disk.
	ModeInstallOnce = "install-once"
	// ModeBootOnce boots the profile once and expects no callback: for tools that do not
	// install anything (memtest, a rescue system). The machine goes from install-pending
	// straight to installed, so its next network boot is the local disk.
	ModeBootOnce = "boot-once"
	// ModeAlways boots the profile on every network boot of a machine it is assigned to,
	// whatever the machine's state, and never moves the state (diskless, a memtest station).
	ModeAlways = "always"
)

// ValidMode reports whether m is a profile mode ("" is the default, install-once).
func ValidMode(m string) bool {
	switch m {
	case "", ModeInstallOnce, ModeBootOnce, ModeAlways:
		return true
	}
	return false
}

// Profile is an install: an ISO, one of its boot entries, extra kernel arguments and an
// optional unattended-install template.
type Profile struct {
	Name  string `json:"name"`
	ISO   string `json:"iso"`
	Entry string `json:"entry,omitempty"`
	// Mode is install-once (default), boot-once or always.
	Mode      string            `json:"mode,omitempty"`
	ExtraArgs string            `json:"extra_args,omitempty"`
	Template  string            `json:"template,omitempty"`
	Kind      string            `json:"template_kind,omitempty"`
	Vars      map[string]string `json:"vars,omitempty"`
	SSHKeys   []string          `json:"ssh_keys,omitempty"`
	Created   time.Time         `json:"created,omitzero"`
	Updated   time.Time         `json:"updated,omitzero"`
	// SecureBoot says whether machines with UEFI Secure Boot on can boot this profile. The
	// server computes it on every read from its ISO's stored readiness (internal/provision);
	// it is never stored, and ignored when a client sends it.
	SecureBoot *SecureBootStatus `json:"secure_boot,omitempty"`
	// Broken is set, by the API when it lists profiles, for a profile that cannot boot any
	// machine, with the reason in Problem (its ISO was force-deleted, a registered image file
	// is gone). Not stored.
	Broken  bool   `json:"broken"`
	Problem string `json:"problem,omitempty"`
}

// SecureBootStatus is a profile's Secure Boot verdict: the boot entry a UEFI machine gets,
// the shim fleetboot would serve for it and whether that shim trusts the entry's kernel.
type SecureBootStatus struct {
	// Ready is true when the kernel is signed by a key the served shim trusts.
	Ready bool   `json:"ready"`
	Entry string `json:"entry,omitempty"`
	// Shim is "iso:<path>" for the ISO's own shim, "debian" for fleetboot's default one.
	Shim string `json:"shim,omitempty"`
	// Signer is the subject of the kernel's signing certificate, "" when unsigned.
	Signer string `json:"signer,omitempty"`
	// TrustedBy names the shim certificate the signature chains to, when Ready.
	TrustedBy string `json:"trusted_by,omitempty"`
	// Reason says why not, when not Ready.
	Reason string `json:"reason,omitempty"`
}

// Rule assigns a profile to machines that match it: every label and hardware fact given must
// match, and the MAC must start with MACPrefix when one is given. Lower Priority wins; ties go to the older rule.
type Rule struct {
	ID        int64             `json:"id,omitempty"`
	Priority  int               `json:"priority"`
	MACPrefix string            `json:"mac_prefix,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	// Hardware matches the machine's hardware facts: each value must match the whole fact,
	// ignoring case, with * for any run of characters and ? for one, e.g.
	// {"product": "PowerEdge R650"} or {"manufacturer": "Dell*"}. A machine that has not
	// reported the fact does not match.
	Hardware map[string]string `json:"hardware,omitempty"`
	Profile  string            `json:"profile"`
	// Install sets matching machines to install-pending (otherwise they only get the profile
	// assigned, for an operator to start).
	Install bool      `json:"install"`
	Created time.Time `json:"created,omitzero"`
}

// Event is one step in a machine's timeline.
type Event struct {
	ID     int64     `json:"id"`
	MAC    string    `json:"mac"`
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail,omitempty"`
	// Site is the --site of the fleetboot instance that wrote the event ("" when it had none):
	// with several instances on one database, which one served the step.
	Site string `json:"site,omitempty"`
}

// Sighting is a machine seen booting.
type Sighting struct {
	MAC      string
	UUID     string
	Arch     string
	Platform string
	Firmware string
	IP       string
	// Hardware facts the machine reported (ipxe.HardwareFacts keys).
	Hardware map[string]string
}

// Inventory is the persisted inventory.
type Inventory struct {
	db *store.DB
	// writers holds this process's writer slots (local): one on SQLite, which serialises
	// this process's write transactions; maxWriters on PostgreSQL. Across processes sharing a
	// PostgreSQL database, transactions take the locks described at catalogLock.
	writers chan struct{}
	// gates lets one write transaction of this process at a time hold or wait for a
	// machine's lock on PostgreSQL (enter).
	gates machineGates
	// deferredMu guards deferred: DHCP facts RecordDHCP could not write because another
	// transaction held their machine's lock; the next RecordDHCP writes them.
	deferredMu sync.Mutex
	deferred   map[string]*dhcpFacts
	now        func() time.Time
	site       string // --site, recorded on every event
	// feed wakes live event streams after commits.
	feed feed
	// dhcpClientsAdded counts dhcp_clients rows RecordDHCP added since it last trimmed the
	// table.
	dhcpClientsAdded atomic.Int64
	// known is the set of machine MACs on SQLite (Known), nil on PostgreSQL; knownMu guards it.
	knownMu sync.RWMutex
	known   map[string]struct{}
	// version counts committed changes of machines, profiles and rules (Version).
	version atomic.Uint64
	// hook, when set (tests only), is called by write transactions once they hold the locks
	// of begin, with "locked".
	hook func(stage string)
}

// Known reports whether a machine with this MAC (as stored: Machine's key) is recorded,
// without a query: the DHCP packet path asks it for every new client, and under a flood of
// new MACs a query each was most of proxy mode's CPU (issue 13). ok is false on PostgreSQL,
// where other instances record machines too: ask the database (Machine) there.
func (inv *Inventory) Known(mac string) (known, ok bool) {
	inv.knownMu.RLock()
	defer inv.knownMu.RUnlock()
	if inv.known == nil {
		return false, false
	}
	_, known = inv.known[mac]
	return known, true
}

// loadKnown fills the set Known answers from, once at Open (SQLite: this process is the only
// writer, and records every machine it adds or deletes with setKnown).
func (inv *Inventory) loadKnown(ctx context.Context) error {
	rows, err := inv.db.QueryContext(ctx, `SELECT mac FROM machines`)
	if err != nil {
		return fmt.Errorf("load machines: %w", err)
	}
	defer rows.Close()
	known := map[string]struct{}{}
	for rows.Next() {
		var mac string
		if err := rows.Scan(&mac); err != nil {
			return fmt.Errorf("load machines: %w", err)
		}
		known[mac] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load machines: %w", err)
	}
	inv.known = known
	return nil
}

// setKnown records that the machine mac was committed (in) or deleted (!in). Called after the
// commit, before Version moves (committed): whoever sees the new version sees the machine.
func (inv *Inventory) setKnown(mac string, in bool) {
	inv.knownMu.Lock()
	defer inv.knownMu.Unlock()
	if inv.known == nil {
		return
	}
	if in {
		inv.known[mac] = struct{}{}
	} else {
		delete(inv.known, mac)
	}
}

// Version is a number that changes after every change to machines, profiles or rules this
// Inventory commits (timeline events and DHCP's firmware facts do not count): a caller may
// keep what it derived from them while Version returns the same number, read before its own
// queries. ok is false on PostgreSQL, where other instances change the database too: nothing
// may be kept there.
func (inv *Inventory) Version() (v uint64, ok bool) {
	return inv.version.Load(), inv.db.Dialect() != store.Postgres
}

// schema is the inventory's tables; each list is append-only.
var schema = store.Schema{SQLite: sqliteMigrations, Postgres: postgresMigrations}

var sqliteMigrations = []string{
	`CREATE TABLE profiles (
		name TEXT PRIMARY KEY,
		iso TEXT NOT NULL,
		entry TEXT NOT NULL DEFAULT '',
		extra_args TEXT NOT NULL DEFAULT '',
		template TEXT NOT NULL DEFAULT '',
		template_kind TEXT NOT NULL DEFAULT '',
		vars TEXT NOT NULL DEFAULT '{}',
		ssh_keys TEXT NOT NULL DEFAULT '[]',
		created TEXT NOT NULL,
		updated TEXT NOT NULL);
	CREATE TABLE machines (
		mac TEXT PRIMARY KEY,
		uuid TEXT NOT NULL DEFAULT '',
		hostname TEXT NOT NULL DEFAULT '',
		labels TEXT NOT NULL DEFAULT '{}',
		profile TEXT REFERENCES profiles(name) ON UPDATE CASCADE ON DELETE RESTRICT,
		state TEXT NOT NULL,
		arch TEXT NOT NULL DEFAULT '',
		platform TEXT NOT NULL DEFAULT '',
		firmware TEXT NOT NULL DEFAULT '',
		ip TEXT NOT NULL DEFAULT '',
		first_seen TEXT NOT NULL,
		last_seen TEXT NOT NULL,
		state_changed TEXT NOT NULL);
	CREATE INDEX machines_uuid ON machines(uuid) WHERE uuid != '';
	CREATE TABLE rules (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		priority INTEGER NOT NULL DEFAULT 100,
		mac_prefix TEXT NOT NULL DEFAULT '',
		labels TEXT NOT NULL DEFAULT '{}',
		profile TEXT NOT NULL REFERENCES profiles(name) ON UPDATE CASCADE ON DELETE RESTRICT,
		install INTEGER NOT NULL DEFAULT 0,
		created TEXT NOT NULL);
	CREATE TABLE events (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		mac TEXT NOT NULL,
		time TEXT NOT NULL,
		kind TEXT NOT NULL,
		detail TEXT NOT NULL DEFAULT '');
	CREATE INDEX events_mac_time ON events(mac, id);`,
	`ALTER TABLE profiles ADD COLUMN mode TEXT NOT NULL DEFAULT 'install-once';`,
	`ALTER TABLE machines ADD COLUMN hardware TEXT NOT NULL DEFAULT '{}';
	ALTER TABLE rules ADD COLUMN hardware TEXT NOT NULL DEFAULT '{}';`,
	// What DHCP told about machines not recorded yet (the firmware's DHCP precedes the first
	// boot script); See takes it over when it records the machine.
	`CREATE TABLE dhcp_clients (
		mac TEXT PRIMARY KEY,
		firmware TEXT NOT NULL DEFAULT '',
		uuid TEXT NOT NULL DEFAULT '',
		seen TEXT NOT NULL);`,
	`ALTER TABLE events ADD COLUMN site TEXT NOT NULL DEFAULT '';`,
}

// postgresMigrations is the same schema for PostgreSQL: times stay RFC 3339 text and maps
// JSON text, as in SQLite, so that both backends share every query and scan.
var postgresMigrations = []string{
	`CREATE TABLE profiles (
		name TEXT PRIMARY KEY,
		iso TEXT NOT NULL,
		entry TEXT NOT NULL DEFAULT '',
		extra_args TEXT NOT NULL DEFAULT '',
		template TEXT NOT NULL DEFAULT '',
		template_kind TEXT NOT NULL DEFAULT '',
		vars TEXT NOT NULL DEFAULT '{}',
		ssh_keys TEXT NOT NULL DEFAULT '[]',
		created TEXT NOT NULL,
		updated TEXT NOT NULL,
		mode TEXT NOT NULL DEFAULT 'install-once');
	CREATE TABLE machines (
		mac TEXT PRIMARY KEY,
		uuid TEXT NOT NULL DEFAULT '',
		hostname TEXT NOT NULL DEFAULT '',
		labels TEXT NOT NULL DEFAULT '{}',
		profile TEXT REFERENCES profiles(name) ON UPDATE CASCADE ON DELETE RESTRICT,
		state TEXT NOT NULL,
		arch TEXT NOT NULL DEFAULT '',
		platform TEXT NOT NULL DEFAULT '',
		firmware TEXT NOT NULL DEFAULT '',
		ip TEXT NOT NULL DEFAULT '',
		first_seen TEXT NOT NULL,
		last_seen TEXT NOT NULL,
		state_changed TEXT NOT NULL,
		hardware TEXT NOT NULL DEFAULT '{}');
	CREATE INDEX machines_uuid ON machines(uuid) WHERE uuid != '';
	CREATE TABLE rules (
		id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
		priority INTEGER NOT NULL DEFAULT 100,
		mac_prefix TEXT NOT NULL DEFAULT '',
		labels TEXT NOT NULL DEFAULT '{}',
		profile TEXT NOT NULL REFERENCES profiles(name) ON UPDATE CASCADE ON DELETE RESTRICT,
		install BOOLEAN NOT NULL DEFAULT false,
		created TEXT NOT NULL,
		hardware TEXT NOT NULL DEFAULT '{}');
	CREATE TABLE events (
		id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
		mac TEXT NOT NULL,
		time TEXT NOT NULL,
		kind TEXT NOT NULL,
		detail TEXT NOT NULL DEFAULT '');
	CREATE INDEX events_mac_time ON events(mac, id);
	CREATE TABLE dhcp_clients (
		mac TEXT PRIMARY KEY,
		firmware TEXT NOT NULL DEFAULT '',
		uuid TEXT NOT NULL DEFAULT '',
		seen TEXT NOT NULL);`,
	`ALTER TABLE events ADD COLUMN site TEXT NOT NULL DEFAULT '';`,
}

// Open applies the inventory's migrations and returns it.
func Open(ctx context.Context, st *store.Store) (*Inventory, error) {
	if err := st.Apply(ctx, "inventory", schema); err != nil {
		return nil, err
	}
	slots := 1
	if st.Dialect() == store.Postgres {
		slots = maxWriters
	}
	inv := &Inventory{db: st.DB(), now: func() time.Time { return time.Now().UTC() }, writers: make(chan struct{}, slots)}
	if st.Dialect() != store.Postgres {
		if err := inv.loadKnown(ctx); err != nil {
			return nil, err
		}
	}
	// Events other instances commit to a shared PostgreSQL database wake this instance's live
	// streams as its own commits do (nothing happens on SQLite). Version is not kept on
	// PostgreSQL, so a notification does not move it.
	st.Listen(eventsChannel, func() { inv.eventsCommitted(nil) })
	return inv, nil
}

// The inventory's locks (PostgreSQL advisory locks, shared by every instance using the
// database; on SQLite every write transaction holds the database's single write lock instead).
// A write transaction takes them in this order, each kind at most once, so none deadlocks:
//
//   - catalogLock: exclusive for the catalog writers (AddRule, PutProfile), shared by every
//     other write transaction, events included. (Deletes of a machine, rule or profile and
//     the UPDATE of a sighting that reports nothing new take no lock: single statements that
//     create nothing another transaction must see.) So a new rule and a new machine never miss each other
//     (the rule sees the machine or the machine sees the rule), and an instance of a fleetboot
//     before finer locking, which takes this key exclusively for every write, excludes all
//     writes of a newer one while both run during an upgrade.
//   - machineLock of each machine the transaction reads and then writes (begin, LockKeys: all
//     at once, in hash order): a machine seen by two instances at once is created once, a
//     compare-and-set transition has one winner, DHCP facts are not lost between a sighting
//     that creates the machine and the DHCP writer. Transactions on different machines run
//     side by side.
//   - eventLock, taken by the transaction's last statement, which writes all its events
//     (flushEvents), and held only until the commit right after it. Event ids are drawn from
//     the sequence under this lock and committed before it is released, so they become visible
//     in increasing order: a live stream reading "id > last seen" skips none (feed).
//
// Every transaction takes all its advisory locks before it touches a row, and row locks are
// taken only on the machines it holds the locks of (or by single statements that wait for
// nothing else), so row locks and advisory locks never wait for each other in a circle.
const (
	catalogLock = "fleetboot:inventory"
	eventLock   = "fleetboot:events"
)

// machineLock is the lock key of one machine.
func machineLock(mac string) string { return "fleetboot:machine:" + mac }

// begin starts a write transaction that may change the machines macs: it holds the catalog
// lock shared and the lock of each machine (see catalogLock). On SQLite the IMMEDIATE
// transaction holds the one write lock of the database, which serialises every writer: the
// same guarantees, without concurrency.
func (inv *Inventory) begin(ctx context.Context, macs ...string) (*writeTx, error) {
	locks := store.Locks{Shared: []string{catalogLock}}
	for _, mac := range macs {
		locks.Exclusive = append(locks.Exclusive, machineLock(mac))
	}
	return inv.beginLocked(ctx, locks)
}

// beginCatalog starts a write transaction of the catalog (rules, profiles): it holds the
// catalog lock exclusively.
func (inv *Inventory) beginCatalog(ctx context.Context) (*writeTx, error) {
	return inv.beginLocked(ctx, store.Locks{Exclusive: []string{catalogLock}})
}

func (inv *Inventory) beginLocked(ctx context.Context, locks store.Locks) (*writeTx, error) {
	tx, err := inv.db.BeginLocked(ctx, locks)
	if err != nil {
		return nil, err
	}
	if inv.hook != nil {
		inv.hook("locked")
	}
	return &writeTx{Tx: tx, site: inv.site}, nil
}

// writeTx is an inventory write transaction: it holds its locks (begin), and collects the
// events it writes, which commit writes under the event lock, and on PostgreSQL the writes
// whose results it does not need (later), which go with its next statement or its COMMIT.
type writeTx struct {
	*store.Tx
	site   string
	events []pendingEvent
	writes []store.Stmt
}

// later runs a write whose result the transaction does not need. On PostgreSQL it waits for
// the transaction's next statement or its commit and goes in one message with them: each
// such write saves a round trip. On SQLite it runs at once.
func (tx *writeTx) later(ctx context.Context, q string, args ...any) error {
	if tx.Dialect() != store.Postgres {
		_, err := tx.Tx.ExecContext(ctx, q, args...)
		return err
	}
	tx.writes = append(tx.writes, store.Stmt{Query: q, Args: args})
	return nil
}

// flush sends the writes waiting for the next statement, so that it sees them.
func (tx *writeTx) flush(ctx context.Context) error {
	if len(tx.writes) == 0 {
		return nil
	}
	w := tx.writes
	tx.writes = nil
	return tx.Tx.ExecAll(ctx, w...)
}

// ExecContext runs a statement after the waiting writes.
func (tx *writeTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := tx.flush(ctx); err != nil {
		return nil, err
	}
	return tx.Tx.ExecContext(ctx, q, args...)
}

// QueryContext runs a query after the waiting writes.
func (tx *writeTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if err := tx.flush(ctx); err != nil {
		return nil, err
	}
	return tx.Tx.QueryContext(ctx, q, args...)
}

// QueryRowContext runs a query after the waiting writes. When they fail, the transaction is
// aborted and the query fails too (PostgreSQL refuses statements in an aborted transaction).
func (tx *writeTx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	tx.flush(ctx)
	return tx.Tx.QueryRowContext(ctx, q, args...)
}

// event adds a timeline event, written at commit.
func (tx *writeTx) event(mac, now, kind, detail string) {
	tx.events = append(tx.events, pendingEvent{mac: mac, time: now, kind: kind, detail: detail})
}

// commit writes the transaction's events and commits it. On PostgreSQL the events statement
// goes with the COMMIT (Tx.CommitWith), so the event lock it takes is held only while the
// server runs both.
func (tx *writeTx) commit(ctx context.Context) error {
	if tx.Dialect() == store.Postgres {
		stmts := tx.writes
		tx.writes = nil
		if len(tx.events) > 0 {
			stmts = append(stmts, store.Stmt{Query: pgEventsSQL, Args: pgEventsArgs(tx.site, tx.events)})
		}
		if err := tx.CommitWith(ctx, stmts...); err != nil {
			if len(tx.events) > 0 {
				return eventsError(tx.events, err)
			}
			return err
		}
		return nil
	}
	if err := flushEvents(ctx, tx.Tx, tx.site, tx.events); err != nil {
		return err
	}
	return tx.Commit()
}

// maxWriters is how many write transactions (sightings that create or change a machine,
// transitions, DHCP facts, operator changes) one instance runs at once on PostgreSQL; more
// wait in the process. They run side by side (begin), but each is a server process doing a few
// round trips: unbounded, a fleet powering on had dozens at once, which on a small machine
// took the CPU and the connection pool (16) from the DHCP lease transactions and from each
// other. With 4, bench-database.sh measured both DHCP and boot-script p50 2-4x lower than
// unbounded, in two alternating pairs of runs.
const maxWriters = 4

// local bounds this process's write transactions: on SQLite one at a time, so that they
// queue here rather than on SQLite's busy timeout; on PostgreSQL maxWriters, ordered by the
// database's locks (begin). It returns the release, or an error wrapping ctx's when ctx ends
// before a slot is free: while the database does not answer (PostgreSQL hung, or cut off with
// the connections open) every slot stays taken, and without the context each request that
// wanted to write waited here for as long, however long its client had given up before.
func (inv *Inventory) local(ctx context.Context) (func(), error) {
	select {
	case inv.writers <- struct{}{}:
		return func() { <-inv.writers }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a database write slot (all %d taken by writes the database has not finished): %w", cap(inv.writers), ctx.Err())
	}
}

// enter is local for a write transaction that will lock the machines macs (begin). On
// PostgreSQL it first takes this process's gate of each machine, so that of all the
// transactions of this process on one machine only one at a time holds or waits for its lock
// in the database; the others wait here, holding neither a writer slot nor a connection, and
// give up when ctx ends. Another instance that hangs holding a machine's lock (frozen, its
// machine without power, cut off with its connections open) until PostgreSQL ends its
// session (store.IdleInTransactionTimeout) then costs this one a single writer slot per
// machine it holds: without the gate, a firmware retrying its boot script a few times filled
// every slot with waits for that machine and stalled the writes of all the others.
func (inv *Inventory) enter(ctx context.Context, macs ...string) (func(), error) {
	if inv.db.Dialect() != store.Postgres {
		return inv.local(ctx)
	}
	open, err := inv.gates.acquire(ctx, macs)
	if err != nil {
		return nil, err
	}
	release, err := inv.local(ctx)
	if err != nil {
		open()
		return nil, err
	}
	return func() {
		release()
		open()
	}, nil
}

// machineGates are this process's gates of machines (enter): a machine's gate is held while
// a transaction of this process holds or waits for that machine's lock.
type machineGates struct {
	mu   sync.Mutex
	held map[string]chan struct{} // closed when the gate opens
}

// acquire takes the gates of macs, in sorted order (so that two callers never wait for each
// other in a circle), and returns what opens them again.
func (g *machineGates) acquire(ctx context.Context, macs []string) (func(), error) {
	macs = slices.Compact(slices.Sorted(slices.Values(macs)))
	got := 0
	open := func() { g.open(macs[:got]) }
	for _, mac := range macs {
		for {
			g.mu.Lock()
			ch, busy := g.held[mac]
			if !busy {
				g.take(mac)
				g.mu.Unlock()
				break
			}
			g.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				open()
				return nil, ctx.Err()
			}
		}
		got++
	}
	return open, nil
}

// try takes the gates of those of macs that are open, without waiting; it returns the ones it
// took (open them with open) and the ones that were held.
func (g *machineGates) try(macs []string) (took, held []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, mac := range macs {
		if _, busy := g.held[mac]; busy {
			held = append(held, mac)
			continue
		}
		g.take(mac)
		took = append(took, mac)
	}
	return took, held
}

// take closes the gate of mac, which is open; g.mu is held.
func (g *machineGates) take(mac string) {
	if g.held == nil {
		g.held = map[string]chan struct{}{}
	}
	g.held[mac] = make(chan struct{})
}

// open opens the gates of macs (taken by acquire or try).
func (g *machineGates) open(macs []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, mac := range macs {
		if ch, ok := g.held[mac]; ok {
			close(ch)
			delete(g.held, mac)
		}
	}
}

// SetSite names the instance (--site) on every event it writes from now on. Call it before
// the inventory is shared with other goroutines.
func (inv *Inventory) SetSite(site string) { inv.site = site }

const timeFmt = time.RFC3339Nano

func fmtTime(t time.Time) string { return t.UTC().Format(timeFmt) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeFmt, s)
	return t
}

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	labelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)
	macPfx  = regexp.MustCompile(`^([0-9a-f]{2})(:[0-9a-f]{2}){0,5}$`)
)

// ValidName reports whether s can name a profile: letters, digits, '.', '_', '-', at most 63.
func ValidName(s string) bool { return nameRE.MatchString(s) }

func checkLabels(l map[string]string) error {
	for k, v := range l {
		if !labelRE.MatchString(k) {
			return fmt.Errorf("%w: label key %q: use letters, digits, '.', '_', '-', '/'", ErrInvalid, k)
		}
		if len(v) > 253 || strings.ContainsAny(v, "\x00\n\r") {
			return fmt.Errorf("%w: label %s has a bad value", ErrInvalid, k)
		}
	}
	return nil
}

func checkHardwareRule(h map[string]string) error {
	for k, v := range h {
		if !ipxe.IsHardwareFact(k) {
			var keys []string
			for _, f := range ipxe.HardwareFacts {
				keys = append(keys, f.Key)
			}
			return fmt.Errorf("%w: hardware fact %q: want one of %s", ErrInvalid, k, strings.Join(keys, ", "))
		}
		if strings.TrimSpace(v) == "" || len(v) > 255 || strings.ContainsAny(v, "\x00\n\r") {
			return fmt.Errorf("%w: hardware %s: want a value or a pattern with * and ? (at most 255 characters)", ErrInvalid, k)
		}
	}
	return nil
}

// decodeJSON reads a JSON column into v; what fails to decode is an error naming the row and
// column, never an empty value a later write would store over the real one.
func decodeJSON(what, column, text string, v any) error {
	if err := json.Unmarshal([]byte(text), v); err != nil {
		return fmt.Errorf("%s: stored %s are not valid JSON (%q…): %w", what, column, truncate(text, 40), err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
