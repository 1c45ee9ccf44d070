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
	qemuAarch64 = "qemu-system-aarch64"                                                         // qemu-system-arm
	// AAVMF is EDK2's ArmVirtQemu build; both files are 64 MiB, the size of the virt machine's
	// two pflash banks.
	aavmfCode = "/usr/share/AAVMF/AAVMF_CODE.fd" // qemu-efi-aarch64
	aavmfVars = "/usr/share/AAVMF/AAVMF_VARS.fd" // qemu-efi-aarch64 (no keys: Secure Boot off)
)

// vmKind is the emulated hardware of a VM: which QEMU, which machine, which UEFI firmware.
type vmKind struct {
	// arch is what iPXE's ${buildarch} says on this machine under UEFI.
	arch    string
	qemu    string
	machine []string // machine type, CPU and memory arguments
	// code and vars are the UEFI firmware and the variable store template each VM gets a
	// copy of.
	code, vars string
}

var (
	x86VM = vmKind{arch: "x86_64", qemu: qemuBinary, machine: []string{"-m", "512"}, code: ovmfCode, vars: ovmfVars}
	// arm64VM: QEMU's virt board with a Cortex-A57 under TCG; 1 GiB because Debian's arm64
	// installer unpacks a 40 MB initrd (DESIGN.md: 44 s to its first question, direct boot).
	arm64VM = vmKind{arch: "arm64", qemu: qemuAarch64, machine: []string{"-machine", "virt", "-cpu", "cortex-a57", "-m", "1024"},
		code: aavmfCode, vars: aavmfVars}
)

