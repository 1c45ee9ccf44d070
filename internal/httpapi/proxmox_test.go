package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/fleetboot/fleetboot/internal/inventory"
)

// proxmoxFiles is a Proxmox VE 8.2 ISO; prepared adds what proxmox-auto-install-assistant
// prepare-iso --fetch-from http writes at its root.
func proxmoxFiles(t testing.TB, prepared bool) map[string][]byte {
	t.Helper()
	read := func(name string) []byte { return bootConfigFile(t, name) }
	files := map[string][]byte{
		".cd-info":               read("proxmox-ve-8.2.cd-info"),
		"boot/grub/grub.cfg":     read("proxmox-ve-8.2.grub.cfg"),
		"boot/linux26":           patternBytes(3, 100_000),
		"boot/initrd.img":        patternBytes(4, 80_000),
		"pve-installer.squashfs": patternBytes(5, 8192),
	}
	if prepared {
		files["auto-installer-mode.toml"] = []byte("mode = \"http\"\n")
	}
	return files
}

// sysInfo is the JSON the Proxmox installer POSTs (proxmox-fetch-answer's SysInfo: product,
// iso, dmi, network_interfaces), for a machine with two NICs.
func sysInfo(macs ...string) string {
	type nic struct {
		Link string `json:"link"`
		MAC  string `json:"mac"`
	}
	doc := map[string]any{
		"product": map[string]any{"fullname": "Proxmox VE", "product": "pve", "enable_btrfs": true},
		"iso":     map[string]any{"release": "8.2", "isorelease": "2"},
		"dmi": map[string]any{
			"system":    map[string]string{"name": "PowerEdge R650", "serial": "7XK2LM3", "uuid": "4c4c4544-0058-4b10-8032-b7c04f4c4d33", "sku": ""},
			"baseboard": map[string]string{"asset_tag": "", "serial": ".7XK2LM3.", "name": "0Y2K8M"},
			"chassis":   map[string]string{"asset_tag": "", "serial": "7XK2LM3", "sku": ""},
		},
	}
	var nics []nic
	for i, m := range macs {
		nics = append(nics, nic{Link: "eno" + string(rune('1'+i)), MAC: m})
	}
	doc["network_interfaces"] = nics
	b, _ := json.Marshal(doc)
	return string(b)
}

