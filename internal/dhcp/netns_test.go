package dhcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// The tests in this file run the real server on real sockets, inside a network namespace the
// test creates: a veth pair fbs0 (server side, 10.99.0.1/24) <-> fbc0 (client side, no
// address). The client side speaks raw Ethernet through an AF_PACKET socket, like firmware:
// DISCOVERs leave from 0.0.0.0, and every frame the server sends is seen as it is on the wire.
// Nothing touches the host's interfaces; the namespace is deleted at the end.

// testNetns is a network namespace with the veth pair configured.
type testNetns struct {
	name      string
	serverMAC net.HardwareAddr
	clientMAC net.HardwareAddr
}

func requireNetns(t *testing.T) *testNetns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	ns := &testNetns{name: fmt.Sprintf("fbdhcp-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))}
	ipCmd(t, "netns", "add", ns.name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.name, err, out)
		}
	})
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "fbs0", "type", "veth", "peer", "name", "fbc0"},
		{"addr", "add", "10.99.0.1/24", "dev", "fbs0"},
		{"link", "set", "fbs0", "up"},
		{"link", "set", "fbc0", "up"},
	} {
		ipCmd(t, append([]string{"-n", ns.name}, args...)...)
	}
	ns.readMACs(t)
	return ns
}

// readMACs learns the MACs of fbs0 and fbc0.
func (ns *testNetns) readMACs(t *testing.T) {
	t.Helper()
	err := ns.do(func() error {
		s, err := net.InterfaceByName("fbs0")
		if err != nil {
			return err
		}
		c, err := net.InterfaceByName("fbc0")
		if err != nil {
			return err
		}
		ns.serverMAC, ns.clientMAC = s.HardwareAddr, c.HardwareAddr
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// neighbour makes the server side reach ip at the client side's MAC without ARP (the raw
// client does not answer ARP), for unicast replies.
func (ns *testNetns) neighbour(t *testing.T, ip net.IP) {
	ipCmd(t, "-n", ns.name, "neigh", "replace", ip.String(), "lladdr", ns.clientMAC.String(), "dev", "fbs0", "nud", "permanent")
}

// enter moves the calling OS thread into the namespace. The caller must have locked the
// goroutine to its thread and must never unlock it: the Go runtime then discards the thread
// when the goroutine ends, so no other goroutine ever runs in the namespace by accident.
func (ns *testNetns) enter() error {
	fd, err := unix.Open("/run/netns/"+ns.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns.name, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", ns.name, err)
	}
	return nil
}

// do runs f inside the namespace, on a thread of its own, and waits for it.
func (ns *testNetns) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, see enter
		if err := ns.enter(); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// liveness bounds the wait for something that normally takes milliseconds (a reply, Run
// returning): generous for -race on a 2-core CI machine busy with QEMU guests, so only a hang
// reaches it. Waits return as soon as the event happens.
const liveness = time.Minute

// runningServer is a Server running inside the namespace.
type runningServer struct {
	srv    *Server
	events chan Event
	errc   chan error
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

func startServer(t *testing.T, ns *testNetns, cfg Config, leases LeaseStore) *runningServer {
	t.Helper()
	rs := &runningServer{events: make(chan Event, 1024), errc: make(chan error, 1)}
	prev := cfg.OnEvent
	cfg.OnEvent = func(ev Event) {
		if prev != nil {
			prev(ev)
		}
		select {
		case rs.events <- ev:
		default:
		}
	}
	srv, err := New(cfg, leases)
	if err != nil {
		t.Fatal(err)
	}
	rs.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	rs.cancel = cancel
	go func() {
		runtime.LockOSThread() // never unlocked, see enter
		if err := ns.enter(); err != nil {
			rs.errc <- err
			return
		}
		rs.errc <- srv.Run(ctx)
	}()
	t.Cleanup(func() {
		if err := rs.stop(); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return rs
}

// stop cancels the server and returns Run's result (once).
func (rs *runningServer) stop() error {
	rs.once.Do(func() {
		rs.cancel()
		select {
		case rs.err = <-rs.errc:
		case <-time.After(liveness):
			rs.err = fmt.Errorf("Run did not return within %v of cancel", liveness)
		}
	})
	return rs.err
}

// failed reports an early Run error without waiting.
func (rs *runningServer) failed() error {
	select {
	case err := <-rs.errc:
		rs.errc <- err
		return fmt.Errorf("server stopped: %v", err)
	default:
		return nil
	}
}

// rawClient sends and receives Ethernet frames on fbc0.
type rawClient struct {
	fd      int
	ifindex int
	mac     net.HardwareAddr
}

const ethPIP = 0x0800

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func newRawClient(t *testing.T, ns *testNetns) *rawClient {
	t.Helper()
	c := &rawClient{fd: -1, mac: ns.clientMAC}
	err := ns.do(func() error {
		ifi, err := net.InterfaceByName("fbc0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(ethPIP)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(ethPIP), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket: %w", err)
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd, c.ifindex = fd, ifi.Index
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(c.fd) })
	return c
}

// udpFrame is a received UDP/IPv4 frame.
type udpFrame struct {
	dstMAC           net.HardwareAddr
	src, dst         net.IP
	srcPort, dstPort int
	pkt              *dhcpv4.DHCPv4
}

// send transmits m as an Ethernet/IPv4/UDP frame.
func (c *rawClient) send(m *dhcpv4.DHCPv4, dstMAC net.HardwareAddr, src, dst net.IP, srcPort, dstPort int) error {
	return c.sendRaw(m.ToBytes(), dstMAC, src, dst, srcPort, dstPort)
}

// sendRaw transmits payload, whatever it holds, as the UDP payload of one frame.
func (c *rawClient) sendRaw(payload []byte, dstMAC net.HardwareAddr, src, dst net.IP, srcPort, dstPort int) error {
	udpLen := 8 + len(payload)
	ipLen := 20 + udpLen
	f := make([]byte, 14+ipLen)
	copy(f[0:6], dstMAC)
	copy(f[6:12], c.mac)
	binary.BigEndian.PutUint16(f[12:14], ethPIP)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen))
	ip[8] = 64 // TTL
	ip[9] = unix.IPPROTO_UDP
	copy(ip[12:16], src.To4())
	copy(ip[16:20], dst.To4())
	binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:2], uint16(srcPort))
	binary.BigEndian.PutUint16(udp[2:4], uint16(dstPort))
	binary.BigEndian.PutUint16(udp[4:6], uint16(udpLen)) // checksum 0: none (allowed for UDP over IPv4)
	copy(f[42:], payload)
	return unix.Sendto(c.fd, f, 0, &unix.SockaddrLinklayer{Ifindex: c.ifindex, Halen: 6,
		Addr: [8]byte{dstMAC[0], dstMAC[1], dstMAC[2], dstMAC[3], dstMAC[4], dstMAC[5]}})
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i : i+2]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// recvReplies collects BOOTREPLY frames arriving on fbc0 until want of them matched or the
// deadline passed.
func (c *rawClient) recvReplies(deadline time.Time, want int, match func(udpFrame) bool) []udpFrame {
	var got []udpFrame
	buf := make([]byte, 2048)
	for len(got) < want && time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			continue // timeout tick (EAGAIN) or EINTR
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own transmissions
		}
		fr, ok := parseUDPFrame(buf[:n])
		if !ok || fr.pkt.OpCode != dhcpv4.OpcodeBootReply || !match(fr) {
			continue
		}
		got = append(got, fr)
	}
	return got
}

