package dhcp

import (
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Well-known ports.
const (
	portServer = 67   // BOOTP/DHCP server
	portClient = 68   // BOOTP/DHCP client
	portPXE    = 4011 // PXE boot server / ProxyDHCP REQUESTs
)

// replyKind is the kind of packet sent back.
type replyKind int

const (
	kindOffer      replyKind = iota // full mode: DHCPOFFER with an address
	kindAck                         // full mode: DHCPACK with a lease
	kindInformAck                   // full mode: DHCPACK to DHCPINFORM (configuration, no lease)
	kindNak                         // full mode: DHCPNAK
	kindProxyOffer                  // ProxyDHCP OFFER: boot options only, yiaddr 0.0.0.0
	kindProxyAck                    // ProxyDHCP ACK (port 4011, or a REQUEST addressed to the proxy)
)

// event returns the Event.Kind of a reply.
func (k replyKind) event() EventKind {
	switch k {
	case kindOffer:
		return EventOffer
	case kindAck:
		return EventAck
	case kindInformAck:
		return EventInform
	case kindNak:
		return EventNak
	case kindProxyOffer:
		return EventProxyOffer
	default:
		return EventProxyAck
	}
}

func (k replyKind) messageType() dhcpv4.MessageType {
	switch k {
	case kindOffer, kindProxyOffer:
		return dhcpv4.MessageTypeOffer
	case kindNak:
		return dhcpv4.MessageTypeNak
	default:
		return dhcpv4.MessageTypeAck
	}
}

// leaseOptions is the address part of a full-mode reply.
type leaseOptions struct {
	IP        net.IP // yiaddr; nil for INFORM replies and NAKs
	Netmask   net.IPMask
	Router    net.IP
	DNS       []net.IP
	Domain    string
	LeaseTime time.Duration // 0: no lease options (INFORM)
	// AnswerURL is the Proxmox VE answer URL (option 250), "" for none.
	AnswerURL string
}

// buildReply builds the reply of kind to req. serverID goes into option 54; plan adds the boot
// options when plan.Boot; lease adds address and configuration (ignored for proxy replies and
// NAKs, which never carry address or lease options).
//
// Quirk (dhcpv4 marshalling): options are written sorted by code, option 82 last; no PXE
// firmware seen here cares about the order.
func buildReply(req *dhcpv4.DHCPv4, kind replyKind, serverID net.IP, plan bootPlan, lease leaseOptions) *dhcpv4.DHCPv4 {
	r := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: ipOrZero(req.GatewayIPAddr),
		ClientHWAddr:  append(net.HardwareAddr(nil), req.ClientHWAddr...),
		Options:       make(dhcpv4.Options),
	}
	if r.HWType == 0 {
		r.HWType = iana.HWTypeEthernet
	}
	r.UpdateOption(dhcpv4.OptMessageType(kind.messageType()))
	r.UpdateOption(dhcpv4.OptServerIdentifier(serverID.To4()))
	// RFC 6842: echo the client identifier; RFC 3046: echo relay agent information.
	for _, code := range []uint8{optClientID, optRelayAgentInfo} {
		if v, ok := req.Options[code]; ok {
			r.Options[code] = append([]byte{}, v...)
		}
	}

	if kind == kindNak {
		if req.GatewayIPAddr != nil && !req.GatewayIPAddr.Equal(net.IPv4zero) {
			// RFC 2131 §4.3.2: a relayed NAK has the broadcast bit set so that the relay
			// broadcasts it (the client's address is what is being refused).
			r.SetBroadcast()
		}
		return r
	}

	switch kind {
	case kindAck, kindInformAck, kindProxyAck:
		// RFC 2131 table 3: ACKs keep the client's ciaddr.
		r.ClientIPAddr = ipOrZero(req.ClientIPAddr)
	}

	if kind == kindOffer || kind == kindAck || kind == kindInformAck {
		addLeaseOptions(r, kind, lease)
	}
	if plan.Boot {
		addBootOptions(r, plan)
	}
	return r
}

