package dhcp

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/fleetboot/fleetboot/internal/quirk"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

func proxyConfig() Config {
	return Config{Mode: ModeProxy, Interface: "fbs0", ServerIP: serverIP, HTTPBase: testHTTP + "/"}
}

func fullConfig() Config {
	return Config{
		Mode: ModeFull, Interface: "fbs0", ServerIP: serverIP, HTTPBase: testHTTP,
		PoolStart: ip4(100), PoolEnd: ip4(199), Netmask: net.CIDRMask(24, 32),
		Router: ip4(254), DNS: []net.IP{ip4(53)}, DomainName: "lab.example", LeaseTime: time.Hour,
	}
}

// newTestServer returns a server whose clock the test controls.
func newTestServer(t *testing.T, cfg Config, leases LeaseStore) (*Server, *time.Time) {
	t.Helper()
	s, err := New(cfg, leases)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	s.now = func() time.Time { return now }
	return s, &now
}

// The site DHCP server runs on fleetboot's own address (dnsmasq on the same host): the
// client's REQUEST for its lease names our address in option 54. Answering it with the proxy's
// address-less ACK makes EDK2 DECLINE (seen in QEMU); the proxy stays silent and says why, and a
// DECLINE sent to our address is reported the same way.
func TestProxyDetectsASiteServerSharingItsAddress(t *testing.T) {
	s, _ := newTestServer(t, proxyConfig(), nil)
	ctx := context.Background()
	bcast := &net.UDPAddr{IP: net.IPv4zero, Port: 68}
	req := msg(t, dhcpv4.MessageTypeRequest, join(uefiPXE(), []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(123)))})...)
	res := s.respond(ctx, req, bcast, 67)
	if res.reply != nil || res.ev.Kind != "ignored" || res.ev.Quirk != quirk.SharedServerID ||
		!strings.Contains(res.ev.Reason, "REQUEST for 10.99.0.123 names fleetboot's address") {
		t.Fatalf("lease request in our name: reply %v, event %+v", res.reply != nil, res.ev)
	}
	decline := msg(t, dhcpv4.MessageTypeDecline, join(uefiPXE(), []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(123)))})...)
	if res := s.respond(ctx, decline, bcast, 67); res.reply != nil || res.ev.Quirk != quirk.SharedServerID || !strings.Contains(res.ev.Reason, "DECLINE of 10.99.0.123") {
		t.Fatalf("decline to our address: %+v", res.ev)
	}
	// Without option 50 (firmware that picked the proxy offer by mistake) it still gets the
	// boot options, and a DECLINE to the site server is none of our business.
	plain := msg(t, dhcpv4.MessageTypeRequest, join(uefiPXE(), []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP))})...)
	if res := s.respond(ctx, plain, bcast, 67); res.ev.Kind != "proxy-ack" || res.ev.Quirk != "" {
		t.Fatalf("request naming the proxy without option 50: %+v", res.ev)
	}
	other := msg(t, dhcpv4.MessageTypeDecline, join(uefiPXE(), []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4(254))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(123)))})...)
	if res := s.respond(ctx, other, bcast, 67); res.ev.Quirk != "" || res.ev.Kind != "ignored" {
		t.Fatalf("decline to another server: %+v", res.ev)
	}
}