func parseUDPFrame(f []byte) (udpFrame, bool) {
	if len(f) < 42 || binary.BigEndian.Uint16(f[12:14]) != ethPIP {
		return udpFrame{}, false
	}
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[9] != unix.IPPROTO_UDP || len(ip) < ihl+8 {
		return udpFrame{}, false
	}
	udp := ip[ihl:]
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if ulen < 8 || ulen > len(udp) {
		return udpFrame{}, false
	}
	m, err := dhcpv4.FromBytes(udp[8:ulen])
	if err != nil {
		return udpFrame{}, false
	}
	return udpFrame{
		dstMAC:  append(net.HardwareAddr(nil), f[0:6]...),
		src:     append(net.IP(nil), ip[12:16]...),
		dst:     append(net.IP(nil), ip[16:20]...),
		srcPort: int(binary.BigEndian.Uint16(udp[0:2])),
		dstPort: int(binary.BigEndian.Uint16(udp[2:4])),
		pkt:     m,
	}, true
}

var ethBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// exchange broadcasts m from 0.0.0.0:68 (retransmitting every 250 ms, as firmware does, which
// also covers the server still starting) and returns the reply with m's xid.
func exchange(t *testing.T, c *rawClient, rs *runningServer, m *dhcpv4.DHCPv4) udpFrame {
	t.Helper()
	return exchangeTo(t, c, rs, m, ethBroadcast, net.IPv4zero, net.IPv4bcast, portClient, portServer)
}

