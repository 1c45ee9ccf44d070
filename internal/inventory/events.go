package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
)

// maxEventsPerMachine bounds a machine's timeline; the oldest events go first.
const maxEventsPerMachine = 500

// eventsChannel is the notification channel of committed events (PostgreSQL): every instance
// sharing the database wakes its live streams on it (Open).
const eventsChannel = "fleetboot_events"

// pendingEvent is an event a write transaction writes at its commit.
type pendingEvent struct{ mac, time, kind, detail string }

// storable is e with its text as both backends store it (store.StorableText). Every event
// write passes here (flushEvents on SQLite, pgEventsArgs on PostgreSQL), whoever wrote the
// event: its detail may carry bytes from the wire (a foreign DHCP reply's boot file name, a
// firmware's query parameter), which PostgreSQL refuses, and there one statement writes a
// whole batch of events, every machine's line of it lost with the one bad line.
func (e pendingEvent) storable() pendingEvent {
	e.mac, e.kind, e.detail = store.StorableText(e.mac), store.StorableText(e.kind), store.StorableText(e.detail)
	return e
}

// execer runs statements: a transaction, or the database (one statement, its own transaction).
type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	Dialect() store.Dialect
}

// flushEvents writes events, in order, and trims their machines' timelines to
// maxEventsPerMachine, in q: the database itself on PostgreSQL (pgEventsSQL is then its own
// transaction), or a SQLite transaction, which already excludes every other writer. A
// PostgreSQL transaction writes its events with writeTx.commit.
func flushEvents(ctx context.Context, q execer, site string, evs []pendingEvent) error {
	if len(evs) == 0 {
		return nil
	}
	if q.Dialect() == store.Postgres {
		if _, err := q.ExecContext(ctx, pgEventsSQL, pgEventsArgs(site, evs)...); err != nil {
			return eventsError(evs, err)
		}
		return nil
	}
	trim := map[string]bool{}
	for _, e := range evs {
		e = e.storable()
		if _, err := q.ExecContext(ctx, `INSERT INTO events (mac, time, kind, detail, site) VALUES (?, ?, ?, ?, ?)`, e.mac, e.time, e.kind, e.detail, site); err != nil {
			return fmt.Errorf("record event for %s: %w", e.mac, err)
		}
		trim[e.mac] = true
	}
	for mac := range trim {
		if _, err := q.ExecContext(ctx, `DELETE FROM events WHERE mac = ? AND id <= (
			SELECT id FROM events WHERE mac = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, mac, mac, maxEventsPerMachine); err != nil {
			return fmt.Errorf("trim timeline of %s: %w", mac, err)
		}
	}
	return nil
}

// pgEventsSQL writes events on PostgreSQL in one statement (arguments: pgEventsArgs). It
// takes the catalog lock shared and then the event lock first (catalogLock explains why; a
// transaction from begin holds the catalog lock already), draws the ids, trims the timelines
// and notifies the other instances at commit. It must be its own transaction or run together
// with the COMMIT (Tx.CommitWith): the event lock is held from here to the commit.
//
// The INSERT's rows come from a join with the lock's one-row CTE, sorted: no id is drawn (the
// column default, evaluated per row above the sort) before the lock is held. The trim reads
// the timelines as they were before this statement (one snapshot for all its parts), so it
// keeps the newest maxEventsPerMachine minus the new ones.
const pgEventsSQL = `WITH c AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(hashtextextended(?, 0))::text AS held),
	l AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtextextended(?, 0))::text AS held FROM c),
	e AS (SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[]) WITH ORDINALITY AS e(mac, time, kind, detail, n)),
	ins AS (INSERT INTO events (mac, time, kind, detail, site) SELECT e.mac, e.time, e.kind, e.detail, ? FROM l, e ORDER BY e.n),
	cut AS (SELECT m.mac, c.id FROM (SELECT mac, count(*) AS k FROM e GROUP BY mac) AS m,
		LATERAL (SELECT id FROM events WHERE events.mac = m.mac ORDER BY id DESC OFFSET GREATEST(? - m.k, 0) LIMIT 1) AS c),
	del AS (DELETE FROM events AS d USING cut WHERE d.mac = cut.mac AND d.id <= cut.id)
	SELECT pg_notify(?, '') FROM l`

func pgEventsArgs(site string, evs []pendingEvent) []any {
	macs, times, kinds, details := make([]string, len(evs)), make([]string, len(evs)), make([]string, len(evs)), make([]string, len(evs))
	for i, e := range evs {
		e = e.storable()
		macs[i], times[i], kinds[i], details[i] = e.mac, e.time, e.kind, e.detail
	}
	return []any{catalogLock, eventLock, macs, times, kinds, details, site, maxEventsPerMachine, eventsChannel}
}

// eventsError is the error of a failed event write.
func eventsError(evs []pendingEvent, err error) error {
	macs := make([]string, len(evs))
	for i, e := range evs {
		macs[i] = e.mac
	}
	return fmt.Errorf("record events of %s: %w", describeMACs(macs), err)
}

// describeMACs names the machines of a failed event write: the first, and how many others.
func describeMACs(macs []string) string {
	seen := map[string]bool{}
	for _, m := range macs {
		seen[m] = true
	}
	if len(seen) == 1 {
		return macs[0]
	}
	return fmt.Sprintf("%s and %d other machines", macs[0], len(seen)-1)
}

// AddEvent appends to a machine's timeline (boot steps: DHCP, TFTP, script, kernel fetch …).
// On PostgreSQL it is one statement (flushEvents), its own transaction.
func (inv *Inventory) AddEvent(ctx context.Context, mac, kind, detail string) error {
	ev := []pendingEvent{{mac: mac, time: fmtTime(inv.now()), kind: kind, detail: detail}}
	if inv.db.Dialect() == store.Postgres {
		return inv.eventsCommitted(flushEvents(ctx, inv.db, inv.site, ev))
	}
	tx, err := inv.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	tx.events = ev
	return inv.eventsCommitted(tx.commit(ctx))
}

// feed wakes the readers of the timeline (live event streams) after events were committed.
// It carries no events itself: a woken reader asks the database for the events after the last
// one it has (EventsAfter). So a writer never waits for a reader, a slow reader costs nothing
// but its own queries, and a reader cannot miss or reorder events: SQLite runs one write
// transaction at a time (the store opens transactions IMMEDIATE), and on PostgreSQL events are
// written under one lock held until their transaction commits (flushEvents), so ids become
// visible in increasing order and "id > last seen" is exact. With PostgreSQL, commits of other
// instances wake the feed too, through a notification (Open).
type feed struct {
	mu   sync.Mutex
	wake chan struct{} // closed and replaced at every commit that may have added events
}

// EventsWritten returns a channel that is closed once events are committed after this call.
// Take it before reading EventsAfter, then wait on it: nothing written in between is missed.
func (inv *Inventory) EventsWritten() <-chan struct{} {
	inv.feed.mu.Lock()
	defer inv.feed.mu.Unlock()
	if inv.feed.wake == nil {
		inv.feed.wake = make(chan struct{})
	}
	return inv.feed.wake
}

// committed is called with the result of every commit that may have changed machines,
// profiles or rules: when err is nil it moves Version on and wakes the timeline's readers
// (eventsCommitted). It returns err.
func (inv *Inventory) committed(err error) error {
	if err != nil {
		return err
	}
	inv.version.Add(1)
	return inv.eventsCommitted(nil)
}

// eventsCommitted wakes the timeline's readers when err is nil (a commit that may have
// written events, and changed nothing Version covers) and returns err. Waking without new
// events only costs each reader one query.
func (inv *Inventory) eventsCommitted(err error) error {
	if err != nil {
		return err
	}
	inv.feed.mu.Lock()
	if inv.feed.wake != nil {
		close(inv.feed.wake)
		inv.feed.wake = nil
	}
	inv.feed.mu.Unlock()
	return nil
}

// EventsAfter returns up to limit events with an id above after, oldest first: of machine mac,
// or of every machine when mac is "". Live streams resume from the last id they delivered.
func (inv *Inventory) EventsAfter(ctx context.Context, after int64, mac string, limit int) ([]Event, error) {
	if limit <= 0 || limit > maxEventsPerMachine {
		limit = maxEventsPerMachine
	}
	if mac == "" {
		return queryEvents(ctx, inv, `SELECT id, mac, time, kind, detail, site FROM events WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	}
	return queryEvents(ctx, inv, `SELECT id, mac, time, kind, detail, site FROM events WHERE mac = ? AND id > ? ORDER BY id LIMIT ?`, mac, after, limit)
}

