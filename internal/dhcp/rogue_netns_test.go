package dhcp

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/fleetboot/fleetboot/internal/quirk"
)

// requireBridgedNetns builds two network namespaces the test owns: the first holds a bridge
// joining fleetboot's side fbs0 (10.99.0.1/24) and the raw client's side fbc0 with a port to
// the second namespace, where fbr0 (10.99.0.2/24) is another DHCP server's interface. Both
// namespaces are deleted at the end. The client's broadcasts reach both servers; the other
// server's broadcast replies reach fleetboot's interface as they would on a shared LAN.
func requireBridgedNetns(t *testing.T) (ns *testNetns, rogueNS string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	ns = &testNetns{name: fmt.Sprintf("fbrog-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))}
	rogueNS = ns.name + "-r"
	for _, n := range []string{ns.name, rogueNS} {
		ipCmd(t, "netns", "add", n)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", n).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", n, err, out)
			}
		})
	}
	in := func(n string, args ...string) { t.Helper(); ipCmd(t, append([]string{"-n", n}, args...)...) }
	in(ns.name, "link", "set", "lo", "up")
	in(ns.name, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	in(ns.name, "link", "add", "fbs0", "type", "veth", "peer", "name", "fbs0p")
	in(ns.name, "link", "add", "fbc0", "type", "veth", "peer", "name", "fbc0p")
	in(ns.name, "link", "add", "fbr0p", "type", "veth", "peer", "name", "fbr0", "netns", rogueNS)
	for _, p := range []string{"fbs0p", "fbc0p", "fbr0p"} {
		in(ns.name, "link", "set", p, "master", "br0")
		in(ns.name, "link", "set", p, "up")
	}
	in(ns.name, "addr", "add", "10.99.0.1/24", "dev", "fbs0")
	for _, l := range []string{"br0", "fbs0", "fbc0"} {
		in(ns.name, "link", "set", l, "up")
	}
	in(rogueNS, "link", "set", "lo", "up")
	in(rogueNS, "addr", "add", "10.99.0.2/24", "dev", "fbr0")
	in(rogueNS, "link", "set", "fbr0", "up")
	ns.readMACs(t)
	return ns, rogueNS
}

// startDnsmasq runs dnsmasq as a DHCP server (no DNS) on fbr0 in namespace n until the test
// ends (stopped by its PID), with extra options.
func startDnsmasq(t *testing.T, n string, extra ...string) (stop func()) {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Skip("needs dnsmasq (apt-get install dnsmasq-base)")
	}
	dir := t.TempDir()
	args := append([]string{"netns", "exec", n, bin, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
		"--interface=fbr0", "--bind-interfaces", "--dhcp-range=10.99.0.100,10.99.0.150,255.255.255.0,1h",
		"--dhcp-leasefile=" + filepath.Join(dir, "leases"), "--pid-file=", "--no-ping", "--dhcp-broadcast",
		"--user=root", "--log-facility=-", "--log-dhcp"}, extra...)
	cmd := exec.Command("ip", args...)
	var out lockedBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Kill() // by its own PID
			cmd.Wait()
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("dnsmasq output:\n%s", out.String())
		}
	})
	return stop
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// awaitForeign sends DISCOVERs from the raw client (retransmitting, as a client does, while
// dnsmasq starts) until fleetboot reports a reply of the other server 10.99.0.2, and returns
// that event.
func awaitForeign(t *testing.T, c *rawClient, rs *runningServer) Event {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for xid := 100; time.Now().Before(deadline); xid++ {
		d := msg(t, dhcpv4.MessageTypeDiscover, append(biosPXE(), withXID(xid), dhcpv4.WithBroadcast(true))...)
		if err := c.send(d, ethBroadcast, net.IPv4zero, net.IPv4bcast, portClient, portServer); err != nil {
			t.Fatal(err)
		}
		tick := time.After(time.Second)
	wait:
		for {
			select {
			case ev := <-rs.events:
				if ev.Port == portClient && strings.Contains(ev.Reason, "server 10.99.0.2 ") {
					return ev
				}
				if ev.Port == portClient {
					t.Fatalf("a reply on the client port that is not the other server's: %+v", ev)
				}
			case <-tick:
				break wait
			}
		}
		if err := rs.failed(); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("no reply of the other DHCP server was reported within %v", liveness)
	return Event{}
}

// TestRogueDHCPServerIsReported: a real second DHCP server (dnsmasq) answers on fleetboot's
// segment. In full mode any such server competes (quirk rogue-dhcp, and an error log line);
// in proxy mode the site DHCP server handing out addresses is expected and not reported as
// rogue, but one that also offers network boot is. fleetboot's own replies are never reported.
func TestRogueDHCPServerIsReported(t *testing.T) {
	ns, rogueNS := requireBridgedNetns(t)
	c := newRawClient(t, ns)

	stop := startDnsmasq(t, rogueNS)
	t.Run("full mode: any other server", func(t *testing.T) {
		var logs lockedBuf
		cfg := fullConfig()
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		rs := startServer(t, ns, cfg, newLeaseDB(t))
		ev := awaitForeign(t, c, rs)
		if ev.Quirk != quirk.RogueDHCP || !strings.Contains(ev.Reason, "hands out addresses") || !ev.Timeline() {
			t.Fatalf("full mode: %+v", ev)
		}
		if err := rs.stop(); err != nil {
			t.Fatal(err)
		}
		if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "server=10.99.0.2") {
			t.Fatalf("no loud log line:\n%s", l)
		}
	})
	t.Run("proxy mode: the site DHCP server is expected", func(t *testing.T) {
		rs := startServer(t, ns, proxyConfig(), nil)
		ev := awaitForeign(t, c, rs)
		if ev.Quirk != "" || ev.Timeline() || !strings.Contains(ev.Reason, "hands out addresses") {
			t.Fatalf("proxy mode, plain site server: %+v", ev)
		}
		if err := rs.stop(); err != nil {
			t.Fatal(err)
		}
	})
	stop()
	startDnsmasq(t, rogueNS, "--dhcp-boot=pxelinux.0,bootserver,10.99.0.2")
	t.Run("proxy mode: another server offering network boot", func(t *testing.T) {
		rs := startServer(t, ns, proxyConfig(), nil)
		ev := awaitForeign(t, c, rs)
		if ev.Quirk != quirk.RogueDHCP || !strings.Contains(ev.Reason, "file pxelinux.0") {
			t.Fatalf("proxy mode, boot server: %+v", ev)
		}
		if err := rs.stop(); err != nil {
			t.Fatal(err)
		}
	})
}
