package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/inventory"
)

// apiError decodes {"error": "..."}.
func apiError(t *testing.T, b []byte) string {
	t.Helper()
	var msg map[string]string
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Fatalf("not an API error: %s", b)
	}
	return msg["error"]
}

// Refusals say what is wrong and what to do, once, in the operator's terms.
func TestProfileAndMachineErrorsSayWhatToDo(t *testing.T) {
	e := newISOEnv(t)
	iso := e.putISO(t, "fedora", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)

	for _, c := range []struct {
		name, method, path, body string
		code                     int
		want                     []string
		not                      []string
	}{
		{"missing ISO", "PUT", "/api/v1/profiles/p", `{"iso":"nosuch"}`, 422,
			[]string{`no ISO "nosuch"`, "fleetboot iso ls"}, []string{`"nosuch": iso`, "not found: not found"}},
		{"unknown template field", "PUT", "/api/v1/profiles/p",
			`{"iso":"fedora","template":"line1\nline2\nhost {{.Hostnme}}\n","template_kind":"kickstart"}`, 422,
			[]string{"template line 3, column 8: .Hostnme is not a template field", ".Hostname .MAC .MACHyphen", ".UnattendedURL", "functions: default join keys quote"},
			[]string{"provision.Vars", "template: template"}},
		{"unclosed block", "PUT", "/api/v1/profiles/p",
			`{"iso":"fedora","template":"a\n{{ if .Hostname }}\nb\n","template_kind":"kickstart"}`, 422,
			[]string{"template line 4: unexpected EOF", "without its {{end}}"}, []string{"template: template"}},
		{"unknown function", "PUT", "/api/v1/profiles/p",
			`{"iso":"fedora","template":"{{ upper .Hostname }}","template_kind":"kickstart"}`, 422,
			[]string{"template line 1:", `function "upper" not defined`, "the functions are default join keys quote"}, nil},
		{"bad extra_args template", "PUT", "/api/v1/profiles/p", `{"iso":"fedora","extra_args":"ks={{.UnattendedUrl}}"}`, 422,
			[]string{"extra_args line 1, column 6: .UnattendedUrl is not a template field"}, nil},
		{"bad mode", "PUT", "/api/v1/profiles/p", `{"iso":"fedora","mode":"sometimes"}`, 400,
			[]string{"install-once, boot-once or always"}, nil},
		{"bad MAC in body", "POST", "/api/v1/machines", `{"mac":"52:54:00"}`, 400,
			[]string{`"52:54:00" is not a MAC address`, "52:54:00:12:34:56"}, nil},
		{"bad MAC in path", "GET", "/api/v1/machines/zz", ``, 400,
			[]string{`"zz" is not a MAC address`, "52:54:00:12:34:56"}, nil},
	} {
		b := e.jsonCall(t, c.method, c.path, c.body, c.code, nil)
		msg := apiError(t, b)
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not say %q", c.name, msg, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(msg, n) {
				t.Errorf("%s: %q says %q", c.name, msg, n)
			}
		}
	}

	// An ISO in use names its profiles.
	e.jsonCall(t, "PUT", "/api/v1/profiles/web", `{"iso":"fedora"}`, 201, nil)
	e.jsonCall(t, "PUT", "/api/v1/profiles/db", `{"iso":"fedora"}`, 201, nil)
	msg := apiError(t, e.jsonCall(t, "DELETE", "/api/v1/isos/fedora", ``, 409, nil))
	if !strings.Contains(msg, "ISO fedora ("+iso.ID+") is in use by profiles db, web") || !strings.Contains(msg, "force") {
		t.Errorf("ISO in use: %q", msg)
	}
}

