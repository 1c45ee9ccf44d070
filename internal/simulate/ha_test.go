package simulate

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// The tests in this file run an HA pair as operators would: two `fleetboot serve` processes
// (the built binary), sites "a" and "b", each in its own network namespace on one bridge, both
// --dhcp full with the same --pool on one real PostgreSQL database (scripts/with-postgres.sh;
// without it they skip, and fail under CI=true). The simulated machines are in a third
// namespace on that bridge and speak raw DHCP from their own MACs, so both servers see every
// broadcast and both answer.

// haSites are the --site names of the pair: server 0 is "a", server 1 "b".
var haSites = [2]string{"a", "b"}

// haPair is a running HA pair and the simulated machines' side of the segment.
type haPair struct {
	dsn     string // the test database (the servers add their application_name)
	ns      *nsThread
	wire    *wire
	acks    *ackLedger
	ch      *chain
	servers [2]*server
	api     [2]*apiClient
}

// startHAPair starts the pair on a pool of poolSize addresses; with fixture, a rehearsal ISO
// (registered in place in a directory both read), a preseed profile and a rule installing it
// on every 02:fb:5e machine.
// dsnParams, when given, are added to server i's connection string (e.g.
// "&idle_in_transaction_session_timeout=30000").
func startHAPair(t *testing.T, ctx context.Context, poolSize int, fixture bool, dsnParams ...string) *haPair {
	t.Helper()
	dsn := storetest.DSN(t) // before the root check: under CI=true a missing server fails
	bin := fleetbootBinary(t)
	l, err := newLAN(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("delete namespaces: %v", err)
		}
	})
	ns, err := enterNS(l.client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.close)

	work := t.TempDir()
	images := filepath.Join(work, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	var b [16]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	p := &haPair{ns: ns, dsn: dsn}
	cfg := Config{Binary: bin, Mode: "full", poolEnd: addrAdd(poolStart, poolSize-1)}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range p.servers {
		srv, err := startServer(cfg, l, i, filepath.Join(work, "data-"+haSites[i]), filepath.Join(work, "server-"+haSites[i]+".log"),
			// application_name tells the instances' sessions apart in pg_stat_activity.
			[]string{"--database", dsn + "&application_name=fleetboot-" + haSites[i] + param(dsnParams, i), "--site", haSites[i], "--token", token, "--register-dir", images})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			srv.stop(quiet)
			if t.Failed() {
				t.Logf("server %s, end of its log:\n%s", haSites[i], srv.tail())
			}
		})
		p.servers[i] = srv
		p.api[i] = newAPIClient(ns, serverHTTP(i), token)
	}
	for i, srv := range p.servers {
		if err := p.api[i].waitHealthy(ctx, srv); err != nil {
			t.Fatalf("server %s: %v", haSites[i], err)
		}
	}
	if fixture {
		if err := setupFixture(ctx, p.api[0], work, 2, images); err != nil {
			t.Fatal(err)
		}
	}
	p.acks = newAckLedger()
	if p.wire, err = newWire(ns, l.clientIf, p.acks.record); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.wire.Close() })
	p.ch = &chain{ns: ns, wire: p.wire, full: true, progress: newProgress()}
	return p
}

// param is params[i], or "" past its end.
func param(params []string, i int) string {
	if i < len(params) {
		return params[i]
	}
	return ""
}

// machines makes n simulated machines with MACs 02:fb:5e:00:00:00 on, of every firmware kind.
func (p *haPair) machines(t *testing.T, n int) []*machine {
	kinds, err := firmwareDeck(nil, n)
	if err != nil {
		t.Fatal(err)
	}
	return makeMachines(Config{Machines: n}, kinds, p.ch, p.ns)
}

// dhcpAll runs the firmware's DHCP (DISCOVER, OFFER, REQUEST, ACK) of every machine at once.
// A machine whose exchange fails after the firmware's minute of retransmissions starts over,
// as firmware retries a network boot, at most five times: only a server that stays silent
// (or is many times slower than on a loaded 2-core CI machine) fails the test. It returns every machine's ACK (nil where it got none) and error, and the
// retransmissions all machines needed.
func (p *haPair) dhcpAll(ctx context.Context, ms []*machine) ([]*dhcpv4.DHCPv4, []error, int) {
	r := p.dhcpAllTimed(ctx, ms)
	return r.acks, r.errs, r.retries
}

// dhcpRun is what dhcpAllTimed returns: per machine its ACK, error and when it was bound.
type dhcpRun struct {
	acks    []*dhcpv4.DHCPv4
	errs    []error
	bound   []time.Time
	retries int
}

