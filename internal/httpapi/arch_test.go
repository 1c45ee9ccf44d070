package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/httpapi"
	"github.com/fleetboot/fleetboot/internal/inventory"
)

// debianArm64MiniFiles is Debian 12's arm64 mini.iso layout: kernel and initrd at the root,
// GRUB's arm64-efi modules, the menu d-i writes (it never names Debian), no .disk/info.
func debianArm64MiniFiles(t testing.TB) map[string][]byte {
	t.Helper()
	cfg, err := os.ReadFile(filepath.Join("..", "..", "testdata", "boot-configs", "debian-12-arm64-mini.grub.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"linux":                     patternBytes(11, 120_000),
		"initrd.gz":                 patternBytes(12, 90_000),
		"boot/grub/grub.cfg":        cfg,
		"boot/grub/arm64-efi/x.mod": patternBytes(13, 100),
	}
}

// combinedFiles is a SLES tree carrying kernels for x86_64 and aarch64.
func combinedFiles() map[string][]byte {
	return map[string][]byte{
		"media.1/media":              []byte("SUSE - SLE-15-SP6-Full-x86_64-GM-Media1\nSLE-15-SP6-Full-x86_64-GM-Media1\n1\n"),
		"media.1/products":           []byte("/Product-SLES SLES 15.6-0\n"),
		"boot/x86_64/loader/linux":   patternBytes(21, 50_000),
		"boot/x86_64/loader/initrd":  patternBytes(22, 50_000),
		"boot/aarch64/loader/linux":  patternBytes(23, 50_000),
		"boot/aarch64/loader/initrd": patternBytes(24, 50_000),
	}
}

// TestMixedFleetBootsKernelsOfItsOwnArchitecture: one x86_64 and one arm64 machine on the same
// profiles. Each menu lists only what the machine can run; a profile naming one entry of an
// ISO that carries both architectures boots each machine's own kernel; an arm64 ISO assigned to
// the x86 machine is refused with a timeline event, and the machine stays install-pending.
func TestMixedFleetBootsKernelsOfItsOwnArchitecture(t *testing.T) {
	e := newISOEnv(t)
	fed := e.putISO(t, "fedora-41", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	deb := e.putISO(t, "debian-12-arm64-mini", buildISO(t, debianArm64MiniFiles(t), nil), http.StatusCreated)
	sles := e.putISO(t, "sles-both", buildISO(t, combinedFiles(), nil), http.StatusCreated)
	for name, iso := range map[string]string{"fedora-x86": "fedora-41", "debian-arm": "debian-12-arm64-mini", "sles": "sles-both"} {
		body, _ := json.Marshal(map[string]any{"iso": iso, "extra_args": "console=ttyAMA0"})
		e.jsonCall(t, "PUT", "/api/v1/profiles/"+name, string(body), 201, nil)
	}
	const x86, arm = "52:54:00:aa:cc:01", "52:54:00:aa:cc:02"
	boot := func(mac, arch string) string {
		t.Helper()
		res, b := e.do(t, "GET", "/boot.ipxe?mac="+strings.ReplaceAll(mac, ":", "-")+"&arch="+arch+"&platform=efi", "", nil, nil)
		if res.StatusCode != 200 {
			t.Fatalf("boot.ipxe for %s: %d %s", mac, res.StatusCode, b)
		}
		return string(b)
	}

	// Unknown machines get the menu of what they can run.
	for _, c := range []struct{ mac, arch, shown, hidden string }{
		{x86, "x86_64", "Install fedora-x86", "Install debian-arm"},
		{arm, "arm64", "Install debian-arm", "Install fedora-x86"},
	} {
		menu := boot(c.mac, c.arch)
		if !strings.Contains(menu, c.shown) || !strings.Contains(menu, "Install sles") || strings.Contains(menu, c.hidden) {
			t.Errorf("%s menu should list %q and sles but not %q:\n%s", c.arch, c.shown, c.hidden, menu)
		}
		if !strings.Contains(menu, "1 profile(s) for other architectures hidden") {
			t.Errorf("%s menu does not say a profile is hidden:\n%s", c.arch, menu)
		}
	}
	var m inventory.Machine
	_, b := e.do(t, "GET", "/api/v1/machines/"+arm, testToken, nil, nil)
	if json.Unmarshal(b, &m); m.Arch != "arm64" || m.Platform != "efi" {
		t.Errorf("arm64 machine recorded as %q/%q", m.Arch, m.Platform)
	}

	install := func(mac, profile string) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"profile": profile, "state": "install-pending"})
		e.jsonCall(t, "PATCH", "/api/v1/machines/"+mac, string(body), 200, nil)
	}
	// One profile, two architectures: each machine gets its own kernel out of the same ISO.
	files := func(iso httpapi.ISOInfo, p string) string {
		return "kernel " + e.base + "/isos/" + iso.ID + "/files/" + p
	}
	install(x86, "sles")
	install(arm, "sles")
	if s := boot(x86, "x86_64"); !strings.Contains(s, files(sles, "boot/x86_64/loader/linux")) {
		t.Errorf("x86 machine on the combined ISO:\n%s", s)
	}
	if s := boot(arm, "arm64"); !strings.Contains(s, files(sles, "boot/aarch64/loader/linux")) {
		t.Errorf("arm64 machine on the combined ISO:\n%s", s)
	}

	// The arm64 machine installs Debian's arm64 mini.iso.
	install(arm, "debian-arm")
	if s := boot(arm, "arm64"); !strings.Contains(s, files(deb, "linux")) || !strings.Contains(s, "console=ttyAMA0") {
		t.Errorf("arm64 machine on debian-arm:\n%s", s)
	}

	// The x86 machine assigned the arm64 ISO: not booted, told why, still pending.
	install(x86, "debian-arm")
	s := boot(x86, "x86_64")
	if !strings.Contains(s, "cannot boot") || !strings.Contains(s, "built for arm64, this machine is x86_64") || strings.Contains(s, "kernel ") {
		t.Errorf("x86 machine on an arm64 ISO:\n%s", s)
	}
	_, b = e.do(t, "GET", "/api/v1/machines/"+x86, testToken, nil, nil)
	if json.Unmarshal(b, &m); m.State != inventory.InstallPending {
		t.Errorf("x86 machine moved to %s on a profile it cannot boot", m.State)
	}
	var ev []inventory.Event
	_, b = e.do(t, "GET", "/api/v1/machines/"+x86+"/events", testToken, nil, nil)
	json.Unmarshal(b, &ev)
	if last := ev[len(ev)-1]; last.Kind != "error" || !strings.Contains(last.Detail, "wrong architecture") {
		t.Errorf("last event %+v, want an error naming the wrong architecture", last)
	}
	// The x86 profile still boots the x86 machine.
	install(x86, "fedora-x86")
	if s := boot(x86, "x86_64"); !strings.Contains(s, files(fed, "images/pxeboot/vmlinuz")) {
		t.Errorf("x86 machine on fedora:\n%s", s)
	}
	if bytes.Contains([]byte(boot(arm, "arm64")), []byte("images/pxeboot")) {
		t.Error("arm64 machine got the x86 kernel")
	}
}
