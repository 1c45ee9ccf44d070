package simulate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"
)

// wire is the machines' shared Ethernet port: one AF_PACKET socket on the client end of the
// veth. DHCP leaves it as firmware sends it — an Ethernet broadcast from the machine's own MAC,
// IPv4 from 0.0.0.0:68 to 255.255.255.255:67 — and every reply on the wire is read here and
// handed to the machine waiting for that transaction ID.
type wire struct {
	f       *os.File
	ifindex int
	mu      sync.Mutex
	waiting map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	drops   int // replies nobody waited for (late retransmissions)
	tap     func(*dhcpv4.DHCPv4)
}

// newWire opens the machines' port on ifName. tap, if not nil, sees every DHCP reply on the
// wire, whoever it is for, before it is handed on (from the one reading goroutine).
func newWire(ns *nsThread, ifName string, tap func(*dhcpv4.DHCPv4)) (*wire, error) {
	idx, err := ns.interfaceIndex(ifName)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifName, err)
	}
	fd, err := ns.socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: idx}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind packet socket: %w", err)
	}
	// Only DHCP replies (IPv4, UDP, not a later fragment, to port 68): without this filter the
	// socket also gets a copy of every frame of the machines' TFTP and HTTP downloads, and
	// under a thousand machines' traffic its buffer overflowed and lost OFFERs and ACKs — a
	// failure of the simulator, not of the server. The bind above already let some frames in:
	// read filters again.
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 12},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.ETH_P_IP, Jt: 0, Jf: 8},
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 23},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.IPPROTO_UDP, Jt: 0, Jf: 6},
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 20},
		{Code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, K: 0x1fff, Jt: 4, Jf: 0},
		{Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: 14},
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_IND, K: 16},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 68, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffff},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("packet socket filter: %w", err)
	}
	// A thousand machines starting in the same second: room for a burst of replies (FORCE:
	// above net.core.rmem_max; we are root).
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	unix.SetNonblock(fd, true)
	w := &wire{f: os.NewFile(uintptr(fd), "packet"), ifindex: idx, waiting: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}, tap: tap}
	go w.read()
	return w, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (w *wire) Close() error { return w.f.Close() }

// read dispatches DHCP replies (UDP to port 68) by transaction ID until the socket closes.
func (w *wire) read() {
	buf := make([]byte, 65536)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		payload, ok := udpPayload(buf[:n], 68)
		if !ok {
			continue
		}
		m, err := dhcpv4.FromBytes(payload)
		if err != nil || m.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		if w.tap != nil {
			w.tap(m)
		}
		w.mu.Lock()
		ch := w.waiting[m.TransactionID]
		if ch == nil {
			w.drops++
		}
		w.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

// udpPayload returns the UDP payload of an Ethernet frame carrying IPv4/UDP to port.
func udpPayload(frame []byte, port uint16) ([]byte, bool) {
	if len(frame) < 14+20+8 || binary.BigEndian.Uint16(frame[12:14]) != unix.ETH_P_IP {
		return nil, false
	}
	ip := frame[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl+8 || ip[9] != unix.IPPROTO_UDP {
		return nil, false
	}
	udp := ip[ihl:]
	if binary.BigEndian.Uint16(udp[2:4]) != port {
		return nil, false
	}
	l := int(binary.BigEndian.Uint16(udp[4:6]))
	if l < 8 || l > len(udp) {
		return nil, false
	}
	return udp[8:l], true
}

// send broadcasts a DHCP packet from mac (from 0.0.0.0:68 unless src is set) to dst:dport.
func (w *wire) send(mac net.HardwareAddr, src, dst netip.Addr, dport uint16, payload []byte) error {
	if !src.IsValid() {
		src = netip.IPv4Unspecified()
	}
	frame := make([]byte, 14+20+8+len(payload))
	copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:12], mac)
	binary.BigEndian.PutUint16(frame[12:14], unix.ETH_P_IP)
	ip := frame[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+8+len(payload)))
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:12], checksum(ip))
	udp := frame[34:42]
	binary.BigEndian.PutUint16(udp[0:2], 68)
	binary.BigEndian.PutUint16(udp[2:4], dport)
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(payload)))
	// UDP checksum 0: none, allowed over IPv4 (PXE ROMs send it so too).
	copy(frame[42:], payload)
	to := &unix.SockaddrLinklayer{Ifindex: w.ifindex, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	var serr error
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	err = rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), frame, 0, to)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// exchange sends m and waits for a reply of one of the wanted types, retransmitting as PXE
// firmware does (PXE 2.1 §2.2: timeouts of 4, 8, 16 and 32 s, a minute in all). It returns
// the reply and how many retransmissions it took. With from set, only replies of that server
// (option 54) count — a client that picks one of several OFFERs; otherwise the first does, as
// firmware takes it.
func (w *wire) exchange(ctx context.Context, mac net.HardwareAddr, src, dst netip.Addr, dport uint16, from netip.Addr, m *dhcpv4.DHCPv4, want ...dhcpv4.MessageType) (*dhcpv4.DHCPv4, int, error) {
	ch := make(chan *dhcpv4.DHCPv4, 4)
	w.mu.Lock()
	w.waiting[m.TransactionID] = ch
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.waiting, m.TransactionID)
		w.mu.Unlock()
	}()
	for try, wait := range []time.Duration{4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second} {
		if err := w.send(mac, src, dst, dport, m.ToBytes()); err != nil {
			return nil, try, err
		}
		timer := time.NewTimer(wait)
	loop:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, try, ctx.Err()
			case <-timer.C:
				break loop
			case r := <-ch:
				if from.IsValid() && replyServer(r) != from {
					continue
				}
				for _, t := range want {
					if r.MessageType() == t {
						timer.Stop()
						return r, try, nil
					}
				}
				if r.MessageType() == dhcpv4.MessageTypeNak {
					timer.Stop()
					return nil, try, fmt.Errorf("NAK: %s", r.Message())
				}
			}
		}
	}
	return nil, 3, errors.New("no answer after 4 tries (60 s)")
}

