package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/store"
)

const machineCols = `mac, uuid, hostname, labels, COALESCE(profile,''), state, arch, platform, firmware, ip, first_seen, last_seen, state_changed, hardware`

type scanner interface{ Scan(...any) error }

func scanMachine(s scanner) (*Machine, error) {
	m, _, err := scanMachineHardware(s)
	return m, err
}

// scanMachineHardware is scanMachine that also returns the hardware column as stored.
func scanMachineHardware(s scanner) (*Machine, string, error) {
	var m Machine
	var labels, first, last, changed, hardware string
	if err := s.Scan(&m.MAC, &m.UUID, &m.Hostname, &labels, &m.Profile, &m.State, &m.Arch, &m.Platform,
		&m.Firmware, &m.IP, &first, &last, &changed, &hardware); err != nil {
		return nil, "", err
	}
	m.Labels = map[string]string{}
	if err := decodeJSON("machine "+m.MAC, "labels", labels, &m.Labels); err != nil {
		return nil, "", err
	}
	if err := decodeJSON("machine "+m.MAC, "hardware facts", hardware, &m.Hardware); err != nil {
		return nil, "", err
	}
	m.FirstSeen, m.LastSeen, m.StateChanged = parseTime(first), parseTime(last), parseTime(changed)
	return &m, hardware, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func getMachine(ctx context.Context, q querier, mac string) (*Machine, error) {
	m, err := scanMachine(q.QueryRowContext(ctx, `SELECT `+machineCols+` FROM machines WHERE mac = ?`, mac))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("machine %s: %w", mac, ErrNotFound)
	}
	return m, err
}

// Machine returns the machine with this MAC.
func (inv *Inventory) Machine(ctx context.Context, mac string) (*Machine, error) {
	return getMachine(ctx, inv.db, mac)
}

// Machines lists machines, optionally only those in state.
func (inv *Inventory) Machines(ctx context.Context, state State) ([]*Machine, error) {
	q := `SELECT ` + machineCols + ` FROM machines`
	var args []any
	if state != "" {
		q += ` WHERE state = ?`
		args = append(args, state)
	}
	return queryAll(ctx, inv.db, scanMachine, q+` ORDER BY mac`, args...)
}

// CountByState returns how many machines are in each state; every state is present.
func (inv *Inventory) CountByState(ctx context.Context) (map[State]int, error) {
	out := make(map[State]int, len(States))
	for _, s := range States {
		out[s] = 0
	}
	rows, err := inv.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM machines GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var s State
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}

