package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/fleetboot/fleetboot/internal/quirk"
)

// listenWatch binds the socket that sees other DHCP servers' replies: 255.255.255.255:68 on
// iface. Bound to the broadcast address, not 0.0.0.0, so it only ever gets broadcasts: a
// socket on 0.0.0.0:68 would take unicast replies (lease renewals) away from the host's own
// DHCP client. Replies to clients without an address are broadcast in practice (PXE clients
// set the broadcast flag), which is what a second server on the segment sends.
func listenWatch(iface string) (*net.UDPConn, error) {
	return server4.NewIPv4UDPConn(iface, &net.UDPAddr{IP: net.IPv4bcast, Port: portClient})
}

// foreignServers remembers which other DHCP servers were seen lately, so that the loud log
// line comes once per server per window and not once per packet.
type foreignServers struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// first reports whether sid was not seen within window before now (and remembers now).
func (f *foreignServers) first(sid string, now time.Time, window time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil || len(f.seen) >= 1024 {
		f.seen = map[string]time.Time{}
	}
	prev, ok := f.seen[sid]
	if ok && now.Sub(prev) < window {
		return false
	}
	f.seen[sid] = now
	return true
}

// foreignLogWindow is how often the log names the same other DHCP server again.
const foreignLogWindow = 10 * time.Minute

// watchForeign reads the replies of other DHCP servers on c until it is closed.
func (s *Server) watchForeign(ctx context.Context, c *net.UDPConn) {
	buf := make([]byte, 4096)
	for {
		n, peer, err := c.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Warn("dhcp: watching for other DHCP servers stopped", "err", err)
			}
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue
		}
		if ev, ok := s.foreignReply(ctx, m, peer.IP); ok {
			s.emit(ev)
		}
	}
}

// foreignReply decides what a BOOTREPLY seen on the client port says: nothing when it is not
// an OFFER or ACK or comes from fleetboot itself; otherwise an event, with quirk RogueDHCP when
// that server competes with fleetboot. In full mode that is any other server (machines take
// addresses and boot options from whichever answers first) and it is logged as an error. In
// proxy mode a site DHCP server handing out addresses is expected — fleetboot relies on it — so
// only a server that also offers network boot (boot file, PXEClient class, PXE vendor options:
// another proxyDHCP, WDS, dnsmasq with dhcp-boot) competes. An HA partner — another fleetboot
// on the same shared lease table, answering the same segment — does not: in full mode a reply
// whose address the shared table gives to that client is the partner's (it commits every
// lease before its OFFER or ACK goes out), and a reply without an address (an ACK to a
// DHCPINFORM) is the partner's when it comes from a server that announced itself on the shared
// table (LeaseStore.Announce) from the address it names: an expected event without the quirk.
func (s *Server) foreignReply(ctx context.Context, m *dhcpv4.DHCPv4, from net.IP) (Event, bool) {
	mt := m.MessageType()
	if m.OpCode != dhcpv4.OpcodeBootReply || (mt != dhcpv4.MessageTypeOffer && mt != dhcpv4.MessageTypeAck) {
		return Event{}, false
	}
	sid := m.ServerIdentifier()
	if sid == nil || sid.IsUnspecified() {
		sid = from
	}
	if sid == nil || sid.Equal(s.cfg.ServerIP) {
		return Event{}, false
	}
	boot := m.BootFileName != "" || m.Options.Has(dhcpv4.OptionVendorSpecificInformation) ||
		strings.HasPrefix(m.ClassIdentifier(), "PXEClient")
	addr := m.YourIPAddr != nil && !m.YourIPAddr.IsUnspecified()
	var role []string
	if addr {
		role = append(role, "hands out addresses")
	}
	if boot {
		role = append(role, "offers network boot")
		if m.BootFileName != "" {
			role[len(role)-1] += " (file " + m.BootFileName + ")"
		}
	}
	what := mt.String()
	if addr {
		what += " of " + m.YourIPAddr.String()
	}
	detail := fmt.Sprintf("another DHCP server %s sent %s to %s; it %s", sid, what, m.ClientHWAddr, strings.Join(role, " and "))
	ev := Event{Kind: EventIgnored, MAC: m.ClientHWAddr, Firmware: FirmwareOther, IP: m.YourIPAddr, BootFile: m.BootFileName,
		Port: portClient, Reason: detail}
	if s.cfg.Mode == ModeFull {
		var partner bool
		var err error
		switch {
		case addr:
			// The table must give that address to that client: the partner committed it.
			partner, err = s.leases.PeerHolds(ctx, m.YourIPAddr, m.ClientHWAddr, s.now())
		case m.ServerIdentifier() != nil && m.ServerIdentifier().Equal(from):
			// No address to check (an ACK to a DHCPINFORM): the sender must be an instance
			// that announced itself on the shared table lately, and send from the address it
			// names. Another server on the segment is reported as before, unless it
			// impersonates a partner's address (then its address replies still are).
			partner, err = s.leases.PeerServer(ctx, sid, s.now())
		}
		if err != nil {
			s.log.Warn("dhcp: cannot tell whether another server's reply is an HA partner's", "server", sid.String(), "err", err)
		}
		if partner {
			s.log.Debug("dhcp: HA partner's reply seen", "server", sid.String(), "mac", m.ClientHWAddr.String(), "detail", detail)
			ev.Reason = "HA partner " + sid.String() + " sent " + what
			return ev, true
		}
	}
	rogue := s.cfg.Mode == ModeFull || boot
	if !rogue {
		s.log.Debug("dhcp: site DHCP server seen", "server", sid.String(), "mac", m.ClientHWAddr.String(), "detail", detail)
		return ev, true
	}
	ev.Quirk = quirk.RogueDHCP
	if s.cfg.Mode == ModeFull && s.foreign.first(sid.String(), s.now(), foreignLogWindow) {
		s.log.Error("another DHCP server answers on this segment while fleetboot is its authoritative DHCP server (--dhcp full): "+
			"machines may take addresses and boot options from either; stop it or run fleetboot with --dhcp proxy",
			"server", sid.String(), "interface", s.cfg.Interface, "detail", detail)
	}
	return ev, true
}

// announce tells the instances sharing the lease table that this one answers as
// Config.ServerIP (LeaseStore.Announce), every AnnounceEvery until ctx ends, so that they take
// its replies for an HA partner's, not a rogue server's (foreignReply). Run announces once
// before it answers anything (announceOnce) and then starts this; failing is whether that
// first announcement failed.
func (s *Server) announce(ctx context.Context, failing bool) {
	t := time.NewTicker(AnnounceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		failing = s.announceOnce(ctx, failing)
	}
}

// announceOnce announces this server once; it logs a failure when the last one succeeded
// (failing: it failed), and returns whether this one failed.
func (s *Server) announceOnce(ctx context.Context, failing bool) bool {
	err := s.leases.Announce(ctx, s.cfg.ServerIP, s.now())
	if err != nil && ctx.Err() == nil && !failing {
		s.log.Warn("dhcp: cannot announce this server to its HA partners: they may report its replies to DHCPINFORM as a rogue DHCP server's", "err", err)
	}
	return err != nil
}
