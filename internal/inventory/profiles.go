package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

const profileCols = `name, iso, entry, extra_args, template, template_kind, vars, ssh_keys, created, updated, mode`

func scanProfile(s scanner) (*Profile, error) {
	var p Profile
	var vars, keys, created, updated string
	if err := s.Scan(&p.Name, &p.ISO, &p.Entry, &p.ExtraArgs, &p.Template, &p.Kind, &vars, &keys, &created, &updated, &p.Mode); err != nil {
		return nil, err
	}
	if err := decodeJSON("profile "+p.Name, "vars", vars, &p.Vars); err != nil {
		return nil, err
	}
	if err := decodeJSON("profile "+p.Name, "ssh_keys", keys, &p.SSHKeys); err != nil {
		return nil, err
	}
	p.Created, p.Updated = parseTime(created), parseTime(updated)
	return &p, nil
}

// Profile returns the named profile.
func (inv *Inventory) Profile(ctx context.Context, name string) (*Profile, error) {
	p, err := scanProfile(inv.db.QueryRowContext(ctx, `SELECT `+profileCols+` FROM profiles WHERE name=?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("profile %s: %w", name, ErrNotFound)
	}
	return p, err
}

// Profiles lists all profiles by name.
func (inv *Inventory) Profiles(ctx context.Context) ([]*Profile, error) {
	return queryAll(ctx, inv.db, scanProfile, `SELECT `+profileCols+` FROM profiles ORDER BY name`)
}

// PutProfile creates or replaces a profile (validation of ISO, entry and template is the
// caller's: it knows the ISO store and the renderer).
func (inv *Inventory) PutProfile(ctx context.Context, p *Profile) (*Profile, bool, error) {
	if !ValidName(p.Name) {
		return nil, false, fmt.Errorf("%w: profile name %q: use letters, digits, '.', '_', '-' (at most 63)", ErrInvalid, p.Name)
	}
	if p.ISO == "" {
		return nil, false, fmt.Errorf("%w: profile %s needs an iso", ErrInvalid, p.Name)
	}
	if strings.ContainsAny(p.ExtraArgs, "\n\r") {
		return nil, false, fmt.Errorf("%w: extra_args must be one line", ErrInvalid)
	}
	if err := checkLabels(p.Vars); err != nil {
		return nil, false, fmt.Errorf("vars: %w", err)
	}
	if !ValidMode(p.Mode) {
		return nil, false, fmt.Errorf("%w: mode %q: want %s, %s or %s", ErrInvalid, p.Mode, ModeInstallOnce, ModeBootOnce, ModeAlways)
	}
	mode := p.Mode
	if mode == "" {
		mode = ModeInstallOnce
	}
	now := fmtTime(inv.now())
	// Update, else insert, under the catalog lock: two instances creating one profile at once
	// must not both find nothing to update.
	tx, err := inv.beginCatalog(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE profiles SET iso=?, entry=?, extra_args=?, template=?, template_kind=?, vars=?, ssh_keys=?, updated=?, mode=? WHERE name=?`,
		p.ISO, p.Entry, p.ExtraArgs, p.Template, p.Kind, jsonText(orEmpty(p.Vars)), jsonText(orEmptyList(p.SSHKeys)), now, mode, p.Name)
	if err != nil {
		return nil, false, err
	}
	created := false
	if n, _ := res.RowsAffected(); n == 0 {
		created = true
		if _, err := tx.ExecContext(ctx, `INSERT INTO profiles (`+profileCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.Name, p.ISO, p.Entry, p.ExtraArgs, p.Template, p.Kind, jsonText(orEmpty(p.Vars)), jsonText(orEmptyList(p.SSHKeys)), now, now, mode); err != nil {
			return nil, false, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, false, err
	}
	inv.version.Add(1)
	out, err := inv.Profile(ctx, p.Name)
	return out, created, err
}

// DeleteProfile deletes a profile no machine or rule uses.
func (inv *Inventory) DeleteProfile(ctx context.Context, name string) error {
	var users int
	inv.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM machines WHERE profile=?) + (SELECT COUNT(*) FROM rules WHERE profile=?)`, name, name).Scan(&users)
	if users > 0 {
		return fmt.Errorf("profile %s is used by %d machines or rules: %w", name, users, ErrConflict)
	}
	res, err := inv.db.ExecContext(ctx, `DELETE FROM profiles WHERE name=?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("profile %s: %w", name, ErrNotFound)
	}
	inv.version.Add(1)
	return nil
}

// ISOUsers returns the names of the profiles that use the ISO, sorted (the ISO store refuses
// to delete it while there are any, and names them).
func (inv *Inventory) ISOUsers(ctx context.Context, isoID string) ([]string, error) {
	rows, err := inv.db.QueryContext(ctx, `SELECT name FROM profiles WHERE iso=? ORDER BY name`, isoID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func orEmptyList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
