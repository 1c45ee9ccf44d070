package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// maxEventsPerMachine bounds a machine's timeline; the oldest events go first.
const maxEventsPerMachine = 500

// eventsChannel is the notification channel of committed events (PostgreSQL): every instance
// sharing the database wakes its live streams on it (Open).
const eventsChannel = "fleetboot_events"

// addEvent appends an event in tx, which must come from Inventory.begin (it holds the
// inventory's write lock, so ids become visible in increasing order), and notifies the other
// instances sharing a PostgreSQL database at commit.
func addEvent(ctx context.Context, tx *writeTx, mac, now, kind, detail string) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (mac, time, kind, detail, site) VALUES (?, ?, ?, ?, ?)`, mac, now, kind, detail, tx.site); err != nil {
		return fmt.Errorf("record event for %s: %w", mac, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE mac = ? AND id <= (
		SELECT id FROM events WHERE mac = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, mac, mac, maxEventsPerMachine); err != nil {
		return err
	}
	return tx.Notify(ctx, eventsChannel)
}

// AddEvent appends to a machine's timeline (boot steps: DHCP, TFTP, script, kernel fetch …).
func (inv *Inventory) AddEvent(ctx context.Context, mac, kind, detail string) error {
	tx, err := inv.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := addEvent(ctx, tx, mac, fmtTime(inv.now()), kind, detail); err != nil {
		return err
	}
	return inv.eventsCommitted(tx.Commit())
}

// feed wakes the readers of the timeline (live event streams) after events were committed.
// It carries no events itself: a woken reader asks the database for the events after the last
// one it has (EventsAfter). So a writer never waits for a reader, a slow reader costs nothing
// but its own queries, and a reader cannot miss or reorder events: SQLite runs one write
// transaction at a time (the store opens transactions IMMEDIATE), and on PostgreSQL every
// inventory write takes one lock (Inventory.begin), so ids become visible in increasing order and
// "id > last seen" is exact. With PostgreSQL, commits of other instances wake the feed too,
// through a notification (Open).
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
}

// maxDHCPClients bounds what is remembered about machines DHCP saw but no boot script yet.
const maxDHCPClients = 10000

// dhcpClientsSlack is how many rows RecordDHCP adds to dhcp_clients between two trims.
const dhcpClientsSlack = 1000

// RecordDHCP records a batch of DHCP sightings in one transaction: each one's timeline line,
// and its firmware and UUID on the machine (or, for a machine not recorded yet, until See
// records it). A sighting's empty fields change nothing.
func (inv *Inventory) RecordDHCP(ctx context.Context, batch []DHCPSighting) error {
	if len(batch) == 0 {
		return nil
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	now := fmtTime(inv.now())
	tx, err := inv.begin(ctx)
	if err != nil {
		return fmt.Errorf("record DHCP events: %w", err)
	}
	defer tx.Rollback()
	added, trimmed := 0, false
	for _, d := range batch {
		if d.MAC == "" {
			continue
		}
		if d.Detail != "" {
			if err := addEvent(ctx, tx, d.MAC, now, "dhcp", d.Detail); err != nil {
				return err
			}
		}
		if d.Firmware == "" && d.UUID == "" {
			continue
		}
		res, err := tx.ExecContext(ctx, `UPDATE machines SET firmware = COALESCE(NULLIF(?, ''), firmware),
			uuid = COALESCE(NULLIF(?, ''), uuid) WHERE mac = ?`, d.Firmware, d.UUID, d.MAC)
		if err != nil {
			return fmt.Errorf("record DHCP facts of %s: %w", d.MAC, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("record DHCP facts of %s: %w", d.MAC, err)
		} else if n > 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO dhcp_clients (mac, firmware, uuid, seen) VALUES (?, ?, ?, ?)
			ON CONFLICT (mac) DO UPDATE SET firmware = COALESCE(NULLIF(excluded.firmware, ''), dhcp_clients.firmware),
			uuid = COALESCE(NULLIF(excluded.uuid, ''), dhcp_clients.uuid), seen = excluded.seen`, d.MAC, d.Firmware, d.UUID, now); err != nil {
			return fmt.Errorf("record DHCP facts of %s: %w", d.MAC, err)
		}
		added++
	}
	// The trim sorts the whole table: it runs once per dhcpClientsSlack new rows rather than
	// per batch (under a DHCP flood of new MACs it was most of the server's CPU, issue 13), so
	// the table holds at most maxDHCPClients + dhcpClientsSlack + one batch.
	if inv.dhcpClientsAdded >= dhcpClientsSlack {
		if _, err := tx.ExecContext(ctx, `DELETE FROM dhcp_clients WHERE mac NOT IN (
			SELECT mac FROM dhcp_clients ORDER BY seen DESC LIMIT ?)`, maxDHCPClients); err != nil {
			return fmt.Errorf("record DHCP events: %w", err)
		}
		trimmed = true
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record DHCP events: %w", err)
	}
	if trimmed {
		inv.dhcpClientsAdded = 0
	}
	inv.dhcpClientsAdded += added
	// Firmware and UUID are facts about the machine, not its boot decisions: Version stays.
	return inv.eventsCommitted(nil)
}

// takeDHCPFacts fills s's empty firmware and UUID from what DHCP saw of the machine before it
// was recorded, and forgets that.
func takeDHCPFacts(ctx context.Context, q querier, s *Sighting) error {
	var fw, uuid string
	err := q.QueryRowContext(ctx, `SELECT firmware, uuid FROM dhcp_clients WHERE mac = ?`, s.MAC).Scan(&fw, &uuid)
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
	if _, err := q.ExecContext(ctx, `DELETE FROM dhcp_clients WHERE mac = ?`, s.MAC); err != nil {
		return fmt.Errorf("read DHCP facts of %s: %w", s.MAC, err)
	}
	return nil
}
