package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Firmware and payload files, all from Debian packages (scripts/deps.sh installs them).
const (
	ovmfCode    = "/usr/share/OVMF/OVMF_CODE_4M.fd"                                             // ovmf
	ovmfVars    = "/usr/share/OVMF/OVMF_VARS_4M.fd"                                             // ovmf
	ipxeLkrn    = "/usr/lib/ipxe/ipxe.lkrn"                                                     // ipxe
	kernelPath  = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux" // debian-installer-12-netboot-amd64
	busyboxPath = "/bin/busybox"                                                                // busybox-static
	qemuBinary  = "qemu-system-x86_64"                                                          // qemu-system-x86 (+ seabios, ipxe-qemu)
)

// scenario is one way a machine network-boots.
type scenario struct {
	name string
	// evidence is what the serial console must show, in this order, before the payload's
	// token: proof that the boot took this scenario's path and not a fallback (say, a NIC ROM
	// booting after the path under test failed).
	evidence []string
	// giveUp is what the firmware prints once every boot option has failed; seeing it ends the
	// VM at once instead of waiting for the timeout.
	giveUp string
	// server is what fleetboot's log must show for this machine (see checkServerLog).
	server serverExpectation
}

// scenarios are the four boot paths the suite proves, one VM each per DHCP mode.
var scenarios = []scenario{
	{
		// SeaBIOS runs the NIC's option ROM, which is iPXE (ipxe-qemu): the DHCP client is
		// already iPXE (user-class "iPXE") and gets the boot.ipxe URL at once.
		name:     "bios",
		evidence: []string{"iPXE", "/boot.ipxe", "/assets/"},
		giveUp:   "No bootable device",
		server:   serverExpectation{firmware: "ipxe", file: "/boot.ipxe"},
	},
	{
		// A legacy BIOS PXE client that is not iPXE, see legacyPXEScript. The NIC has no option
		// ROM at all here, so nothing could fall back to booting the NIC's iPXE.
		name: "bios-tftp",
		evidence: []string{
			"fleetboot-e2e: legacy PXE client",
			"tftp://" + lanServerIP + "/undionly.kpxe",
			"iPXE 1.21", // the chained undionly.kpxe (trixie) announcing itself; ipxe.lkrn is 1.0.0
			"/boot.ipxe",
			"/assets/",
		},
		giveUp: "No bootable device",
		server: serverExpectation{firmware: "bios-pxe", file: "undionly.kpxe", nbp: "undionly.kpxe", nbpVia: "tftp"},
	},
	{
		// OVMF's own PXE client (the NIC's iPXE EFI ROM is removed with romfile=): DHCP, TFTP
		// snponly.efi, then iPXE over the firmware's network driver fetches boot.ipxe.
		name: "uefi-pxe",
		// "NBP file downloaded" matters: when PXE fails OVMF moves on to its HTTP Boot option,
		// which would otherwise pass for this scenario.
		evidence: []string{"Start PXE over IPv4", "NBP filename is snponly.efi", "NBP file downloaded successfully",
			"iPXE", "/boot.ipxe", "/assets/"},
		giveUp: "UEFI Interactive Shell",
		server: serverExpectation{firmware: "uefi-pxe", file: "snponly.efi", nbp: "snponly.efi", nbpVia: "tftp"},
	},
	{
		// OVMF HTTP Boot with PXE switched off: DHCP with vendor class HTTPClient, the iPXE EFI
		// binary over HTTP, then boot.ipxe.
		name: "uefi-http",
		evidence: []string{"Start HTTP Boot over IPv4", "URI: http://" + lanServerIP + ":8080/ipxe/snponly.efi",
			"iPXE", "/boot.ipxe", "/assets/"},
		giveUp: "UEFI Interactive Shell",
		server: serverExpectation{firmware: "uefi-http", file: "/ipxe/snponly.efi", nbp: "snponly.efi", nbpVia: "http"},
	},
}