// queryAll runs a query and scans every row with scan; no rows is an empty, non-nil list
// (JSON []).
func queryAll[T any](ctx context.Context, q querier, scan func(scanner) (*T, error), query string, args ...any) ([]*T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// See records a machine seen booting: a new one is created as discovered (and the assignment
// rules are applied to it), a known one gets its last-seen data refreshed. It returns the
// machine as it is now and whether it was new.
func (inv *Inventory) See(ctx context.Context, s Sighting) (*Machine, bool, error) {
	if s.MAC == "" {
		return nil, false, fmt.Errorf("%w: sighting without MAC", ErrInvalid)
	}
	if m, err := inv.seeKnown(ctx, s); m != nil || err != nil {
		return m, false, err
	}
	release, err := inv.enter(ctx, s.MAC)
	if err != nil {
		return nil, false, err
	}
	defer release()
	now := fmtTime(inv.now())
	tx, err := inv.begin(ctx, s.MAC)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback()
	// A new machine in one statement, with what DHCP told about it before (dhcp_clients)
	// where the sighting does not tell; no row when the machine exists.
	m, err := scanMachine(tx.QueryRowContext(ctx, `INSERT INTO machines (mac, uuid, state, arch, platform, firmware, ip, first_seen, last_seen, state_changed, hardware)
		VALUES (?, COALESCE(NULLIF(?, ''), (SELECT uuid FROM dhcp_clients WHERE mac = ?), ''), ?, ?, ?,
			COALESCE(NULLIF(?, ''), (SELECT firmware FROM dhcp_clients WHERE mac = ?), ''), ?, ?, ?, ?, ?)
		ON CONFLICT (mac) DO NOTHING RETURNING `+machineCols,
		s.MAC, s.UUID, s.MAC, Discovered, s.Arch, s.Platform, s.Firmware, s.MAC, s.IP, now, now, now, jsonText(orEmpty(s.Hardware))))
	switch {
	case err == nil:
		s.UUID, s.Firmware = m.UUID, m.Firmware
		tx.event(s.MAC, now, "discovered", describeSighting(s))
		if err := applyRules(ctx, tx, m, now); err != nil {
			return nil, false, err
		}
		// What DHCP told is the machine's now.
		if err := tx.later(ctx, `DELETE FROM dhcp_clients WHERE mac = ?`, s.MAC); err != nil {
			return nil, false, fmt.Errorf("record machine %s: %w", s.MAC, err)
		}
		if err := tx.commit(ctx); err != nil {
			return nil, false, err
		}
		inv.setKnown(s.MAC, true)
		return m, true, inv.committed(nil)
	case !errors.Is(err, sql.ErrNoRows):
		return nil, false, fmt.Errorf("record machine %s: %w", s.MAC, err)
	}
	if m, err = getMachine(ctx, tx, s.MAC); err != nil {
		return nil, false, err
	}
	hw, changed := mergeHardware(m.Hardware, s.Hardware)
	if err := tx.later(ctx, `UPDATE machines SET uuid = COALESCE(NULLIF(?, ''), uuid), arch = COALESCE(NULLIF(?, ''), arch),
		platform = COALESCE(NULLIF(?, ''), platform), firmware = COALESCE(NULLIF(?, ''), firmware), ip = COALESCE(NULLIF(?, ''), ip),
		last_seen = ?, hardware = ? WHERE mac = ?`,
		s.UUID, s.Arch, s.Platform, s.Firmware, s.IP, now, jsonText(hw), s.MAC); err != nil {
		return nil, false, fmt.Errorf("update machine %s: %w", s.MAC, err)
	}
	if changed {
		tx.event(s.MAC, now, "hardware", describeHardware(s.Hardware))
		// A machine added by hand before it first booted, or one whose facts changed, may
		// now match a hardware rule.
		m.Hardware = hw
		if err := applyRules(ctx, tx, m, now); err != nil {
			return nil, false, err
		}
	}
	if m, err = getMachine(ctx, tx, s.MAC); err != nil {
		return nil, false, err
	}
	return m, false, inv.committed(tx.commit(ctx))
}

// seeKnown records the sighting of a known machine whose hardware facts it does not change
// (every boot of a machine after its first, usually) in one statement, without a transaction
// or lock: nothing but the last-seen data changes, no event is written and no rule can newly
// match. It returns nil, and See takes the locked path, for a new machine, new facts, or facts
// that changed between its read and its write (the write compares the stored facts).
func (inv *Inventory) seeKnown(ctx context.Context, s Sighting) (*Machine, error) {
	if inv.db.Dialect() == store.Postgres {
		// One round trip: the write happens only when the stored facts contain every fact
		// reported (jsonb containment), which is "mergeHardware changes nothing".
		m, err := scanMachine(inv.db.QueryRowContext(ctx, `UPDATE machines SET uuid = COALESCE(NULLIF(?, ''), uuid), arch = COALESCE(NULLIF(?, ''), arch),
			platform = COALESCE(NULLIF(?, ''), platform), firmware = COALESCE(NULLIF(?, ''), firmware), ip = COALESCE(NULLIF(?, ''), ip),
			last_seen = ? WHERE mac = ? AND hardware::jsonb @> ?::jsonb RETURNING `+machineCols,
			s.UUID, s.Arch, s.Platform, s.Firmware, s.IP, fmtTime(inv.now()), s.MAC, jsonText(orEmpty(s.Hardware))))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("update machine %s: %w", s.MAC, err)
		}
		return m, nil
	}
	m, hwText, err := scanMachineHardware(inv.db.QueryRowContext(ctx, `SELECT `+machineCols+` FROM machines WHERE mac = ?`, s.MAC))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if _, changed := mergeHardware(m.Hardware, s.Hardware); changed {
		return nil, nil
	}
	// Keep what we knew when this sighting lacks it (iPXE may not expand ${uuid}).
	release, err := inv.local(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	m, err = scanMachine(inv.db.QueryRowContext(ctx, `UPDATE machines SET uuid = COALESCE(NULLIF(?, ''), uuid), arch = COALESCE(NULLIF(?, ''), arch),
		platform = COALESCE(NULLIF(?, ''), platform), firmware = COALESCE(NULLIF(?, ''), firmware), ip = COALESCE(NULLIF(?, ''), ip),
		last_seen = ? WHERE mac = ? AND hardware = ? RETURNING `+machineCols,
		s.UUID, s.Arch, s.Platform, s.Firmware, s.IP, fmtTime(inv.now()), s.MAC, hwText))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update machine %s: %w", s.MAC, err)
	}
	// Architecture, platform and firmware may have changed, which decisions depend on.
	inv.version.Add(1)
	return m, nil
}

