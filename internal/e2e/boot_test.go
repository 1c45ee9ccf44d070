package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// Knobs, all optional:
//
//	FLEETBOOT_E2E=1 or CI=true fail (not skip) when root or a package is missing
//	FLEETBOOT_E2E=0            skip the boot suite (so does -short)
//	FLEETBOOT_BIN              test this binary instead of building ./cmd/fleetboot
//	FLEETBOOT_E2E_LOGDIR       keep every log (serial consoles, fleetboot, dnsmasq, QEMU) and
//	                           fleetboot's data dir in <dir>/<mode>/ (emptied at start) instead
//	                           of a temporary directory removed after the test
//	FLEETBOOT_E2E_VM_TIMEOUT   per-VM limit (Go duration), default 10m; real installers get 3×
//	FLEETBOOT_E2E_MODES        DHCP modes to run, comma-separated, default "full,proxy"
//	FLEETBOOT_E2E_SERIAL_MODES run the modes one after the other instead of all VMs at once
//
// The default is generous because it only stops a VM that will never get there: a boot takes
// 8–20 s on an idle machine, but with every scenario's VM under TCG at once on two cores that
// are also busy, the boot suite reached the token after up to 9m52s (four VMs, full mode
// only), and every VM failed at the former 240 s bound in runs that were merely slow.
const defaultVMTimeout = 10 * time.Minute

// vmTimeout is the per-VM limit: FLEETBOOT_E2E_VM_TIMEOUT, else defaultVMTimeout. Scenarios
// booting a real installer allow a multiple of it.
func vmTimeout(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("FLEETBOOT_E2E_VM_TIMEOUT")
	if v == "" {
		return defaultVMTimeout
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("FLEETBOOT_E2E_VM_TIMEOUT=%q: want a positive Go duration such as 600s", v)
	}
	return d
}

// payloadArgs start every payload kernel's command line (see newBootEnv).
const payloadArgs = "console=ttyS0 quiet panic=1 no_timer_check"

// bootEnv is one DHCP mode's world: a LAN, the boot server under test and its payload.
type bootEnv struct {
	mode      string // full or proxy
	lan       *lan
	dir       string // logs and per-VM files
	token     string // printed by the payload; unique per server instance
	cmdline   string // kernel command line the server is told to hand out
	kernel    string // payload kernel (a path on the host)
	initrd    []byte // payload initramfs
	serverLog string
	sercon    string // SeaBIOS etc/sercon-port value file
}

// serverStarter starts the boot server under test in env's LAN for env.mode and returns once it
// serves, with the process to watch: if it dies, the VMs still booting fail at once. In proxy
// mode the site DHCP server is already running.
type serverStarter func(t *testing.T, env *bootEnv) *proc

// TestMachinesNetworkBootThroughFleetboot is the end-to-end proof: for each DHCP mode (full:
// fleetboot hands out addresses; proxy: a separate site DHCP server does and fleetboot only adds
// boot options), four VMs — SeaBIOS+iPXE ROM, legacy BIOS PXE via TFTP undionly.kpxe, OVMF PXE
// via TFTP snponly.efi, OVMF HTTP Boot — must boot the kernel and initrd fleetboot serves with
// fleetboot's command line.
func TestMachinesNetworkBootThroughFleetboot(t *testing.T) {
	requireBootSuite(t)
	t.Parallel() // next to the ISO scenarios, on their own LAN
	runBootSuite(t, startFleetboot)
}

