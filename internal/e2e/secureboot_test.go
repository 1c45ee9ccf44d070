package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	embedded "github.com/fleetboot/fleetboot/embed"
)

// Secure Boot firmware: OVMF built with Secure Boot and SMM, and a variable store with
// Microsoft's keys enrolled and Secure Boot on (Debian's ovmf package).
const (
	ovmfSecCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd" // ovmf
	ovmfMSVars  = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"      // ovmf
)

// sbVM is one machine of the Secure Boot scenarios.
type sbVM struct {
	name string
	// http: UEFI HTTP Boot; else UEFI PXE.
	http bool
	// secureBoot: OVMF with Secure Boot on and Microsoft keys; else plain OVMF (Secure Boot off).
	secureBoot bool
	// profile is what it installs; unsigned profiles carry a kernel the served shim does not
	// trust.
	profile string
	// refused: the firmware chain must refuse its kernel (the negative case).
	refused bool
	// chain is the machine's boot-chain label ("" = the server's default, auto).
	chain string
	// evidence is what the serial console must show in order before the result.
	evidence []string
	// state is the machine's state when it is registered ("" = install-pending).
	state string
	// until ends the VM when the console shows it, instead of the installer's first question;
	// then the console must go on to show after (when set).
	until, after string
	// timeline must each be part of an event of the machine; served must each be a record of
	// fleetboot's log, "msg|file" ("{iso}" stands for the id of the profile's ISO, "{mac}"
	// for the machine's MAC).
	timeline, served []string
}

