package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// respondFull answers port 67 in full mode: an authoritative server for the pool (RFC 2131),
// with the boot options of the decision table added for network-boot clients.
func (s *Server) respondFull(ctx context.Context, ci clientInfo, m *dhcpv4.DHCPv4, peer *net.UDPAddr) response {
	if reason := s.notOurNetwork(ci); reason != "" {
		return s.ignore(ci, portServer, reason)
	}
	if len(ci.MAC) == 0 {
		// Leases are keyed by chaddr; iPXE on links with long addresses (InfiniBand) sends hlen 0.
		return s.ignore(ci, portServer, "no client hardware address")
	}
	switch ci.MsgType {
	case dhcpv4.MessageTypeDiscover:
		return s.offer(ctx, ci, m, peer)
	case dhcpv4.MessageTypeRequest:
		return s.request(ctx, ci, m, peer)
	case dhcpv4.MessageTypeDecline:
		return s.decline(ctx, ci)
	case dhcpv4.MessageTypeRelease:
		return s.release(ctx, ci)
	case dhcpv4.MessageTypeInform:
		return s.inform(ci, m, peer)
	default:
		return s.ignore(ci, portServer, "unexpected message type "+ci.MsgType.String())
	}
}

// notOurNetwork says why a client is not on the pool's network, or "".
func (s *Server) notOurNetwork(ci clientInfo) string {
	if ci.Relay != nil {
		if !s.subnet.Contains(ci.Relay) {
			return fmt.Sprintf("relay %s is outside the pool's network %s", ci.Relay, s.subnet)
		}
		return ""
	}
	if !s.subnet.Contains(s.cfg.ServerIP) {
		return fmt.Sprintf("the pool's network %s is not on %s; only relayed clients are served", s.subnet, s.cfg.Interface)
	}
	return ""
}

// bootFor is the boot part of a full-mode reply: the decision table for network-boot clients,
// nothing for the others (they get a plain lease).
func (s *Server) bootFor(ci clientInfo) bootPlan {
	if !ci.netboot() {
		return bootPlan{}
	}
	return decideBoot(ci, s.bootConfigFor(ci, s.boot))
}

func (s *Server) leaseOptions(ip net.IP, mac net.HardwareAddr) leaseOptions {
	var answer string
	if s.cfg.AnswerURL != nil && mac != nil {
		answer = s.cfg.AnswerURL(mac)
	}
	return leaseOptions{
		AnswerURL: answer,
		IP:        ip,
		Netmask:   s.cfg.Netmask,
		Router:    s.cfg.Router,
		DNS:       s.cfg.DNS,
		Domain:    s.cfg.DomainName,
		LeaseTime: s.cfg.LeaseTime,
	}
}

// offer reserves an address before offering it: a mass install is many DISCOVERs in the same
// second, and two clients offered the same address would both REQUEST it — the loser gets a
// NAK that neither OVMF HTTP Boot nor 2019 iPXE recovers from (dnsmasq 2.90 behaves so).
func (s *Server) offer(ctx context.Context, ci clientInfo, m *dhcpv4.DHCPv4, peer *net.UDPAddr) response {
	now := s.now()
	ip, err := s.leases.Reserve(ctx, LeaseRequest{
		Pool: s.pool, MAC: ci.MAC, IP: ci.RequestedIP, Hostname: printable(ci.Hostname),
		Now: now, Until: now.Add(offerHold),
	})
	if err != nil {
		if errors.Is(err, ErrPoolExhausted) {
			s.log.Warn("dhcp pool exhausted", "mac", ci.MAC.String(), "pool", fmt.Sprintf("%s-%s", s.pool.Start, s.pool.End))
		}
		return s.ignore(ci, portServer, "no address to offer: "+err.Error())
	}
	plan := s.bootFor(ci)
	res := s.reply(ci, m, kindOffer, portServer, peer, plan, s.leaseOptions(ip, ci.MAC))
	res.ev.Reason = plan.Reason
	return res
}

