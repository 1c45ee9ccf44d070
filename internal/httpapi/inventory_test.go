package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/server"
)

// jsonCall sends body as JSON with the token and decodes a 2xx answer into out.
func (e *isoEnv) jsonCall(t *testing.T, method, path, body string, wantCode int, out any) []byte {
	t.Helper()
	var r *strings.Reader
	if body != "" {
		r = strings.NewReader(body)
	} else {
		r = strings.NewReader("")
	}
	res, b := e.do(t, method, path, testToken, map[string]string{"Content-Type": "application/json"}, r)
	if res.StatusCode != wantCode {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, wantCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return b
}

func TestMachinesCRUD(t *testing.T) {
	e := newISOEnv(t)
	var m inventory.Machine
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52-54-00-AA-BB-01","hostname":"node1","labels":{"rack":"r1"}}`, 201, &m)
	if m.MAC != "52:54:00:aa:bb:01" || m.Hostname != "node1" || m.Labels["rack"] != "r1" || m.State != inventory.Discovered {
		t.Fatalf("created: %+v", m)
	}
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:aa:bb:01"}`, 409, nil)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"not-a-mac"}`, 400, nil)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":`, 400, nil)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:aa:bb:02","profile":"nosuch"}`, 400, nil)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:aa:bb:02","hostname":"bad name"}`, 400, nil)

	e.jsonCall(t, "PATCH", "/api/v1/machines/52:54:00:aa:bb:01", `{"hostname":"node1b","labels":{"rack":"r2","role":"db"}}`, 200, &m)
	if m.Hostname != "node1b" || m.Labels["rack"] != "r2" || m.Labels["role"] != "db" {
		t.Fatalf("updated: %+v", m)
	}
	// install-pending needs a profile.
	e.jsonCall(t, "POST", "/api/v1/machines/52:54:00:aa:bb:01/reinstall", "", 400, nil)
	e.jsonCall(t, "PATCH", "/api/v1/machines/52:54:00:aa:bb:01", `{"state":"flying"}`, 400, nil)

	var list []inventory.Machine
	res, b := e.do(t, "GET", "/api/v1/machines", testToken, nil, nil)
	if res.StatusCode != 200 || json.Unmarshal(b, &list) != nil || len(list) != 1 {
		t.Fatalf("list: %d %s", res.StatusCode, b)
	}
	res, b = e.do(t, "GET", "/api/v1/machines?state=installed", testToken, nil, nil)
	if res.StatusCode != 200 || strings.TrimSpace(string(b)) != "[]" {
		t.Fatalf("list installed: %d %s", res.StatusCode, b)
	}
	if res, _ := e.do(t, "GET", "/api/v1/machines?state=bogus", testToken, nil, nil); res.StatusCode != 400 {
		t.Errorf("unknown state filter: %d", res.StatusCode)
	}
	res, b = e.do(t, "GET", "/api/v1/machines/52-54-00-aa-bb-01", testToken, nil, nil)
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"hostname":"node1b"`)) {
		t.Fatalf("get: %d %s", res.StatusCode, b)
	}
	var ev []inventory.Event
	res, b = e.do(t, "GET", "/api/v1/machines/52:54:00:aa:bb:01/events", testToken, nil, nil)
	if res.StatusCode != 200 || json.Unmarshal(b, &ev) != nil || len(ev) == 0 {
		t.Fatalf("events: %d %s", res.StatusCode, b)
	}
	if res, _ := e.do(t, "GET", "/api/v1/machines/52:54:00:aa:bb:99/events", testToken, nil, nil); res.StatusCode != 404 {
		t.Errorf("events of an unknown machine: %d", res.StatusCode)
	}
	if res, _ := e.do(t, "GET", "/api/v1/machines/zz", testToken, nil, nil); res.StatusCode != 400 {
		t.Errorf("bad MAC in URL: %d", res.StatusCode)
	}
	e.jsonCall(t, "DELETE", "/api/v1/machines/52:54:00:aa:bb:01", "", 204, nil)
	if res, _ := e.do(t, "GET", "/api/v1/machines/52:54:00:aa:bb:01", testToken, nil, nil); res.StatusCode != 404 {
		t.Fatalf("after delete: %d", res.StatusCode)
	}
	e.jsonCall(t, "DELETE", "/api/v1/machines/52:54:00:aa:bb:01", "", 404, nil)
}

func TestProfilesAndRulesCRUD(t *testing.T) {
	e := newISOEnv(t)
	iso := e.putISO(t, "fedora", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)

	var p inventory.Profile
	e.jsonCall(t, "PUT", "/api/v1/profiles/fed", `{"iso":"fedora","extra_args":"console=ttyS0","template":"network --hostname={{.Hostname}}\n","template_kind":"kickstart","vars":{"tz":"UTC"}}`, 201, &p)
	if p.Name != "fed" || p.ISO != iso.ID || p.ExtraArgs != "console=ttyS0" || p.Kind != "kickstart" {
		t.Fatalf("profile stored as %+v (the ISO must be kept by id %s)", p, iso.ID)
	}
	p = inventory.Profile{} // omitempty fields are absent from the answer
	e.jsonCall(t, "PUT", "/api/v1/profiles/fed", `{"iso":"`+iso.ID+`","extra_args":"console=ttyS1"}`, 200, &p)
	if p.ExtraArgs != "console=ttyS1" || p.Template != "" {
		t.Fatalf("replaced profile: %+v", p)
	}
	e.jsonCall(t, "POST", "/api/v1/profiles", `{"name":"fed2","iso":"fedora"}`, 201, nil)

	refused := []struct{ name, body, want string }{
		{"template syntax", `{"iso":"fedora","template":"{{ if .Hostname }}","template_kind":"kickstart"}`, "unexpected EOF"},
		{"template field", `{"iso":"fedora","template":"{{.Hostnme}}","template_kind":"kickstart"}`, "Hostnme"},
		{"template without kind", `{"iso":"fedora","template":"x"}`, "template_kind"},
		{"unknown kind", `{"iso":"fedora","template":"x","template_kind":"cloudinit"}`, "template kind"},
		{"unknown ISO", `{"iso":"nosuch"}`, "nosuch"},
		{"unknown entry", `{"iso":"fedora","entry":"no-such-entry"}`, "no-such-entry"},
	}
	for _, c := range refused {
		b := e.jsonCall(t, "PUT", "/api/v1/profiles/bad", c.body, http.StatusUnprocessableEntity, nil)
		var msg map[string]string
		if json.Unmarshal(b, &msg) != nil || !strings.Contains(msg["error"], c.want) {
			t.Errorf("%s: error %s, want it to mention %q", c.name, b, c.want)
		}
	}
	e.jsonCall(t, "PUT", "/api/v1/profiles/bad%20name", `{"iso":"fedora"}`, 400, nil)
	e.jsonCall(t, "PUT", "/api/v1/profiles/fed", `{"name":"other","iso":"fedora"}`, 400, nil)
	if res, _ := e.do(t, "GET", "/api/v1/profiles/bad", testToken, nil, nil); res.StatusCode != 404 {
		t.Errorf("refused profile exists: %d", res.StatusCode)
	}
	var ps []inventory.Profile
	res, b := e.do(t, "GET", "/api/v1/profiles", testToken, nil, nil)
	if res.StatusCode != 200 || json.Unmarshal(b, &ps) != nil || len(ps) != 2 {
		t.Fatalf("profiles: %d %s", res.StatusCode, b)
	}

	// Rules: a machine without a profile matching a new rule gets it.
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:aa:bb:01","labels":{"role":"db"}}`, 201, nil)
	var added struct {
		Rule      inventory.Rule `json:"rule"`
		AppliedTo int            `json:"applied_to"`
	}
	e.jsonCall(t, "POST", "/api/v1/rules", `{"profile":"fed","labels":{"role":"db"},"install":true,"priority":5}`, 201, &added)
	if added.Rule.ID == 0 || added.AppliedTo != 1 || !added.Rule.Install || added.Rule.Priority != 5 {
		t.Fatalf("rule: %+v", added)
	}
	var m inventory.Machine
	res, b = e.do(t, "GET", "/api/v1/machines/52:54:00:aa:bb:01", testToken, nil, nil)
	json.Unmarshal(b, &m)
	if m.Profile != "fed" || m.State != inventory.InstallPending {
		t.Fatalf("machine after the rule: %+v", m)
	}
	e.jsonCall(t, "POST", "/api/v1/rules", `{"profile":"nosuch","mac_prefix":"52:54:00"}`, 400, nil)
	e.jsonCall(t, "POST", "/api/v1/rules", `{"profile":"fed"}`, 400, nil)
	e.jsonCall(t, "POST", "/api/v1/rules", `{"profile":"fed","mac_prefix":"52:5"}`, 400, nil)
	var rs []inventory.Rule
	res, b = e.do(t, "GET", "/api/v1/rules", testToken, nil, nil)
	if res.StatusCode != 200 || json.Unmarshal(b, &rs) != nil || len(rs) != 1 || rs[0].ID != added.Rule.ID {
		t.Fatalf("rules: %d %s", res.StatusCode, b)
	}
	e.jsonCall(t, "DELETE", "/api/v1/rules/x", "", 400, nil)
	e.jsonCall(t, "DELETE", "/api/v1/rules/"+jsonNum(added.Rule.ID), "", 204, nil)
	e.jsonCall(t, "DELETE", "/api/v1/rules/"+jsonNum(added.Rule.ID), "", 404, nil)

	// A profile in use by a machine cannot go; an unused one can.
	if res, b := e.do(t, "DELETE", "/api/v1/profiles/fed", testToken, nil, nil); res.StatusCode != 409 {
		t.Errorf("delete a profile in use: %d %s", res.StatusCode, b)
	}
	e.jsonCall(t, "DELETE", "/api/v1/profiles/fed2", "", 204, nil)
	e.jsonCall(t, "DELETE", "/api/v1/profiles/fed2", "", 404, nil)
}

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestOneShotInstallOverHTTP walks a machine through the whole install: profile on a
// Fedora-layout ISO, machine assigned and install-pending, installer script with URLs into the
// ISO and the kickstart, the kickstart itself, the done callback (refused from a foreign
// address), then local boot.
func TestOneShotInstallOverHTTP(t *testing.T) {
	e := newISOEnv(t)
	iso := e.putISO(t, "fedora-41", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	ks := "network --hostname={{.Hostname}}\nurl --url={{.ISOURL}}/files/\n%post\n{{.DoneCommand}}\n%end\n"
	body, _ := json.Marshal(map[string]any{"iso": "fedora-41", "extra_args": "console=ttyS0 fbtoken=ONE",
		"template": ks, "template_kind": "kickstart"})
	e.jsonCall(t, "PUT", "/api/v1/profiles/fedora-ks", string(body), 201, nil)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:aa:bb:01","hostname":"web1","profile":"fedora-ks"}`, 201, nil)
	var m inventory.Machine
	e.jsonCall(t, "POST", "/api/v1/machines/52:54:00:aa:bb:01/reinstall", "", 200, &m)
	if m.State != inventory.InstallPending {
		t.Fatalf("after reinstall: %+v", m)
	}

	// The machine boots from a foreign address first (the ip= iPXE reports).
	res, script := e.do(t, "GET", "/boot.ipxe?mac=52-54-00-aa-bb-01&arch=x86_64&platform=efi&ip=192.0.2.50", "", nil, nil)
	if res.StatusCode != 200 {
		t.Fatalf("boot.ipxe: %d %s", res.StatusCode, script)
	}
	files := e.base + "/isos/" + iso.ID + "/files/"
	for _, want := range []string{
		"kernel " + files + "images/pxeboot/vmlinuz",
		"initrd --name initrd.img " + files + "images/pxeboot/initrd.img",
		"inst.ks=" + e.base + "/unattended/52-54-00-aa-bb-01/ks.cfg",
		"console=ttyS0 fbtoken=ONE",
		"inst.repo=" + e.base + "/isos/" + iso.ID + "/files",
	} {
		if !bytes.Contains(script, []byte(want)) {
			t.Errorf("installer script lacks %q:\n%s", want, script)
		}
	}
	// Kernel and initrd URLs in the script really serve the ISO's files.
	res, kernel := e.do(t, "GET", strings.TrimPrefix(files, e.base)+"images/pxeboot/vmlinuz", "", nil, nil)
	if res.StatusCode != 200 || !bytes.Equal(kernel, fedoraFiles(t)["images/pxeboot/vmlinuz"]) {
		t.Fatalf("kernel URL: %d %d bytes", res.StatusCode, len(kernel))
	}
	res, b := e.do(t, "GET", "/api/v1/machines/52:54:00:aa:bb:01", testToken, nil, nil)
	json.Unmarshal(b, &m)
	if m.State != inventory.Installing || m.IP != "192.0.2.50" {
		t.Fatalf("after the installer was handed out: %+v", m)
	}

	res, kick := e.do(t, "GET", "/unattended/52-54-00-aa-bb-01/ks.cfg", "", nil, nil)
	wantKS := "network --hostname=web1\nurl --url=" + e.base + "/isos/" + iso.ID + "/files/\n%post\n" +
		"curl -fsS -X POST " + e.base + "/boot/done/52-54-00-aa-bb-01 || wget -q -O- --post-data= " + e.base + "/boot/done/52-54-00-aa-bb-01 || true\n%end\n"
	if res.StatusCode != 200 || string(kick) != wantKS {
		t.Fatalf("ks.cfg: %d\n%s\nwant\n%s", res.StatusCode, kick, wantKS)
	}
	if res, _ := e.do(t, "GET", "/unattended/52-54-00-aa-bb-01/preseed.cfg", "", nil, nil); res.StatusCode != 404 {
		t.Errorf("another kind's file: %d, want 404", res.StatusCode)
	}
	if res, _ := e.do(t, "GET", "/unattended/52-54-00-aa-bb-99/ks.cfg", "", nil, nil); res.StatusCode != 404 {
		t.Errorf("unknown machine's ks.cfg: %d, want 404", res.StatusCode)
	}

	// The callback comes from 127.0.0.1, not the machine's 192.0.2.50: refused.
	res, b = e.do(t, "POST", "/boot/done/52-54-00-aa-bb-01", "", nil, nil)
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("done from a foreign address: %d %s", res.StatusCode, b)
	}
	// The installer boots again, now from 127.0.0.1 (no ip=: the connection's address counts),
	// and is handed the installer again since no callback came.
	_, script = e.do(t, "GET", "/boot.ipxe?mac=52-54-00-aa-bb-01&arch=x86_64&platform=efi", "", nil, nil)
	if !bytes.Contains(script, []byte("inst.ks=")) {
		t.Fatalf("second boot while installing:\n%s", script)
	}
	res, b = e.do(t, "POST", "/boot/done/52:54:00:aa:bb:01", "", nil, nil)
	if res.StatusCode != 200 || json.Unmarshal(b, &m) != nil || m.State != inventory.Installed {
		t.Fatalf("done from the machine: %d %s", res.StatusCode, b)
	}
	// Only once.
	if res, _ := e.do(t, "POST", "/boot/done/52:54:00:aa:bb:01", "", nil, nil); res.StatusCode != http.StatusConflict {
		t.Errorf("second done: %d, want 409", res.StatusCode)
	}
	_, script = e.do(t, "GET", "/boot.ipxe?mac=52-54-00-aa-bb-01&arch=x86_64&platform=efi", "", nil, nil)
	if !bytes.Equal(script, ipxe.LocalBoot(ipxe.ScriptConfig{HTTPBase: e.base})) {
		t.Fatalf("after done, want the local boot script, got:\n%s", script)
	}
	var ev []inventory.Event
	_, b = e.do(t, "GET", "/api/v1/machines/52:54:00:aa:bb:01/events", testToken, nil, nil)
	json.Unmarshal(b, &ev)
	kinds := map[string]bool{}
	for _, x := range ev {
		kinds[x.Kind] = true
	}
	if !kinds["unattended"] || !kinds["boot"] {
		t.Errorf("timeline lacks unattended/boot events: %+v", ev)
	}
	if res, _ := e.do(t, "POST", "/boot/done/52:54:00:aa:bb:77", "", nil, nil); res.StatusCode != 404 {
		t.Errorf("done for an unknown machine: %d", res.StatusCode)
	}
}