func TestNewValidatesWithActionableMessages(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		leases bool
		want   string
	}{
		{"off", func(c *Config) { c.Mode = ModeOff }, false, "mode off"},
		{"bad mode", func(c *Config) { c.Mode = "auto" }, false, `--dhcp must be proxy, full or off, not "auto"`},
		{"no interface", func(c *Config) { c.Interface = "" }, true, "needs --interface"},
		{"no server ip", func(c *Config) { c.ServerIP = nil }, true, "--advertise-ip"},
		{"no http base", func(c *Config) { c.HTTPBase = "" }, true, "must start with http://"},
		{"full without pool", func(c *Config) { c.PoolStart, c.PoolEnd = nil, nil }, true, "--dhcp=full needs --pool"},
		{"full inverted pool", func(c *Config) { c.PoolStart, c.PoolEnd = ip4(200), ip4(100) }, true, "start is after end"},
		{"full without netmask", func(c *Config) { c.Netmask = nil }, true, "--dhcp=full needs --netmask"},
		{"full without lease store", func(c *Config) {}, false, "needs a lease store"},
		{"pool across networks", func(c *Config) { c.PoolEnd = net.IPv4(10, 99, 1, 5) }, true, "spans more than one /24"},
		{"huge pool", func(c *Config) {
			c.PoolStart, c.PoolEnd, c.Netmask = net.IPv4(10, 0, 0, 1), net.IPv4(10, 2, 0, 0), net.CIDRMask(8, 32)
		}, true, "at most 65536"},
		{"short lease", func(c *Config) { c.LeaseTime = time.Second }, true, "--lease-time"},
		{"arm64 file with a path", func(c *Config) { c.Arm64File = "../x.efi" }, true, "plain file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fullConfig()
			tt.mutate(&cfg)
			var leases LeaseStore
			if tt.leases {
				leases = newLeaseDB(t)
			}
			_, err := New(cfg, leases)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	s, err := New(proxyConfig(), nil)
	if err != nil {
		t.Fatalf("proxy config without lease store: %v", err)
	}
	if s.cfg.HTTPBase != testHTTP || s.cfg.HTTPBootFile != "snponly.efi" || s.cfg.MaxInFlight != DefaultMaxInFlight || s.cfg.LeaseTime != time.Hour {
		t.Errorf("defaults not applied: %+v", s.cfg)
	}
}

func TestProxyModeAnswersOnlyNetbootClientsWithoutAddress(t *testing.T) {
	s, _ := newTestServer(t, proxyConfig(), nil)
	ctx := context.Background()
	bcast := &net.UDPAddr{IP: net.IPv4zero, Port: 68}
	tests := []struct {
		name string
		m    *dhcpv4.DHCPv4
		port int
		peer *net.UDPAddr
		kind EventKind
		file string
		dst  string
	}{
		{"bios pxe discover", msg(t, dhcpv4.MessageTypeDiscover, biosPXE()...), 67, bcast, "proxy-offer", "undionly.kpxe", "255.255.255.255:68"},
		{"uefi http discover", msg(t, dhcpv4.MessageTypeDiscover, uefiHTTP()...), 67, bcast, "proxy-offer", testHTTP + "/ipxe/snponly.efi", "255.255.255.255:68"},
		{"ipxe discover", msg(t, dhcpv4.MessageTypeDiscover, ipxeClient()...), 67, bcast, "proxy-offer", testHTTP + "/boot.ipxe", "255.255.255.255:68"},
		{"plain discover ignored", msg(t, dhcpv4.MessageTypeDiscover, plainClient()...), 67, bcast, "ignored", "", ""},
		{"arm64 pxe without binary ignored", msg(t, dhcpv4.MessageTypeDiscover, withVC("PXEClient"), withArch(archEFIARM64)), 67, bcast, "ignored", "", ""},
		{"request to the site server ignored",
			msg(t, dhcpv4.MessageTypeRequest, join(biosPXE(), []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4(254)))})...),
			67, bcast, "ignored", "", ""},
		{"renewal ignored", msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(ip4(50))), 67, bcast, "ignored", "", ""},
		{"request naming the proxy gets boot options",
			msg(t, dhcpv4.MessageTypeRequest, join(uefiPXE(), []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP))})...),
			67, bcast, "proxy-ack", "snponly.efi", "255.255.255.255:68"},
		{"ipxe proxydhcp request on 4011",
			msg(t, dhcpv4.MessageTypeRequest, join(ipxeClient(), []dhcpv4.Modifier{dhcpv4.WithClientIP(ip4(50)),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP))})...),
			4011, &net.UDPAddr{IP: ip4(50), Port: 68}, "proxy-ack", testHTTP + "/boot.ipxe", "10.99.0.50:68"},
		{"4011 request for another boot server", msg(t, dhcpv4.MessageTypeRequest, join(biosPXE(), []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4(254)))})...), 4011, &net.UDPAddr{IP: ip4(50), Port: 68}, "ignored", "", ""},
		{"4011 discover ignored", msg(t, dhcpv4.MessageTypeDiscover, biosPXE()...), 4011, bcast, "ignored", "", ""},
		{"reply packets ignored", func() *dhcpv4.DHCPv4 {
			m := msg(t, dhcpv4.MessageTypeOffer, biosPXE()...)
			m.OpCode = dhcpv4.OpcodeBootReply
			return m
		}(), 67, bcast, "ignored", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.respond(ctx, tt.m, tt.peer, tt.port)
			if res.ev.Kind != tt.kind {
				t.Fatalf("kind = %q (reason %q), want %q", res.ev.Kind, res.ev.Reason, tt.kind)
			}
			if tt.kind == "ignored" {
				if res.reply != nil || res.ev.Reason == "" {
					t.Errorf("ignored with reply %v / reason %q", res.reply != nil, res.ev.Reason)
				}
				return
			}
			if res.reply.BootFileName != tt.file || res.ev.BootFile != tt.file {
				t.Errorf("file = %q / event %q, want %q", res.reply.BootFileName, res.ev.BootFile, tt.file)
			}
			if !res.reply.YourIPAddr.Equal(net.IPv4zero) {
				t.Errorf("proxy reply hands out %s", res.reply.YourIPAddr)
			}
			if res.dst.String() != tt.dst {
				t.Errorf("dst = %s, want %s", res.dst, tt.dst)
			}
			if res.ev.Port != tt.port || res.ev.Firmware == "" || len(res.ev.MAC) != 6 {
				t.Errorf("event = %+v", res.ev)
			}
		})
	}
}

