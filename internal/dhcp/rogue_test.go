package dhcp

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/fleetboot/fleetboot/internal/quirk"
)

// TestForeignReplyDecisions: which replies seen on the client port are another DHCP server
// competing with fleetboot (quirk rogue-dhcp), which are the expected site server (proxy mode),
// and which are fleetboot's own or no offer at all (nothing).
func TestForeignReplyDecisions(t *testing.T) {
	other := net.IPv4(10, 99, 0, 2)
	reply := func(typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithReply(msg(t, dhcpv4.MessageTypeDiscover)), dhcpv4.WithMessageType(typ)}, mods...)...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	addr := dhcpv4.WithYourIP(net.IPv4(10, 99, 0, 120))
	sid := func(ip net.IP) dhcpv4.Modifier { return dhcpv4.WithServerIP(ip) }
	withSID := func(ip net.IP) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip)) }
	boot := func(m *dhcpv4.DHCPv4) { m.BootFileName = "pxelinux.0" }
	pxeClass := dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient"))
	for _, tc := range []struct {
		name       string
		mode       Mode
		m          *dhcpv4.DHCPv4
		from       net.IP
		seen       bool
		rogue      bool
		wantDetail string
	}{
		{"full: another address server", ModeFull, reply(dhcpv4.MessageTypeOffer, addr, withSID(other)), other, true, true, "hands out addresses"},
		{"full: its ACK", ModeFull, reply(dhcpv4.MessageTypeAck, addr, withSID(other)), other, true, true, "ACK of 10.99.0.120"},
		{"full: no option 54, the sender counts", ModeFull, reply(dhcpv4.MessageTypeOffer, addr), other, true, true, "server 10.99.0.2 "},
		{"full: our own offer", ModeFull, reply(dhcpv4.MessageTypeOffer, addr, withSID(serverIP)), serverIP, false, false, ""},
		{"proxy: the site DHCP server", ModeProxy, reply(dhcpv4.MessageTypeOffer, addr, withSID(other)), other, true, false, "hands out addresses"},
		{"proxy: a second proxyDHCP", ModeProxy, reply(dhcpv4.MessageTypeOffer, withSID(other), pxeClass, sid(other)), other, true, true, "offers network boot"},
		{"proxy: a server with a boot file", ModeProxy, reply(dhcpv4.MessageTypeOffer, addr, withSID(other), boot), other, true, true, "file pxelinux.0"},
		{"proxy: our own proxy offer", ModeProxy, reply(dhcpv4.MessageTypeOffer, withSID(serverIP), pxeClass), serverIP, false, false, ""},
		{"a NAK is no answer", ModeFull, reply(dhcpv4.MessageTypeNak, withSID(other)), other, false, false, ""},
		{"a request is no reply", ModeFull, msg(t, dhcpv4.MessageTypeRequest), other, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := proxyConfig()
			var leases LeaseStore
			if tc.mode == ModeFull {
				cfg, leases = fullConfig(), newLeaseDB(t)
			}
			var logs bytes.Buffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			s, _ := newTestServer(t, cfg, leases)
			ev, seen := s.foreignReply(context.Background(), tc.m, tc.from)
			if seen != tc.seen {
				t.Fatalf("seen = %v, want %v (%+v)", seen, tc.seen, ev)
			}
			if !seen {
				return
			}
			if (ev.Quirk == quirk.RogueDHCP) != tc.rogue || !strings.Contains(ev.Reason, tc.wantDetail) || ev.Kind != "ignored" || ev.Port != portClient {
				t.Fatalf("event %+v: rogue want %v, detail want %q", ev, tc.rogue, tc.wantDetail)
			}
			// Loud in full mode, once per server per window.
			loud := strings.Count(logs.String(), "level=ERROR")
			if want := map[bool]int{true: 1}[tc.mode == ModeFull && tc.rogue]; loud != want {
				t.Fatalf("%d error lines, want %d:\n%s", loud, want, logs.String())
			}
			s.foreignReply(context.Background(), tc.m, tc.from)
			if again := strings.Count(logs.String(), "level=ERROR"); again != loud {
				t.Fatalf("the same server was logged again at once:\n%s", logs.String())
			}
		})
	}
}

