// Package simulate rehearses a mass install: it boots a fleet of simulated machines against a
// real fleetboot server, each through the whole chain its firmware would go through (DHCP,
// TFTP or HTTP Boot, iPXE's DHCP, the boot and identify scripts, kernel and initrds, the
// unattended file, the done callback), inside a private pair of network namespaces, and
// reports per-phase latency, failures and throughput.
package simulate

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// httpPort is where every server listens for HTTP, on its own address.
const httpPort = 8080

// serverHTTP is where server i listens in its namespace.
func serverHTTP(i int) netip.AddrPort { return netip.AddrPortFrom(serverAddr(i), httpPort) }

// Config is one simulation run.
type Config struct {
	// Binary is the fleetboot executable the server runs from (normally the running one).
	Binary string
	// Machines is how many machines boot; Mix weighs the firmware kinds (default: equal).
	Machines int
	Mix      map[Firmware]int
	// Spread is the window the machines power on in (uniformly spread; 0: all at once).
	Spread time.Duration
	// Mode is the server's DHCP mode: full (the server hands out addresses) or proxy (the
	// machines' addresses come from a stand-in for the site's DHCP server: the simulator).
	Mode string
	// DataDir is the server's data directory. Empty: a fresh one with a generated ISO,
	// profile and rule (the self-contained rehearsal); otherwise the operator's (a copy!),
	// whose profiles and rules decide what the machines install.
	DataDir string
	// MACs, when given, are the machines' MACs (an operator's real fleet, so that its rules
	// and registered machines apply); otherwise locally administered 02:fb:… addresses.
	MACs []net.HardwareAddr
	// InitrdMB is the size of the generated ISO's initrd (the kernel is Debian's installer
	// kernel), for the self-contained rehearsal.
	InitrdMB int
	// ServeArgs are extra flags for `fleetboot serve`.
	ServeArgs []string
	// Servers is how many instances serve the one simulated segment (default 1). More than
	// one is an HA pair (or more) and needs Database: every instance runs on its own data
	// directory with the same DHCP pool, and the machines take the first OFFER, from either.
	Servers int
	// Database is the PostgreSQL URL the servers share (--database); empty: SQLite in the
	// data directory (one server only).
	Database string
	// poolEnd, if set, ends full mode's pool early (tests: a pool just as large as the fleet).
	poolEnd netip.Addr
	// Progress receives the live progress line (nil: none); Log the run's own log.
	Progress io.Writer
	Log      *slog.Logger
	// Timeout bounds the whole run (default 30 minutes).
	Timeout time.Duration
}

