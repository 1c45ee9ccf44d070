package simulate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// TFTP opcodes (RFC 1350) and option acknowledgement (RFC 2347).
const (
	tftpRRQ   = 1
	tftpDATA  = 3
	tftpACK   = 4
	tftpERROR = 5
	tftpOACK  = 6
)

// tftpBlksize is what UEFI PXE firmware asks for (EDK2: 1468 on an Ethernet MTU).
const tftpBlksize = 1468

// tftpFetch downloads file from server as PXE firmware does: first a read request with
// "tsize 0" (and blksize) that only learns the size from the OACK and is then cancelled
// with an ERROR (EDK2's and Intel's PXE ROMs do this to size their buffer), then the real
// read request with blksize, acknowledging every block. It returns the bytes received.
func tftpFetch(ns *nsThread, local netip.Addr, server netip.AddrPort, file string) (int64, error) {
	size, err := tftpProbe(ns, local, server, file)
	if err != nil {
		return 0, fmt.Errorf("tsize probe: %w", err)
	}
	n, err := tftpDownload(ns, local, server, file)
	if err != nil {
		return n, err
	}
	if n != size {
		return n, fmt.Errorf("received %d bytes, tsize said %d", n, size)
	}
	return n, nil
}

func rrq(file string, opts ...string) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint16(tftpRRQ))
	b.WriteString(file + "\x00octet\x00")
	for _, o := range opts {
		b.WriteString(o + "\x00")
	}
	return b.Bytes()
}

func tftpProbe(ns *nsThread, local netip.Addr, server netip.AddrPort, file string) (int64, error) {
	c, err := ns.listenUDP(netip.AddrPortFrom(local, 0))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	req := rrq(file, "tsize", "0", "blksize", strconv.Itoa(tftpBlksize))
	buf := make([]byte, 2048)
	for try := 0; try < 4; try++ {
		if _, err := c.WriteToUDPAddrPort(req, server); err != nil {
			return 0, err
		}
		c.SetReadDeadline(time.Now().Add(time.Duration(1<<try) * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if isTimeout(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		p := buf[:n]
		if len(p) < 2 {
			return 0, errors.New("short packet")
		}
		switch binary.BigEndian.Uint16(p) {
		case tftpOACK:
			opts := parseOACK(p[2:])
			size, err := strconv.ParseInt(opts["tsize"], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("OACK without tsize: %q", opts)
			}
			// Cancel the transfer: ERROR 8, "transfer cancelled" (RFC 2347).
			c.WriteToUDPAddrPort(append([]byte{0, tftpERROR, 0, 8}, "tsize probe\x00"...), from)
			return size, nil
		case tftpERROR:
			return 0, fmt.Errorf("server error: %s", tftpErrMsg(p))
		default:
			return 0, fmt.Errorf("unexpected opcode %d", binary.BigEndian.Uint16(p))
		}
	}
	return 0, errors.New("no answer after 4 tries")
}

func tftpDownload(ns *nsThread, local netip.Addr, server netip.AddrPort, file string) (int64, error) {
	c, err := ns.listenUDP(netip.AddrPortFrom(local, 0))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	req := rrq(file, "blksize", strconv.Itoa(tftpBlksize))
	buf := make([]byte, 65536)
	blksize := 512
	var peer netip.AddrPort
	var got int64
	var block uint16 // the last block received in order
	last := req      // what to retransmit on a timeout
	dst := server
	for tries := 0; tries < 6; {
		if _, err := c.WriteToUDPAddrPort(last, dst); err != nil {
			return got, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if isTimeout(err) {
			tries++
			continue
		}
		if err != nil {
			return got, err
		}
		if peer.IsValid() && from != peer {
			continue // not our transfer's port
		}
		p := buf[:n]
		if len(p) < 4 {
			return got, errors.New("short packet")
		}
		switch binary.BigEndian.Uint16(p) {
		case tftpOACK:
			if peer.IsValid() {
				continue
			}
			peer, dst = from, from
			if v, err := strconv.Atoi(parseOACK(p[2:])["blksize"]); err == nil {
				blksize = v
			}
			last = []byte{0, tftpACK, 0, 0}
			tries = 0
		case tftpDATA:
			if !peer.IsValid() {
				peer, dst = from, from // server ignored the options
			}
			nb := binary.BigEndian.Uint16(p[2:4])
			if nb == block+1 {
				block = nb
				got += int64(len(p) - 4)
				last = []byte{0, tftpACK, byte(nb >> 8), byte(nb)}
				tries = 0
				if len(p)-4 < blksize {
					c.WriteToUDPAddrPort(last, dst)
					return got, nil
				}
			}
			// A duplicate: re-ACK it (last), as RFC 1350 clients do.
		case tftpERROR:
			return got, fmt.Errorf("server error: %s", tftpErrMsg(p))
		}
	}
	return got, fmt.Errorf("transfer stalled after %d bytes", got)
}

func parseOACK(b []byte) map[string]string {
	parts := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	out := map[string]string{}
	for i := 0; i+1 < len(parts); i += 2 {
		out[string(bytes.ToLower(parts[i]))] = string(parts[i+1])
	}
	return out
}

func tftpErrMsg(p []byte) string {
	if len(p) < 4 {
		return "(short)"
	}
	return fmt.Sprintf("code %d %q", binary.BigEndian.Uint16(p[2:4]), bytes.TrimRight(p[4:], "\x00"))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
