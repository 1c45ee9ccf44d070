package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/inventory"
)

// TestInstallerProgressFromTemplateHooksAndCurtinEvents: a kickstart with {{.ProgressHooks}}
// reports from the machine itself (its hook run by the shell, as anaconda would), curtin's
// webhook events arrive as subiquity POSTs them, a FAIL makes the machine failed with the
// reason, a failed machine is not handed the installer again, and reinstall clears it.
func TestInstallerProgressFromTemplateHooksAndCurtinEvents(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	e := newISOEnv(t)
	e.putISO(t, "fedora-41", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	body, _ := json.Marshal(map[string]any{"iso": "fedora-41", "template": "text\n{{.ProgressHooks}}\n", "template_kind": "kickstart"})
	e.jsonCall(t, "PUT", "/api/v1/profiles/fedora-ks", string(body), 201, nil)
	const mac = "52:54:00:aa:bb:01"
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"`+mac+`","profile":"fedora-ks","state":"install-pending"}`, 201, nil)
	// The machine boots from 127.0.0.1: its address from now on.
	if res, script := e.do(t, "GET", "/boot.ipxe?mac="+mac+"&arch=x86_64&platform=efi", "", nil, nil); res.StatusCode != 200 || !bytes.Contains(script, []byte("inst.ks=")) {
		t.Fatalf("installer script: %d\n%s", res.StatusCode, script)
	}
	_, ks := e.do(t, "GET", "/unattended/52-54-00-aa-bb-01/ks.cfg", "", nil, nil)
	sections := regexp.MustCompile(`(?m)^%(pre|post --nochroot|onerror)\n(.*)\n%end$`).FindAllStringSubmatch(string(ks), -1)
	if len(sections) != 3 {
		t.Fatalf("ks.cfg lacks the %%pre, %%post and %%onerror hooks:\n%s", ks)
	}
	// The %pre hook, run by the shell as anaconda runs it.
	if out, err := exec.Command("sh", "-c", sections[0][2]).CombinedOutput(); err != nil {
		t.Fatalf("%%pre hook: %v\n%s", err, out)
	}

	post := func(query, ctype, body string) int {
		t.Helper()
		res, b := e.do(t, "POST", "/boot/progress/52-54-00-aa-bb-01"+query, "", map[string]string{"Content-Type": ctype}, strings.NewReader(body))
		if res.StatusCode >= 300 {
			t.Logf("%s %s: %d %s", query, body, res.StatusCode, b)
		}
		return res.StatusCode
	}
	// curtin / subiquity webhook events (curtin's reporting doc: event_type, name,
	// description, result on finish, origin, level, timestamp).
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"origin":"curtin","event_type":"start","name":"subiquity/Install/install","description":"installing system","level":"INFO","timestamp":1733240000.5}`, 204},
		{`{"origin":"curtin","event_type":"start","name":"cmd-install/stage-partitioning/builtin/cmd-block-meta","description":"configuring storage","level":"INFO","timestamp":1733240001.1}`, 204},
		{`{"origin":"curtin","event_type":"finish","name":"cmd-install/stage-extract","description":"writing install sources","result":"SUCCESS","level":"INFO","timestamp":1733240100.0}`, 204},
		{`{"origin":"curtin","event_type":"finish","name":"subiquity/Install/install/curtin_install","description":"curtin command install","result":"FAIL","level":"ERROR","timestamp":1733240200.0,"files":[]}`, 204},
		{`{"event_type":"start"}`, 400},
		{`{not json`, 400},
	} {
		if got := post("", "application/json", c.body); got != c.want {
			t.Errorf("POST %s: %d, want %d", c.body, got, c.want)
		}
	}
	if got := post("?phase=x&status=maybe", "text/plain", ""); got != 400 {
		t.Errorf("unknown status: %d, want 400", got)
	}

	var ev []inventory.Event
	e.jsonCall(t, "GET", "/api/v1/machines/"+mac+"/events", "", 200, &ev)
	var lines []string
	for _, x := range ev {
		if x.Kind == "installer" || x.Kind == "state" {
			lines = append(lines, x.Kind+": "+x.Detail)
		}
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"installer: installer started",
		"installer: subiquity/Install/install: installing system",
		"installer: cmd-install/stage-extract done",
		"installer: failed: subiquity/Install/install/curtin_install: curtin command install",
		"state: installing → failed: installer reported failed: subiquity/Install/install/curtin_install",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("timeline lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "cmd-block-meta") {
		t.Errorf("curtin's fine-grained steps belong in its own log, not the timeline:\n%s", got)
	}
	var m inventory.Machine
	e.jsonCall(t, "GET", "/api/v1/machines/"+mac, "", 200, &m)
	if m.State != inventory.Failed {
		t.Fatalf("after a FAIL event: %+v", m)
	}
	// A failed machine is not handed the installer again by itself.
	if _, script := e.do(t, "GET", "/boot.ipxe?mac="+mac+"&arch=x86_64&platform=efi", "", nil, nil); bytes.Contains(script, []byte("inst.ks=")) {
		t.Fatalf("failed machine got the installer again:\n%s", script)
	}
	// The %onerror hook posts the log tail as the reason (no anaconda log here: empty).
	if out, err := exec.Command("sh", "-c", sections[2][2]).CombinedOutput(); err != nil {
		t.Fatalf("%%onerror hook: %v\n%s", err, out)
	}
	e.jsonCall(t, "GET", "/api/v1/machines/"+mac+"/events?limit=1", "", 200, &ev)
	if len(ev) != 1 || ev[0].Detail != "failed: anaconda" {
		t.Errorf("%%onerror report: %+v", ev)
	}
	e.jsonCall(t, "POST", "/api/v1/machines/"+mac+"/reinstall", "", 200, &m)
	if m.State != inventory.InstallPending {
		t.Fatalf("reinstall of a failed machine: %+v", m)
	}

	// Only the machine itself may report.
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:aa:bb:02"}`, 201, nil)
	e.do(t, "GET", "/boot.ipxe?mac=52:54:00:aa:bb:02&arch=x86_64&platform=efi&ip=192.0.2.50", "", nil, nil)
	if res, b := e.do(t, "POST", "/boot/progress/52:54:00:aa:bb:02?phase=x&status=failed", "", nil, nil); res.StatusCode != 403 {
		t.Errorf("report from a foreign address: %d %s", res.StatusCode, b)
	}
	if res, _ := e.do(t, "POST", "/boot/progress/52:54:00:aa:bb:99?phase=x", "", nil, nil); res.StatusCode != 404 {
		t.Errorf("unknown machine: %d", res.StatusCode)
	}
}