// firstBound is the earliest time a machine was bound (zero if none was).
func (r dhcpRun) firstBound() time.Time {
	var first time.Time
	for _, t := range r.bound {
		if !t.IsZero() && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

func (p *haPair) dhcpAllTimed(ctx context.Context, ms []*machine) dhcpRun {
	r := dhcpRun{acks: make([]*dhcpv4.DHCPv4, len(ms)), errs: make([]error, len(ms)), bound: make([]time.Time, len(ms))}
	var wg sync.WaitGroup
	var retries atomic.Int64
	for i, m := range ms {
		wg.Go(func() {
			for range 5 {
				var tries int
				r.acks[i], tries, r.errs[i] = p.ch.dhcp(ctx, m, stageFirmware)
				retries.Add(int64(tries))
				if r.errs[i] == nil {
					r.bound[i] = time.Now()
				}
				if r.errs[i] == nil || ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	r.retries = int(retries.Load())
	return r
}

// metric is server i's counter name summed by the value of one label (e.g.
// fleetboot_dhcp_packets_total by kind), from its /metrics.
func (p *haPair) metric(t *testing.T, ctx context.Context, i int, name, label string) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.api[i].base.String()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+p.api[i].token)
	resp, err := p.api[i].http.Do(req)
	if err != nil {
		t.Fatalf("metrics of %s: %v", haSites[i], err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics of %s: %s %v", haSites[i], resp.Status, err)
	}
	sum := map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(l, name+"{")
		if !ok {
			continue
		}
		labels, val, _ := strings.Cut(rest, "} ")
		var v float64
		fmt.Sscan(val, &v)
		for _, kv := range strings.Split(labels, ",") {
			if k, name, ok := strings.Cut(kv, "="); ok && k == label {
				sum[strings.Trim(name, `"`)] += v
			}
		}
	}
	return sum
}

// noRogueQuirks fails the test if server i took its partner for a rogue DHCP server: the
// partner's OFFERs and ACKs are expected on an HA pair's segment.
func (p *haPair) noRogueQuirks(t *testing.T, ctx context.Context, i int) {
	t.Helper()
	if n := p.metric(t, ctx, i, "fleetboot_quirks_total", "quirk")["rogue-dhcp"]; n != 0 {
		t.Errorf("server %s reported its partner's replies as a rogue DHCP server %.0f times", haSites[i], n)
	}
}

// leaseInfo is a lease as GET /api/v1/leases shows it.
type leaseInfo struct {
	IP     string `json:"ip"`
	MAC    string `json:"mac"`
	State  string `json:"state"`
	Active bool   `json:"active"`
}

// checkLeaseTable checks the shared lease table through one server's API: no client holds
// two active bound leases, no address is bound to two clients, and every client in want is
// bound to the address it was ACKed.
func checkLeaseTable(t *testing.T, ctx context.Context, api *apiClient, want map[string]netip.Addr) {
	t.Helper()
	var leases []leaseInfo
	if err := api.do(ctx, http.MethodGet, "/api/v1/leases", nil, "", &leases); err != nil {
		t.Fatal(err)
	}
	byMAC, byIP := map[string]string{}, map[string]string{}
	for _, l := range leases {
		if l.State != "bound" || !l.Active {
			continue
		}
		if other, ok := byIP[l.IP]; ok {
			t.Errorf("lease table (via %s): %s bound to %s and %s", api.base, l.IP, other, l.MAC)
		}
		if other, ok := byMAC[l.MAC]; ok {
			t.Errorf("lease table (via %s): %s holds %s and %s", api.base, l.MAC, other, l.IP)
		}
		byIP[l.IP], byMAC[l.MAC] = l.MAC, l.IP
	}
	for mac, ip := range want {
		if byMAC[mac] != ip.String() {
			t.Errorf("lease table (via %s): %s was ACKed %s, the table binds it to %q", api.base, mac, ip, byMAC[mac])
		}
	}
}

// TestHAPairNeverAcksOneAddressTwice powers on 200 machines at once on a segment served by an
// HA pair with a pool of exactly 200 addresses: every DISCOVER reaches both servers and both
// answer; a third of the machines take server a's OFFER, a third server b's, the rest whichever
// comes first. Every machine must be bound, no address ACKed to two machines (as seen on the
// wire), and the lease table, read through either server, must say the same. A pool as large
// as the fleet also fails the test if one machine ever held two addresses: another would find
// the pool exhausted.
func TestHAPairNeverAcksOneAddressTwice(t *testing.T) {
	const clients = 200
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	p := startHAPair(t, ctx, clients, false)
	ms := p.machines(t, clients)
	for i, m := range ms {
		switch i % 3 {
		case 0:
			m.server = serverAddr(0)
		case 1:
			m.server = serverAddr(1)
		}
	}
	start := time.Now()
	acks, errs, retries := p.dhcpAll(ctx, ms)
	wall := time.Since(start)

	want := map[string]netip.Addr{}
	byServer := map[netip.Addr]int{}
	for i, m := range ms {
		if errs[i] != nil {
			t.Errorf("machine %s not bound: %v", m.mac, errs[i])
			continue
		}
		from := replyServer(acks[i])
		if m.server.IsValid() && from != m.server {
			t.Errorf("machine %s took %s's OFFER but was ACKed by %s", m.mac, m.server, from)
		}
		byServer[from]++
		want[m.mac.String()] = m.ip
	}
	for _, c := range p.acks.conflicts() {
		t.Error(c)
	}
	for i := range p.servers {
		if byServer[serverAddr(i)] == 0 {
			t.Errorf("server %s ACKed none of the machines", haSites[i])
		}
		checkLeaseTable(t, ctx, p.api[i], want)
		if err := p.servers[i].alive(); err != nil {
			t.Errorf("server %s: %v", haSites[i], err)
		}
	}
	for i := range p.servers {
		by := p.metric(t, ctx, i, "fleetboot_dhcp_packets_total", "kind")
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(by)) {
			if by[k] > 0 {
				parts = append(parts, fmt.Sprintf("%s %.0f", k, by[k]))
			}
		}
		t.Logf("server %s: DHCP packets %s", haSites[i], strings.Join(parts, ", "))
		p.noRogueQuirks(t, ctx, i)
	}
	acksBy, dups := p.acks.summary()
	t.Logf("%d machines bound in %s (%d retransmissions); ACKs by server %v (wire: %v); %d addresses ACKed to two machines",
		len(want), wall.Round(time.Millisecond), retries, byServer, acksBy, dups)
}

// kill ends the server with SIGKILL — no shutdown, no goodbye to the database — and waits for
// it to be gone.
func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", s.cmd.Process.Pid, err)
	}
	select {
	case err := <-s.exit:
		s.exit <- err
	case <-time.After(liveness):
		t.Fatalf("server %d still running %s after SIGKILL", s.cmd.Process.Pid, liveness)
	}
}

// liveness bounds waits for something that normally takes milliseconds: generous for a loaded
// 2-core CI machine, so that only a hang reaches it.
const liveness = time.Minute

// timelineEvent is a timeline event as the API shows it.
type timelineEvent struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
	Site   string `json:"site"`
}