// TestBootEntryShowsTheFinalCommandLine: the profile and machine views show what the machine
// will boot, including which of the ISO's own arguments were kept, rewritten or dropped.
func TestBootEntryShowsTheFinalCommandLine(t *testing.T) {
	e := newISOEnv(t)
	files := fedoraFiles(t)
	files["EFI/BOOT/grub.cfg"] = []byte("menuentry 'Install Fedora 41' {\n\tlinux /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=Fedora-S-dvd-x86_64-41 vga=791 site.token=ISOONLY console=ttyS0\n\tinitrd /images/pxeboot/initrd.img\n}\n")
	files["boot/grub2/grub.cfg"] = files["EFI/BOOT/grub.cfg"]
	iso := e.putISO(t, "fedora-41", buildISO(t, files, nil), http.StatusCreated)
	e.jsonCall(t, "PUT", "/api/v1/profiles/f41", `{"iso":"fedora-41","extra_args":"console=ttyS1,9600"}`, 201, nil)
	var got struct {
		Cmdline  string                                   `json:"cmdline"`
		ISOEntry string                                   `json:"iso_entry"`
		ISOArgs  []struct{ Arg, Action, Now, Why string } `json:"iso_args"`
	}
	e.jsonCall(t, "GET", "/api/v1/profiles/f41/boot", "", 200, &got)
	want := "site.token=ISOONLY ip=dhcp inst.repo=" + e.base + "/isos/" + iso.ID + "/files/ console=ttyS1,9600"
	if got.Cmdline != want {
		t.Errorf("cmdline %q, want %q", got.Cmdline, want)
	}
	actions := map[string]string{}
	for _, a := range got.ISOArgs {
		actions[a.Arg] = a.Action
		if a.Action != "kept" && a.Why == "" {
			t.Errorf("%s %s without a reason", a.Arg, a.Action)
		}
	}
	for arg, want := range map[string]string{"inst.stage2=hd:LABEL=Fedora-S-dvd-x86_64-41": "dropped", "vga=791": "dropped",
		"site.token=ISOONLY": "kept", "console=ttyS0": "dropped"} {
		if actions[arg] != want {
			t.Errorf("%s: %q, want %q (%+v)", arg, actions[arg], want, got.ISOArgs)
		}
	}
	if !strings.HasSuffix(got.ISOEntry, "grub.cfg: Install Fedora 41") {
		t.Errorf("iso_entry %q", got.ISOEntry)
	}
	// The machine view resolves the machine's own profile.
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:aa:bb:02","profile":"f41"}`, 201, nil)
	got.Cmdline = ""
	e.jsonCall(t, "GET", "/api/v1/machines/52:54:00:aa:bb:02/boot", "", 200, &got)
	if got.Cmdline != want {
		t.Errorf("machine view cmdline %q, want %q", got.Cmdline, want)
	}
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:aa:bb:03"}`, 201, nil)
	e.jsonCall(t, "GET", "/api/v1/machines/52:54:00:aa:bb:03/boot", "", 404, nil)
	e.jsonCall(t, "GET", "/api/v1/profiles/nope/boot", "", 404, nil)
}