// request handles the four kinds of DHCPREQUEST of RFC 2131 §4.3.2.
func (s *Server) request(ctx context.Context, ci clientInfo, m *dhcpv4.DHCPv4, peer *net.UDPAddr) response {
	var ip net.IP
	switch {
	case ci.ServerID != nil: // SELECTING: answers an OFFER
		if !ci.ServerID.Equal(s.cfg.ServerIP.To4()) {
			// Our reservation for it simply expires (offer hold).
			return s.ignore(ci, portServer, fmt.Sprintf("client selected server %s", ci.ServerID))
		}
		ip = ci.RequestedIP
		if ip == nil {
			ip = ci.ClientIP // RFC says option 50 MUST be there; be lenient with firmware
		}
		if ip == nil {
			return s.ignore(ci, portServer, "REQUEST to us without requested address")
		}
	case ci.RequestedIP != nil: // INIT-REBOOT: a client verifies the address it remembers
		ip = ci.RequestedIP
		if !s.subnet.Contains(ip) {
			return s.nak(ci, m, peer, ip, "requested address is on another network")
		}
	case ci.ClientIP != nil: // RENEWING (unicast) or REBINDING (broadcast)
		ip = ci.ClientIP
		if !s.subnet.Contains(ip) {
			return s.ignore(ci, portServer, "renewal of an address of another network")
		}
	default:
		return s.ignore(ci, portServer, "REQUEST without server id, requested address or ciaddr")
	}

	now := s.now()
	err := s.leases.Bind(ctx, LeaseRequest{
		Pool: s.pool, MAC: ci.MAC, IP: ip, Hostname: printable(ci.Hostname),
		Now: now, Until: now.Add(s.cfg.LeaseTime),
	})
	switch {
	case errors.Is(err, ErrNotInPool):
		return s.nak(ci, m, peer, ip, "address not in the pool")
	case errors.Is(err, ErrAddressTaken):
		return s.nak(ci, m, peer, ip, "address held by another client")
	case err != nil:
		return s.ignore(ci, portServer, "lease store: "+err.Error())
	}
	plan := s.bootFor(ci)
	res := s.reply(ci, m, kindAck, portServer, peer, plan, s.leaseOptions(ip, ci.MAC))
	res.ev.Reason = plan.Reason
	return res
}

func (s *Server) nak(ci clientInfo, m *dhcpv4.DHCPv4, peer *net.UDPAddr, ip net.IP, reason string) response {
	res := s.reply(ci, m, kindNak, portServer, peer, bootPlan{}, leaseOptions{})
	res.ev.IP = ip
	res.ev.Reason = reason
	return res
}

// decline quarantines an address the client found in use (it ARPed and got an answer).
func (s *Server) decline(ctx context.Context, ci clientInfo) response {
	if ci.ServerID != nil && !ci.ServerID.Equal(s.cfg.ServerIP.To4()) {
		return s.ignore(ci, portServer, "DECLINE for another server")
	}
	if ci.RequestedIP == nil {
		return s.ignore(ci, portServer, "DECLINE without the declined address (option 50)")
	}
	now := s.now()
	err := s.leases.Free(ctx, LeaseRequest{MAC: ci.MAC, IP: ci.RequestedIP, Now: now, Until: now.Add(declineHold)})
	if err != nil {
		return s.ignore(ci, portServer, "DECLINE: "+err.Error())
	}
	ev := s.event(ci, EventDecline, portServer)
	ev.IP = ci.RequestedIP
	ev.Reason = fmt.Sprintf("address in use by another host; quarantined for %s", declineHold)
	return response{ev: ev}
}

func (s *Server) release(ctx context.Context, ci clientInfo) response {
	if ci.ClientIP == nil {
		return s.ignore(ci, portServer, "RELEASE without ciaddr")
	}
	now := s.now()
	if err := s.leases.Free(ctx, LeaseRequest{MAC: ci.MAC, IP: ci.ClientIP, Now: now, Until: now}); err != nil {
		return s.ignore(ci, portServer, "RELEASE: "+err.Error())
	}
	ev := s.event(ci, EventRelease, portServer)
	ev.IP = ci.ClientIP
	return response{ev: ev}
}

// inform answers a client that configured its address itself and wants the rest (RFC 2131
// §3.4): no lease, no yiaddr, sent to ciaddr.
func (s *Server) inform(ci clientInfo, m *dhcpv4.DHCPv4, peer *net.UDPAddr) response {
	if ci.ClientIP == nil {
		return s.ignore(ci, portServer, "INFORM without ciaddr")
	}
	lease := s.leaseOptions(nil, ci.MAC)
	lease.LeaseTime = 0
	return s.reply(ci, m, kindInformAck, portServer, peer, s.bootFor(ci), lease)
}
