package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"
)

// isoMenuTimeout is the boot menu's timeout in the ISO scenarios: short, so the menu VM
// reaches its local-boot default quickly, long enough to measure.
const isoMenuTimeout = 3 * time.Second

// installVM is one machine of the ISO scenarios: a family ISO it installs once (then boots
// locally), or none (an unknown machine that gets the menu).
type installVM struct {
	name   string
	family *familyISO // nil: the menu scenario
	path   string     // boot path, a scenario name of vm_test.go: bios, uefi-pxe, uefi-http
	// byRule assigns the machine through an assignment rule on its MAC instead of creating it.
	byRule bool
	// hardware, when set, gives the VM these SMBIOS system facts (QEMU -smbios type=1) and
	// byRule matches them (the facts iPXE reports) instead of the MAC.
	hardware map[string]string
	// reboot boots the machine a second time after its install and expects local boot.
	reboot bool
}

// installVMs spreads the families over the firmware paths; two machines reboot after the
// install, one under each firmware type, since local boot differs (sanboot vs exit).
func installVMs() []installVM {
	fams := familyISOs()
	byFamily := map[string]*familyISO{}
	for i := range fams {
		byFamily[fams[i].family] = &fams[i]
	}
	return []installVM{
		{name: "rocky", family: byFamily["rocky"], path: "bios", reboot: true},
		{name: "ubuntu", family: byFamily["ubuntu"], path: "uefi-http", reboot: true},
		{name: "arch", family: byFamily["arch"], path: "uefi-pxe", byRule: true,
			hardware: map[string]string{"manufacturer": "Dell Inc.", "product": "PowerEdge R650", "serial": "7XK2LM3"}},
		{name: "alpine", family: byFamily["alpine"], path: "bios", byRule: true},
		{name: "debian", family: byFamily["debian"], path: "uefi-http"},
		{name: "menu", path: "bios"},
	}
}

// installResult is one machine's outcome for the summary.
type installResult struct {
	vm      string
	path    string
	mac     string
	script  time.Duration // VM start → boot.ipxe
	done    time.Duration // VM start → payload finished (install done)
	local   time.Duration // reboot scenarios: second VM start → local-boot script; menu: VM start → menu's local-disk default
	note    string
	failure bool
}

// isoEnv is the ISO scenarios' world: one LAN, one fleetboot in full DHCP mode without a
// default boot target (unknown machines get the menu), its API.
type isoEnv struct {
	*bootEnv
	server *proc
	api    *apiClient
}