// sbQEMUArgs is the QEMU command line of one Secure Boot scenario VM: q35 with SMM (OVMF's
// Secure Boot build keeps its variables in SMM-protected flash) and the secure pflash.
func sbQEMUArgs(vm sbVM, mac, tap, serial, vars string) []string {
	code := ovmfCode
	args := []string{qemuBinary, "-name", vm.name, "-accel", "tcg", "-m", "1024", "-display", "none", "-no-reboot",
		"-serial", "file:" + serial,
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
		"-device", "virtio-rng-pci",
		"-device", "virtio-net-pci,netdev=n0,mac=" + mac + ",romfile=,bootindex=1",
	}
	if vm.secureBoot {
		code = ovmfSecCode
		args = append(args, "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on")
	}
	args = append(args,
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	if vm.http {
		args = append(args,
			"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
			"-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=n")
	}
	return args
}

// stripAuthenticode returns a copy of the PE image with its Authenticode signature removed:
// the same kernel, but unsigned, as a local build would be. The certificate table is the last
// thing in a signed PE file; its data directory entry (the fifth) is zeroed and the file cut
// where the table started.
func stripAuthenticode(img []byte) ([]byte, error) {
	if len(img) < 0x40 || string(img[:2]) != "MZ" {
		return nil, fmt.Errorf("not a PE image")
	}
	pe := int(binary.LittleEndian.Uint32(img[0x3c:]))
	if pe+24+2 > len(img) || string(img[pe:pe+4]) != "PE\x00\x00" {
		return nil, fmt.Errorf("no PE header")
	}
	opt := pe + 24
	var dirs int
	switch binary.LittleEndian.Uint16(img[opt:]) {
	case 0x20b: // PE32+
		dirs = opt + 112
	case 0x10b:
		dirs = opt + 96
	default:
		return nil, fmt.Errorf("unknown optional header magic")
	}
	entry := dirs + 4*8
	if entry+8 > len(img) {
		return nil, fmt.Errorf("truncated PE header")
	}
	off := int(binary.LittleEndian.Uint32(img[entry:]))
	size := int(binary.LittleEndian.Uint32(img[entry+4:]))
	if off == 0 || size == 0 || off+size != len(img) {
		return nil, fmt.Errorf("no certificate table at the end (offset %d size %d, file %d)", off, size, len(img))
	}
	out := append([]byte(nil), img[:off]...)
	binary.LittleEndian.PutUint64(out[entry:], 0)
	return out, nil
}

func TestStripAuthenticodeRemovesTheSignatureOfTheDebianKernel(t *testing.T) {
	img, err := os.ReadFile(kernelPath)
	if err != nil {
		t.Skipf("%s: %v", kernelPath, err)
	}
	out, err := stripAuthenticode(img)
	if err != nil {
		t.Fatalf("Debian's signed kernel: %v", err)
	}
	if len(out) >= len(img) {
		t.Errorf("stripped image is %d bytes, signed %d", len(out), len(img))
	}
	if _, err := stripAuthenticode(out); err == nil {
		t.Error("stripped image still has a certificate table")
	}
}

// TestSecureBootInstallsDebianThroughShimAndGRUB boots the real Debian 12 installer, uploaded as
// a mini.iso-layout ISO, on OVMF with Secure Boot on and Microsoft's keys enrolled, over UEFI
// PXE and UEFI HTTP Boot: Microsoft-signed shim → Debian-signed GRUB → Debian-signed kernel,
// to "Select a language" on the serial console. In the same run a machine whose profile's
// kernel is unsigned is refused by the chain, fleetboot records that in its timeline, and the
// other two boot all the same.
func TestSecureBootInstallsDebianThroughShimAndGRUB(t *testing.T) {
	runSecureBootScenarios(t, "sb", []sbVM{
		// The installer's ISO carries its own signed pair (d-i's shim 16.1 + bookworm GRUB
		// 2.06): over PXE the machine gets that pair, read out of the ISO, and its GRUB loads
		// everything over TFTP (GRUB 2.06 cannot reach fleetboot's HTTP port).
		{name: "sb-pxe", secureBoot: true, profile: "debian-12-signed",
			evidence: []string{"Start PXE over IPv4", "NBP filename is isopair/", "Secure Boot lockdown: on", "fleetboot: booting"},
			timeline: []string{"file=isopair/{iso}/bootx64.efi"},
			served: []string{"tftp sent|isopair/{iso}/bootx64.efi", "tftp sent|isopair/{iso}/grubx64.efi",
				"grub config|grub/mac/{mac}/sb-on.cfg", "tftp sent|isos/{iso}/files/linux", "tftp sent|isos/{iso}/files/initrd.gz"}},
		// Over UEFI HTTP Boot that GRUB fetches no config (firmware fact): the machine gets
		// fleetboot's own pair (Debian trixie's GRUB 2.12), which trusts the same kernel.
		{name: "sb-http", http: true, secureBoot: true, profile: "debian-12-signed",
			evidence: []string{"Start HTTP Boot over IPv4", "/secureboot/shimx64.efi", "Secure Boot lockdown: on", "fleetboot: booting"},
			timeline: []string{"UEFI HTTP Boot: Debian's shim + GRUB instead of the ISO's own pair"}},
		{name: "sb-unsigned", secureBoot: true, profile: "debian-12-unsigned", refused: true,
			evidence: []string{"NBP filename is isopair/", "Secure Boot lockdown: on", "fleetboot: booting"}},
		// An ISO whose pair has GRUB 2.12 is served over UEFI HTTP Boot too: shim from the
		// ISO's pair directory, GRUB beside it.
		{name: "sb-http-pair", http: true, secureBoot: true, profile: "debian-12-trixie-pair",
			evidence: []string{"Start HTTP Boot over IPv4", "/isopair/", "Secure Boot lockdown: on", "fleetboot: booting"},
			timeline: []string{"file=http://" + lanServerIP + ":8080/isopair/{iso}/bootx64.efi"},
			served:   []string{"secure boot binary from the ISO|isopair/{iso}/bootx64.efi", "secure boot binary from the ISO|isopair/{iso}//grubx64.efi"}},
		// An installed machine gets fleetboot's own pair and GRUB's local boot: exit back to
		// the firmware, which goes on to its next boot option (with no disk: OVMF's setup UI).
		{name: "sb-local", secureBoot: true, state: "installed", until: "fleetboot: booting from local disk", after: `BdsDxe: starting Boot0000 "UiApp"`,
			evidence: []string{"NBP filename is shimx64.efi", "Secure Boot lockdown: on"},
			timeline: []string{"boot: local disk"}},
	})
}

// TestSecureBootOffTakesTheAutoChainToIPXE: with Secure Boot off, the default chain auto still
// offers shim, and GRUB hands the machine over to iPXE, which boots the installer as without
// shim; a machine labelled boot-chain=ipxe gets iPXE straight away. The difference of their
// times to /boot.ipxe is what auto costs a machine with Secure Boot off.
func TestSecureBootOffTakesTheAutoChainToIPXE(t *testing.T) {
	runSecureBootScenarios(t, "sboff", []sbVM{
		// The installer without its own pair: Debian's GRUB 2.12 hands over to iPXE. (An ISO's
		// GRUB 2.06 boots the installer itself instead: unit-tested in internal/boot.)
		{name: "nosb-auto", profile: "debian-12-nopair",
			evidence: []string{"NBP filename is shimx64.efi", "Secure Boot lockdown: off", "continuing with iPXE", "iPXE", "/boot.ipxe"}},
		{name: "nosb-ipxe", profile: "debian-12-signed", chain: "ipxe",
			evidence: []string{"NBP filename is snponly.efi", "iPXE", "/boot.ipxe"}},
	})
}

// runSecureBootScenarios runs vms against one fleetboot (full DHCP, default boot chain auto)
// that has the signed Debian installer and the same installer with an unsigned kernel as
// profiles, and summarises their times.
func runSecureBootScenarios(t *testing.T, mode string, vms []sbVM) {
	requireBootSuite(t)
	t.Parallel()
	started := time.Now()
	env := &isoEnv{bootEnv: newBootEnv(t, mode, nil)}
	env.server = startISOFleetboot(t, env.bootEnv)
	if !bytes.Contains(mustRead(t, env.serverLog), []byte("Secure Boot binary")) {
		t.Fatalf("fleetboot serves no Secure Boot chain (run scripts/fetch-secureboot.sh before building):\n%s", readableTail(env.serverLog, 10))
	}
	ctx := env.connect(t)

	// The signed installer, and the same installer with its kernel's signature removed.
	isos := map[string]string{"debian-12-signed": debianInstallerISO(t, "amd64"), "debian-12-unsigned": unsignedInstallerISO(t)}
	for _, vm := range vms {
		switch {
		case isos[vm.profile] != "" || vm.profile == "":
		case vm.profile == "debian-12-trixie-pair":
			isos[vm.profile] = trixiePairInstallerISO(t)
		case vm.profile == "debian-12-nopair":
			isos[vm.profile] = remixInstallerISO(t, "nopair", func(tree string) {
				dir := filepath.Join(tree, "EFI", "boot")
				if err := os.Chmod(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(filepath.Join(dir, "bootx64.efi")); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
	isoIDs := map[string]string{}
	for name, p := range isos {
		iso, err := env.api.uploadISO(ctx, name, p)
		if err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
		isoIDs[name] = iso.ID
		if iso.Detected.Family != "debian" || len(iso.Detected.Recipes) == 0 {
			t.Fatalf("%s detected as %+v", name, iso.Detected)
		}
		// console=ttyS0: the installer's text frontend on the serial console (recipes do not
		// carry the ISO's own arguments yet). no_timer_check and panic=1 as for the payload
		// (see newBootEnv): with several TCG VMs on two cores the kernel's early timer check
		// can miss its window and panic; panic=1 + -no-reboot then ends the VM at once.
		if err := env.api.do(ctx, http.MethodPost, "/api/v1/profiles", map[string]any{
			"name": name, "iso": iso.ID, "entry": iso.Detected.Recipes[0].ID, "extra_args": "console=ttyS0 no_timer_check panic=1",
		}, nil); err != nil {
			t.Fatalf("profile %s: %v", name, err)
		}
	}
	t.Logf("ISOs built, uploaded and detected after %s", time.Since(started).Round(100*time.Millisecond))

	// The real installer, as in the other real-installer scenarios: 3× the per-VM bound (30
	// minutes by default). GRUB's own HTTP and TFTP clients are slow under TCG: sb-pxe loads
	// the 40 MB initrd over TFTP, one block per round trip; it reached the installer
	// after 4m22s in a fresh CI run but after 13m50s of its former 20-minute bound on two cores
	// shared with other test runs (load 30-40).
	timeout := 3 * vmTimeout(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	times := map[string][2]time.Duration{}
	for i, vm := range vms {
		mac := fmt.Sprintf("52:54:00:fb:%02x:%02x", modeByte(mode), i)
		state := vm.state
		if state == "" {
			state = "install-pending"
		}
		m := map[string]any{"mac": mac, "state": state, "hostname": "e2e-" + vm.name}
		if vm.profile != "" {
			m["profile"] = vm.profile
		}
		if vm.chain != "" {
			m["labels"] = map[string]string{"boot-chain": vm.chain}
		}
		if err := env.api.do(ctx, http.MethodPost, "/api/v1/machines", m, nil); err != nil {
			t.Fatalf("%s: %v", vm.name, err)
		}
		tap := env.lan.addTap(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(vm.name, func(t *testing.T) {
				script, d := env.runSecureBootVM(ctx, t, vm, mac, tap, timeout, isoIDs[vm.profile])
				mu.Lock()
				times[vm.name] = [2]time.Duration{script, d}
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	var sum strings.Builder
	for _, vm := range vms {
		script := "-"
		if d := times[vm.name][0]; d > 0 {
			script = d.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&sum, "  %-12s %-9s secure boot %-5v %-20s /boot.ipxe %-7s result %s\n", vm.name, map[bool]string{true: "uefi-http", false: "uefi-pxe"}[vm.http],
			vm.secureBoot, vm.profile, script, times[vm.name][1].Round(100*time.Millisecond))
	}
	t.Logf("Secure Boot scenarios (VM start → iPXE script, → result; with setup %s):\n%s", time.Since(started).Round(time.Second), sum.String())
}

// runSecureBootVM boots one VM and checks its outcome: "Select a language" for a trusted
// kernel, or the chain's refusal recorded in the machine's timeline for an untrusted one. It
// returns the times from VM start to the iPXE script (0 when none was fetched) and to the result.
func (env *isoEnv) runSecureBootVM(ctx context.Context, t *testing.T, vm sbVM, mac, tap string, timeout time.Duration, isoID string) (script, took time.Duration) {
	serial := filepath.Join(env.dir, vm.name+".serial.log")
	vars := filepath.Join(env.dir, vm.name+".vars.fd")
	src := ovmfVars
	if vm.secureBoot {
		src = ovmfMSVars
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, b, 0o600); err != nil {
		t.Fatal(err)
	}
	args := sbQEMUArgs(vm, mac, tap, serial, vars)
	start := time.Now()
	p := startProc(t, "qemu "+vm.name, filepath.Join(env.dir, vm.name+".qemu.log"), env.lan.lan.command(args...)...)
	defer p.stop(5 * time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := []byte(diLanguagePrompt)
	if vm.until != "" {
		want = []byte(vm.until)
	}
	if vm.refused {
		want = []byte("recorded in this machine's timeline")
	}
	for took == 0 {
		text := ansiEscape.ReplaceAll(mustRead(t, serial), nil)
		if script == 0 && bytes.Contains(text, []byte("/boot.ipxe")) {
			script = time.Since(start)
		}
		switch {
		case bytes.Contains(text, want) && (vm.after == "" || bytes.Contains(text[bytes.Index(text, want):], []byte(vm.after))):
			took = time.Since(start)
		case vm.refused && bytes.Contains(text, []byte(diLanguagePrompt)):
			t.Fatalf("the unsigned kernel booted under Secure Boot")
		case p.exited():
			t.Fatalf("QEMU exited after %s (%v)\n%s", time.Since(start).Round(time.Second), p.err, readableTail(serial, 30))
		}
		if took != 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %q (then %q) after %s: %v\n%s", want, vm.after, time.Since(start).Round(time.Second), context.Cause(ctx), readableTail(serial, 40))
		case <-time.After(500 * time.Millisecond):
		}
	}
	text := ansiEscape.ReplaceAll(mustRead(t, serial), nil)
	if err := evidenceInOrder(text, vm.evidence); err != nil {
		t.Errorf("%v\n%s", err, readableTail(serial, 40))
	}
	var events []eventInfo
	if err := env.api.do(ctx, http.MethodGet, "/api/v1/machines/"+mac+"/events", nil, &events); err != nil {
		t.Fatal(err)
	}
	var timeline []string
	for _, e := range events {
		timeline = append(timeline, e.Kind+": "+e.Detail)
	}
	all := strings.Join(timeline, "\n")
	for _, w := range vm.timeline {
		if w = strings.ReplaceAll(w, "{iso}", isoID); !strings.Contains(all, w) {
			t.Errorf("timeline has no %q:\n%s", w, all)
		}
	}
	if len(vm.served) > 0 {
		recs := parseLog(mustRead(t, env.serverLog))
		for _, w := range vm.served {
			msg, file, _ := strings.Cut(strings.NewReplacer("{iso}", isoID, "{mac}", mac).Replace(w), "|")
			found := false
			for _, r := range recs {
				if r.str("msg") == msg && r.str("file") == file {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("fleetboot's log has no %q record for %s", msg, file)
			}
		}
	}
	switch {
	case vm.refused:
		if !strings.Contains(all, "boot failed: GRUB could not load the kernel") {
			t.Errorf("timeline does not record the refused kernel:\n%s", all)
		}
	case vm.secureBoot:
		if !strings.Contains(all, "GRUB: Secure Boot on") {
			t.Errorf("timeline does not record the Secure Boot GRUB step:\n%s", all)
		}
	case vm.chain == "ipxe":
		if strings.Contains(all, "GRUB") {
			t.Errorf("machine with boot-chain=ipxe went through GRUB:\n%s", all)
		}
	default:
		if !strings.Contains(all, "GRUB: Secure Boot off, handing over to iPXE") {
			t.Errorf("timeline does not record the hand-over to iPXE:\n%s", all)
		}
	}
	t.Logf("%s (%s): %s after VM start", vm.name, mac, took.Round(100*time.Millisecond))
	return script, took
}

// unsignedInstallerISO is debianInstallerISO with the kernel's Authenticode signature removed.
func unsignedInstallerISO(t *testing.T) string {
	t.Helper()
	return remixInstallerISO(t, "unsigned", func(tree string) {
		k := filepath.Join(tree, "linux")
		img, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		out, err := stripAuthenticode(img)
		if err != nil {
			t.Fatalf("strip kernel signature: %v", err)
		}
		writeOver(t, k, out)
	})
}

// trixiePairInstallerISO is debianInstallerISO carrying, instead of d-i 12's own pair (GRUB
// 2.06), fleetboot's embedded Debian trixie pair (shim 16.1 + signed network GRUB 2.12) as
// EFI/boot/bootx64.efi + grubx64.efi, as a Debian 13 based ISO carries: a pair GRUB 2.12 that
// fleetboot hands to UEFI HTTP Boot clients too.
func trixiePairInstallerISO(t *testing.T) string {
	t.Helper()
	shim, err := fs.ReadFile(embedded.SecureBoot, "secureboot/shimx64.efi")
	if err != nil {
		t.Fatalf("embedded shim (scripts/fetch-secureboot.sh): %v", err)
	}
	grubImg, err := fs.ReadFile(embedded.SecureBoot, "secureboot/grubnetx64.efi")
	if err != nil {
		t.Fatalf("embedded GRUB (scripts/fetch-secureboot.sh): %v", err)
	}
	return remixInstallerISO(t, "trixie-pair", func(tree string) {
		writeOver(t, filepath.Join(tree, "EFI", "boot", "bootx64.efi"), shim)
		writeOver(t, filepath.Join(tree, "EFI", "boot", "grubx64.efi"), grubImg)
	})
}

// remixInstallerISO extracts debianInstallerISO's amd64 tree, lets change edit it and builds
// it again.
func remixInstallerISO(t *testing.T, name string, change func(tree string)) string {
	t.Helper()
	signed := debianInstallerISO(t, "amd64")
	tree := filepath.Join(t.TempDir(), name)
	if out, err := runOut("xorriso", "-osirrox", "on", "-indev", signed, "-extract", "/", tree); err != nil {
		t.Fatalf("extract: %v\n%s", err, out)
	}
	change(tree)
	iso := tree + ".iso"
	if out, err := runOut("xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "ISOIMAGE", "-o", iso, tree); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return iso
}

// writeOver replaces a file extracted read-only from an ISO.
func writeOver(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b
}
