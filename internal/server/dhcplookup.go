package server

import (
	"sync"
	"time"
)

// maxLookupEntries bounds a lookupCache: a flood of made-up MACs empties it rather than
// growing it (the next lookups go to the database again).
const maxLookupEntries = 1 << 16

// lookupCache keeps the answers of the DHCP packet path's per-MAC inventory lookups (the
// boot chain, the ISO's shim, the answer URL) while the inventory is unchanged. Every DHCP
// packet of a UEFI or Proxmox client needs one, and a query per packet made DHCP CPU-bound
// at a few hundred packets a second (issue 13); a machine's DISCOVER, REQUEST and its
// retransmissions now cost one query between two inventory changes.
//
// version is inventory.Inventory.Version: read before a lookup, so that an answer loaded
// while a change commits is kept under the old number and dropped at the next call. Where it
// is not ok (PostgreSQL, other instances change the database) nothing is kept.
//
// maxAge, when set, also forgets everything that old, for answers that depend on more than
// the inventory (the ISO store, for the shim of an ISO's own pair).
type lookupCache[K comparable, V any] struct {
	version func() (uint64, bool)
	maxAge  time.Duration
	now     func() time.Time
	mu      sync.Mutex
	at      uint64    // the version m belongs to
	since   time.Time // when m was last emptied (maxAge)
	m       map[K]V
}

func newLookupCache[K comparable, V any](version func() (uint64, bool), maxAge time.Duration) *lookupCache[K, V] {
	return &lookupCache[K, V]{version: version, maxAge: maxAge, now: time.Now, m: map[K]V{}}
}

// get returns key's cached answer, or load's (kept when load succeeds).
func (c *lookupCache[K, V]) get(key K, load func() (V, error)) (V, error) {
	v0, ok := c.version()
	if !ok {
		return load()
	}
	c.mu.Lock()
	if c.at != v0 || c.maxAge > 0 && c.now().Sub(c.since) >= c.maxAge {
		clear(c.m)
		c.at = v0
		if c.maxAge > 0 {
			c.since = c.now()
		}
	}
	if v, hit := c.m[key]; hit {
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.at == v0 {
		if len(c.m) >= maxLookupEntries {
			clear(c.m)
		}
		c.m[key] = v
	}
	c.mu.Unlock()
	return v, nil
}