// TestISOInstallsThroughFleetboot is the end-to-end proof of the ISO store and the one-shot
// install: ISOs in five distributions' layouts (their kernel and initrd are the test payload)
// are uploaded through the API, detected, turned into profiles with unattended templates, and
// machines assigned to them boot the kernel and initrd out of the ISO with the recipe's command
// line; the payload fetches what the recipe points at, runs the done command of its unattended
// file, and a second boot of the same machine gets local boot. An unknown machine gets the
// menu and falls through to local disk after the menu timeout.
func TestISOInstallsThroughFleetboot(t *testing.T) {
	requireBootSuite(t)
	t.Parallel()
	started := time.Now()
	payload, kernel := installerAndKernel(t)
	t.Logf("installer payload (%d bytes) ready after %s", len(payload), time.Since(started).Round(100*time.Millisecond))
	timeout := vmTimeout(t)
	env := &isoEnv{bootEnv: newBootEnv(t, "iso", payload)}
	// The ISO scenarios' UEFI machines boot through iPXE; shim → GRUB has its own scenarios.
	env.server = startISOFleetboot(t, env.bootEnv, "--boot-chain", "ipxe")
	ctx := env.connect(t)

	vms := installVMs()
	isos := map[string]*isoInfo{} // by family
	var setupMu sync.Mutex
	// Building and uploading are I/O and xorriso: run them side by side.
	var wg sync.WaitGroup
	for _, vm := range vms {
		if vm.family == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			iso, err := env.publishFamily(ctx, *vm.family, kernel, payload)
			if err != nil {
				t.Errorf("%s: %v", vm.family.name, err)
				return
			}
			setupMu.Lock()
			isos[vm.family.family] = iso
			setupMu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d ISOs built, uploaded and detected %s after the start", len(isos), time.Since(started).Round(100*time.Millisecond))

	var mu sync.Mutex
	var results []installResult
	suiteStart := time.Now()
	for i, vm := range vms {
		spec := newInstallVMSpec(t, env.lan, env.dir, vm, i)
		var iso *isoInfo
		if vm.family != nil {
			iso = isos[vm.family.family]
			if err := env.assign(ctx, vm, spec.mac, iso); err != nil {
				t.Fatalf("%s: %v", vm.name, err)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(vm.name+"-"+vm.path, func(t *testing.T) {
				res := &installResult{vm: vm.name, path: vm.path, mac: spec.mac}
				// Deferred: a t.Fatal half-way still leaves its row (and times) in the summary.
				defer func() {
					res.failure = t.Failed()
					mu.Lock()
					results = append(results, *res)
					mu.Unlock()
				}()
				if vm.family == nil {
					env.runMenu(ctx, t, spec, timeout, res)
				} else {
					env.runInstall(ctx, t, vm, spec, iso, timeout, res)
				}
			})
		}()
	}
	wg.Wait()
	t.Logf("ISO scenarios summary (VMs wall time %s, with setup %s):\n%s", time.Since(suiteStart).Round(time.Second),
		time.Since(started).Round(time.Second), installSummary(vms, results))
}

// connect gives env its API client (with the server's token) and returns a context that ends
// with the test, or as soon as fleetboot exits (the cause says so).
func (env *isoEnv) connect(t *testing.T) context.Context {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(env.dir, "data", "api-token"))
	if err != nil {
		t.Fatalf("api token: %v", err)
	}
	env.api = &apiClient{base: "http://" + env.lan.seg.server + ":8080", token: strings.TrimSpace(string(tok)), http: env.lan.lan.httpClient(60 * time.Second)}
	ctx, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	go func() {
		select {
		case <-env.server.done:
			cancel(fmt.Errorf("fleetboot exited during the boot (%v)", env.server.err))
		case <-ctx.Done():
		}
	}()
	return ctx
}

// startISOFleetboot runs fleetboot for the ISO scenarios: full DHCP, no default boot target,
// a short menu timeout, and extra flags.
func startISOFleetboot(t *testing.T, env *bootEnv, extra ...string) *proc {
	t.Helper()
	seg := env.lan.seg
	args := []string{suite.bin, "serve",
		"--data", filepath.Join(env.dir, "data"),
		"--interface", lanBridge,
		"--advertise-ip", seg.server,
		"--http", ":8080",
		"--dhcp", "full",
		"--tftp", ":69",
		"--pool", seg.poolLo + "-" + seg.poolHi,
		"--netmask", lanNetmask,
		"--router", seg.server,
		"--dns", seg.server,
		"--lease-time", "1h",
		"--menu-timeout", isoMenuTimeout.String(),
		"--log-format", "json",
		"--log-level", "debug",
		// The scenarios upload every family's ISO at once; the default --max-uploads (4)
		// would answer the fifth with 503 depending on timing.
		"--max-uploads", "32",
	}
	args = append(args, extra...)
	p := startProc(t, "fleetboot", env.serverLog, env.lan.lan.command(args...)...)
	waitHTTP(t, env, p, "http://"+seg.server+":8080/healthz")
	return p
}

// publishFamily builds f's ISO, uploads it, checks the detection (in the upload's answer and
// in GET /api/v1/isos/{id}) and creates f's profile.
func (env *isoEnv) publishFamily(ctx context.Context, f familyISO, kernel, payload []byte) (*isoInfo, error) {
	p, err := buildFamilyISO(env.dir, f, kernel, payload)
	if err != nil {
		return nil, err
	}
	up, err := env.api.uploadISO(ctx, f.name, p)
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if up.Size != st.Size() {
		return nil, fmt.Errorf("upload answer says %d bytes, the ISO has %d", up.Size, st.Size())
	}
	var iso isoInfo
	if err := env.api.do(ctx, http.MethodGet, "/api/v1/isos/"+up.ID, nil, &iso); err != nil {
		return nil, err
	}
	d := iso.Detected
	if d.Family != f.family {
		return nil, fmt.Errorf("detected family %q, want %q (detected: %+v)", d.Family, f.family, d)
	}
	if len(d.Recipes) == 0 {
		return nil, fmt.Errorf("no recipe (recipe_error %q)", d.RecipeError)
	}
	r := d.Recipes[0]
	if r.Kernel != f.kernelPath || len(r.Initrds) == 0 || r.Initrds[0].Path != f.initrdPath {
		return nil, fmt.Errorf("recipe %s boots %s with %v, want %s with %s", r.ID, r.Kernel, r.Initrds, f.kernelPath, f.initrdPath)
	}
	extra := payloadArgs + " fbtoken=" + env.token
	if f.extraArgs != "" {
		extra += " " + f.extraArgs
	}
	if f.rawArg != "" {
		// A raw template's URL is placed by the profile itself (the recipe adds none).
		extra += " " + f.rawArg + "={{.UnattendedURL}}"
	}
	prof := map[string]any{
		"name": f.name, "iso": iso.ID, "entry": r.ID,
		// The payload's console and token, as in the plain boot scenarios.
		"extra_args":    extra,
		"template":      f.template,
		"template_kind": f.kind,
	}
	if err := env.api.do(ctx, http.MethodPost, "/api/v1/profiles", prof, nil); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	return &iso, nil
}

// assign makes the machine install its family's profile on its next boot: created through the
// API as install-pending, or through a rule that matches its MAC when it is first seen.
func (env *isoEnv) assign(ctx context.Context, vm installVM, mac string, iso *isoInfo) error {
	if vm.byRule && vm.hardware != nil {
		// Every machine of this product: what iPXE reads from SMBIOS picks the profile.
		return env.api.do(ctx, http.MethodPost, "/api/v1/rules", map[string]any{
			"hardware": map[string]string{"product": vm.hardware["product"], "manufacturer": "dell*"},
			"profile":  vm.family.name, "install": true}, nil)
	}
	if vm.byRule {
		return env.api.do(ctx, http.MethodPost, "/api/v1/rules", map[string]any{
			"mac_prefix": mac, "profile": vm.family.name, "install": true}, nil)
	}
	var m machineInfo
	err := env.api.do(ctx, http.MethodPost, "/api/v1/machines", map[string]any{
		"mac": mac, "profile": vm.family.name, "state": "install-pending", "hostname": "e2e-" + vm.name}, &m)
	if err != nil {
		return err
	}
	if m.State != "install-pending" || m.Profile != vm.family.name {
		return fmt.Errorf("created machine is %s with profile %q", m.State, m.Profile)
	}
	return nil
}

// newInstallVMSpec names and wires one VM; its MAC's fifth octet 0x03 keeps it apart from the
// plain boot scenarios' machines in shared logs.
func newInstallVMSpec(t *testing.T, l *lan, dir string, vm installVM, index int) vmSpec {
	t.Helper()
	var sc scenario
	for _, s := range scenarios {
		if s.name == vm.path {
			sc = s
		}
	}
	if sc.name == "" {
		t.Fatalf("%s: no boot path %q", vm.name, vm.path)
	}
	// The plain scenarios' evidence ends with the default target's /assets/; here the kernel
	// comes out of the ISO store.
	ev := replaceAll(sc.evidence, "/assets/", "/isos/")
	if vm.family == nil {
		ev = nil
	}
	sc.evidence = ev
	name := "iso-" + vm.name
	spec := vmSpec{
		scenario:  sc,
		name:      name,
		mac:       fmt.Sprintf("52:54:00:fb:%02x:%02x", modeByte("iso"), index),
		tap:       l.addTap(t),
		serialLog: filepath.Join(dir, name+".serial.log"),
		qemuLog:   filepath.Join(dir, name+".qemu.log"),
	}
	if vm.hardware != nil {
		smbios := "type=1"
		for _, k := range []string{"manufacturer", "product", "serial"} {
			if v := vm.hardware[k]; v != "" {
				smbios += "," + k + "=" + strings.ReplaceAll(v, ",", ",,") // QEMU escapes ',' by doubling
			}
		}
		spec.extra = append(spec.extra, "-smbios", smbios)
	}
	spec.varsFile = uefiVars(t, dir, name, sc)
	return spec
}

// expand substitutes the ISO URL and the machine's unattended base URL into a wanted argument.
func expand(arg, isoURL, mac string) string {
	ua := "http://" + lanServerIP + ":8080/unattended/" + strings.ReplaceAll(mac, ":", "-")
	return strings.NewReplacer("{iso}", isoURL, "{ua}", ua).Replace(arg)
}

// runInstall boots the machine into its family's installer, checks what reached the kernel,
// what the payload fetched and that the done callback went through, then (for reboot
// scenarios) boots it again and expects local boot; finally it reads the machine's state and
// timeline through the API.
func (env *isoEnv) runInstall(ctx context.Context, t *testing.T, vm installVM, spec vmSpec, iso *isoInfo, timeout time.Duration, res *installResult) {
	f := vm.family
	res.note = fmt.Sprintf("%s %s", iso.Detected.Family, iso.Detected.Recipes[0].ID)
	boot := bootVM(ctx, t, env.lan, spec, env.sercon, env.token, timeout)
	res.script, res.done = boot.script, boot.elapsed
	if boot.err != nil {
		t.Fatalf("%s (%s): %v\n%s", spec.name, spec.mac, boot.err, failureReport(env.bootEnv, spec))
	}
	serial, _ := os.ReadFile(spec.serialLog)
	serverLog, _ := os.ReadFile(env.serverLog)
	recs := parseLog(serverLog)
	if err := checkServerLog(serverLog, spec.mac, spec.scenario.server); err != nil {
		t.Errorf("server log: %v", err)
	}
	ip := bootScriptIP(recs, spec.mac, "target")

	// What reached the kernel: every word of the recipe fleetboot detected for the ISO, the
	// family's hard-coded proof arguments with the unattended URL, and the profile's extras.
	cmdline := strings.Fields(markerLine(serial, "FLEETBOOT-CMDLINE"))
	have := map[string]bool{}
	for _, w := range cmdline {
		have[w] = true
	}
	want := strings.Fields(iso.Detected.Recipes[0].Cmdline)
	for _, a := range f.wantArgs {
		want = append(want, expand(a, iso.URL, spec.mac))
	}
	want = append(want, "fbtoken="+env.token, "console=ttyS0", "initrd="+path.Base(f.initrdPath))
	for _, w := range want {
		if !have[w] {
			t.Errorf("kernel command line lacks %q:\n%s", w, strings.Join(cmdline, " "))
		}
	}

	// The kernel and initrd came out of the ISO store, to this machine.
	for _, p := range []string{f.kernelPath, f.initrdPath} {
		if !servedTo(recs, "/isos/"+iso.ID+"/files"+p, ip) {
			t.Errorf("server log shows no successful GET of /isos/%s/files%s by %s", iso.ID, p, ip)
		}
	}

	// The payload reached the network with the address iPXE had, fetched what the recipe
	// points at, read its unattended file and reported done.
	if got := markerLine(serial, "FLEETBOOT-NET"); !strings.HasPrefix(got, ip+"/") {
		t.Errorf("payload network %q, want the boot address %s", got, ip)
	}
	for what, p := range f.fetches {
		wantSize := iso.Size
		if p != "" {
			wantSize = int64(len(f.files[p]))
		}
		got := strings.Fields(markerLine(serial, "FLEETBOOT-FETCH "+what))
		if len(got) == 0 || got[0] != fmt.Sprint(wantSize) {
			t.Errorf("payload fetch of %s: %v, want %d bytes", what, got, wantSize)
		}
	}
	uaLine := markerLine(serial, "FLEETBOOT-UNATTENDED-URL")
	wantFirst := strings.SplitN(f.template, "\n", 2)[0]
	wantFirst = strings.NewReplacer("{{.Hostname}}", hostnameOf(vm, spec.mac), "{{.MAC}}", spec.mac).Replace(wantFirst)
	if got := markerLine(serial, "FLEETBOOT-UNATTENDED"); got != wantFirst {
		t.Errorf("unattended file (%s) starts %q, want %q", uaLine, got, wantFirst)
	}
	if f.kind == "autoinstall" {
		if got := markerLine(serial, "FLEETBOOT-UNATTENDED-META"); !strings.HasPrefix(got, "instance-id: fleetboot-") {
			t.Errorf("meta-data starts %q, want instance-id: fleetboot-…", got)
		}
	}
	if got := markerLine(serial, "FLEETBOOT-DONE"); !strings.Contains(got, `"state":"installed"`) {
		t.Errorf("done callback answered %q, want the machine with state installed", got)
	}
	if t.Failed() {
		t.Logf("%s", failureReport(env.bootEnv, spec))
	}

	if vm.reboot {
		res.local = env.rebootToLocal(ctx, t, spec, timeout, "")
	}

	// The machine's life as the API tells it.
	var m machineInfo
	if err := env.api.do(ctx, http.MethodGet, "/api/v1/machines/"+spec.mac, nil, &m); err != nil {
		t.Fatal(err)
	}
	if m.State != "installed" || m.IP != ip {
		t.Errorf("machine is %s at %s, want installed at %s", m.State, m.IP, ip)
	}
	for k, v := range vm.hardware {
		if m.Hardware[k] != v {
			t.Errorf("hardware fact %s = %q as iPXE reported it, want %q (all: %v)", k, m.Hardware[k], v, m.Hardware)
		}
	}
	if vm.hardware != nil {
		t.Logf("%s: hardware facts iPXE reported: %v", spec.name, m.Hardware)
	}
	var events []eventInfo
	if err := env.api.do(ctx, http.MethodGet, "/api/v1/machines/"+spec.mac+"/events", nil, &events); err != nil {
		t.Fatal(err)
	}
	trail := strings.Join(stateTrail(events), " ")
	if want := "discovered→install-pending install-pending→installing installing→installed"; trail != want {
		t.Errorf("state changes %q, want %q", trail, want)
	}
	first := "created"
	if vm.byRule {
		first = "discovered"
	}
	wantKinds := []string{first, "profile", "state", "boot", "state", "unattended", "state"}
	if vm.reboot {
		wantKinds = append(wantKinds, "boot")
	}
	if err := kindsInOrder(events, wantKinds); err != nil {
		t.Errorf("timeline: %v (kinds: %s)", err, eventKinds(events))
	}
	if vm.reboot {
		if err := endsWithLocalBoot(events); err != nil {
			t.Errorf("timeline: %v (kinds: %s)", err, eventKinds(events))
		}
	}
}

// endsWithLocalBoot checks that a machine's last boot decision was its local disk. Only the
// firmware's own DHCP may follow it: under UEFI the local script's `exit` hands back to the boot
// manager, whose next entry is the network again, and its DHCP can be on the timeline before
// the test stops the VM.
func endsWithLocalBoot(events []eventInfo) error {
	for i := len(events) - 1; i >= 0; i-- {
		switch e := events[i]; {
		case e.Kind == "dhcp":
			continue
		case e.Kind == "boot" && e.Detail == "local disk":
			return nil
		default:
			return fmt.Errorf("last event other than DHCP is %s: %s, want boot: local disk", e.Kind, e.Detail)
		}
	}
	return fmt.Errorf("no boot: local disk event")
}

// rebootToLocal boots the same machine again (same MAC, same firmware variables, same disk if
// it has one) and waits until fleetboot hands it the local-boot script and the firmware acts
// on it; it returns the time from VM start to the local-boot script. diskSays, when set, is
// what the machine's disk must print once the firmware boots it (BIOS only: see bootSector).
func (env *isoEnv) rebootToLocal(ctx context.Context, t *testing.T, spec vmSpec, timeout time.Duration, diskSays string) time.Duration {
	spec.serialLog = strings.TrimSuffix(spec.serialLog, ".serial.log") + ".reboot.serial.log"
	spec.qemuLog = strings.TrimSuffix(spec.qemuLog, ".qemu.log") + ".reboot.qemu.log"
	args, err := qemuArgs(spec, env.sercon)
	if err != nil {
		t.Fatal(err)
	}
	before := len(bootScripts(env.serverLog, spec.mac))
	start := time.Now()
	p := startProc(t, "qemu "+spec.name+" reboot", spec.qemuLog, env.lan.lan.command(args...)...)
	defer p.stop(5 * time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var local time.Duration
	// Under BIOS the local script's sanboot of drive 0x80 runs and fails (no disk; the script
	// then offers retry/shell/power-off and powers off after the wait); under UEFI `exit`
	// hands back to the firmware's boot manager.
	marker := []byte("fleetboot: booting from local disk")
	after := []byte("Booting from SAN device 0x80")
	if strings.HasPrefix(spec.scenario.name, "uefi") {
		after = nil
	}
	var disk []byte
	if diskSays != "" {
		if after == nil {
			t.Fatalf("%s: a disk that prints is only built for BIOS machines", spec.name)
		}
		disk = []byte(diskSays)
	}
	for {
		kinds := bootScripts(env.serverLog, spec.mac)[before:]
		for _, k := range kinds {
			if k != "local" {
				t.Fatalf("second boot got a %s script, want local", k)
			}
		}
		if local == 0 && len(kinds) > 0 {
			local = time.Since(start)
		}
		serial, _ := os.ReadFile(spec.serialLog)
		text := ansiEscape.ReplaceAll(serial, nil)
		if local > 0 {
			// A disk's own text proves the sanboot; iPXE's line may lose its end (bootSector).
			if i := bytes.Index(text, marker); i >= 0 && (disk != nil && bytes.Contains(text[i:], disk) ||
				disk == nil && (after == nil || bytes.Contains(text[i:], after))) {
				return local
			}
		}
		if disk != nil && bytes.Contains(text, []byte("fleetboot: no bootable local disk")) {
			t.Fatalf("second boot: the disk the install wrote did not boot\n%s", readableTail(spec.serialLog, 30))
		}
		if p.exited() {
			t.Fatalf("QEMU exited on the second boot (%v)\n%s", p.err, readableTail(spec.serialLog, 30))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("second boot: no local boot after %s (scripts %v)\n%s", time.Since(start).Round(time.Second), kinds,
				readableTail(spec.serialLog, 30))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// runMenu boots a machine fleetboot has never seen: it must get the menu listing the profiles,
// which falls through to local disk after the menu timeout.
func (env *isoEnv) runMenu(ctx context.Context, t *testing.T, spec vmSpec, timeout time.Duration, res *installResult) {
	res.note = fmt.Sprintf("menu, local after %s timeout, no disk: power-off choice", isoMenuTimeout)
	args, err := qemuArgs(spec, env.sercon)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := startProc(t, "qemu "+spec.name, spec.qemuLog, env.lan.lan.command(args...)...)
	defer p.stop(5 * time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	marker := []byte("fleetboot: booting from local disk")
	var menuAt time.Time
	for {
		kinds := bootScripts(env.serverLog, spec.mac)
		if len(kinds) > 0 && menuAt.IsZero() {
			if kinds[0] != "menu" {
				t.Fatalf("unknown machine got a %s script, want menu", kinds[0])
			}
			// When fleetboot logged the menu (before sending it): the poll that sees the log
			// line can come much later than 250 ms on a loaded machine, and the wait measured
			// from it would then look shorter than the menu's timeout.
			if menuAt = firstBootScriptTime(env.serverLog, spec.mac); menuAt.IsZero() {
				t.Fatalf("fleetboot's boot script record for %s has no time", spec.mac)
			}
			res.script = menuAt.Sub(start)
		}
		serial, _ := os.ReadFile(spec.serialLog)
		text := ansiEscape.ReplaceAll(serial, nil)
		if !menuAt.IsZero() && bytes.Contains(text, marker) {
			res.local = time.Since(start)
			// At least the real wait: the menu was served after menuAt, and the local boot
			// began before this read of the console.
			waited := time.Since(menuAt)
			// iPXE's clock under TCG against the host's: allow half a second.
			if waited < isoMenuTimeout-500*time.Millisecond {
				t.Errorf("local boot %s after the menu was served, before the %s menu timeout", waited.Round(100*time.Millisecond), isoMenuTimeout)
			}
			for _, f := range familyISOs() {
				if !bytes.Contains(text, []byte("Install "+f.name)) {
					t.Errorf("menu does not offer profile %s:\n%s", f.name, readableTail(spec.serialLog, 30))
				}
			}
			break
		}
		if p.exited() {
			t.Fatalf("QEMU exited (%v)\n%s", p.err, readableTail(spec.serialLog, 30))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no menu and local boot after %s (scripts %v)\n%s", time.Since(start).Round(time.Second), kinds,
				readableTail(spec.serialLog, 30))
		case <-time.After(250 * time.Millisecond):
		}
	}
	// The VM has no disk: SeaBIOS returns from sanboot, and the script says so and, after the
	// wait, powers off instead of redrawing the menu. QEMU's NIC ROM (Debian bookworm's 2019
	// iPXE) has no poweroff command ("poweroff: command not found"), so there the script exits
	// to SeaBIOS, which tries its other boot devices: either way the menu is not drawn again.
	powerOff := []byte("fleetboot: powering off (no bootable local disk)")
	for {
		text := ansiEscape.ReplaceAll(mustRead(t, spec.serialLog), nil)
		if i := bytes.Index(text, powerOff); i >= 0 {
			if !bytes.Contains(text, []byte("fleetboot: no bootable local disk (BIOS drive 0x80 did not start)")) {
				t.Errorf("no reason given before powering off:\n%s", readableTail(spec.serialLog, 30))
			}
			if bytes.Contains(text[i:], []byte("Boot from local disk")) {
				t.Errorf("the menu was drawn again after the no-disk choice:\n%s", readableTail(spec.serialLog, 30))
			}
			break
		}
		if p.exited() {
			t.Fatalf("QEMU exited without the no-disk choice:\n%s", readableTail(spec.serialLog, 30))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no power-off after the failed local boot within %s\n%s", timeout, readableTail(spec.serialLog, 30))
		case <-time.After(250 * time.Millisecond):
		}
	}
	var m machineInfo
	if err := env.api.do(ctx, http.MethodGet, "/api/v1/machines/"+spec.mac, nil, &m); err != nil {
		t.Fatal(err)
	}
	if m.State != "discovered" || m.Profile != "" {
		t.Errorf("unknown machine is %s with profile %q, want discovered without one", m.State, m.Profile)
	}
}

// bootScripts returns the kinds of the boot scripts fleetboot served to mac so far, in order.
func bootScripts(serverLog, mac string) []string {
	data, _ := os.ReadFile(serverLog)
	var kinds []string
	for _, r := range parseLog(data) {
		if r.str("msg") == "boot script" && strings.EqualFold(r.str("mac"), mac) {
			kinds = append(kinds, r.str("kind"))
		}
	}
	return kinds
}

// firstBootScriptTime is when fleetboot logged the first boot script it served to mac (the
// record's "time"), zero when there is none.
func firstBootScriptTime(serverLog, mac string) time.Time {
	data, _ := os.ReadFile(serverLog)
	for _, r := range parseLog(data) {
		if r.str("msg") == "boot script" && strings.EqualFold(r.str("mac"), mac) {
			at, _ := time.Parse(time.RFC3339Nano, r.str("time"))
			return at
		}
	}
	return time.Time{}
}

// bootScriptIP is the address the machine fetched its last script of this kind from.
func bootScriptIP(recs []logRecord, mac, kind string) string {
	ip := ""
	for _, r := range recs {
		if r.str("msg") == "boot script" && strings.EqualFold(r.str("mac"), mac) && r.str("kind") == kind {
			ip = r.str("ip")
		}
	}
	return ip
}

// servedTo reports whether fleetboot's access log has a successful GET of urlPath by ip.
func servedTo(recs []logRecord, urlPath, ip string) bool {
	for _, r := range recs {
		if r.str("msg") == "http" && r.str("method") == "GET" && r.str("path") == urlPath && r.str("ip") == ip &&
			(r.num("status") == 200 || r.num("status") == 206) {
			return true
		}
	}
	return false
}

// markerLine returns the rest of the first serial line starting with marker (and a space),
// "" when there is none. Lines are cut at CR or LF; terminal control sequences go first (under
// BIOS the kernel's first output follows the firmware's screen-clearing escapes on one line).
func markerLine(serial []byte, marker string) string {
	text := string(ansiEscape.ReplaceAll(serial, nil))
	for {
		i := strings.Index(text, marker+" ")
		if i < 0 {
			return ""
		}
		if i == 0 || text[i-1] == '\n' || text[i-1] == '\r' {
			rest := text[i+len(marker)+1:]
			if j := strings.IndexAny(rest, "\r\n"); j >= 0 {
				rest = rest[:j]
			}
			return strings.TrimSpace(rest)
		}
		text = text[i+len(marker):]
	}
}

// hostnameOf is the hostname the machine's unattended file is rendered with: the one given on
// creation, or fleetboot's default for rule-assigned machines.
func hostnameOf(vm installVM, mac string) string {
	if vm.byRule {
		return "host-" + strings.ReplaceAll(mac, ":", "")
	}
	return "e2e-" + vm.name
}

// kindsInOrder checks that the timeline holds the wanted kinds as a subsequence.
func kindsInOrder(events []eventInfo, kinds []string) error {
	i := 0
	for _, e := range events {
		if i < len(kinds) && e.Kind == kinds[i] {
			i++
		}
	}
	if i < len(kinds) {
		return fmt.Errorf("no %q event after the first %d of %v", kinds[i], i, kinds)
	}
	return nil
}

// installSummary renders one row per machine.
func installSummary(vms []installVM, results []installResult) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "SCENARIO\tFIRMWARE\tMAC\tRESULT\tTO BOOT.IPXE\tTO DONE\tTO LOCAL BOOT\tNOTE")
	d := func(x time.Duration) string {
		if x <= 0 {
			return "-"
		}
		return x.Round(100 * time.Millisecond).String()
	}
	for _, vm := range vms {
		for _, r := range results {
			if r.vm != vm.name {
				continue
			}
			status := "ok"
			if r.failure {
				status = "FAIL"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.vm, r.path, r.mac, status, d(r.script), d(r.done), d(r.local), r.note)
		}
	}
	w.Flush()
	return b.String()
}

func TestMarkerLineNeedsTheMarkerAtALineStart(t *testing.T) {
	serial := []byte("Command line: FLEETBOOT-NET x\r\n\x1bc\x1b[?7l\x1b[2JFLEETBOOT-NET 10.77.0.100/24\r\nFLEETBOOT-FETCH iso 123 http://x\n")
	if got := markerLine(serial, "FLEETBOOT-NET"); got != "10.77.0.100/24" {
		t.Errorf("markerLine = %q", got)
	}
	if got := markerLine(serial, "FLEETBOOT-FETCH iso"); got != "123 http://x" {
		t.Errorf("markerLine = %q", got)
	}
	if got := markerLine(serial, "FLEETBOOT-DONE"); got != "" {
		t.Errorf("markerLine of an absent marker = %q", got)
	}
}

func TestKindsInOrderIsASubsequenceCheck(t *testing.T) {
	ev := []eventInfo{{Kind: "created"}, {Kind: "profile"}, {Kind: "boot"}, {Kind: "state"}}
	if err := kindsInOrder(ev, []string{"created", "boot", "state"}); err != nil {
		t.Error(err)
	}
	if err := kindsInOrder(ev, []string{"state", "boot"}); err == nil {
		t.Error("out-of-order kinds accepted")
	}
}

func TestEndsWithLocalBootAllowsOnlyTheFirmwaresOwnDHCPAfterIt(t *testing.T) {
	ev := func(kind, detail string) eventInfo { return eventInfo{Kind: kind, Detail: detail} }
	installed := []eventInfo{ev("boot", "install"), ev("state", "installing→installed")}
	for _, c := range []struct {
		name   string
		events []eventInfo
		ok     bool
	}{
		{"local boot last", append(installed[:2:2], ev("dhcp", "ack"), ev("boot", "local disk")), true},
		{"UEFI boot manager's DHCP after it", append(installed[:2:2], ev("boot", "local disk"), ev("dhcp", "ack 10.0.0.5")), true},
		{"never booted locally", append(installed[:2:2], ev("dhcp", "ack")), false},
		{"install again after the local boot", append(installed[:2:2], ev("boot", "local disk"), ev("boot", "install")), false},
		{"state change after the local boot", append(installed[:2:2], ev("boot", "local disk"), ev("state", "installed→install-pending")), false},
		{"empty", nil, false},
	} {
		if err := endsWithLocalBoot(c.events); (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestFirstBootScriptTimeIsTheServersOwnTimeOfTheMachinesFirstScript(t *testing.T) {
	log := filepath.Join(t.TempDir(), "server.log")
	lines := strings.Join([]string{
		`{"time":"2026-12-04T01:04:07.100Z","msg":"boot script","mac":"52:54:00:fb:03:01","kind":"menu"}`,
		`{"time":"2026-12-04T01:04:08.288649175Z","msg":"http","path":"/boot.ipxe"}`,
		`{"time":"2026-12-04T01:04:08.358831246Z","msg":"boot script","mac":"52:54:00:FB:03:05","kind":"menu"}`,
		`{"time":"2026-12-04T01:04:12.5Z","msg":"boot script","mac":"52:54:00:fb:03:05","kind":"local"}`,
		`{"time":"2026-12-04T01:04:13`,
	}, "\n")
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 12, 4, 1, 4, 8, 358831246, time.UTC)
	if got := firstBootScriptTime(log, "52:54:00:fb:03:05"); !got.Equal(want) {
		t.Errorf("firstBootScriptTime = %v, want %v", got, want)
	}
	if got := firstBootScriptTime(log, "52:54:00:fb:03:09"); !got.IsZero() {
		t.Errorf("firstBootScriptTime of a machine without a script = %v, want zero", got)
	}
}