// fullClient walks one client through DISCOVER/OFFER and REQUEST/ACK against s.
func fullClient(t *testing.T, s *Server, mac net.HardwareAddr, mods ...dhcpv4.Modifier) (offer, ack response) {
	t.Helper()
	ctx := context.Background()
	peer := &net.UDPAddr{IP: net.IPv4zero, Port: 68}
	d := msg(t, dhcpv4.MessageTypeDiscover, append(mods, dhcpv4.WithHwAddr(mac))...)
	offer = s.respond(ctx, d, peer, 67)
	if offer.ev.Kind != "offer" {
		t.Fatalf("%s DISCOVER: %+v", mac, offer.ev)
	}
	r := msg(t, dhcpv4.MessageTypeRequest, append(mods, dhcpv4.WithHwAddr(mac),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.reply.YourIPAddr)))...)
	ack = s.respond(ctx, r, peer, 67)
	if ack.ev.Kind != "ack" {
		t.Fatalf("%s REQUEST: %+v", mac, ack.ev)
	}
	return offer, ack
}

func TestFullModeLeaseLifecycle(t *testing.T) {
	db := newLeaseDB(t)
	s, now := newTestServer(t, fullConfig(), db)
	ctx := context.Background()
	peer := &net.UDPAddr{IP: net.IPv4zero, Port: 68}

	offer, ack := fullClient(t, s, macN(1), biosPXE()...)
	ip := offer.reply.YourIPAddr
	if !ip.Equal(ip4(100)) || !ack.reply.YourIPAddr.Equal(ip) {
		t.Fatalf("offer %s ack %s, want 10.99.0.100", ip, ack.reply.YourIPAddr)
	}
	for _, r := range []response{offer, ack} {
		if r.reply.BootFileName != "undionly.kpxe" || string(r.reply.Options[optVendorClass]) != "PXEClient" {
			t.Errorf("%s lacks boot options: file %q", r.ev.Kind, r.reply.BootFileName)
		}
		if r.reply.IPAddressLeaseTime(0) != time.Hour || !r.reply.Router()[0].Equal(ip4(254)) || r.reply.SubnetMask().String() != "ffffff00" {
			t.Errorf("%s lacks lease options", r.ev.Kind)
		}
	}
	assertState(t, db, ip, StateBound)

	// A plain client gets a plain lease, next address.
	offer2, _ := fullClient(t, s, macN(2), plainClient()...)
	if !offer2.reply.YourIPAddr.Equal(ip4(101)) || offer2.reply.BootFileName != "" || offer2.reply.Options.Has(dhcpv4.OptionClassIdentifier) {
		t.Errorf("plain client: ip %s file %q", offer2.reply.YourIPAddr, offer2.reply.BootFileName)
	}

	// INIT-REBOOT asking for an address someone else holds: NAK, broadcast.
	res := s.respond(ctx, msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithHwAddr(macN(3)),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))), peer, 67)
	if res.ev.Kind != "nak" || res.dst.String() != "255.255.255.255:68" || res.reply.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("conflicting INIT-REBOOT: %+v dst %v", res.ev, res.dst)
	}
	// INIT-REBOOT from another network: NAK so that the client restarts discovery.
	res = s.respond(ctx, msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithHwAddr(macN(3)),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 7, 7)))), peer, 67)
	if res.ev.Kind != "nak" {
		t.Errorf("foreign INIT-REBOOT: %+v", res.ev)
	}
	// SELECTING another server: none of our business.
	res = s.respond(ctx, msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithHwAddr(macN(3)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4(254))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(150)))), peer, 67)
	if res.ev.Kind != "ignored" || res.reply != nil {
		t.Errorf("request for another server: %+v", res.ev)
	}

	// RENEWING: unicast ACK to ciaddr, lease extended.
	*now = now.Add(40 * time.Minute)
	res = s.respond(ctx, msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithHwAddr(macN(1)), dhcpv4.WithClientIP(ip)),
		&net.UDPAddr{IP: ip, Port: 68}, 67)
	if res.ev.Kind != "ack" || res.dst.String() != "10.99.0.100:68" || !res.reply.ClientIPAddr.Equal(ip) {
		t.Errorf("renewal: %+v dst %v", res.ev, res.dst)
	}
	if l := leaseOf(t, db, ip); !l.Expires.Equal(now.Add(time.Hour)) {
		t.Errorf("renewal did not extend: %v", l.Expires)
	}

	// INFORM: configuration without lease, to ciaddr.
	res = s.respond(ctx, msg(t, dhcpv4.MessageTypeInform, dhcpv4.WithHwAddr(macN(9)), dhcpv4.WithClientIP(ip4(20))),
		&net.UDPAddr{IP: ip4(20), Port: 68}, 67)
	if res.ev.Kind != "inform" || !res.reply.YourIPAddr.Equal(net.IPv4zero) || res.reply.Options.Has(dhcpv4.OptionIPAddressLeaseTime) ||
		res.dst.String() != "10.99.0.20:68" || len(res.reply.DNS()) != 1 {
		t.Errorf("inform: %+v dst %v", res.ev, res.dst)
	}

	// RELEASE, then another client may take the address once never-used ones are gone; the
	// releasing MAC gets it back.
	res = s.respond(ctx, msg(t, dhcpv4.MessageTypeRelease, dhcpv4.WithHwAddr(macN(1)), dhcpv4.WithClientIP(ip)), peer, 67)
	if res.ev.Kind != "release" || res.reply != nil || !res.ev.IP.Equal(ip) {
		t.Errorf("release: %+v", res.ev)
	}
	assertState(t, db, ip, StateReleased)
	offer, _ = fullClient(t, s, macN(1), biosPXE()...)
	if !offer.reply.YourIPAddr.Equal(ip) {
		t.Errorf("returning client got %s, want %s", offer.reply.YourIPAddr, ip)
	}

	// DECLINE: quarantined, and the client is offered something else.
	res = s.respond(ctx, msg(t, dhcpv4.MessageTypeDecline, dhcpv4.WithHwAddr(macN(1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))), peer, 67)
	if res.ev.Kind != "decline" || res.reply != nil {
		t.Errorf("decline: %+v", res.ev)
	}
	offer = s.respond(ctx, msg(t, dhcpv4.MessageTypeDiscover, append(biosPXE(), dhcpv4.WithHwAddr(macN(1)))...), peer, 67)
	if offer.reply == nil || offer.reply.YourIPAddr.Equal(ip) {
		t.Errorf("after DECLINE the client was offered %v again", offer.reply.YourIPAddr)
	}

	leases, err := s.Leases(ctx)
	if err != nil || len(leases) < 3 {
		t.Errorf("Leases() = %d rows, %v", len(leases), err)
	}
}

