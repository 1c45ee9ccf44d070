package dhcp

import (
	"fmt"
	"net"

	"github.com/fleetboot/fleetboot/internal/quirk"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// respondProxy answers port 67 in proxy mode: ProxyDHCP offers to network-boot clients, never
// an address.
func (s *Server) respondProxy(ci clientInfo, m *dhcpv4.DHCPv4, peer *net.UDPAddr) response {
	switch ci.MsgType {
	case dhcpv4.MessageTypeDiscover:
		if !ci.netboot() {
			return s.ignore(ci, portServer, "not a network boot client")
		}
		plan := decideBoot(ci, s.bootConfigFor(ci, s.boot))
		if !plan.Boot {
			return s.ignore(ci, portServer, plan.Reason)
		}
		return s.reply(ci, m, kindProxyOffer, portServer, peer, plan, leaseOptions{})

	case dhcpv4.MessageTypeRequest:
		// A REQUEST on port 67 selects, by option 54, the server whose OFFER carried the address:
		// that is the site's DHCP server, never the proxy, so these are none of our business.
		// The exception is a REQUEST naming us in option 54 (firmware that selected the ProxyDHCP
		// offer by mistake): it gets the boot options in an ACK without address, as on port
		// 4011, and must still complete its lease with the real server. Nothing else is
		// answered: a proxy that ACKs other servers' REQUESTs breaks the LAN.
		if ci.ServerID == nil || !ci.ServerID.Equal(s.cfg.ServerIP.To4()) {
			return s.ignore(ci, portServer, "request for another DHCP server")
		}
		if ci.RequestedIP != nil && !ci.RequestedIP.IsUnspecified() {
			// It asks for an address in our name, and the proxy never offered one: the
			// site's DHCP server uses fleetboot's own address as its server identifier (it
			// runs on this host). An address-less ACK from us would be taken by EDK2 as its
			// lease and DECLINEd (seen in QEMU with dnsmasq on the same host); staying
			// silent lets the site server's ACK through.
			return s.quirk(ci, portServer, quirk.SharedServerID, fmt.Sprintf(
				"REQUEST for %s names fleetboot's address %s as its DHCP server: not answered on port 67", ci.RequestedIP, s.cfg.ServerIP))
		}
		if !ci.netboot() {
			return s.ignore(ci, portServer, "request to the proxy from a client that is not a network boot client")
		}
		plan := decideBoot(ci, s.bootConfigFor(ci, s.boot))
		if !plan.Boot {
			return s.ignore(ci, portServer, plan.Reason)
		}
		return s.reply(ci, m, kindProxyAck, portServer, peer, plan, leaseOptions{})

	case dhcpv4.MessageTypeDecline:
		if ci.ServerID != nil && ci.ServerID.Equal(s.cfg.ServerIP.To4()) {
			// The symptom itself: a client DECLINEs, to our address, a lease the proxy never
			// gave (it took a proxy ACK for one).
			return s.quirk(ci, portServer, quirk.SharedServerID, fmt.Sprintf(
				"DECLINE of %s sent to fleetboot's address %s, which the site DHCP server also uses", ci.RequestedIP, s.cfg.ServerIP))
		}
		return s.ignore(ci, portServer, "DECLINE for another DHCP server")

	default:
		return s.ignore(ci, portServer, "proxy mode answers DISCOVER only on port 67")
	}
}

// respondPXEPort answers port 4011 (both modes). A client that already has its address sends a
// ProxyDHCP REQUEST (or INFORM) here: iPXE does when the ProxyDHCP offer it kept lacks
// next-server and filename; EDK2 does for PXE boot-server discovery when the offer has no
// option 43. The ACK carries the same boot options as a ProxyDHCP offer and goes back to the
// sender's address and port.
func (s *Server) respondPXEPort(ci clientInfo, m *dhcpv4.DHCPv4, peer *net.UDPAddr) response {
	if ci.MsgType != dhcpv4.MessageTypeRequest && ci.MsgType != dhcpv4.MessageTypeInform {
		return s.ignore(ci, portPXE, "port 4011 answers REQUEST and INFORM only")
	}
	if ci.ServerID != nil && !ci.ServerID.Equal(s.cfg.ServerIP.To4()) {
		return s.ignore(ci, portPXE, "request for another boot server")
	}
	if !ci.netboot() {
		return s.ignore(ci, portPXE, "not a network boot client")
	}
	plan := decideBoot(ci, s.bootConfigFor(ci, s.boot4011))
	if !plan.Boot {
		return s.ignore(ci, portPXE, plan.Reason)
	}
	return s.reply(ci, m, kindProxyAck, portPXE, peer, plan, leaseOptions{})
}
