package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// x86InstallerVM is x86VM with 1 GiB: with 512 MiB Debian 12's amd64 installer enters its low
// memory mode, which skips the language question this scenario waits for (seen here).
var x86InstallerVM = vmKind{arch: x86VM.arch, qemu: x86VM.qemu, machine: []string{"-m", "1024"}, code: x86VM.code, vars: x86VM.vars}

// mixedVM is one machine of the mixed-architecture fleet.
type mixedVM struct {
	sc      scenario
	profile string // what it installs
	arch    string // what the API must record as its architecture (iPXE's ${buildarch})
}

// TestMixedFleetInstallsRealDebianOnArm64AndX86 is the arm64 proof, in a fleet that mixes
// both architectures on one fleetboot and one set of profiles: the real Debian 12 installers
// for arm64 and amd64 (debian-installer-12-netboot-*), each packed as an ISO in mini.iso
// layout, are uploaded through the API and detected with their architecture. Two arm64 QEMU
// machines (AAVMF) boot theirs over UEFI PXE and over UEFI HTTP Boot — firmware → Debian's
// arm64 iPXE → autoexec.ipxe → boot.ipxe with ${buildarch} arm64 — and one x86_64 machine
// (OVMF, UEFI PXE) boots the amd64 one, until each installer asks "Select a language" on its
// serial console. Each machine's menu lists only the profile of its own architecture.
func TestMixedFleetInstallsRealDebianOnArm64AndX86(t *testing.T) {
	requireBootSuite(t)
	t.Parallel()
	started := time.Now()
	env := &isoEnv{bootEnv: newBootEnv(t, "mixed", nil)}
	// The x86 machine boots through iPXE as its scenario's evidence describes (shim → GRUB has
	// its own scenarios); arm64 machines always get iPXE.
	env.server = startISOFleetboot(t, env.bootEnv, "--boot-chain", "ipxe")
	ctx := env.connect(t)

	isos := map[string]*isoInfo{}
	for _, c := range []struct{ debArch, arch string }{{"arm64", "arm64"}, {"amd64", "x86_64"}} {
		name := "debian-12-" + c.debArch
		iso, err := env.api.uploadISO(ctx, name, debianInstallerISO(t, c.debArch))
		if err != nil {
			t.Fatalf("upload %s: %v", name, err)
		}
		d := iso.Detected
		if d.Family != "debian" || d.Arch != c.arch || len(d.Recipes) == 0 || d.Recipes[0].Kernel != "/linux" || d.Recipes[0].Arch != c.arch {
			t.Fatalf("%s detected as %+v, want debian %s booting /linux", name, d, c.arch)
		}
		// The text installer on the serial console: ttyAMA0 is the virt board's PL011, ttyS0
		// the PC's 16550. The console is the profile's to give until recipes know the
		// machine's serial port.
		console := map[string]string{"arm64": "console=ttyAMA0", "x86_64": "console=ttyS0 no_timer_check"}[c.arch]
		if err := env.api.do(ctx, http.MethodPost, "/api/v1/profiles", map[string]any{
			"name": name, "iso": iso.ID, "entry": d.Recipes[0].ID, "extra_args": console + " panic=1",
		}, nil); err != nil {
			t.Fatalf("profile %s: %v", name, err)
		}
		isos[name] = iso
	}
	t.Logf("installer ISOs built, uploaded and detected after %s", time.Since(started).Round(100*time.Millisecond))

	vms := []mixedVM{
		{sc: arm64Scenarios[0], profile: "debian-12-arm64", arch: "arm64"},
		{sc: arm64Scenarios[1], profile: "debian-12-arm64", arch: "arm64"},
		{sc: scenarioNamed(t, "uefi-pxe"), profile: "debian-12-amd64", arch: "x86_64"},
	}
	vms[2].sc.kind = &x86InstallerVM
	// A real installer is bigger than the test payload (40 MB initrd), several TCG VMs share
	// two cores with other suites: generous, bounded.
	timeout := 3 * vmTimeout(t)
	languagePrompt := func(serial []byte) (bool, error) {
		text := ansiEscape.ReplaceAll(serial, nil)
		if bytes.Contains(text, []byte("Low memory mode")) {
			return false, fmt.Errorf("the installer entered its low memory mode (no language question): give the VM more RAM")
		}
		return bytes.Contains(text, []byte(diLanguagePrompt)), nil
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var results []bootResult
	for i, vm := range vms {
		spec := newVMSpec(t, env.lan, env.dir, "mixed", vm.sc, i)
		// The boot target now comes out of the ISO store (the plain scenarios' evidence ends
		// with the default target's /assets/).
		spec.scenario.evidence = replaceAll(spec.scenario.evidence, "/assets/", "/isos/")
		if err := env.api.do(ctx, http.MethodPost, "/api/v1/machines", map[string]any{
			"mac": spec.mac, "profile": vm.profile, "state": "install-pending", "hostname": "e2e-" + spec.name}, nil); err != nil {
			t.Fatalf("%s: %v", spec.name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(spec.scenario.label(), func(t *testing.T) {
				res := bootVMUntil(ctx, t, env.lan, spec, env.sercon, timeout, languagePrompt, false)
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
				if res.err != nil {
					t.Fatalf("%s (%s): %v\n%s", spec.name, spec.mac, res.err, failureReport(env.bootEnv, spec))
				}
				serverLog, _ := os.ReadFile(env.serverLog)
				if err := checkServerLog(serverLog, spec.mac, spec.scenario.server); err != nil {
					t.Errorf("server log: %v", err)
				}
				var m machineInfo
				if err := env.api.do(ctx, http.MethodGet, "/api/v1/machines/"+spec.mac, nil, &m); err != nil {
					t.Fatal(err)
				}
				if m.Arch != vm.arch || m.Platform != "efi" || m.State != "installing" {
					t.Errorf("machine recorded as %s/%s in state %s, want %s/efi installing", m.Arch, m.Platform, m.State, vm.arch)
				}
				// The kernel and initrd came out of this machine's own ISO.
				iso := isos[vm.profile]
				recs := parseLog(serverLog)
				ip := bootScriptIP(recs, spec.mac, "target")
				for _, p := range []string{"/linux", "/initrd.gz"} {
					if !servedTo(recs, "/isos/"+iso.ID+"/files"+p, ip) {
						t.Errorf("server log shows no GET of /isos/%s/files%s (%s) by %s", iso.ID, p, iso.Name, ip)
					}
				}
				// The menu this machine would see lists its own architecture's profile only.
				menu := env.menuFor(ctx, t, spec.mac, vm.arch)
				for name := range isos {
					if listed := strings.Contains(menu, "Install "+name); listed != (name == vm.profile) {
						t.Errorf("%s menu lists %s: %v, want %v:\n%s", vm.arch, name, listed, name == vm.profile, menu)
					}
				}
				t.Logf("%s (%s): boot.ipxe after %s, %q after %s", spec.name, spec.mac,
					res.script.Round(100*time.Millisecond), diLanguagePrompt, res.elapsed.Round(100*time.Millisecond))
			})
		}()
	}
	wg.Wait()
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MACHINE\tMAC\tRESULT\tTO BOOT.IPXE\tTO \""+diLanguagePrompt+"\"")
	for _, r := range results {
		status := "ok"
		if r.err != nil {
			status = "FAIL"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.scenario, r.mac, status, r.script.Round(100*time.Millisecond), r.elapsed.Round(100*time.Millisecond))
	}
	w.Flush()
	t.Logf("mixed fleet, real Debian 12 installers (with setup %s):\n%s", time.Since(started).Round(time.Second), b.String())
}

// menuFor fetches the menu fleetboot would show a machine of this architecture that picks
// from it, as an unassigned machine gets it — asked with a fresh MAC derived from mac so the
// machine's own state is untouched.
func (env *isoEnv) menuFor(ctx context.Context, t *testing.T, mac, arch string) string {
	t.Helper()
	probe := "52:54:00:fb:ee:" + mac[len(mac)-2:]
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.api.base+"/boot.ipxe?mac="+strings.ReplaceAll(probe, ":", "-")+
		"&arch="+arch+"&platform=efi", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := env.api.http.Do(req)
	if err != nil {
		t.Fatalf("menu for %s: %v", arch, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("menu for %s: %s", arch, resp.Status)
	}
	return b.String()
}

// scenarioNamed returns the x86 boot scenario with this name.
func scenarioNamed(t *testing.T, name string) scenario {
	t.Helper()
	for _, s := range scenarios {
		if s.name == name {
			return s
		}
	}
	t.Fatalf("no boot scenario %q", name)
	return scenario{}
}

// replaceAll returns a copy of list with every from replaced by to.
func replaceAll(list []string, from, to string) []string {
	out := append([]string(nil), list...)
	for i := range out {
		if out[i] == from {
			out[i] = to
		}
	}
	return out
}
