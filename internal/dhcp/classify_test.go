package dhcp

import (
	"net"
	"reflect"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestClassifyClientRecognisesFirmware(t *testing.T) {
	tests := []struct {
		name      string
		mods      []dhcpv4.Modifier
		firmware  Firmware
		arch      string
		ipxe      bool
		ipxeEncap bool
	}{
		{"bios pxe rom", biosPXE(), FirmwareBIOSPXE, "bios", false, false},
		{"pre-RFC4578 bios pxe without option 93", []dhcpv4.Modifier{withVC("PXEClient")}, FirmwareBIOSPXE, "", false, false},
		{"uefi pxe x64", uefiPXE(), FirmwareUEFIPXE, "efi-x64", false, false},
		{"uefi pxe efi-bc", []dhcpv4.Modifier{withVC("PXEClient:Arch:00009:UNDI:003000"), withArch(archEFIBC)}, FirmwareUEFIPXE, "efi-bc", false, false},
		{"uefi pxe arm64", []dhcpv4.Modifier{withVC("PXEClient:Arch:00011:UNDI:003000"), withArch(archEFIARM64)}, FirmwareUEFIPXE, "efi-arm64", false, false},
		{"uefi http x64", uefiHTTP(), FirmwareUEFIHTTP, "efi-x64-http", false, false},
		{"uefi http arm64", []dhcpv4.Modifier{withVC("HTTPClient:Arch:00019:UNDI:003000"), withArch(archEFIARM64HTTP)}, FirmwareUEFIHTTP, "efi-arm64-http", false, false},
		{"ipxe raw user class", ipxeClient(), FirmwareIPXE, "bios", true, true},
		{"ipxe rfc3004 user class", join(biosPXE(), []dhcpv4.Modifier{withOpt(optUserClass, []byte("\x04iPXE"))}), FirmwareIPXE, "bios", true, false},
		{"ipxe among several rfc3004 user classes", join(uefiPXE(), []dhcpv4.Modifier{withOpt(optUserClass, []byte("\x03abc\x04iPXE"))}), FirmwareIPXE, "efi-x64", true, false},
		// ipxe.lkrn with its user class changed still sends 175: classified by 77, it is PXE.
		{"ipxe posing as pxe keeps 175", join(biosPXE(), []dhcpv4.Modifier{withOpt(optUserClass, []byte("fbtest")), withOpt(optIPXEEncap, ipxeFeats)}), FirmwareBIOSPXE, "bios", false, true},
		{"plain dhcp client", plainClient(), FirmwareOther, "", false, false},
		{"arch without vendor class is not netboot", []dhcpv4.Modifier{withArch(archEFIx64)}, FirmwareOther, "efi-x64", false, false},
		{"unknown arch named by number", []dhcpv4.Modifier{withVC("PXEClient"), withArch(27)}, FirmwareUEFIPXE, "arch-27", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ci := classifyClient(msg(t, dhcpv4.MessageTypeDiscover, tt.mods...))
			if got := ci.firmware(); got != tt.firmware {
				t.Errorf("firmware = %q, want %q", got, tt.firmware)
			}
			if got := ci.archName(); got != tt.arch {
				t.Errorf("arch = %q, want %q", got, tt.arch)
			}
			if ci.IPXE != tt.ipxe || ci.IPXEEncap != tt.ipxeEncap {
				t.Errorf("IPXE, IPXEEncap = %v, %v; want %v, %v", ci.IPXE, ci.IPXEEncap, tt.ipxe, tt.ipxeEncap)
			}
			if !reflect.DeepEqual(ci.MAC, testMAC) || ci.XID != testXID || ci.MsgType != dhcpv4.MessageTypeDiscover {
				t.Errorf("MAC/XID/type = %v/%v/%v", ci.MAC, ci.XID, ci.MsgType)
			}
		})
	}
}

func TestClassifyClientReadsAddressingFields(t *testing.T) {
	giaddr := net.IPv4(10, 98, 0, 1)
	ciaddr := net.IPv4(10, 99, 0, 42)
	m := msg(t, dhcpv4.MessageTypeRequest,
		dhcpv4.WithGatewayIP(giaddr), dhcpv4.WithClientIP(ciaddr), dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IPv4(10, 99, 0, 43))),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverIP)),
		dhcpv4.WithOption(dhcpv4.OptHostName("node-7")))
	ci := classifyClient(m)
	check := func(name string, got, want net.IP) {
		t.Helper()
		if !got.Equal(want) || (want != nil && len(got) != net.IPv4len) {
			t.Errorf("%s = %v, want %v (4-byte)", name, got, want)
		}
	}
	check("Relay", ci.Relay, giaddr)
	check("ClientIP", ci.ClientIP, ciaddr)
	check("RequestedIP", ci.RequestedIP, net.IPv4(10, 99, 0, 43))
	check("ServerID", ci.ServerID, serverIP)
	if !ci.Broadcast || ci.Hostname != "node-7" || ci.MsgType != dhcpv4.MessageTypeRequest {
		t.Errorf("Broadcast, Hostname, MsgType = %v, %q, %v", ci.Broadcast, ci.Hostname, ci.MsgType)
	}

	bare := classifyClient(msg(t, dhcpv4.MessageTypeDiscover))
	if bare.Relay != nil || bare.ClientIP != nil || bare.RequestedIP != nil || bare.ServerID != nil || bare.Broadcast {
		t.Errorf("absent fields not nil/false: %+v", bare)
	}
}

