package simulate

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// The simulated LAN: the server namespace holds serverIP on its end of a veth pair, the
// client namespace the other end with clientIP (the simulator's own address, for API calls)
// and, through a local route, every address of machineNet: a machine binds its sockets to
// the address DHCP gave it, and the client namespace answers ARP for all of them, so the
// server sees each machine at its own address as on a real LAN.
var (
	serverIP   = netip.MustParseAddr("10.213.0.1")
	clientIP   = netip.MustParseAddr("10.213.0.2")
	lanPrefix  = 16
	machineNet = netip.MustParsePrefix("10.213.16.0/20")
	// poolStart..poolEnd is full mode's pool, inside machineNet (4000 addresses).
	poolStart = netip.MustParseAddr("10.213.16.10")
	poolEnd   = netip.MustParseAddr("10.213.31.250")
)

// netPair is the namespace pair one run creates, with unique names, and deletes at the end.
type netPair struct {
	server, client     string // namespace names
	serverIf, clientIf string // veth ends
}

// newNetPair creates the namespaces and the veth pair between them. On error nothing is left.
func newNetPair() (_ *netPair, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("simulate needs root: it creates a pair of network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("simulate needs iproute2's ip (apt-get install iproute2)")
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(rnd[:])
	p := &netPair{
		server: fmt.Sprintf("fbsim-%d-%s-srv", os.Getpid(), id), client: fmt.Sprintf("fbsim-%d-%s-cli", os.Getpid(), id),
		serverIf: "fbss" + id, clientIf: "fbsc" + id, // interface names: at most 15 bytes
	}
	if err := ipCmd("netns", "add", p.server); err != nil {
		return nil, err
	}
	if err := ipCmd("netns", "add", p.client); err != nil {
		ipCmd("netns", "del", p.server)
		return nil, err
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	steps := [][]string{
		{"link", "add", p.serverIf, "netns", p.server, "type", "veth", "peer", "name", p.clientIf, "netns", p.client},
		{"-n", p.server, "link", "set", "lo", "up"},
		{"-n", p.client, "link", "set", "lo", "up"},
		{"-n", p.server, "addr", "add", fmt.Sprintf("%s/%d", serverIP, lanPrefix), "dev", p.serverIf},
		{"-n", p.client, "addr", "add", fmt.Sprintf("%s/%d", clientIP, lanPrefix), "dev", p.clientIf},
		{"-n", p.server, "link", "set", p.serverIf, "up"},
		{"-n", p.client, "link", "set", p.clientIf, "up"},
		// Every machine address is local in the client namespace (bind and ARP work for all).
		{"-n", p.client, "route", "add", "local", machineNet.String(), "dev", "lo"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return nil, err
		}
	}
	// A thousand machines are a thousand neighbours of the server: the default table limit
	// (gc_thresh3 1024) would drop replies to the last ones. Per namespace, best effort.
	for k, v := range map[string]string{"gc_thresh1": "4096", "gc_thresh2": "8192", "gc_thresh3": "16384"} {
		exec.Command("ip", "netns", "exec", p.server, "sysctl", "-qw", "net.ipv4.neigh.default."+k+"="+v).Run()
	}
	return p, nil
}

// Close deletes both namespaces (their veth ends go with them).
func (p *netPair) Close() error {
	var errs []error
	for _, ns := range []string{p.client, p.server} {
		if err := ipCmd("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nsThread runs functions on one OS thread that has entered the client namespace. A socket
// belongs to the namespace it was created in, whichever thread uses it later: only socket(2)
// (and interface lookups) run here.
type nsThread struct {
	calls chan func()
	done  chan struct{}
}

func enterNS(name string) (*nsThread, error) {
	t := &nsThread{calls: make(chan func()), done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		// The thread never leaves the namespace: it is not unlocked, so it exits with the
		// goroutine instead of running other goroutines in the wrong namespace.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + name)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		errc <- err
		if err != nil {
			return
		}
		for {
			select {
			case fn := <-t.calls:
				fn()
			case <-t.done:
				return
			}
		}
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("enter namespace %s: %w", name, err)
	}
	return t, nil
}

func (t *nsThread) do(fn func()) {
	ran := make(chan struct{})
	t.calls <- func() { fn(); close(ran) }
	<-ran
}

func (t *nsThread) close() { close(t.done) }

// socket creates a socket in the namespace.
func (t *nsThread) socket(domain, typ, proto int) (fd int, err error) {
	t.do(func() { fd, err = unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto) })
	return fd, err
}

// interfaceIndex looks up an interface of the namespace.
func (t *nsThread) interfaceIndex(name string) (idx int, err error) {
	t.do(func() {
		var ifi *net.Interface
		ifi, err = net.InterfaceByName(name)
		if err == nil {
			idx = ifi.Index
		}
	})
	return idx, err
}

// dialTCP connects from local (port 0: any) to remote, in the namespace.
func (t *nsThread) dialTCP(local, remote netip.AddrPort) (net.Conn, error) {
	fd, err := t.socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (net.Conn, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s %s→%s: %w", what, local, remote, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: local.Addr().As4(), Port: int(local.Port())}); err != nil {
		return fail("bind", err)
	}
	// A blocking connect: it takes a round trip on the veth, or the server's SYN backlog
	// when it is overloaded — which is part of what the simulation measures.
	tv := unix.Timeval{Sec: 30}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: remote.Addr().As4(), Port: int(remote.Port())}); err != nil {
		return fail("connect", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail("nonblock", err)
	}
	f := os.NewFile(uintptr(fd), "tcp")
	defer f.Close()
	return net.FileConn(f)
}

// listenUDP opens a UDP socket bound to local, in the namespace.
func (t *nsThread) listenUDP(local netip.AddrPort) (*net.UDPConn, error) {
	fd, err := t.socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: local.Addr().As4(), Port: int(local.Port())}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %s: %w", local, err)
	}
	unix.SetNonblock(fd, true)
	f := os.NewFile(uintptr(fd), "udp")
	defer f.Close()
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}