// TestHAPairSurvivorFinishesAnInstallAfterKill9 kills one instance of an HA pair with SIGKILL
// while a machine is installing through it — the machine has done DHCP and TFTP, got its
// boot script and downloaded the kernel, all from instance a — and shows that instance b alone
// then serves the segment: the machine boots again and gets the address it had, its boot
// script, kernel, initrd and unattended file from b, its done callback reaches b and it ends
// installed, with a timeline that names both sites; every machine bound before the kill
// rebinds its own address at b; new machines are all served by b; no address is ever ACKed to
// two machines and the lease table agrees.
func TestHAPairSurvivorFinishesAnInstallAfterKill9(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	p := startHAPair(t, ctx, 64, true)
	ms := p.machines(t, 41)
	installer, early, late := ms[0], ms[1:21], ms[21:]
	a, b := serverAddr(0), serverAddr(1)

	// Before the kill: twenty machines bound, half through a, half through b.
	for i, m := range early {
		m.server = []netip.Addr{a, b}[i%2]
	}
	if _, errs, _ := p.dhcpAll(ctx, early); errorsIn(t, "before the kill", early, errs) {
		t.FailNow()
	}
	// The installing machine, through a only, up to its kernel.
	installer.fw, installer.server, installer.stopAfter = FirmwareBIOSPXE, a, PhaseKernel
	if res := p.ch.boot(ctx, installer); res.Failed != "" {
		t.Fatalf("install through a: %s: %s", res.Failed, res.Err)
	}
	mac := installer.mac.String()
	var m struct {
		State string `json:"state"`
	}
	if err := p.api[1].do(ctx, http.MethodGet, "/api/v1/machines/"+mac, nil, "", &m); err != nil {
		t.Fatal(err)
	}
	if m.State != "installing" {
		t.Fatalf("after its kernel from a, b sees the machine %s, want installing", m.State)
	}
	boundBefore := map[string]netip.Addr{mac: installer.ip}
	for _, m := range early {
		boundBefore[m.mac.String()] = m.ip
	}
	acksByA, _ := p.acks.summary()

	p.servers[0].kill(t)
	killed := time.Now()

	// The machine boots again (its installer could not reach a) and takes whatever answers.
	installer.server, installer.stopAfter = netip.Addr{}, ""
	res := p.ch.boot(ctx, installer)
	if res.Failed != "" {
		t.Fatalf("install after a's kill: %s: %s", res.Failed, res.Err)
	}
	toInstalled := time.Since(killed)
	toLease := toInstalled - sumPhases(res.Phases[1:]) // until the firmware's ACK
	if installer.ip != boundBefore[mac] {
		t.Errorf("after the kill the installing machine got %s, it had %s", installer.ip, boundBefore[mac])
	}

	// Every machine bound before the kill rebinds (RFC 2131 REBINDING: ciaddr, broadcast, no
	// server id — its server is gone) and keeps its address, from b.
	var wg sync.WaitGroup
	for _, m := range early {
		wg.Go(func() {
			req, err := dhcpv4.New(dhcpv4.WithHwAddr(m.mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
				dhcpv4.WithClientIP(net.IP(m.ip.AsSlice())))
			if err != nil {
				t.Error(err)
				return
			}
			ack, _, err := p.wire.exchange(ctx, m.mac, m.ip, netip.AddrFrom4([4]byte{255, 255, 255, 255}), 67, netip.Addr{}, req, dhcpv4.MessageTypeAck)
			switch {
			case err != nil:
				t.Errorf("%s rebinding %s after the kill: %v", m.mac, m.ip, err)
			case replyServer(ack) != b || ack.YourIPAddr.String() != m.ip.String():
				t.Errorf("%s rebinding %s after the kill: ACK from %s for %s", m.mac, m.ip, replyServer(ack), ack.YourIPAddr)
			}
		})
	}
	wg.Wait()

	// New machines after the kill: b serves them alone.
	acks, errs, _ := p.dhcpAll(ctx, late)
	errorsIn(t, "after the kill", late, errs)
	all := map[string]netip.Addr{}
	for k, v := range boundBefore {
		all[k] = v
	}
	for i, m := range late {
		if acks[i] != nil {
			if from := replyServer(acks[i]); from != b {
				t.Errorf("new machine %s ACKed by %s after a's kill", m.mac, from)
			}
			all[m.mac.String()] = m.ip
		}
	}

	if err := p.api[1].do(ctx, http.MethodGet, "/api/v1/machines/"+mac, nil, "", &m); err != nil {
		t.Fatal(err)
	}
	if m.State != "installed" {
		t.Errorf("the machine is %s at b, want installed", m.State)
	}
	var events []timelineEvent
	if err := p.api[1].do(ctx, http.MethodGet, "/api/v1/machines/"+mac+"/events?limit=1000", nil, "", &events); err != nil {
		t.Fatal(err)
	}
	sites := map[string]int{}
	var timeline strings.Builder
	for _, e := range events {
		sites[e.Site]++
		fmt.Fprintf(&timeline, "  [%s] %s %s\n", e.Site, e.Kind, e.Detail)
	}
	if sites["a"] == 0 || sites["b"] == 0 {
		t.Errorf("timeline names sites %v, want a and b:\n%s", sites, timeline.String())
	}
	var done bool
	for _, e := range events {
		if e.Site == "b" && e.Kind == "state" && strings.Contains(e.Detail, "→ installed") {
			done = true
		}
	}
	if !done {
		t.Errorf("no state change to installed written by b:\n%s", timeline.String())
	}

	acksAfter, _ := p.acks.summary()
	if acksAfter[a.String()] != acksByA[a.String()] {
		t.Errorf("a ACKed %d more after its kill", acksAfter[a.String()]-acksByA[a.String()])
	}
	for _, c := range p.acks.conflicts() {
		t.Error(c)
	}
	checkLeaseTable(t, ctx, p.api[1], all)
	p.noRogueQuirks(t, ctx, 1)
	if err := p.servers[1].alive(); err != nil {
		t.Errorf("server b: %v", err)
	}
	t.Logf("kill -9 of a mid-install: the machine had its lease again from b %s after the kill and was installed through b %s after it; "+
		"%d machines bound before the kill rebound at b, %d new ones bound by b; ACKs by server %v; timeline sites %v",
		toLease.Round(time.Millisecond), toInstalled.Round(time.Millisecond), len(early), len(late), acksAfter, sites)
}

// errorsIn reports every machine's error and whether there was any.
func errorsIn(t *testing.T, when string, ms []*machine, errs []error) bool {
	t.Helper()
	any := false
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: machine %s not bound: %v", when, ms[i].mac, err)
			any = true
		}
	}
	return any
}