// runBootSuite boots every scenario in every mode against the server start starts, and prints
// per-VM boot times and a summary table.
func runBootSuite(t *testing.T, start serverStarter) {
	initrd, err := buildInitramfs(busyboxPath)
	if err != nil {
		t.Fatalf("build payload initramfs: %v", err)
	}
	timeout := vmTimeout(t)
	modes := []string{"full", "proxy"}
	if v := os.Getenv("FLEETBOOT_E2E_MODES"); v != "" {
		modes = strings.Split(v, ",")
		for _, m := range modes {
			if m != "full" && m != "proxy" {
				t.Fatalf("FLEETBOOT_E2E_MODES: %q is not full or proxy", m)
			}
		}
	}
	parallelModes := os.Getenv("FLEETBOOT_E2E_SERIAL_MODES") == ""

	// VMs run concurrently through goroutines calling t.Run rather than t.Parallel: go test
	// caps parallel tests at -parallel (GOMAXPROCS, 2 here), which would boot two VMs at a time.
	var mu sync.Mutex
	var results []bootResult
	suiteStart := time.Now()
	var modesWG sync.WaitGroup
	for _, mode := range modes {
		modesWG.Add(1)
		runMode := func() {
			defer modesWG.Done()
			t.Run("dhcp="+mode, func(t *testing.T) {
				env := newBootEnv(t, mode, initrd)
				if mode == "proxy" {
					startSiteDHCP(t, env)
				}
				server := start(t, env)
				ctx, cancel := context.WithCancelCause(context.Background())
				t.Cleanup(func() { cancel(nil) }) // runs before the server is stopped
				go func() {
					select {
					case <-server.done:
						cancel(fmt.Errorf("%s exited during the boot (%v)", server.name, server.err))
					case <-ctx.Done():
					}
				}()
				var vmsWG sync.WaitGroup
				for i, sc := range scenarios {
					vm := newVMSpec(t, env.lan, env.dir, mode, sc, i)
					vmsWG.Add(1)
					go func() {
						defer vmsWG.Done()
						t.Run(sc.name, func(t *testing.T) {
							res := bootVM(ctx, t, env.lan, vm, env.sercon, env.token, timeout)
							res.mode = mode
							if res.err == nil {
								serverLog, err := os.ReadFile(env.serverLog)
								if err == nil {
									err = checkServerLog(serverLog, vm.mac, vm.scenario.server)
								}
								res.err = err
							}
							mu.Lock()
							results = append(results, res)
							mu.Unlock()
							if res.err != nil {
								t.Errorf("%s (%s): %v\n%s", vm.name, vm.mac, res.err, failureReport(env, vm))
								return
							}
							t.Logf("%s (%s): boot.ipxe requested after %s, token seen %s after VM start", vm.name, vm.mac,
								res.script.Round(100*time.Millisecond), res.elapsed.Round(100*time.Millisecond))
						})
					}()
				}
				vmsWG.Wait()
			})
		}
		if parallelModes {
			go runMode()
		} else {
			runMode()
		}
	}
	modesWG.Wait()
	t.Logf("boot summary (wall time %s):\n%s", time.Since(suiteStart).Round(time.Second), summaryTable(results))
}

// newBootEnv creates the LAN and the payload for one mode.
func newBootEnv(t *testing.T, mode string, initrd []byte) *bootEnv {
	t.Helper()
	return newBootEnvOn(t, mode, initrd, lanSegment)
}

// newBootEnvOn is newBootEnv on a LAN with seg's addressing.
func newBootEnvOn(t *testing.T, mode string, initrd []byte, seg segment) *bootEnv {
	t.Helper()
	dir := t.TempDir()
	if base := os.Getenv("FLEETBOOT_E2E_LOGDIR"); base != "" {
		// Start empty: a previous run's database, leases or logs must not leak into this one.
		dir = filepath.Join(base, mode)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tok := make([]byte, 8)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	sercon, err := writeSerconFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &bootEnv{
		mode: mode,
		lan:  newLANOn(t, mode, seg),
		dir:  dir,
		// quiet: printing the kernel's ~20 KB boot log through an emulated UART costs ~12 s of
		// TCG time per VM; errors and panics still print. panic=1: a payload that cannot run
		// init reboots at once, and -no-reboot turns that into a QEMU exit the test sees
		// immediately instead of a timeout. no_timer_check: with many TCG VMs on few cores the
		// kernel's early check that the timer interrupt ticks can miss its real-time window
		// and panic ("IO-APIC + timer doesn't work!"), seen here with 14 VMs on 2 cores.
		cmdline:   payloadArgs + " fbtoken=" + token,
		token:     token,
		kernel:    kernelPath,
		initrd:    initrd,
		serverLog: filepath.Join(dir, "server.log"),
		sercon:    sercon,
	}
}

// startFleetboot runs the fleetboot binary under test in the LAN namespace, bound to br0, with
// the payload as its default boot target, and waits for /healthz.
func startFleetboot(t *testing.T, env *bootEnv) *proc {
	t.Helper()
	data := filepath.Join(env.dir, "data")
	if err := writeAssets(filepath.Join(data, "assets"), env); err != nil {
		t.Fatalf("assets: %v", err)
	}
	args := []string{suite.bin, "serve",
		"--data", data,
		"--interface", lanBridge,
		"--advertise-ip", lanServerIP,
		"--http", ":8080",
		"--dhcp", env.mode,
		"--tftp", ":69",
		"--boot-kernel", "vmlinuz",
		"--boot-initrd", "initrd.img",
		"--boot-cmdline", env.cmdline,
		// These scenarios prove the iPXE paths (snponly.efi over PXE and HTTP Boot); the
		// default chain auto (shim → GRUB → iPXE) has its own scenario in secureboot_test.go.
		"--boot-chain", "ipxe",
		"--log-format", "json",
		"--log-level", "debug",
	}
	if env.mode == "full" {
		args = append(args,
			"--pool", lanPoolLo+"-"+lanPoolHi,
			"--netmask", lanNetmask,
			"--router", lanServerIP,
			"--dns", lanServerIP,
			"--lease-time", "1h")
	}
	p := startProc(t, "fleetboot", env.serverLog, env.lan.lan.command(args...)...)
	waitHTTP(t, env, p, "http://"+lanServerIP+":8080/healthz")
	return p
}

// writeAssets puts the payload kernel (as vmlinuz) and initramfs (as initrd.img) into dir.
func writeAssets(dir string, env *bootEnv) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src, err := os.Open(env.kernel)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(filepath.Join(dir, "vmlinuz"))
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "initrd.img"), env.initrd, 0o644)
}