// TestHardwareFactsFromTheIdentifyURL: the facts iPXE puts on the identify URL are recorded on
// the machine, a rule on them assigns and installs its profile, and the unattended template
// sees them.
func TestHardwareFactsFromTheIdentifyURL(t *testing.T) {
	e := newISOEnv(t)
	e.putISO(t, "fedora-41", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	ks := "# {{.Hardware.manufacturer}} {{.Hardware.product}} serial {{.Hardware.serial}} nic {{.Hardware.nic_chip}}{{.Hardware.memsize}}\n"
	body, _ := json.Marshal(map[string]any{"iso": "fedora-41", "template": ks, "template_kind": "kickstart"})
	e.jsonCall(t, "PUT", "/api/v1/profiles/r650", string(body), 201, nil)
	e.jsonCall(t, "POST", "/api/v1/rules", `{"hardware":{"colour":"red"},"profile":"r650"}`, 400, nil)
	e.jsonCall(t, "POST", "/api/v1/rules", `{"hardware":{"product":"PowerEdge R650"},"profile":"r650","install":true}`, 201, nil)

	// What iPXE sends for a Dell R650 (values escaped by :uristring).
	res, script := e.do(t, "GET", "/boot.ipxe?mac=52-54-00-aa-bb-10&arch=x86_64&platform=efi&manufacturer=Dell%20Inc.&product=PowerEdge%20R650"+
		"&serial=7XK2LM3&asset=&memsize=&cpuvendor=&cpumodel=&nic_chip=i350&nic_bustype=PCI", testToken, nil, nil)
	if res.StatusCode != 200 || !bytes.Contains(script, []byte("inst.ks=")) {
		t.Fatalf("an R650 booting for the first time should get the installer: %d\n%s", res.StatusCode, script)
	}
	var m inventory.Machine
	e.jsonCall(t, "GET", "/api/v1/machines/52:54:00:aa:bb:10", "", 200, &m)
	want := map[string]string{"manufacturer": "Dell Inc.", "product": "PowerEdge R650", "serial": "7XK2LM3", "nic_chip": "i350", "nic_bustype": "PCI"}
	if m.Profile != "r650" || m.State != inventory.Installing || !reflect.DeepEqual(m.Hardware, want) {
		t.Fatalf("machine: profile %q state %s hardware %v, want r650 installing %v", m.Profile, m.State, m.Hardware, want)
	}
	res, b := e.do(t, "GET", "/unattended/52-54-00-aa-bb-10/ks.cfg", "", nil, nil)
	if res.StatusCode != 200 || string(b) != "# Dell Inc. PowerEdge R650 serial 7XK2LM3 nic i350\n" {
		t.Fatalf("ks.cfg: %d %q", res.StatusCode, b)
	}
	// Another product is not matched.
	e.do(t, "GET", "/boot.ipxe?mac=52-54-00-aa-bb-11&arch=x86_64&platform=efi&manufacturer=Dell%20Inc.&product=PowerEdge%20R750", testToken, nil, nil)
	var other inventory.Machine
	e.jsonCall(t, "GET", "/api/v1/machines/52:54:00:aa:bb:11", "", 200, &other)
	if other.Profile != "" || other.Hardware["product"] != "PowerEdge R750" {
		t.Fatalf("R750: %+v", other)
	}
}

// TestQuirksFromTheBootChain: a machine that keeps asking for its script without getting
// further is reported as a boot loop with the step, and a download the client gave up on
// half-way as incomplete; both are machine events and counted in /metrics.
func TestQuirksFromTheBootChain(t *testing.T) {
	var mu sync.Mutex
	var logs bytes.Buffer
	e := newISOEnvWith(t, func(d *server.Deps) {
		d.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	})
	const mac = "52:54:00:aa:bb:20"
	for i := 0; i < 4; i++ {
		if res, _ := e.do(t, "GET", "/boot.ipxe?mac=52-54-00-aa-bb-20&arch=x86_64&platform=efi", "", nil, nil); res.StatusCode != 200 {
			t.Fatalf("boot.ipxe: %d", res.StatusCode)
		}
	}
	ev, _ := e.inv.Events(context.Background(), mac, 0)
	found := false
	for _, x := range ev {
		found = found || x.Kind == "quirk" && strings.Contains(x.Detail, "boot-loop: started the boot chain over 3 times") && strings.Contains(x.Detail, "after the menu boot script")
	}
	if !found {
		t.Errorf("no boot-loop event: %+v", ev)
	}

	// 32 MiB is more than loopback's socket buffers hold: closing after a few bytes cuts the
	// server's copy short.
	iso := e.putISO(t, "big", buildISO(t, map[string][]byte{"big.bin": patternBytes(9, 32<<20)}, nil), http.StatusCreated)
	e.do(t, "GET", "/boot.ipxe?mac=52-54-00-aa-bb-20&arch=x86_64&platform=efi", "", nil, nil)
	res, err := http.Get(e.base + "/isos/" + iso.ID + "/files/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(res.Body, make([]byte, 4096))
	res.Body.Close()
	for deadline := time.Now().Add(30 * time.Second); ; {
		mu.Lock()
		got := logs.String()
		mu.Unlock()
		if strings.Contains(got, "network quirk: incomplete-fetch") && strings.Contains(got, "stopped mid-transfer: /isos/"+iso.ID+"/files/big.bin") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no incomplete-fetch report:\n%s", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, metrics := e.do(t, "GET", "/metrics", "", nil, nil)
	for _, want := range []string{`fleetboot_quirks_total{quirk="boot-loop"} 1`, `fleetboot_quirks_total{quirk="incomplete-fetch"} 1`, `fleetboot_quirks_total{quirk="shared-server-id"} 0`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// lockedWriter serialises writes from handler goroutines to a buffer the test reads.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