func TestClassifyClientGUID(t *testing.T) {
	ci := classifyClient(msg(t, dhcpv4.MessageTypeDiscover, withGUID()))
	if !reflect.DeepEqual(ci.GUID, testGUID) {
		t.Errorf("GUID = %x, want %x", ci.GUID, testGUID)
	}
	if want := "8a2f5e11-3c4d-4e8b-9f01-23456789abcd"; ci.UUID != want {
		t.Errorf("UUID = %q, want %q", ci.UUID, want)
	}
	// Not the type-0 17-byte form: raw bytes kept for echoing, no UUID string.
	for _, g := range [][]byte{{0x01, 0x02}, append([]byte{0x01}, testGUID[1:]...), {}} {
		ci := classifyClient(msg(t, dhcpv4.MessageTypeDiscover, withOpt(optClientGUID, g)))
		if ci.GUID == nil || !reflect.DeepEqual(ci.GUID, g) || ci.UUID != "" {
			t.Errorf("GUID %x: got GUID %x UUID %q", g, ci.GUID, ci.UUID)
		}
	}
	if ci := classifyClient(msg(t, dhcpv4.MessageTypeDiscover)); ci.GUID != nil {
		t.Errorf("GUID without option 97 = %x", ci.GUID)
	}
}

func TestClassifyClientToleratesMalformedOptions(t *testing.T) {
	m := msg(t, dhcpv4.MessageTypeDiscover,
		withVC("PXEClient"),
		withOpt(optClientArch, []byte{0x00}),                       // half an arch
		withOpt(optRequestedIP, []byte{10, 99, 0}),                 // short address
		withOpt(optServerID, []byte{10, 99, 0, 1, 9}),              // long address
		withOpt(optUserClass, []byte{0x09, 'i', 'P'}),              // RFC 3004 length past the end
		withOpt(dhcpv4.OptionDHCPMessageType.Code(), []byte{1, 2})) // two-byte message type
	ci := classifyClient(m)
	if ci.HasArch || ci.RequestedIP != nil || ci.ServerID != nil || ci.IPXE || ci.MsgType != dhcpv4.MessageTypeNone {
		t.Errorf("malformed options not treated as absent: %+v", ci)
	}
	if ci.firmware() != FirmwareBIOSPXE {
		t.Errorf("firmware = %q, want bios-pxe (PXEClient without usable arch)", ci.firmware())
	}
	if got := classifyClient(nil); got.MAC != nil {
		t.Errorf("nil packet: %+v", got)
	}
}

func TestParseUserClass(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"iPXE", []string{"iPXE"}},
		{"\x04iPXE", []string{"iPXE", "\x04iPXE"}},
		{"\x03abc\x04iPXE", []string{"abc", "iPXE", "\x03abc\x04iPXE"}},
		{"\x00", []string{"\x00"}},
		{"\x05abc", []string{"\x05abc"}},
	}
	for _, tt := range tests {
		if got := parseUserClass([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseUserClass(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzClassify feeds arbitrary bytes through the parser and the classifier: neither may panic,
// and the decision and reply built from whatever parses must marshal to a parseable packet.
func FuzzClassify(f *testing.F) {
	for _, mods := range [][]dhcpv4.Modifier{biosPXE(), uefiPXE(), uefiHTTP(), ipxeClient(), plainClient()} {
		f.Add(msg(f, dhcpv4.MessageTypeDiscover, mods...).ToBytes())
	}
	f.Add([]byte{})
	f.Add(make([]byte, 240))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		ci := classifyClient(m)
		_ = ci.firmware()
		_ = ci.archName()
		for _, proxy := range []bool{false, true} {
			plan := decideBoot(ci, bootConfig{ServerIP: serverIP, HTTPBase: testHTTP, HTTPBootFile: "snponly.efi", Arm64File: "ipxe-arm64.efi", Proxy: proxy})
			for k := kindOffer; k <= kindProxyAck; k++ {
				r := buildReply(m, k, serverIP, plan, leaseOptions{IP: net.IPv4(10, 99, 0, 100), Netmask: net.CIDRMask(24, 32), LeaseTime: 3600e9})
				if _, err := dhcpv4.FromBytes(r.ToBytes()); err != nil {
					t.Fatalf("reply %v does not parse: %v", k, err)
				}
				_ = replyDestination(m, k, portServer, &net.UDPAddr{IP: net.IPv4zero, Port: 68})
			}
		}
	})
}