func TestFullModeRelayAndForeignNetworks(t *testing.T) {
	s, _ := newTestServer(t, fullConfig(), newLeaseDB(t))
	ctx := context.Background()
	relayed := s.respond(ctx, msg(t, dhcpv4.MessageTypeDiscover, append(uefiPXE(), dhcpv4.WithGatewayIP(ip4(2)))...),
		&net.UDPAddr{IP: ip4(2), Port: 67}, 67)
	if relayed.ev.Kind != "offer" || relayed.dst.String() != "10.99.0.2:67" || !relayed.reply.GatewayIPAddr.Equal(ip4(2)) {
		t.Errorf("relayed DISCOVER: %+v dst %v", relayed.ev, relayed.dst)
	}
	foreign := s.respond(ctx, msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithGatewayIP(net.IPv4(172, 16, 0, 1))),
		&net.UDPAddr{IP: net.IPv4(172, 16, 0, 1), Port: 67}, 67)
	if foreign.ev.Kind != "ignored" || !strings.Contains(foreign.ev.Reason, "relay 172.16.0.1") {
		t.Errorf("relay from another network: %+v", foreign.ev)
	}
	nohw := s.respond(ctx, msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithHwAddr(nil)), &net.UDPAddr{IP: net.IPv4zero, Port: 68}, 67)
	if nohw.ev.Kind != "ignored" {
		t.Errorf("DISCOVER without chaddr: %+v", nohw.ev)
	}
}