func describeSighting(s Sighting) string {
	var parts []string
	for _, kv := range [][2]string{{"uuid", s.UUID}, {"arch", s.Arch}, {"platform", s.Platform}, {"firmware", s.Firmware}, {"ip", s.IP}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if hw := describeHardware(s.Hardware); hw != "" {
		parts = append(parts, hw)
	}
	return strings.Join(parts, " ")
}

// describeHardware lists facts in ipxe.HardwareFacts order, values quoted when they hold
// spaces.
func describeHardware(h map[string]string) string {
	var parts []string
	for _, f := range ipxe.HardwareFacts {
		if v, ok := h[f.Key]; ok {
			if strings.ContainsAny(v, " \t\"") {
				v = strconv.Quote(v)
			}
			parts = append(parts, f.Key+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// mergeHardware returns old updated with the facts reported now, and whether any changed. A
// fact not reported keeps its old value (an older iPXE stage may not report it).
func mergeHardware(old, now map[string]string) (map[string]string, bool) {
	out := map[string]string{}
	for k, v := range old {
		out[k] = v
	}
	changed := false
	for k, v := range now {
		if out[k] != v {
			out[k] = v
			changed = true
		}
	}
	return out, changed
}

// MachineUpdate changes an operator-owned field; nil fields stay as they are.
type MachineUpdate struct {
	Hostname *string
	Labels   map[string]string // replaces all labels when non-nil
	Profile  *string           // "" unassigns
	State    *State
}

// CreateMachine adds a machine by hand (before it ever boots). It is one transaction: a
// machine whose update is refused (unknown profile, …) is not created either.
func (inv *Inventory) CreateMachine(ctx context.Context, mac string, u MachineUpdate) (*Machine, error) {
	return inv.changeMachine(ctx, mac, u, true)
}

// UpdateMachine applies u. Setting State to install-pending needs a profile; labels changed
// on a machine without a profile re-run the assignment rules.
func (inv *Inventory) UpdateMachine(ctx context.Context, mac string, u MachineUpdate) (*Machine, error) {
	return inv.changeMachine(ctx, mac, u, false)
}

func (inv *Inventory) changeMachine(ctx context.Context, mac string, u MachineUpdate, create bool) (*Machine, error) {
	if u.Labels != nil {
		if err := checkLabels(u.Labels); err != nil {
			return nil, err
		}
	}
	if u.Hostname != nil && (len(*u.Hostname) > 253 || strings.ContainsAny(*u.Hostname, " \x00\n\r/")) {
		return nil, fmt.Errorf("%w: hostname %q", ErrInvalid, *u.Hostname)
	}
	if u.State != nil && !ValidState(*u.State) {
		return nil, fmt.Errorf("%w: state %q: want discovered, install-pending, installing, installed or failed", ErrInvalid, *u.State)
	}
	release, err := inv.enter(ctx, mac)
	if err != nil {
		return nil, err
	}
	defer release()
	now := fmtTime(inv.now())
	tx, err := inv.begin(ctx, mac)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if create {
		if _, err := getMachine(ctx, tx, mac); err == nil {
			return nil, fmt.Errorf("machine %s already exists: %w", mac, ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO machines (mac, state, first_seen, last_seen, state_changed) VALUES (?, ?, ?, ?, ?)`,
			mac, Discovered, now, "", now); err != nil {
			return nil, fmt.Errorf("create machine %s: %w", mac, err)
		}
		tx.event(mac, now, "created", "added by operator")
		// What DHCP saw of it before the operator added it.
		seen := Sighting{MAC: mac}
		if err := takeDHCPFacts(ctx, tx, &seen); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE machines SET firmware=?, uuid=? WHERE mac=?`, seen.Firmware, seen.UUID, mac); err != nil {
			return nil, fmt.Errorf("create machine %s: %w", mac, err)
		}
	}
	m, err := getMachine(ctx, tx, mac)
	if err != nil {
		return nil, err
	}
	if u.Hostname != nil && *u.Hostname != m.Hostname {
		if err := tx.later(ctx, `UPDATE machines SET hostname=? WHERE mac=?`, *u.Hostname, mac); err != nil {
			return nil, err
		}
	}
	if u.Labels != nil {
		if err := tx.later(ctx, `UPDATE machines SET labels=? WHERE mac=?`, jsonText(u.Labels), mac); err != nil {
			return nil, err
		}
		tx.event(mac, now, "labels", jsonText(u.Labels))
	}
	profile := m.Profile
	if u.Profile != nil && *u.Profile != m.Profile {
		profile = *u.Profile
		var p any
		if profile != "" {
			p = profile
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM profiles WHERE name=?`, profile).Scan(new(int)); err != nil {
				return nil, fmt.Errorf("%w: profile %q does not exist", ErrInvalid, profile)
			}
		}
		if err := tx.later(ctx, `UPDATE machines SET profile=? WHERE mac=?`, p, mac); err != nil {
			return nil, err
		}
		tx.event(mac, now, "profile", "assigned "+orNone(profile))
	}
	if u.State != nil && *u.State != m.State {
		if *u.State == InstallPending && profile == "" {
			return nil, fmt.Errorf("%w: machine %s has no profile to install; assign one first", ErrInvalid, mac)
		}
		if err := setState(ctx, tx, mac, m.State, *u.State, now, "set by operator"); err != nil {
			return nil, err
		}
	}
	if (create || u.Labels != nil) && profile == "" {
		m, err := getMachine(ctx, tx, mac)
		if err != nil {
			return nil, err
		}
		if err := applyRules(ctx, tx, m, now); err != nil {
			return nil, err
		}
	}
	m, err = getMachine(ctx, tx, mac)
	if err != nil {
		return nil, err
	}
	if err := tx.commit(ctx); err != nil {
		return nil, err
	}
	if create {
		inv.setKnown(mac, true)
	}
	return m, inv.committed(nil)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// DeleteMachine forgets a machine and its timeline.
func (inv *Inventory) DeleteMachine(ctx context.Context, mac string) error {
	res, err := inv.db.ExecContext(ctx, `DELETE FROM machines WHERE mac=?`, mac)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("machine %s: %w", mac, ErrNotFound)
	}
	inv.setKnown(mac, false)
	inv.version.Add(1)
	_, err = inv.db.ExecContext(ctx, `DELETE FROM events WHERE mac=?`, mac)
	return err
}

// Transition moves a machine from one of from to to, atomically; ErrConflict when it is in
// another state. The boot path (install-pending → installing) and the installer's done
// callback (installing → installed) use it.
func (inv *Inventory) Transition(ctx context.Context, mac string, from []State, to State, why string) (*Machine, error) {
	release, err := inv.enter(ctx, mac)
	if err != nil {
		return nil, err
	}
	defer release()
	tx, err := inv.begin(ctx, mac)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	m, err := getMachine(ctx, tx, mac)
	if err != nil {
		return nil, err
	}
	ok := false
	for _, f := range from {
		ok = ok || m.State == f
	}
	if !ok {
		return m, fmt.Errorf("machine %s is %s, not %v: %w", mac, m.State, from, ErrConflict)
	}
	now := fmtTime(inv.now())
	if err := setState(ctx, tx, mac, m.State, to, now, why); err != nil {
		return nil, err
	}
	// The machine as written: only its state changed, under its lock.
	m.State, m.StateChanged = to, parseTime(now)
	return m, inv.committed(tx.commit(ctx))
}

func setState(ctx context.Context, q *writeTx, mac string, from, to State, now, why string) error {
	if err := q.later(ctx, `UPDATE machines SET state=?, state_changed=? WHERE mac=?`, to, now, mac); err != nil {
		return fmt.Errorf("set state of %s: %w", mac, err)
	}
	detail := string(from) + " → " + string(to)
	if why != "" {
		detail += ": " + why
	}
	q.event(mac, now, "state", detail)
	return nil
}
