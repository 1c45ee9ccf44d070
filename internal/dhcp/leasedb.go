package dhcp

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
)

// leaseMigrations is the "dhcp" component's schema in the shared database. Append only.
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

// LeaseDB is the SQLite LeaseStore, in the "dhcp" component's tables of the shared store.
//
// Allocation is serialised twice: a mutex orders callers in this process (so they do not
// queue on SQLite's busy timeout), and each call is one IMMEDIATE transaction (the store's DSN
// sets _txlock=immediate), which also keeps another process sharing the file from
// interleaving between the read that finds a free address and the write that takes it.
type LeaseDB struct {
	db *sql.DB
	mu sync.Mutex
}

var _ LeaseStore = (*LeaseDB)(nil)

// OpenLeaseDB applies the lease schema to st and returns the lease store over it. Closing st
// is the caller's business.
func OpenLeaseDB(ctx context.Context, st *store.Store) (*LeaseDB, error) {
	if err := st.Migrate(ctx, "dhcp", leaseMigrations); err != nil {
		return nil, fmt.Errorf("open dhcp lease table: %w", err)
	}
	return &LeaseDB{db: st.DB()}, nil
}

// Reserve implements LeaseStore.
func (l *LeaseDB) Reserve(ctx context.Context, r LeaseRequest) (net.IP, error) {
	if err := checkRequest(r, false); err != nil {
		return nil, err
	}
	var got net.IP
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		ip, err := pickAddress(ctx, tx, r)
		if err != nil {
			return err
		}
		got = ip
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reserve address for %s: %w", r.MAC, err)
	}
	return got, nil
}

// pickAddress chooses and holds an address for r.MAC inside tx; see LeaseStore.Reserve.
func pickAddress(ctx context.Context, tx *sql.Tx, r LeaseRequest) (net.IP, error) {
	now := r.Now.UnixMilli()
	mac := r.MAC.String()
	start, _ := ipToUint(r.Pool.Start)
	end, _ := ipToUint(r.Pool.End)

	// 1. The client's current binding or reservation: a retransmitted DISCOVER or a client
	// that rebooted within its lease gets the same address. A bound lease stays bound.
	rows, err := tx.QueryContext(ctx, `SELECT ip, state FROM dhcp_leases
		WHERE mac = ? AND expires_ms > ? AND state IN ('offered','bound')
		ORDER BY state = 'bound' DESC, updated_ms DESC`, mac, now)
	if err != nil {
		return nil, err
	}
	var current []struct {
		ip    uint32
		state string
	}
	for rows.Next() {
		var c struct {
			ip    uint32
			state string
		}
		if err := rows.Scan(&c.ip, &c.state); err != nil {
			rows.Close()
			return nil, err
		}
		current = append(current, c)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	for _, c := range current {
		if !r.Pool.Contains(uintToIP(c.ip)) {
			continue // the pool shrank since; let the row expire
		}
		if c.state == string(StateBound) {
			return uintToIP(c.ip), nil
		}
		return holdOffer(ctx, tx, c.ip, r)
	}

	// 2. The client's previous address, if nobody took it since (the row still names it).
	prev, err := firstInPool(ctx, tx, r.Pool, `SELECT ip FROM dhcp_leases
		WHERE mac = ? AND expires_ms <= ? AND state != 'declined'
		ORDER BY updated_ms DESC`, mac, now)
	if err != nil || prev != nil {
		return prevOrErr(ctx, tx, prev, err, r)
	}

	// 3. The address the client asked for, when it is free.
	if req, ok := ipToUint(r.IP); ok && r.Pool.Contains(r.IP) {
		var exp int64
		err := tx.QueryRowContext(ctx, `SELECT expires_ms FROM dhcp_leases WHERE ip = ?`, req).Scan(&exp)
		switch {
		case errors.Is(err, sql.ErrNoRows) || (err == nil && exp <= now):
			return holdOffer(ctx, tx, req, r)
		case err != nil:
			return nil, err
		}
	}

	// 4. The lowest address never handed out: keeps other machines' previous addresses for
	// them as long as possible.
	if v, ok, err := lowestUnused(ctx, tx, r.Pool, start, end); err != nil {
		return nil, err
	} else if ok {
		return holdOffer(ctx, tx, v, r)
	}

	// 5. The address that has been free the longest.
	lru, err := firstInPool(ctx, tx, r.Pool, `SELECT ip FROM dhcp_leases
		WHERE ip BETWEEN ? AND ? AND expires_ms <= ?
		ORDER BY expires_ms, ip`, start, end, now)
	if err != nil || lru != nil {
		return prevOrErr(ctx, tx, lru, err, r)
	}
	return nil, ErrPoolExhausted
}

func prevOrErr(ctx context.Context, tx *sql.Tx, ip net.IP, err error, r LeaseRequest) (net.IP, error) {
	if err != nil {
		return nil, err
	}
	v, _ := ipToUint(ip)
	return holdOffer(ctx, tx, v, r)
}

// firstInPool runs query (which selects one column of addresses) and returns the first
// address inside the pool, or nil.
func firstInPool(ctx context.Context, tx *sql.Tx, pool Pool, query string, args ...any) (net.IP, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		if ip := uintToIP(v); pool.Contains(ip) {
			return ip, rows.Close()
		}
	}
	return nil, rows.Err()
}