// TestFullModeSimultaneousDiscoversGetDistinctAddresses sends more DISCOVERs at once than the
// pool holds: every offered address is distinct (reserved at OFFER time), and the clients that
// find the pool full get no offer rather than someone else's address.
func TestFullModeSimultaneousDiscoversGetDistinctAddresses(t *testing.T) {
	cfg := fullConfig()
	cfg.PoolStart, cfg.PoolEnd = ip4(100), ip4(129) // 30 addresses
	s, _ := newTestServer(t, cfg, newLeaseDB(t))
	ctx := context.Background()
	const clients = 40
	results := make(chan response, clients)
	for i := range clients {
		go func() {
			results <- s.respond(ctx, msg(t, dhcpv4.MessageTypeDiscover, append(uefiHTTP(), dhcpv4.WithHwAddr(macN(i)))...),
				&net.UDPAddr{IP: net.IPv4zero, Port: 68}, 67)
		}()
	}
	seen := map[string]bool{}
	ignored := 0
	for range clients {
		r := <-results
		switch r.ev.Kind {
		case "offer":
			ip := r.reply.YourIPAddr.String()
			if seen[ip] {
				t.Errorf("%s offered twice", ip)
			}
			seen[ip] = true
		case "ignored":
			ignored++
		default:
			t.Fatalf("event %+v", r.ev)
		}
	}
	if len(seen) != 30 || ignored != 10 {
		t.Errorf("%d distinct offers and %d ignored, want 30 and 10", len(seen), ignored)
	}
}

func TestFullModeExhaustedPoolIsIgnoredNotNaked(t *testing.T) {
	cfg := fullConfig()
	cfg.PoolStart, cfg.PoolEnd = ip4(100), ip4(100)
	s, _ := newTestServer(t, cfg, newLeaseDB(t))
	fullClient(t, s, macN(1))
	res := s.respond(context.Background(), msg(t, dhcpv4.MessageTypeDiscover, dhcpv4.WithHwAddr(macN(2))),
		&net.UDPAddr{IP: net.IPv4zero, Port: 68}, 67)
	if res.ev.Kind != "ignored" || !strings.Contains(res.ev.Reason, "no free address") {
		t.Errorf("exhausted pool: %+v", res.ev)
	}
}