func sumPhases(ps []phaseResult) time.Duration {
	var d time.Duration
	for _, p := range ps {
		d += p.Dur
	}
	return d
}

// holdsLeaseLock reports whether a session of server i holds the lease table's advisory lock
// (internal/dhcp: pg_advisory_xact_lock of hashtextextended('fleetboot:dhcp_leases', 0); an
// int8 key shows in pg_locks as classid = its high and objid = its low 32 bits).
func (p *haPair) holdsLeaseLock(ctx context.Context, db *sql.DB, i int) (bool, error) {
	pid, err := p.leaseLockHolder(ctx, db, i)
	return pid != 0, err
}

// leaseLockHolder is the PostgreSQL backend pid of server i's session holding the lease
// table's lock, 0 when none does.
func (p *haPair) leaseLockHolder(ctx context.Context, db *sql.DB, i int) (int, error) {
	var pid int
	err := db.QueryRowContext(ctx, `SELECT coalesce(min(l.pid), 0) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE a.application_name = $1 AND l.locktype = 'advisory' AND l.granted
		AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('fleetboot:dhcp_leases', 0)`,
		"fleetboot-"+haSites[i]).Scan(&pid)
	return pid, err
}

// TestHAPairSurvivorServesWhileItsPartnerHangsHoldingTheLeaseLock freezes instance a (SIGSTOP:
// a hung process, or one whose machine lost power or its network to the database — its
// connections stay open) at a moment when it holds the lease table's lock, in the middle of a
// lease decision, while machines power on. Instance b must not wait for it forever: PostgreSQL
// ends a's session once it has been idle in its transaction for fleetboot's
// idle_in_transaction_session_timeout, the lock is released, and b alone serves the segment —
// every new machine is bound, by b, without an address given twice, and a machine installs
// through b from start to end while a still hangs. When a wakes up it
// recovers by itself (its session is gone, it reconnects and catches up) and answers again.
func TestHAPairSurvivorServesWhileItsPartnerHangsHoldingTheLeaseLock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	p := startHAPair(t, ctx, 250, true)
	db, err := sql.Open("pgx", p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms := p.machines(t, 102)
	load, late, again, installer := ms[:60], ms[60:100], ms[100], ms[101]
	a, b := serverAddr(0), serverAddr(1)
	pid := p.servers[0].cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })

	// Sixty machines power on and keep renewing from scratch (DISCOVER … ACK, over and over)
	// until a is frozen, retried until it is caught holding the lease lock (it takes it for
	// every decision, so under this load it soon is).
	var stopLoad atomic.Bool
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		var wg sync.WaitGroup
		for _, m := range load {
			wg.Go(func() {
				for !stopLoad.Load() && ctx.Err() == nil {
					// A machine may go unanswered while a hangs, but never get another address.
					if _, _, err := p.ch.dhcp(ctx, m, stageFirmware); err != nil && strings.Contains(err.Error(), " gave ") {
						t.Errorf("machine %s: %v", m.mac, err)
					}
				}
			})
		}
		wg.Wait()
	}()
	caught := false
	for try := 0; try < 2000 && !caught; try++ {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if caught, err = p.holdsLeaseLock(ctx, db, 0); err != nil {
			t.Fatal(err)
		}
		if caught {
			// a's last message may have left before the stop and still be on its way or
			// running: its COMMIT would release the lock a moment later, and b would never
			// wait (seen: first machine bound 172 ms after the "freeze"). Still held a while
			// after the stop, the lock waits for a.
			time.Sleep(500 * time.Millisecond)
			if caught, err = p.holdsLeaseLock(ctx, db, 0); err != nil {
				t.Fatal(err)
			}
		}
		if !caught {
			syscall.Kill(pid, syscall.SIGCONT)
			time.Sleep(time.Duration(try%7) * time.Millisecond)
		}
	}
	stopLoad.Store(true)
	if !caught {
		t.Fatal("instance a never held the lease lock while machines powered on")
	}
	frozen := time.Now()
	holder, err := p.leaseLockHolder(ctx, db, 0)
	if err != nil || holder == 0 {
		t.Fatalf("the lease lock's holder at a: pid %d (%v)", holder, err)
	}

	// New machines while a hangs: b serves them all.
	run := p.dhcpAllTimed(ctx, late)
	acks, errs := run.acks, run.errs
	served := time.Since(frozen)
	errorsIn(t, "while a hangs", late, errs)
	want := map[string]netip.Addr{}
	for i, m := range late {
		if acks[i] == nil {
			continue
		}
		if from := replyServer(acks[i]); from != b {
			t.Errorf("machine %s ACKed by %s while a hangs", m.mac, from)
		}
		want[m.mac.String()] = m.ip
	}
	if held, err := p.holdsLeaseLock(ctx, db, 0); err != nil || held {
		t.Errorf("the hung instance still holds the lease lock (%v)", err)
	}
	// The lock went with a's session, which PostgreSQL ended (a never committed): a session
	// that had released it by committing would still be there, and b would not have waited.
	var left int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, holder).Scan(&left); err != nil || left != 0 {
		t.Errorf("a's session %d that held the lease lock is still there (%d, %v): the lock was released, not taken from a hung instance", holder, left, err)
	}
	t.Logf("a frozen holding the lease lock: b bound the first new machine %s after the freeze, all %d within %s (%d retransmissions; the session timeout is %s)",
		run.firstBound().Sub(frozen).Round(time.Millisecond), len(want), served.Round(time.Millisecond), run.retries, store.IdleInTransactionTimeout)

	// A machine installs from start to end while a still hangs: DHCP, TFTP, script, kernel,
	// initrd, unattended file and done, all through b, and b's inventory says installed.
	installer.fw = FirmwareBIOSPXE
	if res := p.ch.boot(ctx, installer); res.Failed != "" {
		t.Errorf("install while a hangs: %s: %s", res.Failed, res.Err)
	} else {
		var m struct {
			State string `json:"state"`
		}
		if err := p.api[1].do(ctx, http.MethodGet, "/api/v1/machines/"+installer.mac.String(), nil, "", &m); err != nil {
			t.Fatal(err)
		}
		if m.State != "installed" {
			t.Errorf("installed through b while a hangs: b says %s", m.State)
		}
		want[installer.mac.String()] = installer.ip
	}
	t.Logf("a machine installed through b alone, done %s after the freeze", time.Since(frozen).Round(time.Millisecond))

	// a wakes up and answers again (a machine that takes only a's OFFERs gets bound by a).
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	<-loadDone
	again.server = a
	if acks, errs, _ := p.dhcpAll(ctx, []*machine{again}); errs[0] != nil {
		t.Errorf("a after it woke up: %v", errs[0])
	} else if replyServer(acks[0]) != a {
		t.Errorf("a after it woke up: ACK from %s", replyServer(acks[0]))
	} else {
		want[again.mac.String()] = again.ip
	}
	for _, m := range load {
		if m.ip.IsValid() {
			want[m.mac.String()] = m.ip
		}
	}
	for _, c := range p.acks.conflicts() {
		t.Error(c)
	}
	checkLeaseTable(t, ctx, p.api[1], want)
	for i := range p.servers {
		if err := p.servers[i].alive(); err != nil {
			t.Errorf("server %s: %v", haSites[i], err)
		}
	}
}