// lowestUnused walks the rows inside [start, end] in address order and returns the first gap
// that is not excluded. Cost is linear in the rows below the first gap, at most the pool size.
func lowestUnused(ctx context.Context, tx *sql.Tx, pool Pool, start, end uint32) (uint32, bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT ip FROM dhcp_leases WHERE ip BETWEEN ? AND ? ORDER BY ip`, start, end)
	if err != nil {
		return 0, false, err
	}
	defer rows.Close()
	next := uint64(start) // uint64: end may be 255.255.255.255
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return 0, false, err
		}
		for ; next < uint64(v); next++ {
			if !pool.excluded(uint32(next)) {
				return uint32(next), true, rows.Close()
			}
		}
		next = uint64(v) + 1
	}
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	for ; next <= uint64(end); next++ {
		if !pool.excluded(uint32(next)) {
			return uint32(next), true, nil
		}
	}
	return 0, false, nil
}

// holdOffer marks ip as offered to r.MAC until r.Until.
func holdOffer(ctx context.Context, tx *sql.Tx, ip uint32, r LeaseRequest) (net.IP, error) {
	_, err := tx.ExecContext(ctx, `INSERT INTO dhcp_leases (ip, mac, state, expires_ms, hostname, updated_ms)
		VALUES (?, ?, 'offered', ?, ?, ?)
		ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac, state = 'offered',
			expires_ms = excluded.expires_ms, hostname = excluded.hostname, updated_ms = excluded.updated_ms`,
		ip, r.MAC.String(), r.Until.UnixMilli(), r.Hostname, r.Now.UnixMilli())
	if err != nil {
		return nil, err
	}
	return uintToIP(ip), nil
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
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		var holder, state string
		var exp int64
		err := tx.QueryRowContext(ctx, `SELECT mac, state, expires_ms FROM dhcp_leases WHERE ip = ?`, ip).
			Scan(&holder, &state, &exp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case exp > now && (holder != mac || state == string(StateDeclined)):
			return ErrAddressTaken
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO dhcp_leases (ip, mac, state, expires_ms, hostname, updated_ms)
			VALUES (?, ?, 'bound', ?, ?, ?)
			ON CONFLICT (ip) DO UPDATE SET mac = excluded.mac, state = 'bound',
				expires_ms = excluded.expires_ms,
				hostname = CASE WHEN excluded.hostname != '' THEN excluded.hostname ELSE hostname END,
				updated_ms = excluded.updated_ms`,
			ip, mac, r.Until.UnixMilli(), r.Hostname, now); err != nil {
			return err
		}
		// A client uses one address per interface: whatever else this MAC held is given back
		// (e.g. the reservation of an OFFER it did not take, when it INIT-REBOOTed instead).
		_, err = tx.ExecContext(ctx, `UPDATE dhcp_leases SET state = 'released', expires_ms = ?
			WHERE mac = ? AND ip != ? AND state IN ('offered','bound') AND expires_ms > ?`, now, mac, ip, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("bind %s to %s: %w", r.IP, r.MAC, err)
	}
	return nil
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
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE dhcp_leases SET state = ?, expires_ms = ?, updated_ms = ?
			WHERE ip = ? AND mac = ? AND state != 'declined'`, string(state), until, now, ip, r.MAC.String())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNoLease
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("free %s of %s: %w", r.IP, r.MAC, err)
	}
	return nil
}

// List implements LeaseStore.
func (l *LeaseDB) List(ctx context.Context) ([]Lease, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT ip, mac, state, expires_ms, hostname, updated_ms
		FROM dhcp_leases ORDER BY ip`)
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var (
			ip                 uint32
			mac, state, host   string
			expires, updatedMS int64
		)
		if err := rows.Scan(&ip, &mac, &state, &expires, &host, &updatedMS); err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
		hw, _ := hex.DecodeString(strings.ReplaceAll(mac, ":", ""))
		out = append(out, Lease{
			IP:       uintToIP(ip),
			MAC:      hw,
			State:    LeaseState(state),
			Expires:  time.UnixMilli(expires),
			Hostname: host,
			Updated:  time.UnixMilli(updatedMS),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return out, nil
}

func (l *LeaseDB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
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