// LastEventID is the id of the newest event of any machine (0 when there is none): where a
// stream that wants only new events starts.
func (inv *Inventory) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	err := inv.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&id)
	return id, err
}

// RecentEvents returns the newest limit events of every machine, oldest first.
func (inv *Inventory) RecentEvents(ctx context.Context, limit int) ([]Event, error) {
	if limit <= 0 || limit > maxEventsPerMachine {
		limit = maxEventsPerMachine
	}
	return queryEvents(ctx, inv, `SELECT id, mac, time, kind, detail, site FROM (
		SELECT * FROM events ORDER BY id DESC LIMIT ?) AS recent ORDER BY id`, limit)
}

// Events returns a machine's timeline, oldest first, at most limit (newest kept).
func (inv *Inventory) Events(ctx context.Context, mac string, limit int) ([]Event, error) {
	if limit <= 0 || limit > maxEventsPerMachine {
		limit = maxEventsPerMachine
	}
	return queryEvents(ctx, inv, `SELECT id, mac, time, kind, detail, site FROM (
		SELECT * FROM events WHERE mac = ? ORDER BY id DESC LIMIT ?) AS recent ORDER BY id`, mac, limit)
}

func queryEvents(ctx context.Context, inv *Inventory, query string, args ...any) ([]Event, error) {
	rows, err := inv.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		var t string
		if err := rows.Scan(&e.ID, &e.MAC, &t, &e.Kind, &e.Detail, &e.Site); err != nil {
			return nil, err
		}
		e.Time = parseTime(t)
		out = append(out, e)
	}
	return out, rows.Err()
}