// replyServer is the server identifier (option 54) of a reply.
func replyServer(r *dhcpv4.DHCPv4) netip.Addr {
	a, _ := netip.AddrFromSlice(r.ServerIdentifier().To4())
	return a
}

// ackLedger records every DHCPACK seen on the wire, for the run's check that no address was
// acknowledged to two clients (by one server or by two of an HA pair).
type ackLedger struct {
	mu       sync.Mutex
	holders  map[netip.Addr]map[string]bool // address → MACs it was ACKed to
	byServer map[netip.Addr]int
}

func newAckLedger() *ackLedger {
	return &ackLedger{holders: map[netip.Addr]map[string]bool{}, byServer: map[netip.Addr]int{}}
}

// record is a wire tap.
func (a *ackLedger) record(r *dhcpv4.DHCPv4) {
	if r.MessageType() != dhcpv4.MessageTypeAck {
		return
	}
	ip, ok := netip.AddrFromSlice(r.YourIPAddr.To4())
	if !ok || ip.IsUnspecified() {
		return // an ACK to an INFORM carries no address
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.holders[ip] == nil {
		a.holders[ip] = map[string]bool{}
	}
	a.holders[ip][r.ClientHWAddr.String()] = true
	a.byServer[replyServer(r)]++
}

// summary is the ACKs per server (by address) and how many addresses were ACKed to more than
// one client.
func (a *ackLedger) summary() (map[string]int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	by := map[string]int{}
	for s, n := range a.byServer {
		by[s.String()] = n
	}
	return by, len(a.conflictsLocked())
}

// conflicts lists every address ACKed to more than one client, with the clients.
func (a *ackLedger) conflicts() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conflictsLocked()
}

func (a *ackLedger) conflictsLocked() []string {
	var out []string
	for ip, macs := range a.holders {
		if len(macs) > 1 {
			out = append(out, fmt.Sprintf("%s ACKed to %d clients: %v", ip, len(macs), slices.Sorted(maps.Keys(macs))))
		}
	}
	slices.Sort(out)
	return out
}

// dhcpOptions are the options a firmware kind sends: 93 (architecture), 60 (vendor class),
// 97 (machine UUID), 77 (user class, iPXE only) and, from iPXE, 175.
func dhcpOptions(fw Firmware, stage stage, uuid [16]byte) []dhcpv4.Modifier {
	arch, vendor := firmwareArch(fw)
	mods := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendor)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, uuid[:]...))),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 16})),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1464)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
			dhcpv4.OptionVendorSpecificInformation, dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName,
			dhcpv4.OptionClassIdentifier),
	}
	if stage == stageIPXE || fw == FirmwareIPXE {
		// iPXE: user class "iPXE" (RFC 3004 encoding) and its feature list, option 175
		// (here: HTTP, DNS, TFTP, bzImage, EFI, menu — what ipxe.efi reports).
		mods = append(mods,
			dhcpv4.WithOption(dhcpv4.OptUserClass("iPXE")),
			dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(175), []byte{
				0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e, 0x13, 0x01, 0x01, 0x11, 0x01, 0x01, 0x17, 0x01, 0x01,
				0x15, 0x01, 0x01, 0x18, 0x01, 0x01, 0x10, 0x01, 0x02, 0x27, 0x01, 0x01})))
	}
	return mods
}

// firmwareArch is option 93 and the vendor class (60) of the firmware kind.
func firmwareArch(fw Firmware) (iana.Arch, string) {
	switch fw {
	case FirmwareBIOSPXE:
		return iana.INTEL_X86PC, "PXEClient:Arch:00000:UNDI:002001"
	case FirmwareUEFIHTTP:
		return iana.Arch(16), "HTTPClient:Arch:00016:UNDI:003001"
	default: // UEFI PXE and iPXE on UEFI
		return iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"
	}
}
