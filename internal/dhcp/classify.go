// Package dhcp owns fleetboot's DHCPv4 side: recognising network-boot clients (classify.go),
// deciding which boot file each gets (plan.go), building reply packets and their destinations
// (reply.go), full-mode address leases persisted in SQLite (leases.go, leasedb.go) and the
// UDP server that ties them together in proxy or full mode (server.go).
//
// The decisions are pure functions over parsed packets and are table-tested; sockets and the
// database stay at the edges.
package dhcp

import (
	"fmt"
	"net"
	"strings"
	"unicode/utf8"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Firmware is the kind of boot client, as events, the machine record and metrics labels name
// it.
type Firmware string

// Firmware kinds; Firmwares lists them (internal/metrics pre-initialises its labels from it).
const (
	FirmwareBIOSPXE  Firmware = "bios-pxe"
	FirmwareUEFIPXE  Firmware = "uefi-pxe"
	FirmwareUEFIHTTP Firmware = "uefi-http"
	FirmwareIPXE     Firmware = "ipxe"
	FirmwareOther    Firmware = "other"
)

// Firmwares are all firmware kinds.
var Firmwares = []Firmware{FirmwareBIOSPXE, FirmwareUEFIPXE, FirmwareUEFIHTTP, FirmwareIPXE, FirmwareOther}

// BootsFromNetwork reports whether f is how a machine's firmware network-boots (PXE or HTTP
// Boot); iPXE's own requests after the chainload and unrecognised clients say nothing about it.
func (f Firmware) BootsFromNetwork() bool {
	return f == FirmwareBIOSPXE || f == FirmwareUEFIPXE || f == FirmwareUEFIHTTP
}

// Client system architecture types (RFC 4578 §2.1 and the IANA registry), the subset fleetboot
// has binaries for or wants to name in logs.
const (
	archBIOS         uint16 = 0
	archEFIIA32      uint16 = 6
	archEFIx64       uint16 = 7
	archEFIBC        uint16 = 9 // EFI byte code; in practice x86-64 firmware (old EDK2 sent 9)
	archEFIARM32     uint16 = 10
	archEFIARM64     uint16 = 11
	archEFIx86HTTP   uint16 = 15
	archEFIx64HTTP   uint16 = 16
	archEFIARM64HTTP uint16 = 19
)

// DHCP option codes read or written here that dhcpv4 names differently or not at all.
const (
	optHostname       = 12
	optVendorSpecific = 43
	optRequestedIP    = 50
	optServerID       = 54
	optVendorClass    = 60
	optClientID       = 61
	optTFTPServer     = 66
	optBootfile       = 67
	optUserClass      = 77
	optRelayAgentInfo = 82
	optClientArch     = 93
	optClientGUID     = 97
	optIPXEEncap      = 175
	// optProxmoxAnswerURL is a site-specific option (RFC 3942: 224–254) that Proxmox VE's
	// automated installer reads as its answer URL (dhclient name
	// proxmox-auto-installer-manifest-url, text; proxmox-fetch-answer, PVE 8.2+).
	optProxmoxAnswerURL = 250
	ipxeNoPXEDHCP       = 176 // sub-option of 175: skip waiting for ProxyDHCP offers
	guidTypeUUID        = 0   // first byte of option 97 when the rest is a 16-byte UUID
	vendorPXEClient     = "PXEClient"
	vendorHTTPClient    = "HTTPClient"
	userClassIPXE       = "iPXE"
	maxLoggedStringLen  = 64 // bound strings from the wire before they reach logs
)

// clientInfo is what a DHCP packet tells about its sender, normalised so that decisions never
// touch the raw packet. IPs are 4-byte or nil (nil meaning 0.0.0.0 / absent).
type clientInfo struct {
	MAC     net.HardwareAddr // chaddr, truncated to hlen (may be empty: hlen 0 is legal)
	XID     dhcpv4.TransactionID
	MsgType dhcpv4.MessageType

	HasArch bool   // option 93 present with at least one entry
	Arch    uint16 // first entry of option 93

	VendorClass string   // option 60 as sent
	PXE         bool     // option 60 starts with "PXEClient"
	HTTP        bool     // option 60 starts with "HTTPClient"
	UserClasses []string // option 77: RFC 3004 entries, or the raw value when not RFC 3004
	IPXE        bool     // a user class is exactly "iPXE"
	IPXEEncap   bool     // option 175 present (iPXE's feature list; also sent by iPXE with another user class)

	GUID []byte // option 97 raw, echoed back verbatim
	UUID string // option 97 as a UUID string when it is the 17-byte type-0 form

	Relay     net.IP // giaddr; nil when not relayed
	ClientIP  net.IP // ciaddr; nil when the client has no address yet
	Broadcast bool   // the client set the BROADCAST flag

	RequestedIP net.IP // option 50
	ServerID    net.IP // option 54
	Hostname    string // option 12
}

// classifyClient extracts clientInfo from m. It never panics, whatever the packet holds:
// malformed options degrade to "absent".
func classifyClient(m *dhcpv4.DHCPv4) clientInfo {
	var ci clientInfo
	if m == nil {
		return ci
	}
	ci.MAC = append(net.HardwareAddr(nil), m.ClientHWAddr...)
	ci.XID = m.TransactionID
	ci.MsgType = messageType(m)
	ci.Relay = nonZeroIPv4(m.GatewayIPAddr)
	ci.ClientIP = nonZeroIPv4(m.ClientIPAddr)
	ci.Broadcast = m.IsBroadcast()

	opts := m.Options
	if v := opts[optClientArch]; len(v) >= 2 {
		// Option 93 is a list of 16-bit types; every client seen sends exactly one. A list with
		// an odd length is malformed: take the first complete entry anyway.
		ci.HasArch = true
		ci.Arch = uint16(v[0])<<8 | uint16(v[1])
	}
	ci.VendorClass = string(opts[optVendorClass])
	ci.PXE = strings.HasPrefix(ci.VendorClass, vendorPXEClient)
	ci.HTTP = strings.HasPrefix(ci.VendorClass, vendorHTTPClient)
	ci.UserClasses = parseUserClass(opts[optUserClass])
	for _, uc := range ci.UserClasses {
		if uc == userClassIPXE {
			ci.IPXE = true
		}
	}
	_, ci.IPXEEncap = opts[optIPXEEncap]
	if g, ok := opts[optClientGUID]; ok {
		ci.GUID = append([]byte{}, g...)
		ci.UUID = guidString(g)
	}
	ci.RequestedIP = ipv4Option(opts[optRequestedIP])
	ci.ServerID = ipv4Option(opts[optServerID])
	ci.Hostname = string(opts[optHostname])
	return ci
}

// firmware names the kind of boot client for events and metrics.
//
// iPXE is recognised by user class 77 only, never by option 175 alone: a legacy-PXE test
// client built from ipxe.lkrn with its user class changed still sends 175, and must be
// treated as the PXE client it pretends to be (see DESIGN.md).
func (ci clientInfo) firmware() Firmware {
	switch {
	case ci.IPXE:
		return FirmwareIPXE
	case ci.HTTP:
		return FirmwareUEFIHTTP
	case ci.PXE && (!ci.HasArch || ci.Arch == archBIOS):
		return FirmwareBIOSPXE
	case ci.PXE:
		return FirmwareUEFIPXE
	default:
		return FirmwareOther
	}
}

// netboot reports whether the client asked for a network boot at all (PXE, UEFI HTTP Boot or
// iPXE). Everything else is an ordinary DHCP client.
func (ci clientInfo) netboot() bool { return ci.IPXE || ci.PXE || ci.HTTP }

// archName is a short, stable name for option 93, for logs and events ("" when absent).
func (ci clientInfo) archName() string {
	if !ci.HasArch {
		return ""
	}
	switch ci.Arch {
	case archBIOS:
		return "bios"
	case archEFIIA32:
		return "efi-ia32"
	case archEFIx64:
		return "efi-x64"
	case archEFIBC:
		return "efi-bc"
	case archEFIARM32:
		return "efi-arm32"
	case archEFIARM64:
		return "efi-arm64"
	case archEFIx86HTTP:
		return "efi-ia32-http"
	case archEFIx64HTTP:
		return "efi-x64-http"
	case archEFIARM64HTTP:
		return "efi-arm64-http"
	default:
		return fmt.Sprintf("arch-%d", ci.Arch)
	}
}

// parseUserClass decodes option 77. RFC 3004 makes it a list of length-prefixed strings, but
// iPXE (and most firmware) sends the bare string "iPXE". Both readings are tried: a value that
// decodes cleanly as RFC 3004 yields its entries, and the raw value is kept as an entry too
// unless it is exactly that encoding, so "iPXE" is found either way.
func parseUserClass(v []byte) []string {
	if len(v) == 0 {
		return nil
	}
	var out []string
	if entries, ok := parseRFC3004(v); ok {
		out = append(out, entries...)
	}
	raw := string(v)
	for _, e := range out {
		if e == raw {
			return out
		}
	}
	// "iPXE" as bytes is 0x69 'P' 'X' 'E': read as RFC 3004 it claims 105 bytes and fails, so the
	// raw reading is the one that matters for iPXE.
	return append(out, raw)
}

// parseRFC3004 splits v into RFC 3004 user-class entries; ok is false unless every byte is
// consumed by well-formed, non-empty entries.
func parseRFC3004(v []byte) ([]string, bool) {
	var out []string
	for len(v) > 0 {
		n := int(v[0])
		if n == 0 || n > len(v)-1 {
			return nil, false
		}
		out = append(out, string(v[1:1+n]))
		v = v[1+n:]
	}
	return out, len(out) > 0
}

// guidString formats option 97 as a UUID when it is type 0 followed by 16 bytes (RFC 4578
// §2.3). The bytes are printed in wire order: PXE clients disagree on the byte order of the
// first three fields (SMBIOS is little-endian, the PXE spec says network order), so the raw
// value is kept for echoing and this string is only for humans and lookups.
func guidString(g []byte) string {
	if len(g) != 17 || g[0] != guidTypeUUID {
		return ""
	}
	u := g[1:]
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// messageType reads option 53 without trusting its length.
func messageType(m *dhcpv4.DHCPv4) dhcpv4.MessageType {
	v := m.Options[dhcpv4.OptionDHCPMessageType.Code()]
	if len(v) != 1 {
		return dhcpv4.MessageTypeNone
	}
	return dhcpv4.MessageType(v[0])
}

// ipv4Option reads a 4-byte address option; anything else is absent.
func ipv4Option(v []byte) net.IP {
	if len(v) != net.IPv4len {
		return nil
	}
	return nonZeroIPv4(net.IP(v))
}

// nonZeroIPv4 returns ip as a fresh 4-byte slice, or nil for nil, 0.0.0.0 and non-IPv4 values.
func nonZeroIPv4(ip net.IP) net.IP {
	v4 := ip.To4()
	if v4 == nil || v4.Equal(net.IPv4zero) {
		return nil
	}
	return append(net.IP(nil), v4...)
}

// printable bounds and sanitises a string from the wire for logs and the lease table: the
// result is UTF-8 without control characters. PostgreSQL refuses text that is not UTF-8, so a
// host name sent in Latin-1 ("caf\xe9") or cut inside a character failed the lease write of
// an HA pair, and the client got no address.
func printable(s string) string {
	if len(s) > maxLoggedStringLen {
		n := maxLoggedStringLen
		// Cut at a character boundary (a few bytes back at most).
		for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
			n--
		}
		s = s[:n]
	}
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return s
	}
	return fmt.Sprintf("%q", s)
}