// legacyPXEScript is the iPXE script ipxe.lkrn runs from its kernel command line in the
// bios-tftp scenario.
//
// Why this is an honest legacy-PXE test: QEMU's NIC ROMs are iPXE, and no non-iPXE BIOS PXE
// ROM ships in Debian. ipxe.lkrn (bookworm's 2019 iPXE, booted by SeaBIOS as a Linux kernel
// image, with the NIC's own ROM removed) sets its DHCP user-class (option 77) to something other
// than "iPXE", so on the wire its DHCP request looks like a vendor BIOS PXE ROM's: option 93 = 0
// (x86 BIOS), vendor class "PXEClient:Arch:00000:…", no iPXE user-class. fleetboot must then
// answer with a boot server and undionly.kpxe, and the script fetches exactly the file fleetboot
// named from the server fleetboot named, over TFTP — taking both from the proxyDHCP offer when
// there is one, as the PXE spec (and so every vendor ROM) does; iPXE's unscoped ${next-server}
// would be the site DHCP server's siaddr (dnsmasq puts its own address there). undionly.kpxe
// then runs on the PXE API (UNDI) that ipxe.lkrn provides — the interface a vendor ROM
// provides — and, now a real iPXE (trixie's, announcing "iPXE 1.21"), DHCPs again with
// user-class "iPXE" and chains boot.ipxe. What this does not cover: the quirks of real vendor
// ROMs' own DHCP and TFTP clients (timeouts, retries, option parsing). The request still
// carries iPXE's encapsulated option 175; fleetboot classifies iPXE by option 77 alone, so that
// is not a loophole, and the server-log check proves fleetboot classified it as BIOS PXE.
//
// iPXE expands ${...} once per line, so the script has real newlines (the kernel command line
// carries them through; iPXE takes a bare command line as a script without the #!ipxe header).
// If any step fails the script ends, iPXE exits, and with no NIC ROM and no disk the machine
// has nothing else to boot: the scenario fails instead of passing through another path.
func legacyPXEScript() string {
	return strings.Join([]string{
		"echo fleetboot-e2e: legacy PXE client (ipxe.lkrn with user-class PXEClient-e2e)",
		"set user-class PXEClient-e2e",
		"dhcp net0",
		"clear user-class",
		"set bootsrv ${next-server}",
		"set bootfile ${filename}",
		"isset ${proxydhcp/next-server} && set bootsrv ${proxydhcp/next-server} ||",
		"isset ${proxydhcp/filename} && set bootfile ${proxydhcp/filename} ||",
		"echo fleetboot-e2e: boot server ${bootsrv} file ${bootfile}",
		"chain tftp://${bootsrv}/${bootfile}",
	}, "\n")
}

// vmSpec is one VM of a run.
type vmSpec struct {
	scenario  scenario
	name      string // unique in the run, e.g. "full-uefi-pxe"
	mac       string
	tap       string
	serialLog string
	qemuLog   string
	varsFile  string   // per-VM copy of OVMF_VARS (UEFI scenarios)
	extra     []string // more QEMU arguments (e.g. -smbios)
}

// qemuArgs returns the QEMU command line for vm (without any netns wrapper). Common to all: TCG
// (no KVM here), no graphics, -no-reboot so a powered-off or panicking guest ends QEMU, the
// serial console to a file, and a virtio RNG (UEFI iPXE otherwise spends ~4 s gathering
// entropy).
func qemuArgs(vm vmSpec, serconFile string) ([]string, error) {
	args := []string{qemuBinary,
		"-name", vm.name,
		"-accel", "tcg",
		"-m", "512",
		"-display", "none",
		"-no-reboot",
		"-serial", "file:" + vm.serialLog,
		"-netdev", "tap,id=n0,ifname=" + vm.tap + ",script=no,downscript=no",
		"-device", "virtio-rng-pci",
	}
	nic := "virtio-net-pci,netdev=n0,mac=" + vm.mac
	// SeaBIOS mirrors its console, and so every option ROM's and iPXE's BIOS console, to the
	// serial port named by etc/sercon-port. SeaBIOS reads that file as a little-endian integer
	// of 1, 2, 4 or 8 bytes: a 5-byte string "0x3f8" is ignored, hence the 2-byte file.
	sercon := []string{"-fw_cfg", "name=etc/sercon-port,file=" + serconFile}
	uefi := []string{
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + ovmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vm.varsFile,
	}
	switch vm.scenario.name {
	case "bios":
		args = append(args, sercon...)
		args = append(args, "-boot", "n", "-device", nic)
	case "bios-tftp":
		args = append(args, sercon...)
		args = append(args, "-device", nic+",romfile=",
			"-kernel", ipxeLkrn, "-append", legacyPXEScript())
	case "uefi-pxe":
		args = append(args, uefi...)
		args = append(args, "-device", nic+",romfile=,bootindex=1")
	case "uefi-http":
		args = append(args, uefi...)
		args = append(args, "-device", nic+",romfile=,bootindex=1",
			"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=n")
	default:
		return nil, fmt.Errorf("unknown scenario %q", vm.scenario.name)
	}
	return append(args, vm.extra...), nil
}