// scenario is one way a machine network-boots.
type scenario struct {
	// name is the boot path: bios, bios-tftp, uefi-pxe or uefi-http.
	name string
	// kind is the machine's hardware; nil is x86VM.
	kind *vmKind
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

// arm64Scenarios are the boot paths of arm64 machines: AAVMF's own PXE and HTTP Boot clients
// (arm64 servers have UEFI only) loading Debian's arm64 iPXE, which fetches autoexec.ipxe like
// the x86_64 EFI build and reports ${buildarch} arm64.
var arm64Scenarios = []scenario{
	{
		name: "uefi-pxe", kind: &arm64VM,
		evidence: []string{"Start PXE over IPv4", "NBP filename is ipxe-arm64.efi", "NBP file downloaded successfully",
			"autoexec.ipxe", "iPXE", "/boot.ipxe", "/isos/"},
		giveUp: "UEFI Interactive Shell",
		server: serverExpectation{firmware: "uefi-pxe", file: "ipxe-arm64.efi", nbp: "ipxe-arm64.efi", nbpVia: "tftp"},
	},
	{
		// AAVMF honours the same fw_cfg switches as OVMF (see qemuArgs): with PXE off its
		// HTTP Boot option runs.
		name: "uefi-http", kind: &arm64VM,
		evidence: []string{"Start HTTP Boot over IPv4", "URI: http://" + lanServerIP + ":8080/ipxe/ipxe-arm64.efi",
			"autoexec.ipxe", "iPXE", "/boot.ipxe", "/isos/"},
		giveUp: "UEFI Interactive Shell",
		server: serverExpectation{firmware: "uefi-http", file: "/ipxe/ipxe-arm64.efi", nbp: "ipxe-arm64.efi", nbpVia: "http"},
	},
}

// hw is the scenario's hardware.
func (sc scenario) hw() vmKind {
	if sc.kind == nil {
		return x86VM
	}
	return *sc.kind
}

// label names the scenario in VM names and summaries: the boot path, prefixed with the
// architecture for non-x86 machines.
func (sc scenario) label() string {
	if a := sc.hw().arch; a != x86VM.arch {
		return a + "-" + sc.name
	}
	return sc.name
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
	memMB     int      // RAM in MiB; 0 keeps the machine kind's (512 MiB on x86, enough for the payload)
	// disk, when set, is a raw image the machine has as a USB disk on an xHCI controller: the
	// Debian installer kernel the payload runs has USB storage among its initrd's modules
	// (no virtio-blk, no AHCI), and SeaBIOS boots it as BIOS drive 0x80.
	disk string
}

// qemuArgs returns the QEMU command line for vm (without any netns wrapper). Common to all: TCG
// (no KVM here), no graphics, -no-reboot so a powered-off or panicking guest ends QEMU, the
// serial console to a file, and a virtio RNG (UEFI iPXE otherwise spends ~4 s gathering
// entropy).
func qemuArgs(vm vmSpec, serconFile string) ([]string, error) {
	hw := vm.scenario.hw()
	if hw.arch != x86VM.arch && strings.HasPrefix(vm.scenario.name, "bios") {
		return nil, fmt.Errorf("scenario %s: %s machines have no BIOS", vm.scenario.name, hw.arch)
	}
	args := []string{hw.qemu, "-name", vm.name, "-accel", "tcg"}
	args = append(args, hw.machine...)
	if vm.memMB > 0 {
		for i := range args[:len(args)-1] {
			if args[i] == "-m" {
				args[i+1] = fmt.Sprint(vm.memMB)
			}
		}
	}
	args = append(args,
		"-display", "none",
		"-no-reboot",
		"-serial", "file:"+vm.serialLog,
		"-netdev", "tap,id=n0,ifname="+vm.tap+",script=no,downscript=no",
		"-device", "virtio-rng-pci",
	)
	nic := "virtio-net-pci,netdev=n0,mac=" + vm.mac
	// SeaBIOS mirrors its console, and so every option ROM's and iPXE's BIOS console, to the
	// serial port named by etc/sercon-port. SeaBIOS reads that file as a little-endian integer
	// of 1, 2, 4 or 8 bytes: a 5-byte string "0x3f8" is ignored, hence the 2-byte file.
	sercon := []string{"-fw_cfg", "name=etc/sercon-port,file=" + serconFile}
	uefi := []string{
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + hw.code,
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
		// OVMF and AAVMF (verified with qemu-efi-aarch64 2022.11) read these fw_cfg files: with
		// PXE off, the NIC's boot option is HTTP Boot.
		args = append(args, uefi...)
		args = append(args, "-device", nic+",romfile=,bootindex=1",
			"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=n")
	default:
		return nil, fmt.Errorf("unknown scenario %q", vm.scenario.name)
	}
	if vm.disk != "" {
		args = append(args, "-drive", "if=none,id=disk0,format=raw,file="+vm.disk,
			"-device", "qemu-xhci,id=xhci", "-device", "usb-storage,bus=xhci.0,drive=disk0")
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

// bootVM starts vm in the LAN and waits until its serial console shows the payload's token
// and the payload powers the VM off (pass), QEMU exits without it, or timeout passes (fail:
// OVMF never gives up on a failed network boot, it sits in its boot manager or shell).
func bootVM(ctx context.Context, t *testing.T, l *lan, vm vmSpec, serconFile, token string, timeout time.Duration) bootResult {
	t.Helper()
	return bootVMUntil(ctx, t, l, vm, serconFile, timeout, func(serial []byte) (bool, error) { return findToken(serial, token) }, true)
}

// bootVMUntil is bootVM for any payload: done reports whether the serial console shows the
// payload running (an error fails the boot at once). With powerOff the payload must then power
// the VM off; otherwise (a real installer waiting for its user) the VM is stopped.
func bootVMUntil(ctx context.Context, t *testing.T, l *lan, vm vmSpec, serconFile string, timeout time.Duration,
	done func(serial []byte) (bool, error), powerOff bool) bootResult {
	t.Helper()
	res := bootResult{scenario: vm.scenario.label(), mac: vm.mac}
	args, err := qemuArgs(vm, serconFile)
	if err != nil {
		res.err = err
		return res
	}
	start := time.Now()
	p := startProc(t, "qemu "+vm.name, vm.qemuLog, l.lan.command(args...)...)
	if !powerOff {
		defer p.stop(5 * time.Second)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		serial, _ := os.ReadFile(vm.serialLog)
		if res.script == 0 && bytes.Contains(serial, []byte("/boot.ipxe")) {
			res.script = time.Since(start)
		}
		if found, err := done(serial); found || err != nil {
			res.elapsed = time.Since(start)
			if err == nil {
				err = evidenceInOrder(serial, vm.scenario.evidence)
			}
			if err == nil && powerOff && !p.wait(30*time.Second) {
				err = fmt.Errorf("payload running but the VM did not power off within 30 s")
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
			if found, _ := done(serial); found {
				continue
			}
			res.err = fmt.Errorf("QEMU exited after %s before the payload ran (%v); qemu: %s",
				time.Since(start).Round(time.Millisecond), p.err, strings.TrimSpace(readableTail(vm.qemuLog, 5)))
			return res
		}
		select {
		case <-ctx.Done():
			res.err = fmt.Errorf("payload not running after %s", time.Since(start).Round(time.Second))
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
	name := mode + "-" + sc.label()
	vm := vmSpec{
		scenario:  sc,
		name:      name,
		mac:       fmt.Sprintf("52:54:00:fb:%02x:%02x", modeByte(mode), index),
		tap:       l.addTap(t),
		serialLog: filepath.Join(dir, name+".serial.log"),
		qemuLog:   filepath.Join(dir, name+".qemu.log"),
	}
	vm.varsFile = uefiVars(t, dir, name, sc)
	return vm
}

// uefiVars gives a UEFI VM its own copy of the firmware's variable store (the firmware writes
// boot entries into it) and returns its path; "" for BIOS scenarios.
func uefiVars(t *testing.T, dir, name string, sc scenario) string {
	t.Helper()
	if !strings.HasPrefix(sc.name, "uefi") {
		return ""
	}
	p := filepath.Join(dir, name+".vars.fd")
	vars, err := os.ReadFile(sc.hw().vars)
	if err != nil {
		t.Fatalf("UEFI variable store: %v", err)
	}
	if err := os.WriteFile(p, vars, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
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
	case "mixed":
		return 6
	case "isoargs":
		return 7
	case "sites":
		return 8
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

func TestQEMUArgsFollowTheMachineKind(t *testing.T) {
	for _, sc := range arm64Scenarios {
		args, err := qemuArgs(vmSpec{scenario: sc, name: "a", mac: "52:54:00:00:00:01", tap: "tap0", serialLog: "s", varsFile: "v"}, "")
		if err != nil {
			t.Fatal(err)
		}
		line := strings.Join(args, " ")
		for _, want := range []string{qemuAarch64 + " ", "-machine virt -cpu cortex-a57", "file=" + aavmfCode, "unit=1,file=v", "romfile=,bootindex=1"} {
			if !strings.Contains(line, want) {
				t.Errorf("arm64 %s: %q lacks %q", sc.name, line, want)
			}
		}
		if http := strings.Contains(line, "IPv4PXESupport,string=n"); http != (sc.name == "uefi-http") {
			t.Errorf("arm64 %s: PXE switched off = %v", sc.name, http)
		}
		if strings.Contains(line, ovmfCode) || strings.Contains(line, "sercon") {
			t.Errorf("arm64 %s: x86 firmware in %q", sc.name, line)
		}
	}
	x86, err := qemuArgs(vmSpec{scenario: scenarioNamed(t, "uefi-pxe"), varsFile: "v"}, "")
	if err != nil || x86[0] != qemuBinary || !strings.Contains(strings.Join(x86, " "), "file="+ovmfCode) {
		t.Errorf("x86 uefi-pxe: %v %v", x86, err)
	}
	armBIOS := scenarioNamed(t, "bios")
	armBIOS.kind = &arm64VM
	if _, err := qemuArgs(vmSpec{scenario: armBIOS}, "sercon"); err == nil {
		t.Error("an arm64 BIOS machine was accepted")
	}
}