// Run performs the simulation. Everything it creates (namespaces, server process, temporary
// data) is removed before it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Machines <= 0 || cfg.Machines > 4000 {
		return nil, fmt.Errorf("machines: %d, want 1 to 4000 (the simulated LAN's pool)", cfg.Machines)
	}
	if cfg.Mode != "full" && cfg.Mode != "proxy" {
		return nil, fmt.Errorf("dhcp mode %q: want full or proxy", cfg.Mode)
	}
	if cfg.Servers == 0 {
		cfg.Servers = 1
	}
	if cfg.Servers < 1 || cfg.Servers > maxServers {
		return nil, fmt.Errorf("servers: %d, want 1 to %d", cfg.Servers, maxServers)
	}
	if cfg.Servers > 1 && cfg.Database == "" {
		return nil, errors.New("several servers share one segment only through a PostgreSQL database: give --database")
	}
	if cfg.Servers > 1 && cfg.DataDir != "" {
		return nil, errors.New("several servers run on fresh data directories each: --data is for one server")
	}
	if len(cfg.MACs) > 0 && len(cfg.MACs) < cfg.Machines {
		return nil, fmt.Errorf("%d MACs given for %d machines", len(cfg.MACs), cfg.Machines)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	kinds, err := firmwareDeck(cfg.Mix, cfg.Machines)
	if err != nil {
		return nil, err
	}

	work, err := os.MkdirTemp("", "fleetboot-simulate-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	data := cfg.DataDir
	generated := data == ""
	if generated {
		data = filepath.Join(work, "data")
	}

	l, err := newLAN(cfg.Servers)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := l.Close(); err != nil {
			cfg.Log.Warn("cannot delete the simulation's namespaces", "err", err)
		}
	}()
	ns, err := enterNS(l.client)
	if err != nil {
		return nil, err
	}
	defer ns.close()

	// Several servers: one admin token for all (each generates its own otherwise), and the
	// generated ISO registered in place from a directory all of them read — an instance
	// serves only image bytes it can open (README "Several instances").
	serveArgs := cfg.ServeArgs
	var token, images string
	if cfg.Servers > 1 {
		var b [24]byte
		rand.Read(b[:])
		token = hex.EncodeToString(b[:])
		images = filepath.Join(work, "images")
		if err := os.MkdirAll(images, 0o755); err != nil {
			return nil, err
		}
		serveArgs = append(slices.Clip(serveArgs), "--token", token, "--register-dir", images)
	}
	if cfg.Database != "" {
		serveArgs = append(slices.Clip(serveArgs), "--database", cfg.Database)
	}
	servers := make([]*server, cfg.Servers)
	for i := range servers {
		d := data
		args := serveArgs
		if cfg.Servers > 1 {
			d = filepath.Join(work, fmt.Sprintf("data-%d", i))
			args = append(slices.Clip(args), "--site", siteName(i))
		}
		if servers[i], err = startServer(cfg, l, i, d, filepath.Join(work, fmt.Sprintf("server-%d.log", i)), args); err != nil {
			return nil, err
		}
		defer servers[i].stop(cfg.Log)
	}
	api := newAPIClient(ns, serverHTTP(0), token)
	for i, srv := range servers {
		if err := newAPIClient(ns, serverHTTP(i), "").waitHealthy(ctx, srv); err != nil {
			return nil, err
		}
	}
	if token == "" {
		if api.token, err = readToken(ctx, data); err != nil {
			return nil, err
		}
	}
	if generated {
		if err := setupFixture(ctx, api, work, cfg.InitrdMB, images); err != nil {
			return nil, fmt.Errorf("prepare the rehearsal's ISO and profile: %w", err)
		}
	}

	acks := newAckLedger()
	w, err := newWire(ns, l.clientIf, acks.record)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	ch := &chain{ns: ns, wire: w, full: cfg.Mode == "full", progress: newProgress()}
	machines := makeMachines(cfg, kinds, ch, ns)

	cpu0 := serversCPU(servers)
	start := time.Now()
	stopProgress := runProgress(cfg.Progress, ch.progress, len(machines), start)
	results := make([]machineResult, len(machines))
	var wg sync.WaitGroup
	for i, m := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(m.start):
			case <-ctx.Done():
				results[i] = machineResult{MAC: m.mac.String(), Firmware: m.fw, Failed: "power-on", Err: ctx.Err().Error()}
				return
			}
			ch.progress.started.Add(1)
			results[i] = ch.boot(ctx, m)
			ch.progress.finished.Add(1)
			if results[i].Failed != "" {
				ch.progress.failed.Add(1)
			}
			m.client.CloseIdleConnections()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	stopProgress()
	cpu1 := serversCPU(servers)

	rep := summarize(results, wall)
	rep.Mode, rep.Spread, rep.ServerCPU = cfg.Mode, Duration(cfg.Spread), Duration(cpu1-cpu0)
	w.mu.Lock()
	rep.DHCPDrops = w.drops
	w.mu.Unlock()
	if cfg.Mode == "full" {
		rep.AcksByServer, rep.DuplicateAddresses = acks.summary()
	}
	installed, err := api.installed(ctx, machines)
	if err != nil {
		return rep, fmt.Errorf("ask the server which machines are installed: %w", err)
	}
	rep.ServerInstalled = installed
	for i, srv := range servers {
		if err := srv.alive(); err != nil {
			return rep, fmt.Errorf("server %d: %w (log: %s)", i, err, srv.tail())
		}
	}
	return rep, nil
}

