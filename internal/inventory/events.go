package inventory

import (
	"context"
	"fmt"
)

// maxEventsPerMachine bounds a machine's timeline; the oldest events go first.
const maxEventsPerMachine = 500

func addEvent(ctx context.Context, q querier, mac, now, kind, detail string) error {
	if _, err := q.ExecContext(ctx, `INSERT INTO events (mac, time, kind, detail) VALUES (?, ?, ?, ?)`, mac, now, kind, detail); err != nil {
		return fmt.Errorf("record event for %s: %w", mac, err)
	}
	_, err := q.ExecContext(ctx, `DELETE FROM events WHERE mac = ? AND id <= (
		SELECT id FROM events WHERE mac = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, mac, mac, maxEventsPerMachine)
	return err
}

// AddEvent appends to a machine's timeline (boot steps: DHCP, TFTP, script, kernel fetch …).
func (inv *Inventory) AddEvent(ctx context.Context, mac, kind, detail string) error {
	return addEvent(ctx, inv.db, mac, fmtTime(inv.now()), kind, detail)
}

// Events returns a machine's timeline, oldest first, at most limit (newest kept).
func (inv *Inventory) Events(ctx context.Context, mac string, limit int) ([]Event, error) {
	if limit <= 0 || limit > maxEventsPerMachine {
		limit = maxEventsPerMachine
	}
	rows, err := inv.db.QueryContext(ctx, `SELECT id, mac, time, kind, detail FROM (
		SELECT * FROM events WHERE mac = ? ORDER BY id DESC LIMIT ?) ORDER BY id`, mac, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		var t string
		if err := rows.Scan(&e.ID, &e.MAC, &t, &e.Kind, &e.Detail); err != nil {
			return nil, err
		}
		e.Time = parseTime(t)
		out = append(out, e)
	}
	return out, rows.Err()
}
