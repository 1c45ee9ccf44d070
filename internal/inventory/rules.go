package inventory

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/fleetboot/fleetboot/internal/store"
)

// Rules lists the assignment rules in the order they are tried.
func (inv *Inventory) Rules(ctx context.Context) ([]*Rule, error) {
	return listRules(ctx, inv.db)
}

func listRules(ctx context.Context, q querier) ([]*Rule, error) {
	return queryAll(ctx, q, scanRule, `SELECT id, priority, mac_prefix, labels, profile, install, created, hardware FROM rules ORDER BY priority, id`)
}

func scanRule(s scanner) (*Rule, error) {
	var r Rule
	var labels, created, hardware string
	if err := s.Scan(&r.ID, &r.Priority, &r.MACPrefix, &labels, &r.Profile, &r.Install, &created, &hardware); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("rule %d", r.ID)
	if err := decodeJSON(what, "labels", labels, &r.Labels); err != nil {
		return nil, err
	}
	if err := decodeJSON(what, "hardware", hardware, &r.Hardware); err != nil {
		return nil, err
	}
	r.Created = parseTime(created)
	return &r, nil
}

// AddRule adds a rule and applies it to the machines that match it and have no profile yet.
func (inv *Inventory) AddRule(ctx context.Context, r Rule) (*Rule, int, error) {
	r.MACPrefix = strings.ToLower(strings.ReplaceAll(r.MACPrefix, "-", ":"))
	if r.MACPrefix != "" && !macPfx.MatchString(r.MACPrefix) {
		return nil, 0, fmt.Errorf("%w: mac_prefix %q: want whole octets, e.g. 52:54:00", ErrInvalid, r.MACPrefix)
	}
	if err := checkLabels(r.Labels); err != nil {
		return nil, 0, err
	}
	if err := checkHardwareRule(r.Hardware); err != nil {
		return nil, 0, err
	}
	if r.MACPrefix == "" && len(r.Labels) == 0 && len(r.Hardware) == 0 {
		return nil, 0, fmt.Errorf("%w: a rule needs mac_prefix, labels or hardware (a rule matching everything is a default; set it explicitly with mac_prefix of the fleet)", ErrInvalid)
	}
	release, err := inv.local(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer release()
	now := fmtTime(inv.now())
	tx, err := inv.beginCatalog(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM profiles WHERE name=?`, r.Profile).Scan(new(int)); err != nil {
		return nil, 0, fmt.Errorf("%w: profile %q does not exist", ErrInvalid, r.Profile)
	}
	if err := tx.QueryRowContext(ctx, `INSERT INTO rules (priority, mac_prefix, labels, profile, install, created, hardware) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.Priority, r.MACPrefix, jsonText(orEmpty(r.Labels)), r.Profile, r.Install, now, jsonText(orEmpty(r.Hardware))).Scan(&r.ID); err != nil {
		return nil, 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT mac FROM machines WHERE profile IS NULL`)
	if err != nil {
		return nil, 0, err
	}
	var macs, locks []string
	for rows.Next() {
		var m string
		rows.Scan(&m)
		macs = append(macs, m)
		locks = append(locks, machineLock(m))
	}
	rows.Close()
	// Lock them, all at once (in the order every transaction takes machine locks in), then
	// read each as it is now.
	if err := tx.LockKeys(ctx, store.Locks{Exclusive: locks}); err != nil {
		return nil, 0, err
	}
	applied := 0
	for _, mac := range macs {
		m, err := getMachine(ctx, tx, mac)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, 0, err
		}
		if m.Profile == "" && r.Matches(m) {
			if err := assignByRule(ctx, tx, m, &r, now); err != nil {
				return nil, 0, err
			}
			applied++
		}
	}
	r.Created = parseTime(now)
	return &r, applied, inv.committed(tx.commit(ctx))
}

// DeleteRule removes a rule (machines keep what it assigned).
func (inv *Inventory) DeleteRule(ctx context.Context, id int64) error {
	res, err := inv.db.ExecContext(ctx, `DELETE FROM rules WHERE id=?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("rule %d: %w", id, ErrNotFound)
	}
	inv.version.Add(1)
	return nil
}

// Matches reports whether the rule selects machine m.
func (r *Rule) Matches(m *Machine) bool {
	if r.MACPrefix != "" && !strings.HasPrefix(m.MAC, r.MACPrefix) {
		return false
	}
	for k, v := range r.Labels {
		if got, ok := m.Labels[k]; !ok || got != v {
			return false
		}
	}
	for k, pattern := range r.Hardware {
		got, ok := m.Hardware[k]
		if !ok {
			return false
		}
		if !globMatch(pattern, got) {
			return false
		}
	}
	return true
}

// applyRules assigns the first matching rule's profile to machine m, as it is in the
// transaction, when it has none; m is updated.
func applyRules(ctx context.Context, q *writeTx, m *Machine, now string) error {
	if m.Profile != "" {
		return nil
	}
	rules, err := listRules(ctx, q)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if r.Matches(m) {
			return assignByRule(ctx, q, m, r, now)
		}
	}
	return nil
}

// assignByRule assigns r's profile to m (and with r.Install moves a discovered m to
// install-pending); m is updated.
func assignByRule(ctx context.Context, q *writeTx, m *Machine, r *Rule, now string) error {
	if err := q.later(ctx, `UPDATE machines SET profile=? WHERE mac=?`, r.Profile, m.MAC); err != nil {
		return err
	}
	q.event(m.MAC, now, "profile", fmt.Sprintf("assigned %s by rule %d", r.Profile, r.ID))
	m.Profile = r.Profile
	if r.Install && m.State == Discovered {
		if err := setState(ctx, q, m.MAC, m.State, InstallPending, now, fmt.Sprintf("rule %d", r.ID)); err != nil {
			return err
		}
		m.State, m.StateChanged = InstallPending, parseTime(now)
	}
	return nil
}

// globMatch matches a whole hardware fact against a pattern where * is any run of characters
// and ? one character, ignoring case: firmware vendors spell the same maker "Dell Inc." and
// "DELL", and product names may contain '/', which path.Match would treat as a separator.
func globMatch(pattern, s string) bool {
	q := regexp.QuoteMeta(pattern)
	q = strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(q)
	re, err := regexp.Compile("(?is)^" + q + "$")
	return err == nil && re.MatchString(s)
}
