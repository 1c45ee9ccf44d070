package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/inventory"
)

// TestSecureBootFilesAndGRUBConfigs walks one machine through the shim → GRUB path over HTTP:
// shim and GRUB where shim looks, the optional shim files 404, GRUB's static files, then the
// machine's config from the same decision as its iPXE script (auto chain: iPXE when Secure
// Boot is off; the installer when on), a failure report into the timeline, and the machine
// label that forces iPXE-less booting.
func TestSecureBootFilesAndGRUBConfigs(t *testing.T) {
	e := newISOEnv(t)
	for path, want := range map[string]string{
		"/secureboot/shimx64.efi":  "SIGNED-SHIM",
		"/secureboot/grubx64.efi":  "SIGNED-GRUB",
		"/secureboot//grubx64.efi": "SIGNED-GRUB", // shim 16.1 over HTTP Boot asks with a double slash
	} {
		res, b := e.do(t, "GET", path, "", nil, nil)
		if res.StatusCode != 200 || string(b) != want {
			t.Errorf("%s: %d %q", path, res.StatusCode, b)
		}
	}
	for _, p := range []string{"/secureboot/revocations_sbat.efi", "/secureboot/shim_certificate_0.efi", "/secureboot/mmx64.efi", "/grub/../secureboot/shimx64.efi"} {
		if res, _ := e.do(t, "GET", p, "", nil, nil); res.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, res.StatusCode)
		}
	}
	if res, b := e.do(t, "GET", "/grub/x86_64-efi/command.lst", "", nil, nil); res.StatusCode != 200 || string(b) != "\n" {
		t.Errorf("command.lst: %d %q", res.StatusCode, b)
	}
	if _, b := e.do(t, "GET", "/grub/grub.cfg", "", nil, nil); !bytes.Contains(b, []byte("/grub/mac/${net_default_mac}/sb-${fb_sb}.cfg")) {
		t.Errorf("bootstrap:\n%s", b)
	}

	iso := e.putISO(t, "fedora-41", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	body, _ := json.Marshal(map[string]any{"iso": "fedora-41", "extra_args": "console=ttyS0 fbtoken=ONE"})
	e.jsonCall(t, "PUT", "/api/v1/profiles/fedora", string(body), 201, nil)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:aa:bb:01","profile":"fedora","state":"install-pending"}`, 201, nil)

	// Secure Boot off, chain auto: handed to iPXE, nothing decided (the machine still waits to
	// install).
	_, cfg := e.do(t, "GET", "/grub/mac/52:54:00:aa:bb:01/sb-off.cfg", "", nil, nil)
	if !bytes.Contains(cfg, []byte("chainloader (http,"+strings.TrimPrefix(e.base, "http://")+")/ipxe/snponly.efi")) {
		t.Fatalf("sb-off with chain auto:\n%s", cfg)
	}
	var m inventory.Machine
	e.jsonCall(t, "GET", "/api/v1/machines/52:54:00:aa:bb:01", "", 200, &m)
	if m.State != inventory.InstallPending {
		t.Fatalf("after the hand-over to iPXE the machine is %s, want install-pending", m.State)
	}

	// Secure Boot on: the installer, as GRUB config, and the machine is installing.
	_, cfg = e.do(t, "GET", "/grub/mac/52:54:00:aa:bb:01/sb-on.cfg", "", nil, nil)
	dev := "(http," + strings.TrimPrefix(e.base, "http://") + ")"
	for _, want := range []string{
		"linux '" + dev + "/isos/" + iso.ID + "/files/images/pxeboot/vmlinuz'",
		"'console=ttyS0' 'fbtoken=ONE'",
		"initrd '" + dev + "/isos/" + iso.ID + "/files/images/pxeboot/initrd.img'",
	} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("sb-on config lacks %q:\n%s", want, cfg)
		}
	}
	e.jsonCall(t, "GET", "/api/v1/machines/52:54:00:aa:bb:01", "", 200, &m)
	if m.State != inventory.Installing {
		t.Fatalf("after the GRUB installer config the machine is %s, want installing", m.State)
	}

	// GRUB reports the kernel refused: recorded in the timeline (the request comes from the
	// machine's address, 127.0.0.1 here).
	res, b := e.do(t, "GET", "/grub/mac/52:54:00:aa:bb:01/failed/linux.cfg", "", nil, nil)
	if res.StatusCode != 200 || !bytes.Contains(b, []byte("recorded in this machine")) {
		t.Fatalf("failure report: %d %s", res.StatusCode, b)
	}
	var events []inventory.Event
	e.jsonCall(t, "GET", "/api/v1/machines/52:54:00:aa:bb:01/events", "", 200, &events)
	var found bool
	for _, ev := range events {
		found = found || ev.Kind == "error" && strings.Contains(ev.Detail, "GRUB could not load the kernel")
	}
	if !found {
		t.Errorf("timeline lacks the refused kernel: %+v", events)
	}

	// boot-chain=shim on the machine: GRUB boots it even with Secure Boot off.
	e.jsonCall(t, "PATCH", "/api/v1/machines/52:54:00:aa:bb:01", `{"labels":{"boot-chain":"shim"}}`, 200, nil)
	_, cfg = e.do(t, "GET", "/grub/mac/52:54:00:aa:bb:01/sb-off.cfg", "", nil, nil)
	if !bytes.Contains(cfg, []byte("linux '"+dev)) {
		t.Errorf("sb-off with chain shim:\n%s", cfg)
	}

	// An unknown machine gets the menu, local disk by default.
	_, cfg = e.do(t, "GET", "/grub/mac/52:54:00:aa:bb:99/sb-on.cfg", "", nil, nil)
	if !bytes.Contains(cfg, []byte("set default=local")) || !bytes.Contains(cfg, []byte("/grub/mac/52:54:00:aa:bb:99/profile/fedora.cfg")) {
		t.Errorf("unknown machine:\n%s", cfg)
	}
	if res, _ := e.do(t, "GET", "/grub/mac/not-a-mac/sb-on.cfg", "", nil, nil); res.StatusCode != 404 {
		t.Errorf("bad MAC: %d", res.StatusCode)
	}
}
