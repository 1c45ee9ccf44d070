package dhcp

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"time"
)

// LeaseState is where an address stands in the full-mode lease table.
type LeaseState string

// Lease states.
const (
	// StateOffered: reserved for a client by a DHCPOFFER, held briefly (offer hold, 60 s) so
	// that simultaneous DISCOVERs never get the same address.
	StateOffered LeaseState = "offered"
	// StateBound: acknowledged; the client uses the address until Expires.
	StateBound LeaseState = "bound"
	// StateReleased: the client gave the address back (or moved to another); it stays linked to
	// the MAC so that the same machine gets it again while nobody else took it.
	StateReleased LeaseState = "released"
	// StateDeclined: a client found the address in use (DHCPDECLINE); quarantined until Expires.
	StateDeclined LeaseState = "declined"
)

// Lease is one row of the full-mode lease table. An address is free when it has no row or
// its row has expired, whatever the state.
type Lease struct {
	IP       net.IP
	MAC      net.HardwareAddr
	State    LeaseState
	Expires  time.Time
	Hostname string
	Updated  time.Time
}

// Active reports whether the lease still holds its address at now.
func (l Lease) Active(now time.Time) bool { return now.Before(l.Expires) }

// Pool is the full-mode address range and the addresses inside it never to hand out (the
// server itself, the router, DNS servers, network and broadcast addresses).
type Pool struct {
	Start, End net.IP
	Exclude    []net.IP
}

// Contains reports whether ip is in the range and not excluded.
func (p Pool) Contains(ip net.IP) bool {
	v, ok := ipToUint(ip)
	if !ok {
		return false
	}
	s, _ := ipToUint(p.Start)
	e, _ := ipToUint(p.End)
	return v >= s && v <= e && !p.excluded(v)
}

func (p Pool) excluded(v uint32) bool {
	for _, x := range p.Exclude {
		if xv, ok := ipToUint(x); ok && xv == v {
			return true
		}
	}
	return false
}

// LeaseRequest is the argument of LeaseStore calls.
type LeaseRequest struct {
	Pool     Pool
	MAC      net.HardwareAddr
	IP       net.IP // Reserve: the address the client asked for (option 50), may be nil; Bind, Free: the address
	Hostname string
	Now      time.Time
	Until    time.Time // Reserve/Bind: when the hold ends; Free: end of the quarantine (≤ Now: none)
}

// LeaseStore persists full-mode leases. Every call is atomic: two concurrent Reserve calls never
// return the same address, and a Bind never takes an address another client holds.
type LeaseStore interface {
	// Reserve picks an address of r.Pool for r.MAC and holds it (StateOffered) until r.Until,
	// choosing as RFC 2131 §4.3.1 says: the client's current lease (left as it is if bound),
	// else its previous address if free, else r.IP if free, else a never-used address, else
	// the address that has been free the longest. ErrPoolExhausted when none is free.
	Reserve(ctx context.Context, r LeaseRequest) (net.IP, error)
	// Bind leases r.IP to r.MAC until r.Until. ErrNotInPool when the address is outside the
	// pool or excluded, ErrAddressTaken when another client holds it. Other addresses held by
	// the MAC are released.
	Bind(ctx context.Context, r LeaseRequest) error
	// Free ends r.MAC's hold on r.IP: released now, or declined and quarantined until r.Until
	// when that is after r.Now. ErrNoLease when r.MAC holds no such address.
	Free(ctx context.Context, r LeaseRequest) error
	// List returns every row, ordered by address.
	List(ctx context.Context) ([]Lease, error)
	// PeerHolds reports whether a lease table other instances share gives ip to mac at now
	// (offered or bound, not expired): an HA partner commits that before its OFFER or ACK
	// goes out. Always false for a table no other instance shares.
	PeerHolds(ctx context.Context, ip net.IP, mac net.HardwareAddr, now time.Time) (bool, error)
	// Announce records that this instance answers as DHCP server id on the shared table, at
	// now; a server calls it when it starts and every AnnounceEvery. Nothing happens on a
	// table no other instance shares.
	Announce(ctx context.Context, id net.IP, now time.Time) error
	// PeerServer reports whether an instance sharing the table announced server id within
	// PeerWindow before now: the sender of a reply that names no address (an ACK to a
	// DHCPINFORM), whose contents the table cannot vouch for. Always false for a table no
	// other instance shares.
	PeerServer(ctx context.Context, id net.IP, now time.Time) (bool, error)
}

// AnnounceEvery is how often a full-mode server sharing its lease table announces itself
// (LeaseStore.Announce); PeerWindow is how long an announcement counts: an instance stopped
// for longer is no partner any more, whoever answers from its address after it.
const (
	AnnounceEvery = time.Minute
	PeerWindow    = 3 * AnnounceEvery
)

// Lease store errors the server turns into NAKs or ignores.
var (
	ErrPoolExhausted = errors.New("dhcp: no free address in the pool")
	ErrNotInPool     = errors.New("dhcp: address not in the pool")
	ErrAddressTaken  = errors.New("dhcp: address held by another client")
	ErrNoLease       = errors.New("dhcp: no such lease for this client")
)

func ipToUint(ip net.IP) (uint32, bool) {
	v4 := ip.To4()
	if v4 == nil {
		return 0, false
	}
	return binary.BigEndian.Uint32(v4), true
}

func uintToIP(v uint32) net.IP {
	ip := make(net.IP, net.IPv4len)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}
