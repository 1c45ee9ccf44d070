package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleTemplatesServedToAMachine saves every example template in the repository's
// testdata/templates as a profile (what `fleetboot profile put --template-file` sends), assigns
// it to a machine and fetches the file its installer asks for: the server accepts each example
// and renders it with its own URLs and the machine's values. (internal/provision checks the
// rendered formats in depth.)
func TestExampleTemplatesServedToAMachine(t *testing.T) {
	e := newISOEnv(t)
	e.putISO(t, "fedora-41", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	dir := filepath.Join("..", "..", "testdata", "templates")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]string{".ks.cfg": "kickstart", ".preseed.cfg": "preseed", ".user-data": "autoinstall", ".autoyast.xml": "autoyast"}
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForTheTemplates ops@example"
	n := 0
	for i, ent := range entries {
		kind, file := "", ""
		for suffix, k := range served {
			if strings.HasSuffix(ent.Name(), suffix) {
				kind, file = k, strings.TrimPrefix(suffix, ".")
			}
		}
		if kind == "" {
			continue
		}
		n++
		body, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("example-%d", i)
		prof, _ := json.Marshal(map[string]any{"iso": "fedora-41", "template": string(body), "template_kind": kind,
			"vars":     map[string]string{"mirror_host": "mirror.example.org", "root_password_hash": "$6$salt$hash", "password_hash": "$6$salt$hash"},
			"ssh_keys": []string{key}})
		e.jsonCall(t, "PUT", "/api/v1/profiles/"+name, string(prof), 201, nil)
		mac := fmt.Sprintf("52-54-00-ee-00-%02x", i)
		e.jsonCall(t, "POST", "/api/v1/machines", fmt.Sprintf(`{"mac":%q,"hostname":%q,"profile":%q}`, mac, name, name), 201, nil)
		res, out := e.do(t, "GET", "/unattended/"+mac+"/"+file, "", nil, nil)
		if res.StatusCode != 200 {
			t.Fatalf("%s: GET %s: %d %s", ent.Name(), file, res.StatusCode, out)
		}
		for _, want := range []string{name, e.base + "/boot/done/" + mac, key} {
			if !bytes.Contains(out, []byte(want)) {
				t.Errorf("%s as served lacks %q:\n%s", ent.Name(), want, out)
			}
		}
		if kind == "autoinstall" {
			res, meta := e.do(t, "GET", "/unattended/"+mac+"/meta-data", "", nil, nil)
			if res.StatusCode != 200 || !bytes.Contains(meta, []byte("local-hostname: "+name)) {
				t.Errorf("meta-data next to %s: %d %s", ent.Name(), res.StatusCode, meta)
			}
		}
	}
	if n < 4 {
		t.Errorf("only %d example templates found in %s", n, dir)
	}
}
