package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// siteBSegment is the second site's LAN in the multi-site scenario: another subnet, as a
// second segment (rack, room) of a real network has, so the machine's second lease comes out
// of another pool of the shared lease table.
var siteBSegment = segment{server: "10.78.0.1", site: "10.78.0.2", poolLo: "10.78.0.100", poolHi: "10.78.0.199"}

// TestMachineInstallsAtOneSiteAndBootsLocallyAtAnother is issue 11's multi-segment proof with
// real firmware and a real PostgreSQL: two fleetboot instances (--site a, --site b) on one
// database (--database postgres://…, a fresh schema on the server scripts/with-postgres.sh
// started), each on a bridge of its own in its own namespaces, with its own subnet, full DHCP
// pool and data directory. The ISO is uploaded to instance A, and the machine is assigned once,
// through A's API, by a rule on its MAC. A SeaBIOS machine (the NIC's iPXE ROM) boots on A's
// bridge, installs the ISO through A — the installer stand-in writes a boot sector to the
// machine's disk (bootSector) — and calls the done callback; the same machine (same MAC, same
// disk) then boots on B's bridge, where B — which never saw it boot, holds no ISO bytes and
// answers from the shared inventory — serves the local-boot script, although the rule that
// assigned the install still matches, and the firmware boots the sector the install wrote.
// All along, `fleetboot events --follow` against B shows A's install steps as they happen. B's API then shows the machine installed at its B address, with a
// timeline whose install steps name site a and whose local boot names site b.
//
// Without FLEETBOOT_TEST_POSTGRES it skips, except under CI=true, where it fails
// (storetest.Server): scripts/test.sh runs this suite inside scripts/with-postgres.sh.
func TestMachineInstallsAtOneSiteAndBootsLocallyAtAnother(t *testing.T) {
	requireBootSuite(t)
	dsn := storetest.DSN(t)
	t.Parallel()
	started := time.Now()
	payload, kernel := installerAndKernel(t)
	timeout := vmTimeout(t)
	a := &isoEnv{bootEnv: newBootEnvOn(t, "site-a", payload, lanSegment)}
	b := &isoEnv{bootEnv: newBootEnvOn(t, "site-b", payload, siteBSegment)}
	shared := []string{"--boot-chain", "ipxe", "--database", dsn}
	a.server = startISOFleetboot(t, a.bootEnv, append(shared, "--site", "a")...)
	b.server = startISOFleetboot(t, b.bootEnv, append(shared, "--site", "b")...)
	ctx := a.connect(t)
	ctxB := b.connect(t)
	ctx, cancel := context.WithCancelCause(ctx)
	t.Cleanup(func() { cancel(nil) })
	go func() {
		select {
		case <-ctxB.Done():
			cancel(context.Cause(ctxB))
		case <-ctx.Done():
		}
	}()
	t.Logf("instances a and b on one PostgreSQL database serving after %s", time.Since(started).Round(100*time.Millisecond))

	var fam familyISO
	for _, f := range familyISOs() {
		if f.family == "rocky" {
			fam = f
		}
	}
	// The install writes a boot sector to the machine's disk (see bootSector); the local boot
	// through b must then run it.
	fam.extraArgs = "fbdisk=/dev/sda"
	iso, err := a.publishFamily(ctx, fam, kernel, payload)
	if err != nil {
		t.Fatalf("publish %s through instance a: %v", fam.name, err)
	}
	// B knows the image from the shared catalog without holding its bytes: the local boot
	// must not need them.
	var seen isoInfo
	if err := b.api.do(ctx, http.MethodGet, "/api/v1/isos/"+iso.ID, nil, &seen); err != nil {
		t.Fatalf("instance b does not list the ISO uploaded through a: %v", err)
	}

	vm := installVM{name: "rocky", family: &fam, path: "bios", byRule: true}
	spec := newInstallVMSpec(t, a.lan, a.dir, vm, 0)
	spec.name = "sites-rocky"
	spec.mac = fmt.Sprintf("52:54:00:fb:%02x:00", modeByte("sites"))
	spec.serialLog = filepath.Join(a.dir, spec.name+".serial.log")
	spec.qemuLog = filepath.Join(a.dir, spec.name+".qemu.log")
	spec.disk = filepath.Join(a.dir, spec.name+".disk.img")
	if err := os.WriteFile(spec.disk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	// Instance b's live view of the machine, from before the install: fleetboot events
	// --follow against b must print what a records, as a records it (pg_notify between them).
	// All machines' events: --machine of a machine nobody has seen yet is a 404.
	followLog := filepath.Join(b.dir, "events-follow.jsonl")
	startProc(t, "fleetboot events --follow (b)", followLog, b.lan.lan.command(suite.bin, "events", "--follow", "-o", "json",
		"--limit", "0", "--server", b.api.base, "--token", b.api.token)...)
	if err := a.assign(ctx, vm, spec.mac, iso); err != nil {
		t.Fatalf("assign through instance a: %v", err)
	}

	// 1. The install, on A's bridge: runInstall checks what reached the kernel, what the
	// payload fetched, the done callback, and state and timeline through A's API.
	res := &installResult{vm: vm.name, path: vm.path, mac: spec.mac}
	a.runInstall(ctx, t, vm, spec, iso, timeout, res)
	if got := markerLine(mustRead(t, spec.serialLog), "FLEETBOOT-DISK"); got != "/dev/sda written" {
		t.Errorf("installer's disk: %q, want /dev/sda written", got)
	}
	diskText := "FLEETBOOT-LOCAL-DISK " + a.token
	img := mustRead(t, spec.disk)
	if want := bootSector(); !bytes.Equal(img[:bootSectorText], want[:bootSectorText]) || !bytes.Equal(img[510:512], want[510:]) ||
		!bytes.HasPrefix(img[bootSectorText:], []byte(diskText+"\r\n")) {
		t.Errorf("the disk after the install does not hold the boot sector with %q: % x", diskText, img[:128])
	}
	if t.Failed() {
		t.FailNow()
	}
	waitFollowed(ctx, t, followLog, spec.mac, siteStep{"a", "state", "installing → installed"})
	var m machineInfo
	if err := b.api.do(ctx, http.MethodGet, "/api/v1/machines/"+spec.mac, nil, &m); err != nil {
		t.Fatalf("instance b's API on the machine installed through a: %v", err)
	}
	if m.State != "installed" {
		t.Fatalf("instance b sees the machine %s, want installed", m.State)
	}

	// 2. The same machine, with the same disk, on B's bridge: B serves local boot, and the
	// firmware boots the disk the install wrote.
	specB := spec
	specB.tap = b.lan.addTap(t)
	specB.serialLog = filepath.Join(b.dir, spec.name+".serial.log")
	specB.qemuLog = filepath.Join(b.dir, spec.name+".qemu.log")
	res.local = b.rebootToLocal(ctx, t, specB, timeout, diskText)
	if n := len(bootScripts(a.serverLog, spec.mac)); n != 1 {
		t.Errorf("instance a served %d boot scripts to the machine, want the install's 1", n)
	}
	ipB := bootScriptIP(parseLog(mustRead(t, b.serverLog)), spec.mac, "local")
	if !inSegment(ipB, siteBSegment) {
		t.Errorf("the local-boot script went to %q, want an address of b's pool %s-%s", ipB, siteBSegment.poolLo, siteBSegment.poolHi)
	}

	waitFollowed(ctx, t, followLog, spec.mac, siteStep{"b", "boot", "local disk"})

	// 3. The machine's life as instance B's API tells it.
	if err := b.api.do(ctx, http.MethodGet, "/api/v1/machines/"+spec.mac, nil, &m); err != nil {
		t.Fatal(err)
	}
	if m.State != "installed" || m.Profile != fam.name || m.IP != ipB {
		t.Errorf("through b the machine is %s with profile %q at %s, want installed with %s at %s", m.State, m.Profile, m.IP, fam.name, ipB)
	}
	var events []eventInfo
	if err := b.api.do(ctx, http.MethodGet, "/api/v1/machines/"+spec.mac+"/events", nil, &events); err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, e := range events {
		trail = append(trail, fmt.Sprintf("%s[%s] %s: %s", e.Time.Format("15:04:05.000"), e.Site, e.Kind, e.Detail))
	}
	t.Logf("timeline through instance b:\n  %s", strings.Join(trail, "\n  "))
	// The steps the HTTP requests wrote, in order; DHCP lines are written by each instance's
	// DHCP timeline writer a moment after the exchange (batched, off the packet path), so a
	// boot script fetched right after an ACK can precede that ACK in the timeline. Each
	// instance's DHCP ack is only checked against what certainly happened before it.
	if err := sitesInOrder(events, []siteStep{
		{"a", "discovered", ""},
		{"a", "state", "discovered → install-pending"},
		{"a", "boot", "installer " + fam.name},
		{"a", "state", "install-pending → installing"},
		{"a", "unattended", ""},
		{"a", "state", "installing → installed"},
		{"b", "boot", "local disk"},
	}); err != nil {
		t.Errorf("timeline through b: %v", err)
	}
	if err := sitesInOrder(events, []siteStep{{"a", "dhcp", "ack " + lanSegment.subnetPrefix()}}); err != nil {
		t.Errorf("timeline through b: %v", err)
	}
	// The machine reached b's segment only after the install through a had ended.
	if err := sitesInOrder(events, []siteStep{{"a", "state", "installing → installed"}, {"b", "dhcp", "ack " + siteBSegment.subnetPrefix()}}); err != nil {
		t.Errorf("timeline through b: %v", err)
	}
	for _, e := range events {
		if e.Site != "a" && e.Site != "b" {
			t.Errorf("event %s %q names site %q, want a or b", e.Kind, e.Detail, e.Site)
		}
		if e.Kind == "state" && e.Site == "b" {
			t.Errorf("instance b changed the installed machine's state: %s", e.Detail)
		}
	}
	t.Logf("multi-site summary (%s in all): install through a: boot.ipxe after %s, done after %s; local boot through b: script after %s",
		time.Since(started).Round(time.Second), res.script.Round(100*time.Millisecond), res.done.Round(100*time.Millisecond),
		res.local.Round(100*time.Millisecond))
}

// waitFollowed waits (bounded) until the JSON Lines of a `fleetboot events --follow -o json`
// log hold the wanted event of machine mac.
func waitFollowed(ctx context.Context, t *testing.T, logPath, mac string, want siteStep) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // normally well under a second
	for {
		var got []eventInfo
		for _, line := range strings.Split(string(mustRead(t, logPath)), "\n") {
			var e eventInfo
			if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &e) == nil && strings.EqualFold(e.MAC, mac) {
				got = append(got, e)
			}
		}
		if sitesInOrder(got, []siteStep{want}) == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("instance b's live view (events --follow) never showed %s %q by site %s:\n%s", want.kind, want.detail, want.site,
				readableTail(logPath, 20))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// siteStep is one wanted timeline event: the site that wrote it, its kind, and a substring of
// its detail ("" for any).
type siteStep struct {
	site, kind, detail string
}

// sitesInOrder checks that the timeline holds the wanted steps as a subsequence.
func sitesInOrder(events []eventInfo, steps []siteStep) error {
	i := 0
	for _, e := range events {
		if i < len(steps) && e.Site == steps[i].site && e.Kind == steps[i].kind && strings.Contains(e.Detail, steps[i].detail) {
			i++
		}
	}
	if i < len(steps) {
		s := steps[i]
		return fmt.Errorf("no %s event %q by site %q after the first %d wanted steps", s.kind, s.detail, s.site, i)
	}
	return nil
}

// subnetPrefix is the segment's /24 as the start of an address, e.g. "10.78.0.".
func (s segment) subnetPrefix() string {
	return s.server[:strings.LastIndex(s.server, ".")+1]
}

// inSegment reports whether ip lies in seg's DHCP pool.
func inSegment(ip string, seg segment) bool {
	v, lo, hi := net.ParseIP(ip).To4(), net.ParseIP(seg.poolLo).To4(), net.ParseIP(seg.poolHi).To4()
	if v == nil {
		return false
	}
	return string(v) >= string(lo) && string(v) <= string(hi)
}

func TestSitesInOrderNeedsSiteKindAndDetail(t *testing.T) {
	ev := []eventInfo{
		{Site: "a", Kind: "discovered"}, {Site: "a", Kind: "state", Detail: "installing→installed"},
		{Site: "b", Kind: "boot", Detail: "local disk"},
	}
	if err := sitesInOrder(ev, []siteStep{{"a", "discovered", ""}, {"b", "boot", "local disk"}}); err != nil {
		t.Error(err)
	}
	if err := sitesInOrder(ev, []siteStep{{"a", "boot", "local disk"}}); err == nil {
		t.Error("a step by the wrong site accepted")
	}
	if err := sitesInOrder(ev, []siteStep{{"b", "boot", "local disk"}, {"a", "discovered", ""}}); err == nil {
		t.Error("out-of-order steps accepted")
	}
	if !inSegment("10.78.0.150", siteBSegment) || inSegment("10.77.0.150", siteBSegment) || inSegment("", siteBSegment) {
		t.Error("inSegment")
	}
}