// bootResult is the outcome of one VM.
type bootResult struct {
	mode     string
	scenario string
	mac      string
	script   time.Duration // VM start → boot.ipxe requested (firmware and iPXE stages)
	elapsed  time.Duration // VM start → token on the serial console
	err      error
}

// bootVM starts vm in the LAN and waits until its serial console shows the token (pass), QEMU
// exits without it, or timeout passes (fail: OVMF never gives up on a failed network boot, it
// sits in its boot manager or shell).
func bootVM(ctx context.Context, t *testing.T, l *lan, vm vmSpec, serconFile, token string, timeout time.Duration) bootResult {
	t.Helper()
	res := bootResult{scenario: vm.scenario.name, mac: vm.mac}
	args, err := qemuArgs(vm, serconFile)
	if err != nil {
		res.err = err
		return res
	}
	start := time.Now()
	p := startProc(t, "qemu "+vm.name, vm.qemuLog, l.lan.command(args...)...)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		serial, _ := os.ReadFile(vm.serialLog)
		if res.script == 0 && bytes.Contains(serial, []byte("/boot.ipxe")) {
			res.script = time.Since(start)
		}
		if found, err := findToken(serial, token); found || err != nil {
			res.elapsed = time.Since(start)
			if err == nil {
				err = evidenceInOrder(serial, vm.scenario.evidence)
			}
			if err == nil && !p.wait(30*time.Second) {
				err = fmt.Errorf("token seen but the VM did not power off within 30 s")
			}
			res.err = err
			return res
		}
		if sc := vm.scenario; sc.giveUp != "" && bytes.Contains(serial, []byte(sc.giveUp)) {
			res.err = fmt.Errorf("firmware gave up after %s (%q on the console)", time.Since(start).Round(time.Second), sc.giveUp)
			return res
		}
		if p.exited() {
			// The last bytes may have landed between the read and the exit.
			serial, _ = os.ReadFile(vm.serialLog)
			if found, _ := findToken(serial, token); found {
				continue
			}
			res.err = fmt.Errorf("QEMU exited after %s without the token (%v); qemu: %s",
				time.Since(start).Round(time.Millisecond), p.err, strings.TrimSpace(readableTail(vm.qemuLog, 5)))
			return res
		}
		select {
		case <-ctx.Done():
			res.err = fmt.Errorf("no token after %s", time.Since(start).Round(time.Second))
			if cause := context.Cause(ctx); !errors.Is(cause, context.DeadlineExceeded) {
				res.err = fmt.Errorf("%w: %v", res.err, cause)
			}
			return res
		case <-tick.C:
		}
	}
}

// findToken reports whether the serial log holds the payload's "FLEETBOOT-TOKEN <token>" line.
// The kernel's own echo of its command line ("fbtoken=…") does not count: only the initramfs's
// /init prints the marker, so a hit proves kernel, initrd and command line all came through.
// A marker with a different token is an error (a stale asset or another run's server). The
// token ends at the first byte that cannot be part of one: a kernel message may still land
// right behind it on the shared console despite /init's `dmesg -n 1`.
func findToken(serial []byte, token string) (bool, error) {
	const marker = "FLEETBOOT-TOKEN "
	i := bytes.Index(serial, []byte(marker))
	if i < 0 {
		return false, nil
	}
	rest := serial[i+len(marker):]
	end := bytes.IndexFunc(rest, func(r rune) bool { return !isTokenChar(r) })
	if end < 0 {
		return false, nil // still being written
	}
	if got := string(rest[:end]); got != token {
		return false, fmt.Errorf("payload printed token %q, want %q", got, token)
	}
	return true, nil
}

func isTokenChar(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_'
}

// evidenceInOrder checks that each marker occurs in the serial log after the previous one.
func evidenceInOrder(serial []byte, markers []string) error {
	text := ansiEscape.ReplaceAll(serial, nil)
	pos := 0
	for i, m := range markers {
		j := bytes.Index(text[pos:], []byte(m))
		if j < 0 {
			if k := bytes.Index(text, []byte(m)); k >= 0 {
				return fmt.Errorf("serial console shows %q, but not after %q", m, markers[i-1])
			}
			return fmt.Errorf("serial console never shows %q", m)
		}
		pos += j + len(m)
	}
	return nil
}