// waitHTTP polls url from inside the LAN until it answers 200, failing early if p exits.
func waitHTTP(t *testing.T, env *bootEnv, p *proc, url string) {
	t.Helper()
	client := env.lan.lan.httpClient(2 * time.Second)
	deadline := time.Now().Add(2 * time.Minute) // startup is seconds; the VMs of other modes may be booting
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s exited before serving (%v):\n%s", p.name, p.err, readableTail(p.log, 40))
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s never served %s (last: %s):\n%s", p.name, url, last, readableTail(p.log, 40))
}

// startSiteDHCP runs the stand-in for a site's own DHCP server in proxy mode: dnsmasq in the
// site namespace handing out addresses only, with no PXE options at all, so every boot option a
// machine gets must come from fleetboot's proxyDHCP answer.
func startSiteDHCP(t *testing.T, env *bootEnv) {
	t.Helper()
	logPath := filepath.Join(env.dir, "site-dnsmasq.log")
	args := []string{"dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--interface=" + lanSiteLink, "--bind-interfaces",
		fmt.Sprintf("--dhcp-range=%s,%s,%s,1h", lanPoolLo, lanPoolHi, lanNetmask),
		"--dhcp-leasefile=" + filepath.Join(env.dir, "site-dnsmasq.leases"),
		"--pid-file=" + filepath.Join(env.dir, "site-dnsmasq.pid"),
		"--port=0", "--log-dhcp", "--log-facility=-"}
	p := startProc(t, "site dnsmasq", logPath, env.lan.site.command(args...)...)
	deadline := time.Now().Add(2 * time.Minute) // dnsmasq starts at once; the bound is for a loaded machine
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), "DHCP, IP range") {
			return
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("site dnsmasq did not start (%v):\n%s", p.err, readableTail(logPath, 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// failureReport gathers what explains a failed boot: the VM's serial console, the server's log
// lines about this machine, and QEMU's own messages.
func failureReport(env *bootEnv, vm vmSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- serial console %s (last 60 lines) ---\n%s\n", vm.serialLog, readableTail(vm.serialLog, 60))
	fmt.Fprintf(&b, "--- server log lines about %s (last 30) ---\n%s\n", vm.mac, grepTail(env.serverLog, macForms(vm.mac), 30))
	fmt.Fprintf(&b, "--- server log %s (last 20 lines) ---\n%s\n", env.serverLog, readableTail(env.serverLog, 20))
	fmt.Fprintf(&b, "--- qemu %s ---\n%s", vm.qemuLog, readableTail(vm.qemuLog, 10))
	return b.String()
}

// macForms are the spellings of a MAC a log line may use: colons, and the hyphens of iPXE's
// ${net0/mac:hexhyp} in boot URLs.
func macForms(mac string) []string {
	return []string{mac, strings.ReplaceAll(mac, ":", "-")}
}

// grepTail returns the last n lines of path that contain any of needles.
func grepTail(path string, needles []string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	var hits []string
	for _, l := range strings.Split(string(data), "\n") {
		low := strings.ToLower(l)
		for _, nd := range needles {
			if strings.Contains(low, strings.ToLower(nd)) {
				hits = append(hits, l)
				break
			}
		}
	}
	if len(hits) > n {
		hits = hits[len(hits)-n:]
	}
	if len(hits) == 0 {
		return "(none)"
	}
	return strings.Join(hits, "\n")
}

// summaryTable renders one row per VM, in mode and scenario order.
func summaryTable(results []bootResult) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MODE\tSCENARIO\tMAC\tRESULT\tTO BOOT.IPXE\tTO TOKEN")
	for _, mode := range []string{"full", "proxy"} {
		for _, sc := range scenarios {
			for _, r := range results {
				if r.mode != mode || r.scenario != sc.name {
					continue
				}
				status, script, took := "ok", "-", "-"
				if r.err != nil {
					status = "FAIL"
				}
				if r.script > 0 {
					script = r.script.Round(100 * time.Millisecond).String()
				}
				if r.elapsed > 0 {
					took = r.elapsed.Round(100 * time.Millisecond).String()
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.mode, r.scenario, r.mac, status, script, took)
			}
		}
	}
	w.Flush()
	return b.String()
}