func exchangeTo(t *testing.T, c *rawClient, rs *runningServer, m *dhcpv4.DHCPv4, dstMAC net.HardwareAddr,
	src, dst net.IP, srcPort, dstPort int) udpFrame {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for time.Now().Before(deadline) {
		if err := rs.failed(); err != nil {
			t.Fatal(err)
		}
		if err := c.send(m, dstMAC, src, dst, srcPort, dstPort); err != nil {
			t.Fatalf("send: %v", err)
		}
		got := c.recvReplies(time.Now().Add(250*time.Millisecond), 1, func(f udpFrame) bool {
			return f.pkt.TransactionID == m.TransactionID
		})
		if len(got) == 1 {
			return got[0]
		}
	}
	t.Fatalf("no reply to %s %s (xid %s) within %v", m.MessageType(), m.ClientHWAddr, m.TransactionID, liveness)
	return udpFrame{}
}

// expectSilence sends m once and fails if any reply with its xid arrives within 400 ms.
func expectSilence(t *testing.T, c *rawClient, m *dhcpv4.DHCPv4, dstMAC net.HardwareAddr, src, dst net.IP, srcPort, dstPort int) {
	t.Helper()
	if err := c.send(m, dstMAC, src, dst, srcPort, dstPort); err != nil {
		t.Fatal(err)
	}
	if got := c.recvReplies(time.Now().Add(400*time.Millisecond), 1, func(f udpFrame) bool {
		return f.pkt.TransactionID == m.TransactionID
	}); len(got) > 0 {
		t.Errorf("unexpected %s reply to %s", got[0].pkt.MessageType(), m.ClientHWAddr)
	}
}

func withXID(i int) dhcpv4.Modifier {
	return dhcpv4.WithTransactionID(dhcpv4.TransactionID{0xfb, 0, byte(i >> 8), byte(i)})
}

func checkBroadcastFromServer(t *testing.T, f udpFrame) {
	t.Helper()
	if !bytes.Equal(f.dstMAC, ethBroadcast) ||
		!f.dst.Equal(net.IPv4bcast) || f.dstPort != portClient || f.srcPort != portServer || !f.src.Equal(serverIP) {
		t.Errorf("frame %s %s:%d -> %s:%d, want broadcast 10.99.0.1:67 -> 255.255.255.255:68",
			f.dstMAC, f.src, f.srcPort, f.dst, f.dstPort)
	}
}

