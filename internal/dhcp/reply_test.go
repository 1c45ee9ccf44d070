package dhcp

import (
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestReplyWireFormat pins the exact bytes of each kind of reply, and where it goes, in
// testdata/<name>.golden (a readable listing decoded from the wire bytes, then a hex dump).
// Run `go test ./internal/dhcp -run TestReplyWireFormat -update` after an intended change and
// review the diff.
func TestReplyWireFormat(t *testing.T) {
	full := bootConfig{ServerIP: serverIP, HTTPBase: testHTTP, HTTPBootFile: "snponly.efi"}
	proxy := full
	proxy.Proxy = true
	lease := leaseOptions{
		IP:        net.IPv4(10, 99, 0, 100).To4(),
		Netmask:   net.CIDRMask(24, 32),
		Router:    net.IPv4(10, 99, 0, 254).To4(),
		DNS:       []net.IP{net.IPv4(10, 99, 0, 53).To4(), net.IPv4(9, 9, 9, 9).To4()},
		Domain:    "lab.example",
		LeaseTime: time.Hour,
	}
	inform := lease
	inform.IP, inform.LeaseTime = nil, 0
	anyPeer := &net.UDPAddr{IP: net.IPv4zero, Port: portClient}
	relay := net.IPv4(10, 99, 0, 2)
	longBase := "http://" + strings.Repeat("x", 120) + ".example:8080"

	tests := []struct {
		name  string
		req   *dhcpv4.DHCPv4
		kind  replyKind
		cfg   bootConfig
		lease leaseOptions
		port  int
		peer  *net.UDPAddr
	}{
		{"proxy-offer-bios-pxe", msg(t, dhcpv4.MessageTypeDiscover, biosPXE()...), kindProxyOffer, proxy, leaseOptions{}, portServer, anyPeer},
		{"proxy-offer-uefi-pxe", msg(t, dhcpv4.MessageTypeDiscover, uefiPXE()...), kindProxyOffer, proxy, leaseOptions{}, portServer, anyPeer},
		{"proxy-offer-uefi-http", msg(t, dhcpv4.MessageTypeDiscover, uefiHTTP()...), kindProxyOffer, proxy, leaseOptions{}, portServer, anyPeer},
		{"proxy-offer-ipxe", msg(t, dhcpv4.MessageTypeDiscover, ipxeClient()...), kindProxyOffer, proxy, leaseOptions{}, portServer, anyPeer},
		{"proxy-ack-4011-ipxe",
			msg(t, dhcpv4.MessageTypeRequest, join(ipxeClient(), []dhcpv4.Modifier{
				dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 50)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP))})...),
			kindProxyAck, proxy, leaseOptions{}, portPXE, &net.UDPAddr{IP: net.IPv4(10, 99, 0, 50), Port: portClient}},
		{"proxy-offer-relayed-bios-pxe",
			msg(t, dhcpv4.MessageTypeDiscover, join(biosPXE(), []dhcpv4.Modifier{dhcpv4.WithGatewayIP(relay),
				withOpt(optRelayAgentInfo, []byte{1, 4, 'p', 'o', 'r', 't'})})...),
			kindProxyOffer, proxy, leaseOptions{}, portServer, &net.UDPAddr{IP: relay, Port: portServer}},
		{"offer-uefi-pxe", msg(t, dhcpv4.MessageTypeDiscover, uefiPXE()...), kindOffer, full, lease, portServer, anyPeer},
		{"offer-plain", msg(t, dhcpv4.MessageTypeDiscover, plainClient()...), kindOffer, full, lease, portServer, anyPeer},
		{"ack-ipxe", msg(t, dhcpv4.MessageTypeRequest, join(ipxeClient(), []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(lease.IP))})...), kindAck, full, lease, portServer, anyPeer},
		{"ack-renewing-unicast", msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(lease.IP)), kindAck, full, lease, portServer,
			&net.UDPAddr{IP: lease.IP, Port: portClient}},
		{"ack-inform", msg(t, dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.IPv4(10, 99, 0, 7))), kindInformAck, full, inform, portServer,
			&net.UDPAddr{IP: net.IPv4(10, 99, 0, 7), Port: portClient}},
		{"nak", msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 1, 5)))),
			kindNak, full, lease, portServer, anyPeer},
		{"nak-relayed", msg(t, dhcpv4.MessageTypeRequest, dhcpv4.WithGatewayIP(relay),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(192, 168, 1, 5)))),
			kindNak, full, lease, portServer, &net.UDPAddr{IP: relay, Port: portServer}},
		{"proxy-offer-ipxe-long-url", msg(t, dhcpv4.MessageTypeDiscover, ipxeClient()...), kindProxyOffer,
			bootConfig{ServerIP: serverIP, HTTPBase: longBase, Proxy: true}, leaseOptions{}, portServer, anyPeer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ci := classifyClient(tt.req)
			var plan bootPlan
			if ci.netboot() {
				plan = decideBoot(ci, tt.cfg)
			}
			r := buildReply(tt.req, tt.kind, serverIP, plan, tt.lease)
			dst := replyDestination(tt.req, tt.kind, tt.port, tt.peer)
			got := "destination " + dst.String() + "\n" + describeWire(r.ToBytes())
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs (run with -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

func TestReplyDestination(t *testing.T) {
	client := net.IPv4(10, 99, 0, 42).To4()
	relay := net.IPv4(10, 98, 0, 1).To4()
	tests := []struct {
		name string
		mods []dhcpv4.Modifier
		kind replyKind
		port int
		peer *net.UDPAddr
		want string
	}{
		{"no address: broadcast", nil, kindOffer, portServer, nil, "255.255.255.255:68"},
		{"address and broadcast flag: broadcast", []dhcpv4.Modifier{dhcpv4.WithClientIP(client), dhcpv4.WithBroadcast(true)}, kindAck, portServer, nil, "255.255.255.255:68"},
		{"address: unicast to ciaddr", []dhcpv4.Modifier{dhcpv4.WithClientIP(client)}, kindAck, portServer, nil, "10.99.0.42:68"},
		{"relayed: to the relay's server port", []dhcpv4.Modifier{dhcpv4.WithGatewayIP(relay)}, kindOffer, portServer, nil, "10.98.0.1:67"},
		{"relayed nak: to the relay", []dhcpv4.Modifier{dhcpv4.WithGatewayIP(relay)}, kindNak, portServer, nil, "10.98.0.1:67"},
		{"nak to a client with an address: broadcast", []dhcpv4.Modifier{dhcpv4.WithClientIP(client)}, kindNak, portServer, nil, "255.255.255.255:68"},
		{"4011: back to the sender", []dhcpv4.Modifier{dhcpv4.WithClientIP(client)}, kindProxyAck, portPXE,
			&net.UDPAddr{IP: client, Port: 68}, "10.99.0.42:68"},
		{"4011: sender's own port", nil, kindProxyAck, portPXE, &net.UDPAddr{IP: client, Port: 4011}, "10.99.0.42:4011"},
		{"4011 from 0.0.0.0: broadcast to the sender's port", nil, kindProxyAck, portPXE,
			&net.UDPAddr{IP: net.IPv4zero, Port: 68}, "255.255.255.255:68"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := msg(t, dhcpv4.MessageTypeRequest, tt.mods...)
			if got := replyDestination(req, tt.kind, tt.port, tt.peer).String(); got != tt.want {
				t.Errorf("destination = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestProxyRepliesCarryNoAddressOrLeaseOptions(t *testing.T) {
	lease := leaseOptions{IP: net.IPv4(10, 99, 0, 100), Netmask: net.CIDRMask(24, 32), Router: serverIP,
		DNS: []net.IP{serverIP}, Domain: "x", LeaseTime: time.Hour}
	plan := decideBoot(classifyClient(msg(t, dhcpv4.MessageTypeDiscover, biosPXE()...)),
		bootConfig{ServerIP: serverIP, HTTPBase: testHTTP, Proxy: true})
	for _, kind := range []replyKind{kindProxyOffer, kindProxyAck} {
		r := buildReply(msg(t, dhcpv4.MessageTypeDiscover, biosPXE()...), kind, serverIP, plan, lease)
		if !r.YourIPAddr.Equal(net.IPv4zero) {
			t.Errorf("%v: yiaddr %v", kind.event(), r.YourIPAddr)
		}
		for _, code := range []uint8{1, 3, 6, 15, 51, 58, 59} {
			if _, ok := r.Options[code]; ok {
				t.Errorf("%v: carries option %d", kind.event(), code)
			}
		}
	}
}

// describeWire decodes a BOOTP/DHCP packet from its bytes (independently of dhcpv4's parser),
// listing options in wire order, then dumps the bytes.
func describeWire(b []byte) string {
	var sb strings.Builder
	if len(b) < 240 {
		return fmt.Sprintf("short packet (%d bytes)\n%s", len(b), hex.Dump(b))
	}
	ip := func(off int) string { return net.IP(b[off : off+4]).String() }
	cstr := func(f []byte) string {
		if i := strings.IndexByte(string(f), 0); i >= 0 {
			f = f[:i]
		}
		return fmt.Sprintf("%q", f)
	}
	hlen := int(b[2])
	fmt.Fprintf(&sb, "op %d htype %d hlen %d hops %d xid %x secs %d flags %#04x\n",
		b[0], b[1], hlen, b[3], b[4:8], binary.BigEndian.Uint16(b[8:10]), binary.BigEndian.Uint16(b[10:12]))
	fmt.Fprintf(&sb, "ciaddr %s yiaddr %s siaddr %s giaddr %s\n", ip(12), ip(16), ip(20), ip(24))
	fmt.Fprintf(&sb, "chaddr %s\n", net.HardwareAddr(b[28:28+min(hlen, 16)]))
	fmt.Fprintf(&sb, "sname %s\nfile %s\ncookie %x\n", cstr(b[44:108]), cstr(b[108:236]), b[236:240])
	opts := b[240:]
	for len(opts) > 0 {
		code := opts[0]
		if code == 0 {
			opts = opts[1:]
			continue
		}
		if code == 255 {
			fmt.Fprintf(&sb, "option 255 end\n")
			break
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			fmt.Fprintf(&sb, "truncated option %d\n", code)
			break
		}
		v := opts[2 : 2+int(opts[1])]
		fmt.Fprintf(&sb, "option %3d len %3d: %x", code, len(v), v)
		if s := optionText(code, v); s != "" {
			fmt.Fprintf(&sb, "  (%s)", s)
		}
		sb.WriteString("\n")
		opts = opts[2+len(v):]
	}
	fmt.Fprintf(&sb, "wire %d bytes\n%s", len(b), hex.Dump(b))
	return sb.String()
}

func optionText(code uint8, v []byte) string {
	switch code {
	case 1, 3, 6, 54:
		var ips []string
		for i := 0; i+4 <= len(v); i += 4 {
			ips = append(ips, net.IP(v[i:i+4]).String())
		}
		return strings.Join(ips, ", ")
	case 12, 15, 56, 60, 66, 67:
		return fmt.Sprintf("%q", v)
	case 51, 58, 59:
		if len(v) == 4 {
			return fmt.Sprintf("%ds", binary.BigEndian.Uint32(v))
		}
	case 53:
		if len(v) == 1 {
			return dhcpv4.MessageType(v[0]).String()
		}
	}
	return ""
}

// Option 250 is a lease option: it rides on offers, ACKs and INFORM replies, never on proxy
// replies (they carry no lease options) or NAKs.
func TestAnswerURLOption250OnlyOnLeaseReplies(t *testing.T) {
	const url = "http://10.99.0.1:8080/proxmox/answer"
	lease := leaseOptions{IP: net.IPv4(10, 99, 0, 100).To4(), LeaseTime: time.Hour, AnswerURL: url}
	for _, tc := range []struct {
		kind replyKind
		want string
	}{
		{kindOffer, url}, {kindAck, url}, {kindInformAck, url},
		{kindProxyOffer, ""}, {kindProxyAck, ""}, {kindNak, ""},
	} {
		r := buildReply(msg(t, dhcpv4.MessageTypeDiscover, plainClient()...), tc.kind, serverIP, bootPlan{}, lease)
		wire, err := dhcpv4.FromBytes(r.ToBytes())
		if err != nil {
			t.Fatal(err)
		}
		if got := string(wire.Options[optProxmoxAnswerURL]); got != tc.want {
			t.Errorf("%v: option 250 = %q, want %q", tc.kind.event(), got, tc.want)
		}
	}
	none := lease
	none.AnswerURL = ""
	if r := buildReply(msg(t, dhcpv4.MessageTypeDiscover), kindAck, serverIP, bootPlan{}, none); r.Options.Has(dhcpv4.GenericOptionCode(optProxmoxAnswerURL)) {
		t.Error("an ACK without an answer URL carries option 250")
	}
}