// newVMSpec fills in names and files for one VM of a run.
func newVMSpec(t *testing.T, l *lan, dir, mode string, sc scenario, index int) vmSpec {
	t.Helper()
	name := mode + "-" + sc.name
	vm := vmSpec{
		scenario:  sc,
		name:      name,
		mac:       fmt.Sprintf("52:54:00:fb:%02x:%02x", modeByte(mode), index),
		tap:       l.addTap(t),
		serialLog: filepath.Join(dir, name+".serial.log"),
		qemuLog:   filepath.Join(dir, name+".qemu.log"),
	}
	if strings.HasPrefix(sc.name, "uefi") {
		vm.varsFile = filepath.Join(dir, name+".vars.fd")
		vars, err := os.ReadFile(ovmfVars)
		if err != nil {
			t.Fatalf("OVMF vars: %v", err)
		}
		if err := os.WriteFile(vm.varsFile, vars, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return vm
}

// modeByte keeps MACs distinct across DHCP modes, so logs of different modes never mix.
func modeByte(mode string) int {
	switch mode {
	case "full":
		return 1
	case "proxy":
		return 2
	case "iso":
		return 3
	case "sb":
		return 4
	case "sboff":
		return 5
	}
	return 0xee
}

// writeSerconFile writes the 2-byte etc/sercon-port value: COM1's I/O port, little-endian.
func writeSerconFile(dir string) (string, error) {
	p := filepath.Join(dir, "sercon-port.bin")
	return p, os.WriteFile(p, []byte{0xf8, 0x03}, 0o644)
}

func TestFindTokenNeedsThePayloadMarkerWithTheRightToken(t *testing.T) {
	cases := []struct {
		name   string
		serial string
		found  bool
		err    bool
	}{
		{"kernel echo of the cmdline only", "Command line: console=ttyS0 fbtoken=abc123\r\n", false, false},
		{"marker with token", "FLEETBOOT-CMDLINE fbtoken=abc123\r\nFLEETBOOT-TOKEN abc123\r\n", true, false},
		{"marker line still being written", "FLEETBOOT-TOKEN abc1", false, false},
		{"longer token is another token", "FLEETBOOT-TOKEN abc1234\r\n", false, true},
		{"kernel message right behind the token", "FLEETBOOT-TOKEN abc123[    2.17] tsc: Refined\r\n", true, false},
		{"missing token", "FLEETBOOT-TOKEN missing\n", false, true},
		{"nothing", "", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			found, err := findToken([]byte(c.serial), "abc123")
			if found != c.found || (err != nil) != c.err {
				t.Errorf("findToken = %v, %v; want found=%v err=%v", found, err, c.found, c.err)
			}
		})
	}
}

func TestEvidenceMustAppearInOrder(t *testing.T) {
	serial := []byte("\x1b[0miPXE 1.0\r\ntftp://10.77.0.1/undionly.kpxe... ok\r\niPXE 1.21.1\r\nhttp://10.77.0.1:8080/boot.ipxe... ok\r\n")
	if err := evidenceInOrder(serial, []string{"undionly.kpxe", "iPXE 1.21", "/boot.ipxe"}); err != nil {
		t.Errorf("in-order evidence rejected: %v", err)
	}
	if err := evidenceInOrder(serial, []string{"/boot.ipxe", "undionly.kpxe"}); err == nil {
		t.Error("out-of-order evidence accepted")
	}
	if err := evidenceInOrder(serial, []string{"snponly.efi"}); err == nil {
		t.Error("absent evidence accepted")
	}
}

func TestLegacyPXEScriptHasOneCommandPerLine(t *testing.T) {
	lines := strings.Split(legacyPXEScript(), "\n")
	if len(lines) < 4 {
		t.Fatalf("script has %d lines; iPXE expands ${…} once per line, so it needs real newlines", len(lines))
	}
	var sawUserClass, sawChain bool
	for _, l := range lines {
		if strings.HasPrefix(l, "set user-class ") && !strings.Contains(l, "iPXE") {
			sawUserClass = true
		}
		if strings.HasPrefix(l, "chain tftp://") {
			sawChain = sawUserClass // must come after the user-class change
		}
	}
	if !sawUserClass || !sawChain {
		t.Errorf("script must set a non-iPXE user-class and then chain over TFTP:\n%s", legacyPXEScript())
	}
}
