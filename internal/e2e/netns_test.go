package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Addresses of the test LAN. Nothing here ever touches an interface of the host: every link
// lives in namespaces this file creates and deletes.
const (
	lanServerIP = "10.77.0.1" // br0 in the "lan" namespace; fleetboot binds here
	lanSiteIP   = "10.77.0.2" // the site namespace's veth end (the site DHCP server)
	lanPrefix   = 24
	lanPoolLo   = "10.77.0.100"
	lanPoolHi   = "10.77.0.199"
	lanNetmask  = "255.255.255.0"
	lanBridge   = "br0"
	lanSiteLink = "site0" // the site end of the veth pair
	nsPrefix    = "fbe2e-"
)

// segment is the addressing of one test LAN: fleetboot's address on the bridge, the site
// namespace's address, and the DHCP pool. Every LAN lives in namespaces of its own, so two
// LANs may even share addresses; the multi-site scenario gives its second LAN another subnet,
// as a second segment of a real network has.
type segment struct {
	server, site   string
	poolLo, poolHi string
}

// lanSegment is the addressing of every scenario's LAN but the multi-site scenario's second.
var lanSegment = segment{server: lanServerIP, site: lanSiteIP, poolLo: lanPoolLo, poolHi: lanPoolHi}

// netns is a named network namespace (/run/netns/<name>) created by `ip netns add`.
type netns string

// path is the namespace's bind mount, what setns(2) takes.
func (n netns) path() string { return filepath.Join("/run/netns", string(n)) }

// ip runs `ip -n <ns> args…` and returns its error with the output for context.
func (n netns) ip(args ...string) error {
	return runCmd("ip", append([]string{"-n", string(n)}, args...)...)
}

// command returns argv wrapped in `ip netns exec`: ip setns()es and then execs argv, so the PID
// of the started process is argv[0]'s own and killing it kills the real process.
func (n netns) command(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", string(n)}, argv...)
}

// dial opens a connection from inside the namespace. A socket belongs to the network namespace
// of the thread that creates it, so the dial runs on a locked OS thread moved into the
// namespace; once created, the socket works from any thread. The thread is moved back before it
// is unlocked: an exited locked thread would fire the Pdeathsig of every child started from it.
func (n netns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		conn, err := n.dialLocked(ctx, network, addr)
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

func (n netns) dialLocked(ctx context.Context, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open own netns: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(n.path())
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open netns %s: %w", n, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns %s: %w", n, err)
	}
	var d net.Dialer
	conn, dialErr := d.DialContext(ctx, network, addr)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Stay locked: Go then retires this thread with the goroutine instead of reusing a
		// thread stuck in the test namespace.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("setns back from %s: %w", n, err)
	}
	runtime.UnlockOSThread()
	return conn, dialErr
}

// httpClient returns a client whose connections originate in the namespace.
func (n netns) httpClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       n.dial,
			DisableKeepAlives: true,
			Proxy:             nil, // never an HTTP_PROXY from the environment: this is a private LAN
		},
	}
}

// lan is the test network: namespace "lan" holds bridge br0 (lanServerIP) where fleetboot and
// the VMs' taps live; namespace "site" holds the other end of a veth pair plugged into br0. The
// veth gives br0 carrier (this kernel has no dummy module) and is where the site DHCP server
// sits in proxy mode.
type lan struct {
	id   string
	seg  segment
	lan  netns
	site netns
	taps int
}

// newLAN creates the namespaces and links; t.Cleanup deletes them (and with them every link).
// Processes started with lan.start must be stopped first, which their own (later registered,
// so earlier run) cleanups do.
func newLAN(t *testing.T, label string) *lan {
	t.Helper()
	return newLANOn(t, label, lanSegment)
}

// newLANOn is newLAN with the addressing of seg (a /24 like lanSegment's).
func newLANOn(t *testing.T, label string, seg segment) *lan {
	t.Helper()
	id := uniqueID(label)
	l := &lan{id: id, seg: seg, lan: netns(id + "-lan"), site: netns(id + "-site")}
	for _, ns := range []netns{l.lan, l.site} {
		if err := runCmd("ip", "netns", "add", string(ns)); err != nil {
			t.Fatalf("create namespace: %v", err)
		}
		t.Cleanup(func() {
			if err := runCmd("ip", "netns", "del", string(ns)); err != nil {
				t.Errorf("delete namespace: %v", err)
			}
		})
	}
	steps := []struct {
		ns   netns
		args []string
	}{
		{l.lan, []string{"link", "set", "lo", "up"}},
		{l.site, []string{"link", "set", "lo", "up"}},
		// STP off: a port joins forwarding at once instead of after 2×15 s of listening.
		{l.lan, []string{"link", "add", lanBridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"}},
		{l.lan, []string{"addr", "add", fmt.Sprintf("%s/%d", seg.server, lanPrefix), "dev", lanBridge}},
		{l.lan, []string{"link", "add", "lan0", "type", "veth", "peer", "name", lanSiteLink, "netns", string(l.site)}},
		{l.lan, []string{"link", "set", "lan0", "master", lanBridge, "up"}},
		{l.site, []string{"addr", "add", fmt.Sprintf("%s/%d", seg.site, lanPrefix), "dev", lanSiteLink}},
		{l.site, []string{"link", "set", lanSiteLink, "up"}},
		{l.lan, []string{"link", "set", lanBridge, "up"}},
	}
	for _, s := range steps {
		if err := s.ns.ip(s.args...); err != nil {
			t.Fatalf("set up test LAN: %v", err)
		}
	}
	// br0 only counts as up once a port has carrier; wait so servers bind a working link.
	deadline := time.Now().Add(time.Minute) // normally milliseconds
	for {
		out, err := exec.Command("ip", "-n", string(l.lan), "-o", "link", "show", lanBridge).CombinedOutput()
		if err == nil && strings.Contains(string(out), "state UP") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("br0 never came up: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l
}

// addTap creates a tap device on br0 for one VM and returns its name.
func (l *lan) addTap(t *testing.T) string {
	t.Helper()
	name := "tap" + strconv.Itoa(l.taps)
	l.taps++
	if err := l.lan.ip("tuntap", "add", name, "mode", "tap"); err != nil {
		t.Fatalf("create tap: %v", err)
	}
	if err := l.lan.ip("link", "set", name, "master", lanBridge, "up"); err != nil {
		t.Fatalf("plug tap: %v", err)
	}
	return name
}

// uniqueID names one run's resources: prefix, our PID (lets a later run tell a stale leftover
// from a live one) and randomness.
func uniqueID(label string) string {
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("%s%d-%s-%s", nsPrefix, os.Getpid(), label, hex.EncodeToString(b))
}

// removeStaleNamespaces deletes namespaces left by earlier runs of this suite that died before
// their cleanup (go test timeout, SIGKILL). Only names that carry our prefix and the PID of a
// process that no longer exists are touched.
func removeStaleNamespaces() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, nsPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue
		}
		runCmd("ip", "netns", "del", name)
	}
}

// runCmd runs a short command and folds its output into the error.
func runCmd(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
