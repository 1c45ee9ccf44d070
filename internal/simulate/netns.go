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

// The simulated LAN: one bridge, in a namespace of its own, joins the client namespace and
// one namespace per server (an HA pair has two on the one segment). Server i holds
// serverAddr(i) on its end of a veth pair to the bridge; the client namespace holds clientIP
// (the simulator's own address, for API calls) and, through a local route, every address of
// machineNet: a machine binds its sockets to the address DHCP gave it, and the client
// namespace answers ARP for all of them, so every server sees each machine at its own address
// as on a real LAN.
var (
	serverIP   = netip.MustParseAddr("10.213.0.1")
	clientIP   = netip.MustParseAddr("10.213.0.2")
	lanPrefix  = 16
	machineNet = netip.MustParsePrefix("10.213.16.0/20")
	// poolStart..poolEnd is full mode's pool, inside machineNet (4000 addresses).
	poolStart = netip.MustParseAddr("10.213.16.10")
	poolEnd   = netip.MustParseAddr("10.213.31.250")
)

// maxServers bounds the servers on one simulated LAN (their addresses are 10.213.0.1, .3, .5 …).
const maxServers = 8

// serverAddr is the address of server i on the simulated LAN: 10.213.0.1 for the first, then
// every other address, never the client's 10.213.0.2.
func serverAddr(i int) netip.Addr { return addrAdd(serverIP, 2*i) }

// lanServer is one server's namespace and its end of the veth pair to the bridge.
type lanServer struct {
	ns, ifName string
	ip         netip.Addr
}

// lan is the namespaces one run creates, with unique names, and deletes at the end.
type lan struct {
	bridge, client string // namespace names
	clientIf       string // the client namespace's veth end
	servers        []lanServer
	made           []string // the namespaces created so far, which Close deletes
}

// newLAN creates the bridge, client and n server namespaces and wires them. On error nothing
// is left.
func newLAN(n int) (_ *lan, err error) {
	if n < 1 || n > maxServers {
		return nil, fmt.Errorf("%d servers on one LAN: want 1 to %d", n, maxServers)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("simulate needs root: it creates network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("simulate needs iproute2's ip (apt-get install iproute2)")
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(rnd[:])
	prefix := fmt.Sprintf("fbsim-%d-%s-", os.Getpid(), id)
	l := &lan{bridge: prefix + "br", client: prefix + "cli", clientIf: "fbsc" + id}
	for i := range n {
		// Interface names: at most 15 bytes.
		l.servers = append(l.servers, lanServer{ns: fmt.Sprintf("%ss%d", prefix, i), ifName: fmt.Sprintf("fbs%d%s", i, id), ip: serverAddr(i)})
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	for _, ns := range l.namespaces() {
		if err := ipCmd("netns", "add", ns); err != nil {
			return nil, err
		}
		l.made = append(l.made, ns) // what Close deletes, also on a later error
	}
	const br = "fbbr0"
	steps := [][]string{
		{"-n", l.bridge, "link", "set", "lo", "up"},
		{"-n", l.bridge, "link", "add", br, "type", "bridge"},
		{"-n", l.bridge, "link", "set", br, "up"},
		{"link", "add", l.clientIf, "netns", l.client, "type", "veth", "peer", "name", "fbpc" + id, "netns", l.bridge},
		{"-n", l.bridge, "link", "set", "fbpc" + id, "master", br, "up"},
		{"-n", l.client, "link", "set", "lo", "up"},
		{"-n", l.client, "addr", "add", fmt.Sprintf("%s/%d", clientIP, lanPrefix), "dev", l.clientIf},
		{"-n", l.client, "link", "set", l.clientIf, "up"},
		// Every machine address is local in the client namespace (bind and ARP work for all).
		{"-n", l.client, "route", "add", "local", machineNet.String(), "dev", "lo"},
	}
	for i, s := range l.servers {
		port := fmt.Sprintf("fbp%d%s", i, id)
		steps = append(steps,
			[]string{"link", "add", s.ifName, "netns", s.ns, "type", "veth", "peer", "name", port, "netns", l.bridge},
			[]string{"-n", l.bridge, "link", "set", port, "master", br, "up"},
			[]string{"-n", s.ns, "link", "set", "lo", "up"},
			[]string{"-n", s.ns, "addr", "add", fmt.Sprintf("%s/%d", s.ip, lanPrefix), "dev", s.ifName},
			[]string{"-n", s.ns, "link", "set", s.ifName, "up"})
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return nil, err
		}
	}
	// A thousand machines are a thousand neighbours of a server: the default table limit
	// (gc_thresh3 1024) would drop replies to the last ones. Per namespace, best effort.
	for _, s := range l.servers {
		for k, v := range map[string]string{"gc_thresh1": "4096", "gc_thresh2": "8192", "gc_thresh3": "16384"} {
			exec.Command("ip", "netns", "exec", s.ns, "sysctl", "-qw", "net.ipv4.neigh.default."+k+"="+v).Run()
		}
	}
	return l, nil
}

func (l *lan) namespaces() []string {
	out := []string{l.bridge, l.client}
	for _, s := range l.servers {
		out = append(out, s.ns)
	}
	return out
}

// Close deletes the namespaces (their veth ends and the bridge go with them).
func (l *lan) Close() error {
	var errs []error
	for _, ns := range l.made {
		if err := ipCmd("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	l.made = nil
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