// DHCPSighting is one DHCP step of a machine: the timeline line and what the packet told about
// the machine.
type DHCPSighting struct {
	MAC string
	// Firmware is how the machine's firmware network-boots (bios-pxe, uefi-pxe, uefi-http),
	// "" when the packet does not tell (iPXE's own requests, other clients).
	Firmware string
	// UUID is DHCP option 97 (the SMBIOS UUID), "" when absent.
	UUID string
	// Detail is the timeline line ("offer 10.0.0.5 firmware=uefi-pxe …"); "" records none.
	Detail string
	// Time is when the packet was handled; zero means when the batch is written.
	Time time.Time
}

// maxDHCPClients bounds what is remembered about machines DHCP saw but no boot script yet.
const maxDHCPClients = 10000

// dhcpClientsSlack is how many rows RecordDHCP adds to dhcp_clients between two trims.
const dhcpClientsSlack = 1000

// RecordDHCP records a batch of DHCP sightings: each one's timeline line, and its firmware and
// UUID on the machine (or, for a machine not recorded yet, until See records it). A sighting's
// empty fields change nothing. The facts are one transaction, which locks only the machines it
// records facts of (so that a sighting creating one of them at the same time takes the facts
// or leaves them for this batch to write on the machine, never loses them) and on PostgreSQL
// writes them all in one statement; the timeline lines follow in one statement of their own
// (on SQLite, in the same transaction), so the machine locks are not held while the lines
// wait for the event lock.
func (inv *Inventory) RecordDHCP(ctx context.Context, batch []DHCPSighting) error {
	if len(batch) == 0 {
		return nil
	}
	// Each machine's facts once, the later sighting's where both tell.
	byMAC := map[string]*dhcpFacts{}
	var macs []string
	var evs []pendingEvent
	now := fmtTime(inv.now())
	for _, d := range batch {
		if d.MAC == "" {
			continue
		}
		if d.Detail != "" {
			at := now
			if !d.Time.IsZero() {
				at = fmtTime(d.Time)
			}
			evs = append(evs, pendingEvent{mac: d.MAC, time: at, kind: "dhcp", detail: d.Detail})
		}
		if d.Firmware == "" && d.UUID == "" {
			continue
		}
		f := byMAC[d.MAC]
		if f == nil {
			f = &dhcpFacts{}
			byMAC[d.MAC] = f
			macs = append(macs, d.MAC)
		}
		if d.Firmware != "" {
			f.firmware = d.Firmware
		}
		if d.UUID != "" {
			f.uuid = d.UUID
		}
	}
	pg := inv.db.Dialect() == store.Postgres
	if pg {
		macs = inv.takeDeferred(macs, byMAC)
	}
	if len(macs) > 0 || !pg {
		if err := inv.recordDHCPFacts(ctx, macs, byMAC, now, evs); err != nil {
			return err
		}
	}
	if pg {
		if err := flushEvents(ctx, inv.db, inv.site, evs); err != nil {
			return fmt.Errorf("record DHCP events: %w", err)
		}
	}
	// Firmware and UUID are facts about the machine, not its boot decisions: Version stays.
	return inv.eventsCommitted(nil)
}