// The Proxmox installer POSTs its system information to /proxmox/answer and gets the answer
// file of the machine that has one of its MACs, rendered from the profile's answer template —
// and only from the machine's own address.
func TestProxmoxInstallerGetsItsAnswerFile(t *testing.T) {
	e := newISOEnv(t)
	e.putISO(t, "pve-auto", buildISO(t, proxmoxFiles(t, true), nil), http.StatusCreated)
	e.putISO(t, "pve-stock", buildISO(t, proxmoxFiles(t, false), nil), http.StatusCreated)
	e.putISO(t, "fedora-41", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "testdata", "templates", "proxmox8.answer.toml"))
	if err != nil {
		t.Fatal(err)
	}
	prof := func(iso, template string) string {
		b, _ := json.Marshal(map[string]any{"iso": iso, "template": template, "template_kind": "answer",
			"vars":     map[string]string{"root_password_hash": "$6$salt$hash", "timezone": "Europe/Berlin", "disk": "nvme0n1"},
			"ssh_keys": []string{`ssh-ed25519 AAAAkey "ops" <noc>`}})
		return string(b)
	}
	// Save-time checks: a broken answer file (line 3: an unquoted value), another family's
	// ISO, and a stock (unprepared) Proxmox ISO are refused with what to do.
	bad := "[global]\nkeyboard = \"en-us\"\nfqdn = {{.Hostname}}.lab\n"
	b := e.jsonCall(t, "PUT", "/api/v1/profiles/pve-bad", prof("pve-auto", bad), 422, nil)
	if !strings.Contains(string(b), "answer.toml line 3") {
		t.Errorf("bad TOML: %s", b)
	}
	b = e.jsonCall(t, "PUT", "/api/v1/profiles/pve-fedora", prof("fedora-41", string(tmpl)), 422, nil)
	if !strings.Contains(string(b), "Proxmox") {
		t.Errorf("answer kind on a Fedora ISO: %s", b)
	}
	b = e.jsonCall(t, "PUT", "/api/v1/profiles/pve-stock", prof("pve-stock", string(tmpl)), 422, nil)
	if !strings.Contains(string(b), "prepare-iso --fetch-from http") {
		t.Errorf("answer kind on an unprepared ISO: %s", b)
	}
	e.jsonCall(t, "PUT", "/api/v1/profiles/pve", prof("pve-auto", string(tmpl)), 201, nil)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"b0:7b:25:aa:00:02","hostname":"pve1","profile":"pve"}`, 201, nil)
	e.jsonCall(t, "POST", "/api/v1/machines/b0:7b:25:aa:00:02/reinstall", "", 200, nil)

	// The machine boots the automated entry only (the answer URL is not on the command line).
	res, script := e.do(t, "GET", "/boot.ipxe?mac=b0-7b-25-aa-00-02&arch=x86_64&platform=efi", "", nil, nil)
	if res.StatusCode != 200 || !bytes.Contains(script, []byte("proxmox-start-auto-installer")) {
		t.Fatalf("boot.ipxe: %d\n%s", res.StatusCode, script)
	}

	post := func(body string) (*http.Response, []byte) {
		return e.do(t, "POST", "/proxmox/answer", "", map[string]string{"Content-Type": "application/json; charset=utf-"}, strings.NewReader(body))
	}
	// The PXE NIC is the installer's second interface; its first is unknown.
	res, answer := post(sysInfo("B0:7B:25:AA:00:01", "B0:7B:25:AA:00:02"))
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/toml") {
		t.Fatalf("answer: %d %s\n%s", res.StatusCode, res.Header.Get("Content-Type"), answer)
	}
	var doc struct {
		Global map[string]any `toml:"global"`
		Disk   map[string]any `toml:"disk-setup"`
		Hook   map[string]any `toml:"post-installation-webhook"`
	}
	if err := toml.Unmarshal(answer, &doc); err != nil {
		t.Fatalf("served answer is not TOML: %v\n%s", err, answer)
	}
	if doc.Global["fqdn"] != "pve1.lab.example" || doc.Global["timezone"] != "Europe/Berlin" ||
		doc.Global["root-password-hashed"] != "$6$salt$hash" || doc.Disk["disk-list"].([]any)[0] != "nvme0n1" ||
		doc.Hook["url"] != e.base+"/boot/done/b0-7b-25-aa-00-02" {
		t.Fatalf("answer lacks the machine's values:\n%s", answer)
	}
	if keys := doc.Global["root-ssh-keys"].([]any); len(keys) != 1 || keys[0] != `ssh-ed25519 AAAAkey "ops" <noc>` {
		t.Fatalf("root-ssh-keys %q", keys)
	}
	var ev []inventory.Event
	_, b = e.do(t, "GET", "/api/v1/machines/b0:7b:25:aa:00:02/events", testToken, nil, nil)
	json.Unmarshal(b, &ev)
	if last := ev[len(ev)-1]; last.Kind != "unattended" || !strings.Contains(last.Detail, "answer.toml fetched by the Proxmox installer (pve 8.2, interface eno2)") {
		t.Errorf("no fetch event: %+v", ev)
	}

	// Clear 4xx errors.
	for _, c := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"malformed JSON", `{"network_interfaces": [`, 400, "not the Proxmox installer's JSON"},
		{"no MAC", `{"network_interfaces": []}`, 400, "no network_interfaces"},
		{"unknown machine", sysInfo("b0:7b:25:aa:00:99"), 404, "no machine has any of the MACs b0:7b:25:aa:00:99"},
	} {
		res, b := post(c.body)
		if res.StatusCode != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s, want %d and %q", c.name, res.StatusCode, b, c.code, c.want)
		}
	}
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"b0:7b:25:aa:00:03","hostname":"bare"}`, 201, nil)
	if res, b := post(sysInfo("b0:7b:25:aa:00:03")); res.StatusCode != 404 || !strings.Contains(string(b), "has no profile") {
		t.Errorf("machine without a profile: %d %s", res.StatusCode, b)
	}
	// Option 250 (full-mode DHCP) goes to the answer machine only.
	ctx := context.Background()
	if u, err := e.prov.AnswerURL(ctx, "b0:7b:25:aa:00:02"); err != nil || u != e.base+"/proxmox/answer" {
		t.Errorf("answer URL of the pve machine: %q %v", u, err)
	}
	for _, mac := range []string{"b0:7b:25:aa:00:03", "b0:7b:25:aa:00:99"} {
		if u, err := e.prov.AnswerURL(ctx, mac); err != nil || u != "" {
			t.Errorf("answer URL of %s (no answer profile): %q %v", mac, u, err)
		}
	}
	// The installer's MACs belong to two machines with an answer profile: which answer is
	// meant cannot be told, so none is given.
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"b0:7b:25:aa:00:01","hostname":"pve0","profile":"pve"}`, 201, nil)
	if res, b := post(sysInfo("b0:7b:25:aa:00:01", "b0:7b:25:aa:00:02")); res.StatusCode != http.StatusConflict || !strings.Contains(string(b), "belong to 2 machines") {
		t.Errorf("MACs of two answer machines: %d %s", res.StatusCode, b)
	}
	// Another address than the machine's: refused (the answer holds its password hash).
	e.do(t, "GET", "/boot.ipxe?mac=b0-7b-25-aa-00-02&arch=x86_64&platform=efi&ip=192.0.2.50", "", nil, nil)
	if res, b := post(sysInfo("b0:7b:25:aa:00:02")); res.StatusCode != http.StatusForbidden || bytes.Contains(b, []byte("salt")) {
		t.Errorf("answer to a foreign address: %d %s", res.StatusCode, b)
	}
}