func TestServerOnRealSocketsInNetns(t *testing.T) {
	ns := requireNetns(t)
	c := newRawClient(t, ns)

	t.Run("proxy mode answers firmware with boot options and no address", func(t *testing.T) {
		rs := startServer(t, ns, Config{Mode: ModeProxy, Interface: "fbs0", ServerIP: serverIP, HTTPBase: testHTTP}, nil)

		bios := exchange(t, c, rs, msg(t, dhcpv4.MessageTypeDiscover, append(biosPXE(), withXID(1))...))
		checkBroadcastFromServer(t, bios)
		o := bios.pkt
		if o.MessageType() != dhcpv4.MessageTypeOffer || !o.YourIPAddr.Equal(net.IPv4zero) || !o.ServerIPAddr.Equal(serverIP) ||
			o.BootFileName != "undionly.kpxe" || o.ClassIdentifier() != "PXEClient" ||
			hex.EncodeToString(o.Options[optVendorSpecific]) != "060108ff" || hex.EncodeToString(o.Options[optClientGUID]) != hex.EncodeToString(testGUID) ||
			!o.ServerIdentifier().Equal(serverIP) || o.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
			t.Errorf("BIOS PXE proxy offer:\n%s", o.Summary())
		}

		http := exchange(t, c, rs, msg(t, dhcpv4.MessageTypeDiscover, append(uefiHTTP(), withXID(2))...)).pkt
		if http.BootFileName != testHTTP+"/ipxe/snponly.efi" || http.ClassIdentifier() != "HTTPClient" || !http.YourIPAddr.Equal(net.IPv4zero) {
			t.Errorf("UEFI HTTP proxy offer:\n%s", http.Summary())
		}

		ipxe := exchange(t, c, rs, msg(t, dhcpv4.MessageTypeDiscover, append(ipxeClient(), withXID(3))...)).pkt
		if ipxe.BootFileName != testHTTP+"/boot.ipxe" || ipxe.ClassIdentifier() != "PXEClient" || !ipxe.YourIPAddr.Equal(net.IPv4zero) {
			t.Errorf("iPXE proxy offer:\n%s", ipxe.Summary())
		}

		// iPXE's ProxyDHCP REQUEST to port 4011, from its new address: answered to that address.
		client := ip4(50)
		ns.neighbour(t, client)
		req := msg(t, dhcpv4.MessageTypeRequest, append(ipxeClient(), withXID(4), dhcpv4.WithClientIP(client),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)))...)
		ack := exchangeTo(t, c, rs, req, ns.serverMAC, client, serverIP, portClient, portPXE)
		if !bytes.Equal(ack.dstMAC, c.mac) || !ack.dst.Equal(client) || ack.dstPort != portClient || ack.srcPort != portPXE ||
			ack.pkt.MessageType() != dhcpv4.MessageTypeAck || ack.pkt.BootFileName != testHTTP+"/boot.ipxe" {
			t.Errorf("4011 ACK frame to %s %s:%d from port %d:\n%s", ack.dstMAC, ack.dst, ack.dstPort, ack.srcPort, ack.pkt.Summary())
		}

		// Relayed DISCOVER: answered to the relay's port 67.
		relay := ip4(2)
		ns.neighbour(t, relay)
		rel := exchangeTo(t, c, rs, msg(t, dhcpv4.MessageTypeDiscover, append(biosPXE(), withXID(5), dhcpv4.WithGatewayIP(relay))...),
			ns.serverMAC, relay, serverIP, portServer, portServer)
		if !rel.dst.Equal(relay) || rel.dstPort != portServer || !rel.pkt.GatewayIPAddr.Equal(relay) || rel.pkt.BootFileName != "undionly.kpxe" {
			t.Errorf("relayed reply to %s:%d:\n%s", rel.dst, rel.dstPort, rel.pkt.Summary())
		}

		// Not our business: a plain client, and a REQUEST for the site's DHCP server.
		expectSilence(t, c, msg(t, dhcpv4.MessageTypeDiscover, append(plainClient(), withXID(6))...),
			ethBroadcast, net.IPv4zero, net.IPv4bcast, portClient, portServer)
		expectSilence(t, c, msg(t, dhcpv4.MessageTypeRequest, append(biosPXE(), withXID(7),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4(254))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(60))))...),
			ethBroadcast, net.IPv4zero, net.IPv4bcast, portClient, portServer)

		if err := rs.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		kinds := map[EventKind]int{}
		for len(rs.events) > 0 {
			kinds[(<-rs.events).Kind]++
		}
		if kinds["proxy-offer"] < 4 || kinds["proxy-ack"] < 1 || kinds["ignored"] < 2 {
			t.Errorf("events %v", kinds)
		}
	})

	t.Run("full mode gives simultaneous discovers distinct addresses", func(t *testing.T) {
		// 21 addresses: one for the plain client, 20 for a burst of 25 DISCOVERs.
		rs := startServer(t, ns, Config{
			Mode: ModeFull, Interface: "fbs0", ServerIP: serverIP, HTTPBase: testHTTP,
			PoolStart: ip4(100), PoolEnd: ip4(120), Netmask: net.CIDRMask(24, 32), Router: ip4(1),
			DNS: []net.IP{ip4(1)}, LeaseTime: time.Hour,
		}, newLeaseDB(t))

		// Make sure the server is up before the burst: one plain client first.
		plain := exchange(t, c, rs, msg(t, dhcpv4.MessageTypeDiscover, append(plainClient(), withXID(100), dhcpv4.WithHwAddr(macN(100)))...))
		checkBroadcastFromServer(t, plain)
		if !plain.pkt.YourIPAddr.Equal(ip4(100)) || plain.pkt.BootFileName != "" || plain.pkt.Options.Has(dhcpv4.OptionClassIdentifier) {
			t.Errorf("plain client offer:\n%s", plain.pkt.Summary())
		}

		const n, burst = 20, 25
		var wg sync.WaitGroup
		for i := range burst {
			wg.Go(func() {
				m := msg(t, dhcpv4.MessageTypeDiscover, append(uefiPXE(), withXID(i), dhcpv4.WithHwAddr(macN(i)))...)
				if err := c.send(m, ethBroadcast, net.IPv4zero, net.IPv4bcast, portClient, portServer); err != nil {
					t.Errorf("send: %v", err)
				}
			})
		}
		wg.Wait()
		burstOffer := func(f udpFrame) bool {
			return f.pkt.MessageType() == dhcpv4.MessageTypeOffer && f.pkt.TransactionID[0] == 0xfb &&
				int(binary.BigEndian.Uint16(f.pkt.TransactionID[2:])) < burst
		}
		// The n offers that must come, however slow the machine; then a further second for
		// extra ones (a reused address), which a slow machine can only make us miss, not invent.
		offers := c.recvReplies(time.Now().Add(liveness), n, burstOffer)
		offers = append(offers, c.recvReplies(time.Now().Add(time.Second), burst-n, burstOffer)...)
		if len(offers) != n {
			t.Fatalf("%d offers for %d simultaneous DISCOVERs and %d free addresses", len(offers), burst, n)
		}
		byIP := map[string]string{}
		for _, o := range offers {
			ip := o.pkt.YourIPAddr.String()
			if prev, dup := byIP[ip]; dup {
				t.Errorf("%s offered to %s and %s", ip, prev, o.pkt.ClientHWAddr)
			}
			byIP[ip] = o.pkt.ClientHWAddr.String()
			if o.pkt.BootFileName != "snponly.efi" || o.pkt.IPAddressLeaseTime(0) != time.Hour {
				t.Errorf("offer to %s:\n%s", o.pkt.ClientHWAddr, o.pkt.Summary())
			}
		}

		// Every client takes its offer.
		for _, o := range offers {
			req := msg(t, dhcpv4.MessageTypeRequest, append(uefiPXE(), dhcpv4.WithTransactionID(o.pkt.TransactionID),
				dhcpv4.WithHwAddr(o.pkt.ClientHWAddr), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
				dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.pkt.YourIPAddr)))...)
			ack := exchange(t, c, rs, req)
			if ack.pkt.MessageType() != dhcpv4.MessageTypeAck || !ack.pkt.YourIPAddr.Equal(o.pkt.YourIPAddr) {
				t.Errorf("REQUEST %s by %s got:\n%s", o.pkt.YourIPAddr, o.pkt.ClientHWAddr, ack.pkt.Summary())
			}
		}

		// Renewal: unicast from the leased address, answered by unicast.
		leased := offers[0].pkt.YourIPAddr
		ns.neighbour(t, leased)
		renew := msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithTransactionID(dhcpv4.TransactionID{1, 2, 3, 4}),
			dhcpv4.WithHwAddr(offers[0].pkt.ClientHWAddr), dhcpv4.WithClientIP(leased))
		ack := exchangeTo(t, c, rs, renew, ns.serverMAC, leased, serverIP, portClient, portServer)
		if !ack.dst.Equal(leased) || !bytes.Equal(ack.dstMAC, c.mac) || ack.pkt.MessageType() != dhcpv4.MessageTypeAck {
			t.Errorf("renewal ACK to %s %s:\n%s", ack.dstMAC, ack.dst, ack.pkt.Summary())
		}

		leases, err := rs.srv.Leases(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		bound := 0
		for _, l := range leases {
			if l.State == StateBound {
				bound++
			}
		}
		if bound != n {
			t.Errorf("%d bound leases, want %d", bound, n)
		}
	})

	t.Run("second server on the same interface is refused", func(t *testing.T) {
		cfg := Config{Mode: ModeProxy, Interface: "fbs0", ServerIP: serverIP, HTTPBase: testHTTP}
		first := startServer(t, ns, cfg, nil)
		exchange(t, c, first, msg(t, dhcpv4.MessageTypeDiscover, append(biosPXE(), withXID(200))...)) // first is serving

		second := startServer(t, ns, cfg, nil)
		select {
		case err := <-second.errc:
			second.errc <- err // for cleanup
			want := fmt.Sprintf("another fleetboot already serves DHCP on fbs0 (pid %d", os.Getpid())
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("second Run: %v, want %q", err, want)
			}
			second.once.Do(func() {}) // already returned; nothing to stop
		case <-time.After(liveness):
			t.Fatal("second server kept running")
		}

		// The first still answers alone; once stopped, the interface can be served again.
		exchange(t, c, first, msg(t, dhcpv4.MessageTypeDiscover, append(biosPXE(), withXID(201))...))
		if err := first.stop(); err != nil {
			t.Fatal(err)
		}
		third := startServer(t, ns, cfg, nil)
		exchange(t, c, third, msg(t, dhcpv4.MessageTypeDiscover, append(biosPXE(), withXID(202))...))
	})

	t.Run("bind errors are returned at once", func(t *testing.T) {
		rs := startServer(t, ns, Config{Mode: ModeProxy, Interface: "nosuch0", ServerIP: serverIP, HTTPBase: testHTTP}, nil)
		select {
		case err := <-rs.errc:
			rs.errc <- err
			rs.once.Do(func() {})
			if err == nil || !strings.Contains(err.Error(), "listen on nosuch0 port 67") {
				t.Errorf("Run on a missing interface: %v", err)
			}
		case <-time.After(liveness):
			t.Fatal("Run on a missing interface did not fail")
		}
	})

	t.Run("a port taken by another DHCP server names the flags that avoid it", func(t *testing.T) {
		// dnsmasq and dhcpd bind port 67 without SO_REUSEPORT; a plain socket does the same.
		err := ns.do(func() error {
			other, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 67})
			if err != nil {
				return fmt.Errorf("occupy port 67: %w", err)
			}
			defer other.Close()
			socks, err := Listen("fbs0")
			if err == nil {
				socks.Close()
				return errors.New("Listen succeeded on a taken port")
			}
			for _, want := range []string{"UDP port 67 on fbs0 is already in use", "--dhcp off", "--interface"} {
				if !strings.Contains(err.Error(), want) {
					return fmt.Errorf("Listen: %v, want it to say %q", err, want)
				}
			}
			// The failed start released its claim: the interface can be served at once.
			other.Close()
			socks, err = Listen("fbs0")
			if err != nil {
				return fmt.Errorf("Listen after the port was freed: %w", err)
			}
			return socks.Close()
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
