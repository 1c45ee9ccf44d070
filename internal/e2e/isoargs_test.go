package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRealDebianInstallerTakesTheISOsSerialConsole boots the real Debian 12 installer from a
// mini.iso remixed for serial-only servers: console=ttyS0 is in the ISO's own boot configs
// (grub.cfg and txt.cfg), the profile has no extra arguments at all. The recipe keeps the ISO's
// arguments, so the installer's text frontend comes up on the serial console ("Select a
// language") with nothing from the operator. Before recipes kept them, this needed the
// operator's --args console=ttyS0.
func TestRealDebianInstallerTakesTheISOsSerialConsole(t *testing.T) {
	requireBootSuite(t)
	t.Parallel()
	started := time.Now()
	env := &isoEnv{bootEnv: newBootEnv(t, "isoargs", nil)}
	env.server = startISOFleetboot(t, env.bootEnv, "--boot-chain", "ipxe")
	ctx := env.connect(t)

	// no_timer_check and panic=1 are in the remix for the test machine's sake, not the
	// operator's: with several TCG VMs on two cores the kernel's early timer check can miss
	// its window and panic (see newBootEnv), and panic=1 with -no-reboot ends the VM at once.
	isoPath := debianInstallerISO(t, "amd64", "console=ttyS0", "no_timer_check", "panic=1")
	iso, err := env.api.uploadISO(ctx, "debian-12-serial", isoPath)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if iso.Detected.Family != "debian" || len(iso.Detected.Recipes) == 0 {
		t.Fatalf("detected as %+v", iso.Detected)
	}
	if err := env.api.do(ctx, http.MethodPost, "/api/v1/profiles", map[string]any{"name": "debian-serial", "iso": iso.ID}, nil); err != nil {
		t.Fatalf("profile: %v", err)
	}
	// What the API says the machine will boot: the ISO's console kept, its vga= dropped.
	var entry struct {
		Cmdline string `json:"cmdline"`
		ISOArgs []struct {
			Arg    string `json:"arg"`
			Action string `json:"action"`
		} `json:"iso_args"`
	}
	if err := env.api.do(ctx, http.MethodGet, "/api/v1/profiles/debian-serial/boot", nil, &entry); err != nil {
		t.Fatal(err)
	}
	actions := map[string]string{}
	for _, a := range entry.ISOArgs {
		actions[a.Arg] = a.Action
	}
	if actions["console=ttyS0"] != "kept" || actions["vga=788"] != "dropped" || !strings.Contains(" "+entry.Cmdline+" ", " console=ttyS0 ") {
		t.Fatalf("boot entry: cmdline %q, iso args %v", entry.Cmdline, actions)
	}

	// Index 0x40 keeps its MAC apart from the ISO scenarios' machines in shared logs.
	spec := newInstallVMSpec(t, env.lan, env.dir, installVM{name: "serial", path: "bios"}, 0x40)
	// With 512 MiB the installer enters its low memory mode, which skips the language
	// question (seen here: "[!!] Low memory" on ttyS0 instead of "Select a language").
	spec.memMB = 1024
	if err := env.api.do(ctx, http.MethodPost, "/api/v1/machines", map[string]any{
		"mac": spec.mac, "profile": "debian-serial", "state": "install-pending"}, nil); err != nil {
		t.Fatal(err)
	}
	args, err := qemuArgs(spec, env.sercon)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ISO built, uploaded, profile and machine set after %s", time.Since(started).Round(100*time.Millisecond))
	start := time.Now()
	p := startProc(t, "qemu "+spec.name, spec.qemuLog, env.lan.lan.command(args...)...)
	defer p.stop(5 * time.Second)
	// The real installer's 40 MB initrd and its start under TCG on a shared machine; bounded.
	deadline := time.After(3 * defaultVMTimeout)
	for {
		serial, _ := os.ReadFile(spec.serialLog)
		text := ansiEscape.ReplaceAll(serial, nil)
		if bytes.Contains(text, []byte(diLanguagePrompt)) {
			break
		}
		if p.exited() {
			t.Fatalf("QEMU exited after %s (%v)\n%s", time.Since(start).Round(time.Second), p.err, readableTail(spec.serialLog, 40))
		}
		select {
		case <-deadline:
			t.Fatalf("no %q on the serial console after %s\n%s\n%s", diLanguagePrompt, time.Since(start).Round(time.Second),
				readableTail(spec.serialLog, 40), readableTail(filepath.Join(env.dir, "server.log"), 10))
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.Logf("real Debian installer: %q on ttyS0 %s after VM start, with no operator arguments (cmdline %q)",
		diLanguagePrompt, time.Since(start).Round(100*time.Millisecond), entry.Cmdline)
}