func TestLockRefusesSecondClaimOnSameInterface(t *testing.T) {
	iface := fmt.Sprintf("fbtest%d", os.Getpid())
	first, err := lockInterface(iface)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockInterface(iface)
	if err == nil {
		t.Fatal("second claim succeeded")
	}
	want := fmt.Sprintf("another fleetboot already serves DHCP on %s (pid %d", iface, os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to contain %q", err, want)
	}
	other, err := lockInterface(iface + "x")
	if err != nil {
		t.Errorf("claim on another interface: %v", err)
	} else {
		other.Close()
	}
	first.Close()
	again, err := lockInterface(iface)
	if err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	again.Close()
}

// FuzzRespond runs arbitrary packets through the whole proxy-mode decision (ports 67 and
// 4011): no panic, and every reply marshals to a packet that parses.
func FuzzRespond(f *testing.F) {
	for _, mods := range [][]dhcpv4.Modifier{biosPXE(), uefiHTTP(), ipxeClient()} {
		f.Add(msg(f, dhcpv4.MessageTypeDiscover, mods...).ToBytes(), false)
		f.Add(msg(f, dhcpv4.MessageTypeRequest, append(mods, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)))...).ToBytes(), true)
	}
	s, err := New(proxyConfig(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, pxePort bool) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		port := portServer
		if pxePort {
			port = portPXE
		}
		res := s.respond(context.Background(), m, &net.UDPAddr{IP: net.IPv4zero, Port: 68}, port)
		if res.ev.Kind == "" {
			t.Fatal("no event")
		}
		if res.reply != nil {
			if res.dst == nil {
				t.Fatal("reply without destination")
			}
			if _, err := dhcpv4.FromBytes(res.reply.ToBytes()); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
		}
	})
}

// TestServeDropsPacketsBeyondMaxInFlight holds the only handling slot (its OnEvent blocks) and
// checks that the packets arriving meanwhile are dropped and reported, not queued.
func TestServeDropsPacketsBeyondMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	dropped := make(chan Event, 16)
	handled := make(chan Event, 16)
	cfg := proxyConfig()
	cfg.MaxInFlight = 1
	cfg.OnEvent = func(ev Event) {
		if ev.Kind == "dropped" {
			dropped <- ev
			return
		}
		handled <- ev
		<-release
	}
	_, client, stop := serveLoopback(t, cfg)

	pkt := msg(t, dhcpv4.MessageTypeDiscover, biosPXE()...).ToBytes()
	if _, err := client.Write(pkt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled: // the slot is now held until release
	case <-time.After(liveness):
		t.Fatal("first packet not handled within a minute")
	}
	for range 3 {
		if _, err := client.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		select {
		case ev := <-dropped:
			if !strings.Contains(ev.Reason, "more than 1 packets in flight") || ev.MAC.String() != testMAC.String() || ev.Port != portServer {
				t.Errorf("dropped event %+v", ev)
			}
		case <-time.After(liveness):
			t.Fatalf("only %d of 3 packets dropped", i)
		}
	}
	close(release)
	stop()
	if len(handled) != 0 {
		t.Errorf("%d dropped packets were handled anyway", len(handled))
	}
}

// PoolUsage counts the pool without its exclusions, the active leases and what is still free;
// an expired lease frees its address again.
func TestPoolUsageCountsActiveLeasesAndFreeAddresses(t *testing.T) {
	ctx := context.Background()
	cfg := fullConfig()
	cfg.PoolStart, cfg.PoolEnd = ip4(250), ip4(255) // holds the router (.254) and broadcast (.255)
	s, now := newTestServer(t, cfg, newLeaseDB(t))
	u, err := s.PoolUsage(ctx)
	if err != nil || u != (PoolUsage{Size: 4, Active: 0, Free: 4}) {
		t.Fatalf("empty pool: %+v %v", u, err)
	}
	fullClient(t, s, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, plainClient()...)
	fullClient(t, s, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, plainClient()...)
	if u, err = s.PoolUsage(ctx); err != nil || u != (PoolUsage{Size: 4, Active: 2, Free: 2}) {
		t.Fatalf("two bound: %+v %v", u, err)
	}
	*now = now.Add(2 * time.Hour) // past the 1 h lease time
	if u, err = s.PoolUsage(ctx); err != nil || u != (PoolUsage{Size: 4, Active: 0, Free: 4}) {
		t.Fatalf("after expiry: %+v %v", u, err)
	}
	proxy, _ := newTestServer(t, proxyConfig(), nil)
	if u, err := proxy.PoolUsage(ctx); err != nil || u != (PoolUsage{}) {
		t.Fatalf("proxy mode: %+v %v", u, err)
	}
}