// TestHAPartnersRepliesAreNoRogueServer: the other instance of an HA pair (same shared lease
// table, same pool) answers every DISCOVER too. Its OFFERs and ACKs name addresses the shared
// table gives to those very clients — it committed them first — so they are expected, not a
// rogue server: no quirk on the machine's timeline, no error in the log. A server that offers
// an address the table does not give that client still is one. (Before this, each instance of
// a pair logged the other as a rogue DHCP server and wrote a rogue-dhcp quirk into the timeline
// of every machine that booted.)
func TestHAPartnersRepliesAreNoRogueServer(t *testing.T) {
	dbs := haPair(t)
	partner := net.IPv4(10, 99, 0, 2)
	cfg := fullConfig()
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s, now := newTestServer(t, cfg, dbs[0])
	ctx := context.Background()
	reply := func(typ dhcpv4.MessageType, mac net.HardwareAddr, ip net.IP) *dhcpv4.DHCPv4 {
		m, err := dhcpv4.New(dhcpv4.WithReply(msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithHwAddr(mac))), dhcpv4.WithMessageType(typ),
			dhcpv4.WithYourIP(ip), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(partner)))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	check := func(what string, m *dhcpv4.DHCPv4, rogue bool) {
		t.Helper()
		ev, seen := s.foreignReply(ctx, m, partner)
		if !seen || (ev.Quirk == quirk.RogueDHCP) != rogue || ev.Timeline() != rogue {
			t.Errorf("%s: seen %v, event %+v; want rogue %v", what, seen, ev, rogue)
		}
	}

	// The partner reserves (its OFFER) and then binds (its ACK) an address for a client.
	ip := reserve(t, dbs[1], s.pool, macN(1), nil, *now)
	check("partner's OFFER", reply(dhcpv4.MessageTypeOffer, macN(1), ip), false)
	bind(t, dbs[1], s.pool, macN(1), ip, *now)
	check("partner's ACK", reply(dhcpv4.MessageTypeAck, macN(1), ip), false)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("the partner was logged as a rogue server:\n%s", logs.String())
	}
	// That address offered to another client, or an address the table gives nobody: a rogue.
	check("the partner's address offered to another client", reply(dhcpv4.MessageTypeOffer, macN(2), ip), true)
	other := ip4(ip.To4()[3] + 1)
	check("an address nobody holds", reply(dhcpv4.MessageTypeOffer, macN(3), other), true)
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d error lines for the rogue server, want 1:\n%s", n, logs.String())
	}
	// An offer the partner made has expired: no longer the table's word.
	*now = now.Add(offerHold + time.Second)
	ip2 := reserve(t, dbs[1], s.pool, macN(4), nil, t0)
	check("an expired hold", reply(dhcpv4.MessageTypeOffer, macN(4), ip2), true)
}

// TestHAPartnersInformRepliesAreNoRogueServer: the replies of an HA partner that name no
// address — its ACKs to a DHCPINFORM, which it broadcasts when the client asks for broadcast —
// cannot be checked against the shared lease table. A partner is recognised by its
// announcement on the shared table (each server announces its server identifier at start and
// every minute) and by sending from the address it names: in both directions. Another server
// is still a rogue, and so is one that names a partner's identifier from another address, or
// a partner whose announcement is older than PeerWindow (stopped; another host may have its
// address now).
func TestHAPartnersInformRepliesAreNoRogueServer(t *testing.T) {
	dbs := haPair(t)
	ctx := context.Background()
	ids := [2]net.IP{serverIP, ip4(2)}
	var servers [2]*Server
	var clocks [2]*time.Time
	var logs [2]bytes.Buffer
	for i := range servers {
		cfg := fullConfig()
		cfg.ServerIP = ids[i]
		cfg.Logger = slog.New(slog.NewTextHandler(&logs[i], nil))
		servers[i], clocks[i] = newTestServer(t, cfg, dbs[i])
		if err := dbs[i].Announce(ctx, ids[i], *clocks[i]); err != nil {
			t.Fatal(err)
		}
	}
	// What server i answers to a DHCPINFORM asking for broadcast.
	informAck := func(i int) *dhcpv4.DHCPv4 {
		req := msg(t, dhcpv4.MessageTypeInform, dhcpv4.WithHwAddr(macN(7)), dhcpv4.WithClientIP(ip4(50)), dhcpv4.WithBroadcast(true))
		res := servers[i].respond(ctx, req, &net.UDPAddr{IP: ip4(50), Port: portClient}, portServer)
		if res.reply == nil || res.reply.MessageType() != dhcpv4.MessageTypeAck || !res.reply.YourIPAddr.IsUnspecified() {
			t.Fatalf("server %d's answer to DHCPINFORM: %v", i, res.reply)
		}
		return res.reply
	}
	check := func(what string, at int, m *dhcpv4.DHCPv4, from net.IP, rogue bool) {
		t.Helper()
		ev, seen := servers[at].foreignReply(ctx, m, from)
		if !seen || (ev.Quirk == quirk.RogueDHCP) != rogue {
			t.Errorf("%s: seen %v, event %+v; want rogue %v", what, seen, ev, rogue)
		}
	}
	check("b's INFORM ACK seen by a", 0, informAck(1), ids[1], false)
	check("a's INFORM ACK seen by b", 1, informAck(0), ids[0], false)
	for i := range logs {
		if strings.Contains(logs[i].String(), "level=ERROR") {
			t.Fatalf("server %d logged its partner as a rogue server:\n%s", i, logs[i].String())
		}
	}

	rogueIP := ip4(77)
	rogue := informAck(1)
	rogue.UpdateOption(dhcpv4.OptServerIdentifier(rogueIP))
	check("another server's INFORM ACK seen by a", 0, rogue, rogueIP, true)
	check("another server's INFORM ACK seen by b", 1, rogue, rogueIP, true)
	check("b's server identifier sent from another address", 0, informAck(1), rogueIP, true)
	noSID := informAck(1)
	noSID.Options.Del(dhcpv4.OptionServerIdentifier)
	check("an INFORM ACK without a server identifier from b's address", 0, noSID, ids[1], true)

	// b stops announcing: after PeerWindow its address is nobody's partner.
	*clocks[0] = clocks[0].Add(PeerWindow + time.Second)
	check("the INFORM ACK of a partner silent for longer than PeerWindow", 0, informAck(1), ids[1], true)
	if err := dbs[1].Announce(ctx, ids[1], *clocks[0]); err != nil {
		t.Fatal(err)
	}
	check("the INFORM ACK of a partner that announced itself again", 0, informAck(1), ids[1], false)
}