// dhcpFacts is what DHCP tells about a machine.
type dhcpFacts struct{ firmware, uuid string }

// maxDeferredFacts bounds the machines whose DHCP facts wait for the next RecordDHCP: beyond
// it, facts are dropped (a machine's firmware kind and UUID are told again at its next DHCP).
const maxDeferredFacts = 4096

// deferFacts keeps the facts of macs (from byMAC) for the next RecordDHCP; facts kept before
// and not told again stay.
func (inv *Inventory) deferFacts(macs []string, byMAC map[string]*dhcpFacts) {
	if len(macs) == 0 {
		return
	}
	inv.deferredMu.Lock()
	defer inv.deferredMu.Unlock()
	if inv.deferred == nil {
		inv.deferred = map[string]*dhcpFacts{}
	}
	for _, mac := range macs {
		f := *byMAC[mac]
		if old := inv.deferred[mac]; old != nil {
			f = merged(*old, f)
		} else if len(inv.deferred) >= maxDeferredFacts {
			continue
		}
		inv.deferred[mac] = &f
	}
}

// takeDeferred adds the deferred facts to a batch's (macs, byMAC: the batch's facts are newer
// and win where both tell) and returns the batch's machines with them.
func (inv *Inventory) takeDeferred(macs []string, byMAC map[string]*dhcpFacts) []string {
	inv.deferredMu.Lock()
	deferred := inv.deferred
	inv.deferred = nil
	inv.deferredMu.Unlock()
	for mac, old := range deferred {
		if f := byMAC[mac]; f != nil {
			*f = merged(*old, *f)
			continue
		}
		byMAC[mac] = old
		macs = append(macs, mac)
	}
	return macs
}

// merged is older facts updated by newer ones where they tell.
func merged(older, newer dhcpFacts) dhcpFacts {
	if newer.firmware != "" {
		older.firmware = newer.firmware
	}
	if newer.uuid != "" {
		older.uuid = newer.uuid
	}
	return older
}