// The Proxmox installer's own dhclient (a plain client, no PXE) takes its answer URL from
// option 250: full mode hands it to the machines whose profile has an answer file, in the offer
// and the ACK, and to nobody else.
func TestFullModeGivesProxmoxAnswerURLInOption250(t *testing.T) {
	cfg := fullConfig()
	url := testHTTP + "/proxmox/answer"
	cfg.AnswerURL = func(mac net.HardwareAddr) string {
		if mac.String() == macN(1).String() {
			return url
		}
		return ""
	}
	s, _ := newTestServer(t, cfg, newLeaseDB(t))
	offer, ack := fullClient(t, s, macN(1), plainClient()...)
	for _, r := range []response{offer, ack} {
		if got := string(r.reply.Options[optProxmoxAnswerURL]); got != url {
			t.Errorf("%s option 250 = %q, want %q", r.ev.Kind, got, url)
		}
	}
	offer, ack = fullClient(t, s, macN(2), plainClient()...)
	for _, r := range []response{offer, ack} {
		if r.reply.Options.Has(dhcpv4.GenericOptionCode(optProxmoxAnswerURL)) {
			t.Errorf("%s for a machine without an answer profile carries option 250", r.ev.Kind)
		}
	}
}

// TestServeStartsAtMostMaxInFlightHandlers floods one socket with more packets than the
// handling slots take. Handlers live on after their packet; one is started only when none is
// idle, and never more than MaxInFlight per socket — a handler that has just given back its
// slot but not yet asked for the next packet must not make the reader start another.
func TestServeStartsAtMostMaxInFlightHandlers(t *testing.T) {
	cfg := proxyConfig()
	cfg.MaxInFlight = 2
	s, client, stop := serveLoopback(t, cfg)
	pkt := msg(t, dhcpv4.MessageTypeRequest, biosPXE()...).ToBytes()
	for range 20000 {
		if _, err := client.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the reader drain what the socket holds
	stop()
	if n := s.handlers.Load(); n > 2 || n < 1 {
		t.Errorf("%d handlers started for MaxInFlight 2", n)
	}
}

// A client whose host name (option 12) is not UTF-8 — Latin-1 "café", or a long UTF-8 name
// that the 64-byte bound cuts inside a character — still gets its lease on both backends.
// PostgreSQL refuses text that is not UTF-8: the name as sent failed the lease write, and the
// client never got an address from an HA pair.
func TestFullModeLeasesClientsWithNonUTF8HostNames(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		db := newLeaseDBOn(t, b)
		s, _ := newTestServer(t, fullConfig(), db)
		for i, name := range []string{"caf\xe9", strings.Repeat("€", 30), "ok\xff\x00\x01"} {
			fullClient(t, s, macN(i+1), dhcpv4.WithOption(dhcpv4.OptHostName(name)))
		}
		leases, err := db.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range leases {
			if !utf8.ValidString(l.Hostname) || strings.ContainsRune(l.Hostname, 0) {
				t.Errorf("lease %s stores host name %q", l.IP, l.Hostname)
			}
		}
	})
}

// serveLoopback runs New(cfg)'s packet loop on one loopback socket, with a client socket
// connected to it; stop ends the loop and waits for its handlers.
func serveLoopback(t *testing.T, cfg Config) (s *Server, client *net.UDPConn, stop func()) {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	client, err = net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	var handlers sync.WaitGroup
	served := make(chan error, 1)
	go func() { served <- s.serve(ctx, conn, portServer, &handlers) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			conn.Close()
			if err := <-served; err != nil {
				t.Errorf("serve: %v", err)
			}
			handlers.Wait()
		})
	}
	t.Cleanup(stop)
	return s, client, stop
}