// A profile whose ISO was force-deleted is listed as broken with the reason, is not offered
// in the menu, and a machine assigned to it gets the menu and an event saying why.
func TestProfileWithDeletedISOIsBrokenAndNotOffered(t *testing.T) {
	e := newISOEnv(t)
	iso := e.putISO(t, "fedora", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	e.putISO(t, "generic", buildISO(t, genericFiles(), nil), http.StatusCreated)
	e.jsonCall(t, "PUT", "/api/v1/profiles/fed", `{"iso":"fedora"}`, 201, nil)
	e.jsonCall(t, "PUT", "/api/v1/profiles/gen", `{"iso":"generic"}`, 201, nil)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:00:00:41","profile":"fed","state":"install-pending"}`, 201, nil)

	var ps []inventory.Profile
	e.jsonCall(t, "GET", "/api/v1/profiles", "", 200, &ps)
	if len(ps) != 2 || ps[0].Broken || ps[1].Broken {
		t.Fatalf("profiles before the delete: %+v", ps)
	}
	e.jsonCall(t, "DELETE", "/api/v1/isos/fedora?force=1", "", 204, nil)

	e.jsonCall(t, "GET", "/api/v1/profiles", "", 200, &ps)
	if !ps[0].Broken || ps[0].Name != "fed" || !strings.Contains(ps[0].Problem, "its ISO "+iso.ID+" was deleted") || ps[1].Broken {
		t.Fatalf("profiles after the ISO was force-deleted: %+v", ps)
	}
	var one inventory.Profile
	e.jsonCall(t, "GET", "/api/v1/profiles/fed", "", 200, &one)
	if !one.Broken || one.Problem == "" {
		t.Fatalf("GET profile: %+v", one)
	}

	_, menu := e.do(t, "GET", "/boot.ipxe?mac=52:54:00:00:00:42&platform=efi", "", nil, nil)
	if strings.Contains(string(menu), "fed") || !strings.Contains(string(menu), "gen") {
		t.Fatalf("menu of an unassigned machine:\n%s", menu)
	}
	_, script := e.do(t, "GET", "/boot.ipxe?mac=52:54:00:00:00:41&platform=efi", "", nil, nil)
	if !strings.Contains(string(script), "profile fed cannot boot: its ISO "+iso.ID+" was deleted") {
		t.Fatalf("script of a machine assigned to the broken profile:\n%s", script)
	}
	var ev []inventory.Event
	e.jsonCall(t, "GET", "/api/v1/machines/52:54:00:00:00:41/events", "", 200, &ev)
	if last := ev[len(ev)-1]; last.Kind != "error" || !strings.Contains(last.Detail, "was deleted") {
		t.Fatalf("last event: %+v", last)
	}
}

// docs/api.md: the raw template kind is for installers fleetboot does not know; the profile's
// extra arguments reference {{.UnattendedURL}} and the machine fetches the rendered file.
func TestRawTemplateOnUnrecognisedISOBootsWithItsFile(t *testing.T) {
	e := newISOEnv(t)
	files := map[string][]byte{
		"boot/grub/grub.cfg": []byte("set timeout=5\nmenuentry 'Acme Installer' {\n  linux /acme/vmlinuz quiet\n  initrd /acme/initrd.img\n}\n"),
		"acme/vmlinuz":       patternBytes(8, 4096),
		"acme/initrd.img":    patternBytes(9, 4096),
	}
	iso := e.putISO(t, "acme", buildISO(t, files, nil), http.StatusCreated)
	if !strings.Contains(string(iso.Detected), `"family":"unknown"`) {
		t.Fatalf("the fixture is recognised after all: %s", iso.Detected)
	}
	e.jsonCall(t, "PUT", "/api/v1/profiles/acme", `{"iso":"acme","template_kind":"raw",`+
		`"template":"hostname={{.Hostname}}\nserver={{.ServerURL}}\n","extra_args":"acme.answer={{.UnattendedURL}} acme.host={{.Hostname}}"}`, 201, nil)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:00:00:51","hostname":"node51","profile":"acme","state":"install-pending"}`, 201, nil)

	_, script := e.do(t, "GET", "/boot.ipxe?mac=52:54:00:00:00:51&platform=efi", "", nil, nil)
	fileURL := e.base + "/unattended/52-54-00-00-00-51/file"
	for _, want := range []string{"/isos/" + iso.ID + "/files/acme/vmlinuz", "/isos/" + iso.ID + "/files/acme/initrd.img",
		"acme.answer=" + fileURL, "acme.host=node51"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("boot script lacks %q:\n%s", want, script)
		}
	}
	res, body := e.do(t, "GET", strings.TrimPrefix(fileURL, e.base), "", nil, nil)
	if res.StatusCode != 200 || string(body) != "hostname=node51\nserver="+e.base+"\n" {
		t.Fatalf("unattended file: %d %q", res.StatusCode, body)
	}
}

// A profile the server cannot check because its database failed is a server error (500, the
// details in the log only), not a refusal of the profile (422): the operator's profile may be
// fine, and a 422 would send them looking for a mistake that is not theirs.
func TestProfileCheckDatabaseErrorIs500NotValidation(t *testing.T) {
	e := newISOEnv(t)
	e.jsonCall(t, "PUT", "/api/v1/profiles/p", `{"iso":"nosuch"}`, 422, nil)
	if _, err := e.app.DB.DB().ExecContext(context.Background(), `ALTER TABLE isos RENAME TO isos_gone`); err != nil {
		t.Fatal(err)
	}
	b := e.jsonCall(t, "PUT", "/api/v1/profiles/p", `{"iso":"nosuch"}`, 500, nil)
	if msg := apiError(t, b); strings.Contains(msg, "isos") {
		t.Errorf("500 shows database details to the client: %q", msg)
	}
}
