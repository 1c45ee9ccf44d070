package dhcp

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"

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
			ev, seen := s.foreignReply(tc.m, tc.from)
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
			s.foreignReply(tc.m, tc.from)
			if again := strings.Count(logs.String(), "level=ERROR"); again != loud {
				t.Fatalf("the same server was logged again at once:\n%s", logs.String())
			}
		})
	}
}