// siteName is the --site of server i when several serve the segment: sim-a, sim-b, ….
func siteName(i int) string { return "sim-" + string(rune('a'+i)) }

// serversCPU is the user+system CPU time of all servers so far.
func serversCPU(servers []*server) time.Duration {
	var sum time.Duration
	for _, s := range servers {
		c, _ := s.cpu()
		sum += c
	}
	return sum
}

// firmwareDeck deals n firmware kinds in the mix's proportions, interleaved.
func firmwareDeck(mix map[Firmware]int, n int) ([]Firmware, error) {
	if len(mix) == 0 {
		mix = map[Firmware]int{}
		for _, f := range Firmwares {
			mix[f] = 1
		}
	}
	total := 0
	for f, w := range mix {
		if !validFirmware(f) {
			return nil, fmt.Errorf("firmware kind %q: want one of %v", f, Firmwares)
		}
		if w < 0 {
			return nil, fmt.Errorf("firmware kind %s: negative weight", f)
		}
		total += w
	}
	if total == 0 {
		return nil, errors.New("firmware mix: all weights are 0")
	}
	// Largest remainder per machine: machine i gets the kind furthest behind its share.
	out := make([]Firmware, n)
	dealt := map[Firmware]int{}
	for i := range out {
		best, bestLag := Firmware(""), -1.0
		for _, f := range Firmwares {
			w := mix[f]
			if w == 0 {
				continue
			}
			lag := float64(i+1)*float64(w)/float64(total) - float64(dealt[f])
			if lag > bestLag {
				best, bestLag = f, lag
			}
		}
		out[i] = best
		dealt[best]++
	}
	return out, nil
}

func validFirmware(f Firmware) bool {
	for _, k := range Firmwares {
		if k == f {
			return true
		}
	}
	return false
}

// ParseMix parses "bios-pxe=1,uefi-pxe=2,…" (weights; missing kinds get 0).
func ParseMix(s string) (map[Firmware]int, error) {
	if s == "" {
		return nil, nil
	}
	out := map[Firmware]int{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("mix entry %q: want KIND=WEIGHT, e.g. uefi-pxe=3", part)
		}
		if !validFirmware(Firmware(k)) {
			return nil, fmt.Errorf("mix entry %q: kind must be one of %v", part, Firmwares)
		}
		out[Firmware(k)] = n
	}
	return out, nil
}

func makeMachines(cfg Config, kinds []Firmware, ch *chain, ns *nsThread) []*machine {
	out := make([]*machine, cfg.Machines)
	for i := range out {
		m := &machine{n: i, fw: kinds[i]}
		if len(cfg.MACs) > 0 {
			m.mac = cfg.MACs[i]
		} else {
			m.mac = net.HardwareAddr{0x02, 0xfb, 0x5e, byte(i >> 16), byte(i >> 8), byte(i)}
		}
		rand.Read(m.uuid[:])
		if !ch.full {
			// The stand-in site server's address for this machine.
			m.ip = addrAdd(poolStart, i)
		}
		if cfg.Spread > 0 && cfg.Machines > 1 {
			j, _ := rand.Int(rand.Reader, big.NewInt(int64(cfg.Spread)))
			m.start = time.Duration(j.Int64())
		}
		mm := m
		m.client = &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{
			// Each machine is one host with its own address and its own connections.
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				ap, err := netip.ParseAddrPort(addr)
				if err != nil {
					return nil, err
				}
				return ns.dialTCP(netip.AddrPortFrom(mm.ip, 0), ap)
			},
			MaxIdleConnsPerHost: 1, DisableCompression: true,
		}}
		out[i] = m
	}
	return out
}