func addLeaseOptions(r *dhcpv4.DHCPv4, kind replyKind, lease leaseOptions) {
	if kind != kindInformAck && lease.IP != nil {
		r.YourIPAddr = lease.IP.To4()
	}
	if len(lease.Netmask) == net.IPv4len {
		r.UpdateOption(dhcpv4.OptSubnetMask(lease.Netmask))
	}
	if lease.Router != nil {
		r.UpdateOption(dhcpv4.OptRouter(lease.Router.To4()))
	}
	if len(lease.DNS) > 0 {
		dns := make([]net.IP, 0, len(lease.DNS))
		for _, d := range lease.DNS {
			dns = append(dns, d.To4())
		}
		r.UpdateOption(dhcpv4.OptDNS(dns...))
	}
	if lease.Domain != "" {
		r.UpdateOption(dhcpv4.OptDomainName(lease.Domain))
	}
	if lease.AnswerURL != "" {
		// Sent whether or not the client asked for it: the Proxmox installer's dhclient.conf
		// requests it, and a client that does not know option 250 ignores it.
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optProxmoxAnswerURL), []byte(lease.AnswerURL)))
	}
	if kind != kindInformAck && lease.LeaseTime > 0 {
		// RFC 2131 §4.4.5 defaults: renew at 1/2, rebind at 7/8 of the lease.
		r.UpdateOption(dhcpv4.OptIPAddressLeaseTime(lease.LeaseTime))
		r.UpdateOption(dhcpv4.OptRenewTimeValue(lease.LeaseTime / 2))
		r.UpdateOption(dhcpv4.OptRebindingTimeValue(lease.LeaseTime * 7 / 8))
	}
}

func addBootOptions(r *dhcpv4.DHCPv4, plan bootPlan) {
	if plan.NextServer != nil {
		r.ServerIPAddr = plan.NextServer.To4()
		r.UpdateOption(dhcpv4.OptTFTPServerName(plan.NextServer.String()))
	}
	if plan.BootFile != "" {
		r.UpdateOption(dhcpv4.OptBootFileName(plan.BootFile))
		// The BOOTP file field holds 127 characters plus NUL. Old PXE ROMs read only the field,
		// but they only get short TFTP names; a longer URL (iPXE, HTTP Boot, both of which read
		// option 67) must not be truncated into a wrong one, so it goes in the option alone.
		if len(plan.BootFile) <= 127 {
			r.BootFileName = plan.BootFile
		}
	}
	if plan.VendorClass != "" {
		r.UpdateOption(dhcpv4.OptClassIdentifier(plan.VendorClass))
	}
	if plan.DiscoveryCtl {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryControl))
	}
	if plan.IPXENoProxyWait {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optIPXEEncap), ipxeNoProxyWait))
	}
	if plan.GUID != nil {
		r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, plan.GUID))
	}
}

// replyDestination is where a reply to req goes. localPort is the port req arrived on; peer is
// its UDP source (nil or 0.0.0.0 when the client has no address).
//
//   - port 4011: back to the sender, address and port (iPXE and EDK2 send ProxyDHCP REQUESTs
//     there from their configured address and wait on that socket);
//   - relayed (giaddr set): to the relay's server port, giaddr:67;
//   - NAK: limited broadcast (RFC 2131 §4.3.2: the client's address is in doubt);
//   - client without an address, or asking for broadcast: 255.255.255.255:68;
//   - otherwise unicast to ciaddr:68 (renewals, INFORM).
//
// A client without an address that did not ask for broadcast would strictly get a unicast to
// yiaddr at its chaddr; that needs a raw socket to bypass ARP, and a broadcast reaches it too.
func replyDestination(req *dhcpv4.DHCPv4, kind replyKind, localPort int, peer *net.UDPAddr) *net.UDPAddr {
	bcast := &net.UDPAddr{IP: net.IPv4bcast.To4(), Port: portClient}
	if localPort == portPXE && peer != nil {
		ip := nonZeroIPv4(peer.IP)
		if ip == nil {
			ip = net.IPv4bcast.To4()
		}
		port := peer.Port
		if port == 0 {
			port = portClient
		}
		return &net.UDPAddr{IP: ip, Port: port}
	}
	if giaddr := nonZeroIPv4(req.GatewayIPAddr); giaddr != nil {
		return &net.UDPAddr{IP: giaddr, Port: portServer}
	}
	if kind == kindNak {
		return bcast
	}
	ciaddr := nonZeroIPv4(req.ClientIPAddr)
	if ciaddr == nil || req.IsBroadcast() {
		return bcast
	}
	return &net.UDPAddr{IP: ciaddr, Port: portClient}
}

func ipOrZero(ip net.IP) net.IP {
	if v4 := nonZeroIPv4(ip); v4 != nil {
		return v4
	}
	return net.IPv4zero.To4()
}