// holdsMachineLock reports whether a session of server i holds machine mac's advisory lock
// (internal/inventory's machineLock), and whether that session is idle in its transaction.
func (p *haPair) holdsMachineLock(ctx context.Context, db *sql.DB, i int, mac string) (held, idle bool, err error) {
	var n, nIdle int
	err = db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE a.state = 'idle in transaction')
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE a.application_name = $1 AND l.locktype = 'advisory' AND l.granted
		AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('fleetboot:machine:' || $2, 0)`,
		"fleetboot-"+haSites[i], mac).Scan(&n, &nIdle)
	return n > 0, nIdle > 0, err
}

// lockWaiters is how many sessions of server i wait for an advisory lock.
func (p *haPair) lockWaiters(ctx context.Context, db *sql.DB, i int) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE a.application_name = $1 AND l.locktype = 'advisory' AND NOT l.granted`, "fleetboot-"+haSites[i]).Scan(&n)
	return n, err
}

// within polls cond every 10 ms until it is true, failing the test after liveness.
func within(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, liveness)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHAPairSurvivorServesWhileItsPartnerHangsHoldingAMachineLock freezes instance a (SIGSTOP)
// while it holds an inventory lock — the catalog lock (shared) and machine X's lock, in the
// middle of recording X's first boot script — and shows that b keeps serving: other
// machines get DHCP, boot scripts, the installer and their done callback from b, and their
// DHCP timeline lines are written, all while a still holds X's lock; X itself, which asks b
// for its boot script eight times at once (firmware retrying), costs b one session waiting for
// X's lock, not one per request, and is served once PostgreSQL ends a's session for sitting
// idle in its transaction (a's connection string sets 30 s here, so that everything that must
// not wait for it finishes well before; fleetboot's default is store.IdleInTransactionTimeout).
//
// The freeze is deterministic, not a race: this test inserts X's machine row in a transaction
// of its own and leaves it uncommitted, so a's INSERT of X (after its locks are taken) waits
// for it; a is stopped while it waits, then the test rolls back, and a's session — its INSERT
// done, its reply unread — sits idle in its transaction holding the locks.
func TestHAPairSurvivorServesWhileItsPartnerHangsHoldingAMachineLock(t *testing.T) {
	const hangTimeout = 30 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	p := startHAPair(t, ctx, 64, true, fmt.Sprintf("&idle_in_transaction_session_timeout=%d", hangTimeout.Milliseconds()))
	db, err := sql.Open("pgx", p.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms := p.machines(t, 3)
	x, y, again := ms[0], ms[1], ms[2]
	x.fw, y.fw = FirmwareBIOSPXE, FirmwareBIOSPXE
	a, b := serverAddr(0), serverAddr(1)
	pid := p.servers[0].cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	mac := x.mac.String()

	// X has its address from b (DHCP takes no inventory lock), then asks a for its boot
	// script while this test's uncommitted row of X holds a's INSERT.
	x.server = b
	if _, _, err := p.ch.dhcp(ctx, x, stageFirmware); err != nil {
		t.Fatal(err)
	}
	row, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer row.Rollback()
	if _, err := row.ExecContext(ctx, `INSERT INTO machines (mac, state, first_seen, last_seen, state_changed) VALUES ($1, 'discovered', '', '', '')`, mac); err != nil {
		t.Fatal(err)
	}
	atA, stopAtA := context.WithCancel(ctx)
	defer stopAtA()
	scriptURL := func(i int) (string, error) {
		body, err := x.text(ctx, "http://"+serverHTTP(i).String()+"/boot.ipxe")
		if err != nil {
			return "", err
		}
		if next := chainURL(body); next != "" {
			return x.expand(next), nil
		}
		return "", fmt.Errorf("boot.ipxe of %s has no chain line:\n%s", haSites[i], body)
	}
	identifyA, err := scriptURL(0)
	if err != nil {
		t.Fatal(err)
	}
	go x.text(atA, identifyA) // fails once a's session is ended; nobody waits for it
	within(t, "a's sighting of X waiting for the test's row", func() (bool, error) {
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fleetboot-a'
			AND wait_event_type = 'Lock' AND wait_event = 'transactionid'`).Scan(&n)
		return n > 0, err
	})
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	within(t, "a stopped", func() (bool, error) {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false, err
		}
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		return len(f) > 0 && f[0] == "T", nil
	})
	if err := row.Rollback(); err != nil {
		t.Fatal(err)
	}
	within(t, "frozen a holding X's lock idle in its transaction", func() (bool, error) {
		_, idle, err := p.holdsMachineLock(ctx, db, 0, mac)
		return idle, err
	})
	frozen := time.Now()

	// X's firmware asks b for its boot script, eight times at once.
	identifyB, err := scriptURL(1)
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		at  time.Time
		err error
	}
	answers := make(chan answer, 8)
	for range cap(answers) {
		go func() {
			_, err := x.text(ctx, identifyB)
			answers <- answer{time.Now(), err}
		}()
	}
	within(t, "b waiting for X's lock", func() (bool, error) {
		n, err := p.lockWaiters(ctx, db, 1)
		return n > 0, err
	})
	// X's firmware DHCPs again (b records X's DHCP facts: X's lock is a's).
	if _, _, err := p.ch.dhcp(ctx, x, stageFirmware); err != nil {
		t.Errorf("X's DHCP at b while a hangs: %v", err)
	}

	// Another machine installs through b from DHCP to done, and its DHCP lines reach its
	// timeline, while a still holds X's lock.
	y.server = b
	res := p.ch.boot(ctx, y)
	if res.Failed != "" {
		t.Fatalf("install of another machine through b while a hangs: %s: %s", res.Failed, res.Err)
	}
	yInstalled := time.Since(frozen)
	var ym struct {
		State string `json:"state"`
	}
	if err := p.api[1].do(ctx, http.MethodGet, "/api/v1/machines/"+y.mac.String(), nil, "", &ym); err != nil {
		t.Fatal(err)
	}
	if ym.State != "installed" {
		t.Errorf("the other machine is %s at b, want installed", ym.State)
	}
	within(t, "the other machine's DHCP lines in its timeline", func() (bool, error) {
		var events []timelineEvent
		if err := p.api[1].do(ctx, http.MethodGet, "/api/v1/machines/"+y.mac.String()+"/events?limit=1000", nil, "", &events); err != nil {
			return false, err
		}
		n := 0
		for _, e := range events {
			if e.Kind == "dhcp" && e.Site == "b" {
				n++
			}
		}
		return n >= 2, nil // the firmware's and iPXE's ACK at least
	})
	waiters, err := p.lockWaiters(ctx, db, 1)
	if err != nil {
		t.Fatal(err)
	}
	if held, _, err := p.holdsMachineLock(ctx, db, 0, mac); err != nil {
		t.Fatal(err)
	} else if !held {
		t.Fatalf("a's session was ended (after %s) before b had served the other machine: b's service waited for the hung instance", time.Since(frozen).Round(time.Millisecond))
	}
	if waiters != 1 {
		t.Errorf("%d sessions of b wait for a lock while a hangs holding X's, want 1 (X's, however often X asks)", waiters)
	}
	t.Logf("a frozen holding X's lock: another machine installed through b %s after the freeze (a still holding it); b had %d session waiting for it",
		yInstalled.Round(time.Millisecond), waiters)

	// X's requests are answered once PostgreSQL ends a's session.
	var first, last time.Duration
	for range cap(answers) {
		var r answer
		select {
		case r = <-answers:
		case <-time.After(hangTimeout + liveness):
			t.Fatalf("X's boot script requests at b not answered %s after the freeze", time.Since(frozen).Round(time.Second))
		}
		if r.err != nil {
			t.Errorf("X's boot script at b: %v", r.err)
		}
		if d := r.at.Sub(frozen); first == 0 || d < first {
			first = d
		}
		if d := r.at.Sub(frozen); d > last {
			last = d
		}
	}
	if held, _, err := p.holdsMachineLock(ctx, db, 0, mac); err != nil || held {
		t.Errorf("the hung instance still holds X's lock (%v)", err)
	}
	t.Logf("X's %d boot script requests at b answered %s–%s after the freeze (a's idle_in_transaction_session_timeout %s)",
		cap(answers), first.Round(time.Millisecond), last.Round(time.Millisecond), hangTimeout)

	// X then installs through b while a still hangs.
	res = p.ch.boot(ctx, x)
	if res.Failed != "" {
		t.Errorf("install of X through b after a's session ended: %s: %s", res.Failed, res.Err)
	}
	var xm struct {
		State    string `json:"state"`
		Firmware string `json:"firmware"`
	}
	if err := p.api[1].do(ctx, http.MethodGet, "/api/v1/machines/"+mac, nil, "", &xm); err != nil {
		t.Fatal(err)
	}
	if xm.State != "installed" || xm.Firmware == "" {
		t.Errorf("X at b: %+v, want installed with its firmware kind from DHCP", xm)
	}

	// a wakes up and answers again.
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopAtA()
	again.server = a
	if acks, errs, _ := p.dhcpAll(ctx, []*machine{again}); errs[0] != nil {
		t.Errorf("a after it woke up: %v", errs[0])
	} else if replyServer(acks[0]) != a {
		t.Errorf("a after it woke up: ACK from %s", replyServer(acks[0]))
	}
	for _, c := range p.acks.conflicts() {
		t.Error(c)
	}
	for i := range p.servers {
		if err := p.servers[i].alive(); err != nil {
			t.Errorf("server %s: %v", haSites[i], err)
		}
	}
}

// TestHAPairPartnersInformRepliesAreNoRogueServer: a machine with an address of its own sends
// DHCPINFORM asking for a broadcast answer; both instances of the pair answer, and each sees
// its partner's ACK, which names no address the shared lease table could vouch for. Each must
// take it for its partner's (both announce themselves on the shared table), in both
// directions: no rogue-dhcp quirk, no error.
func TestHAPairPartnersInformRepliesAreNoRogueServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := startHAPair(t, ctx, 16, false)
	ms := p.machines(t, 2)
	static, later := ms[0], ms[1]
	static.ip = addrAdd(poolStart, -5) // configured by hand, outside the pool
	req, err := dhcpv4.New(dhcpv4.WithHwAddr(static.mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform),
		dhcpv4.WithClientIP(net.IP(static.ip.AsSlice())), dhcpv4.WithBroadcast(true))
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.servers {
		ack, _, err := p.wire.exchange(ctx, static.mac, static.ip, netip.AddrFrom4([4]byte{255, 255, 255, 255}), 67, serverAddr(i), req, dhcpv4.MessageTypeAck)
		if err != nil {
			t.Fatalf("DHCPINFORM answered by %s: %v", haSites[i], err)
		}
		if !ack.YourIPAddr.IsUnspecified() {
			t.Fatalf("%s's ACK to DHCPINFORM names address %s", haSites[i], ack.YourIPAddr)
		}
	}
	// Each has seen its partner's ACK (fleetboot_dhcp_packets_total{kind="ignored"}: the
	// partner's replies are the only other server's on this segment so far)…
	for i := range p.servers {
		within(t, haSites[i]+" seeing its partner's ACK", func() (bool, error) {
			return p.metric(t, ctx, i, "fleetboot_dhcp_packets_total", "kind")["ignored"] > 0, nil
		})
	}
	// … and its timeline writer has delivered what came before a later machine's DHCP lines
	// (it writes in order; a rogue-dhcp quirk would be reported by then).
	if _, _, err := p.ch.dhcp(ctx, later, stageFirmware); err != nil {
		t.Fatal(err)
	}
	within(t, "the later machine's DHCP lines by both instances", func() (bool, error) {
		var events []struct {
			timelineEvent
			MAC string `json:"mac"`
		}
		if err := p.api[0].do(ctx, http.MethodGet, "/api/v1/events?limit=1000", nil, "", &events); err != nil {
			return false, err
		}
		sites := map[string]bool{}
		for _, e := range events {
			if e.Kind == "dhcp" && e.MAC == later.mac.String() {
				sites[e.Site] = true
			}
		}
		return sites["a"] && sites["b"], nil
	})
	for i := range p.servers {
		p.noRogueQuirks(t, ctx, i)
		if err := p.servers[i].alive(); err != nil {
			t.Errorf("server %s: %v", haSites[i], err)
		}
	}
}