func addrAdd(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// runProgress writes the live line every second until stopped.
func runProgress(w io.Writer, p *progress, total int, start time.Time) func() {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastT := int64(0), start
		for {
			select {
			case <-done:
				fmt.Fprintln(w, p.line(total, time.Since(start), last, max(time.Since(lastT), time.Millisecond)))
				return
			case now := <-t.C:
				fmt.Fprintln(w, p.line(total, now.Sub(start), last, now.Sub(lastT)))
				last, lastT = p.bytes.Load(), now
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// server is the fleetboot serve process in the server namespace.
type server struct {
	cmd  *exec.Cmd
	log  string
	exit chan error
}

// startServer starts server i of the LAN on data, with extra serve flags.
func startServer(cfg Config, l *lan, i int, data, logPath string, extra []string) (*server, error) {
	bin := cfg.Binary
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		bin = exe
	}
	ls := l.servers[i]
	args := []string{"netns", "exec", ls.ns, bin, "serve",
		"--data", data, "--interface", ls.ifName, "--advertise-ip", ls.ip.String(),
		"--http", serverHTTP(i).String(), "--dhcp", cfg.Mode,
		// The simulated machines speak iPXE after the firmware step; the signed shim → GRUB
		// chain is not simulated.
		"--boot-chain", "ipxe"}
	if cfg.Mode == "full" {
		end := poolEnd
		if cfg.poolEnd.IsValid() {
			end = cfg.poolEnd
		}
		args = append(args, "--pool", poolStart.String()+"-"+end.String(), "--netmask", net.IP(net.CIDRMask(lanPrefix, 32)).String(),
			"--router", serverIP.String())
	}
	args = append(args, extra...)
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	// `ip netns exec` enters the namespace and executes the binary: the PID is the server's.
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the server: %w", err)
	}
	s := &server{cmd: cmd, log: logPath, exit: make(chan error, 1)}
	go func() { s.exit <- cmd.Wait() }()
	return s, nil
}

// alive reports an error if the server has exited.
func (s *server) alive() error {
	select {
	case err := <-s.exit:
		s.exit <- err
		return fmt.Errorf("exited: %v", err)
	default:
		return nil
	}
}

// stop ends the server: SIGTERM, and SIGKILL if it has not exited after 20 s.
func (s *server) stop(log *slog.Logger) {
	if s.alive() != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exit:
	case <-time.After(20 * time.Second):
		log.Warn("server did not stop in 20 s: killing it", "pid", s.cmd.Process.Pid)
		s.cmd.Process.Kill()
		<-s.exit
	}
}

// cpu is the server's user+system CPU time so far.
func (s *server) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// tail is the end of the server's log, for error messages.
func (s *server) tail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func readToken(ctx context.Context, data string) (string, error) {
	for i := 0; i < 100; i++ {
		if b, err := os.ReadFile(filepath.Join(data, "api-token")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("the server wrote no %s", filepath.Join(data, "api-token"))
}

// apiClient talks to one server's API from the client namespace.
type apiClient struct {
	http  *http.Client
	base  netip.AddrPort
	token string
}

func newAPIClient(ns *nsThread, base netip.AddrPort, token string) *apiClient {
	return &apiClient{base: base, token: token, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return nil, err
			}
			return ns.dialTCP(netip.AddrPortFrom(clientIP, 0), ap)
		},
	}, Timeout: 5 * time.Minute}}
}

func (c *apiClient) do(ctx context.Context, method, path string, body io.Reader, ctype string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.base.String()+path, body)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *apiClient) doJSON(ctx context.Context, method, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, method, path, strings.NewReader(string(b)), "application/json", out)
}

// waitHealthy waits (bounded: 2 minutes) for /healthz.
func (c *apiClient) waitHealthy(ctx context.Context, s *server) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if err := s.alive(); err != nil {
			return fmt.Errorf("server %w: %s", err, s.tail())
		}
		if err := c.do(ctx, http.MethodGet, "/healthz", nil, "", nil); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("server not healthy after 2 minutes: %s", s.tail())
}