// recordDHCPFacts is RecordDHCP's transaction: the facts of macs, and on SQLite the events.
//
// On PostgreSQL it never waits for a machine's lock: the facts of a machine whose lock another
// transaction holds (this process's: its gate is held; another instance's: the try-lock
// fails) are kept for the next RecordDHCP (deferFacts). It runs on the DHCP server's one
// timeline writer, so a wait here would hold up every machine's timeline lines behind one
// machine — for as long as a hung instance keeps that machine's lock
// (store.IdleInTransactionTimeout).
func (inv *Inventory) recordDHCPFacts(ctx context.Context, macs []string, byMAC map[string]*dhcpFacts, now string, evs []pendingEvent) error {
	pg := inv.db.Dialect() == store.Postgres
	var tx *writeTx
	var err error
	if pg {
		took, held := inv.gates.try(macs)
		defer inv.gates.open(took)
		inv.deferFacts(held, byMAC)
		if macs = took; len(macs) == 0 {
			return nil
		}
	}
	release, err := inv.local(ctx)
	if err != nil {
		return fmt.Errorf("record DHCP facts: %w", err)
	}
	defer release()
	if pg {
		tx, err = inv.beginLocked(ctx, store.Locks{Shared: []string{catalogLock}})
	} else {
		tx, err = inv.begin(ctx, macs...)
	}
	if err != nil {
		return fmt.Errorf("record DHCP facts: %w", err)
	}
	defer tx.Rollback()
	added := 0
	if pg {
		fws, uuids := make([]string, len(macs)), make([]string, len(macs))
		for i, mac := range macs {
			fws[i], uuids[i] = byMAC[mac].firmware, byMAC[mac].uuid
		}
		// d keeps the machines whose lock the transaction gets without waiting (a CTE with a
		// volatile function is evaluated once per row); the others' facts are deferred.
		var locked string
		if err := tx.QueryRowContext(ctx, `WITH d AS (SELECT * FROM unnest(?::text[], ?::text[], ?::text[]) AS d(mac, firmware, uuid)
				WHERE pg_try_advisory_xact_lock(hashtextextended(? || d.mac, 0))),
			upd AS (UPDATE machines AS m SET firmware = COALESCE(NULLIF(d.firmware, ''), m.firmware),
				uuid = COALESCE(NULLIF(d.uuid, ''), m.uuid) FROM d WHERE m.mac = d.mac RETURNING m.mac),
			ins AS (INSERT INTO dhcp_clients (mac, firmware, uuid, seen) SELECT d.mac, d.firmware, d.uuid, ? FROM d
				WHERE d.mac NOT IN (SELECT mac FROM upd)
				ON CONFLICT (mac) DO UPDATE SET firmware = COALESCE(NULLIF(excluded.firmware, ''), dhcp_clients.firmware),
				uuid = COALESCE(NULLIF(excluded.uuid, ''), dhcp_clients.uuid), seen = excluded.seen RETURNING 1)
			SELECT (SELECT count(*) FROM ins), array_to_string(ARRAY(SELECT mac FROM d), ',')`,
			macs, fws, uuids, machineLock(""), now).Scan(&added, &locked); err != nil {
			return fmt.Errorf("record DHCP facts of %s: %w", describeMACs(macs), err)
		}
		got := map[string]bool{}
		for _, mac := range strings.Split(locked, ",") {
			got[mac] = true
		}
		var busy []string
		for _, mac := range macs {
			if !got[mac] {
				busy = append(busy, mac)
			}
		}
		inv.deferFacts(busy, byMAC)
	} else {
		tx.events = evs
		for _, mac := range macs {
			f := byMAC[mac]
			res, err := tx.ExecContext(ctx, `UPDATE machines SET firmware = COALESCE(NULLIF(?, ''), firmware),
				uuid = COALESCE(NULLIF(?, ''), uuid) WHERE mac = ?`, f.firmware, f.uuid, mac)
			if err != nil {
				return fmt.Errorf("record DHCP facts of %s: %w", mac, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("record DHCP facts of %s: %w", mac, err)
			} else if n > 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO dhcp_clients (mac, firmware, uuid, seen) VALUES (?, ?, ?, ?)
				ON CONFLICT (mac) DO UPDATE SET firmware = COALESCE(NULLIF(excluded.firmware, ''), dhcp_clients.firmware),
				uuid = COALESCE(NULLIF(excluded.uuid, ''), dhcp_clients.uuid), seen = excluded.seen`, mac, f.firmware, f.uuid, now); err != nil {
				return fmt.Errorf("record DHCP facts of %s: %w", mac, err)
			}
			added++
		}
	}
	// The trim sorts the whole table: it runs once per dhcpClientsSlack new rows rather than
	// per batch (under a DHCP flood of new MACs it was most of the server's CPU, issue 13), so
	// the table holds at most maxDHCPClients + dhcpClientsSlack + one batch per instance.
	trimmed := false
	if inv.dhcpClientsAdded.Load() >= dhcpClientsSlack {
		if _, err := tx.ExecContext(ctx, `DELETE FROM dhcp_clients WHERE mac NOT IN (
			SELECT mac FROM dhcp_clients ORDER BY seen DESC LIMIT ?)`, maxDHCPClients); err != nil {
			return fmt.Errorf("record DHCP facts: %w", err)
		}
		trimmed = true
	}
	if err := tx.commit(ctx); err != nil {
		return fmt.Errorf("record DHCP events: %w", err)
	}
	if trimmed {
		inv.dhcpClientsAdded.Store(0)
	}
	inv.dhcpClientsAdded.Add(int64(added))
	return nil
}

// takeDHCPFacts fills s's empty firmware and UUID from what DHCP saw of the machine before it
// was recorded, and forgets that.
func takeDHCPFacts(ctx context.Context, q querier, s *Sighting) error {
	var fw, uuid string
	err := q.QueryRowContext(ctx, `DELETE FROM dhcp_clients WHERE mac = ? RETURNING firmware, uuid`, s.MAC).Scan(&fw, &uuid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read DHCP facts of %s: %w", s.MAC, err)
	}
	if s.Firmware == "" {
		s.Firmware = fw
	}
	if s.UUID == "" {
		s.UUID = uuid
	}
	return nil
}