// installed counts the simulated machines the server lists as installed.
func (c *apiClient) installed(ctx context.Context, ms []*machine) (int, error) {
	var list []struct {
		MAC   string `json:"mac"`
		State string `json:"state"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/machines", nil, "", &list); err != nil {
		return 0, err
	}
	ours := map[string]bool{}
	for _, m := range ms {
		ours[m.mac.String()] = true
	}
	n := 0
	for _, m := range list {
		if ours[strings.ToLower(m.MAC)] && m.State == "installed" {
			n++
		}
	}
	return n, nil
}

// debianKernel is the installer kernel the self-contained rehearsal's ISO carries (Debian
// package debian-installer-12-netboot-amd64, which the test suite installs too).
const debianKernel = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux"

// setupFixture publishes a Debian-netboot-shaped ISO (Debian's installer kernel, a random
// initrd of initrdMB MiB), a profile with a preseed template whose late command calls done,
// and a rule that installs it on every simulated machine. With images set, the ISO is written
// there and registered in place (every server of the LAN reads it from there); otherwise it
// is uploaded.
func setupFixture(ctx context.Context, api *apiClient, work string, initrdMB int, images string) error {
	if _, err := exec.LookPath("xorriso"); err != nil {
		return errors.New("xorriso is needed to build the rehearsal's ISO (apt-get install xorriso)")
	}
	kernel, err := os.ReadFile(debianKernel)
	if err != nil {
		return fmt.Errorf("%w (apt-get install debian-installer-12-netboot-amd64, or rehearse with your own --data)", err)
	}
	tree := filepath.Join(work, "iso")
	initrd := make([]byte, max(initrdMB, 1)<<20)
	rand.Read(initrd)
	files := map[string][]byte{
		"linux":        kernel,
		"initrd.gz":    initrd,
		"isolinux.cfg": []byte("path \ninclude menu.cfg\ndefault vesamenu.c32\nprompt 0\ntimeout 0\n"),
		"menu.cfg":     []byte("menu title Debian GNU/Linux installer menu (BIOS mode)\ninclude txt.cfg\n"),
		"txt.cfg":      []byte("default install\nlabel install\n\tmenu label ^Install\n\tmenu default\n\tkernel linux\n\tappend vga=788 initrd=initrd.gz --- quiet\n"),
	}
	for name, b := range files {
		if err := os.MkdirAll(tree, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tree, name), b, 0o644); err != nil {
			return err
		}
	}
	iso := filepath.Join(work, "rehearsal.iso")
	if images != "" {
		iso = filepath.Join(images, "rehearsal.iso")
	}
	if out, err := exec.CommandContext(ctx, "xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "ISOIMAGE", "-o", iso, tree).CombinedOutput(); err != nil {
		return fmt.Errorf("xorriso: %v: %s", err, out)
	}
	os.RemoveAll(tree)
	var up struct {
		ID string `json:"id"`
	}
	if images != "" {
		if err := api.doJSON(ctx, http.MethodPost, "/api/v1/isos/register", map[string]string{"name": "rehearsal", "path": iso}, &up); err != nil {
			return err
		}
	} else {
		f, err := os.Open(iso)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := api.do(ctx, http.MethodPut, "/api/v1/isos/rehearsal", bufio.NewReader(f), "application/octet-stream", &up); err != nil {
			return err
		}
	}
	prof := map[string]any{
		"name": "rehearsal", "iso": up.ID, "template_kind": "preseed",
		"template": "#_preseed_V1\n# fleetboot rehearsal for {{.Hostname}}\nd-i debian-installer/locale string en_US\n" +
			"d-i preseed/late_command string {{.DoneCommand}}\n",
	}
	if err := api.doJSON(ctx, http.MethodPost, "/api/v1/profiles", prof, nil); err != nil {
		return err
	}
	return api.doJSON(ctx, http.MethodPost, "/api/v1/rules", map[string]any{"mac_prefix": "02:fb:5e", "profile": "rehearsal", "install": true}, nil)
}
