package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/client/clienttest"
)

// runCLI runs the real cobra root with args and returns stdout, stderr and the error.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// mustCLI runs the CLI and fails the test on an error; it returns stdout.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("fleetboot %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// cliEnv isolates the CLI from the developer's environment and cache.
func cliEnv(t *testing.T) {
	t.Setenv("FLEETBOOT_SERVER", "")
	t.Setenv("FLEETBOOT_TOKEN", "")
	t.Setenv("FLEETBOOT_DATA", "")
	t.Setenv("FLEETBOOT_CA_CERT", "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
}

func TestCLIISOUploadListRemove(t *testing.T) {
	cliEnv(t)
	srv := clienttest.Start(t, nil)
	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	raw, _ := os.ReadFile(p)
	s := sha256.Sum256(raw)
	sum := hex.EncodeToString(s[:])
	// The token comes from the server's data dir, as on the server's own host.
	api := []string{"--server", srv.URL, "--data", srv.DataDir}

	out, errOut, err := runCLI(t, append([]string{"iso", "upload", p, "--name", "fedora-41"}, api...)...)
	if err != nil {
		t.Fatalf("iso upload: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "uploaded fedora-41: id "+sum[:16]) || !strings.Contains(out, "sha256 "+sum) {
		t.Fatalf("iso upload output:\n%s", out)
	}
	if !strings.Contains(errOut, "fedora-41") || !strings.Contains(errOut, "100%") {
		t.Errorf("no progress bar on stderr:\n%q", errOut)
	}
	// No resume state is left behind after success.
	if left, _ := filepath.Glob(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "fleetboot", "uploads", "*")); len(left) != 0 {
		t.Errorf("upload state left: %v", left)
	}

	out, _, err = runCLI(t, append([]string{"iso", "ls"}, api...)...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("iso ls:\n%s", out)
	}
	for _, want := range []string{sum[:16], "fedora-41", "CLIENTTEST", "KiB", "fedora 41", sum[:12]} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("iso ls row lacks %q:\n%s", want, out)
		}
	}

	out, _, err = runCLI(t, append([]string{"iso", "show", "fedora-41"}, api...)...)
	if err != nil || !strings.Contains(out, `"recipes"`) || !strings.Contains(out, `"sha256": "`+sum+`"`) {
		t.Fatalf("iso show: %v\n%s", err, out)
	}

	// A profile uses it: rm is refused with advice, --force works.
	if _, errOut, err := runCLI(t, append([]string{"profile", "put", "fed", "--iso", "fedora-41", "--args", "console=ttyS0"}, api...)...); err != nil {
		t.Fatalf("profile put: %v %s", err, errOut)
	}
	_, _, err = runCLI(t, append([]string{"iso", "rm", "fedora-41"}, api...)...)
	if err == nil || !strings.Contains(err.Error(), "is in use by profile fed:") || !strings.Contains(err.Error(), "--force") ||
		strings.Count(err.Error(), "--force") != 1 {
		t.Fatalf("iso rm in use: %v", err)
	}
	out, _, err = runCLI(t, append([]string{"iso", "rm", "fedora-41", "--force"}, api...)...)
	if err != nil || !strings.Contains(out, "deleted fedora-41") {
		t.Fatalf("iso rm --force: %v %s", err, out)
	}
	// The profile is left without its ISO: profile ls says it is broken, and why.
	out, _, err = runCLI(t, append([]string{"profile", "ls"}, api...)...)
	if err != nil || !strings.Contains(out, "STATUS") || !regexp.MustCompile(`(?m)^fed .*BROKEN$`).MatchString(out) ||
		!strings.Contains(out, "broken fed: its ISO "+sum[:16]+" was deleted") {
		t.Fatalf("profile ls after the ISO was force-deleted: %v\n%s", err, out)
	}
	out, _, _ = runCLI(t, append([]string{"iso", "ls"}, api...)...)
	if strings.Contains(out, "fedora-41") {
		t.Fatalf("still listed after rm:\n%s", out)
	}

	// iso add registers a path on the server's disk.
	out, _, err = runCLI(t, append([]string{"iso", "add", p, "--name", "nas"}, api...)...)
	if err != nil || !strings.Contains(out, "added nas: id "+sum[:16]) {
		t.Fatalf("iso add: %v %s", err, out)
	}
}

func TestCLIMachineProfileRuleCommands(t *testing.T) {
	cliEnv(t)
	srv := clienttest.Start(t, nil)
	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	// Token and server from the environment this time.
	t.Setenv("FLEETBOOT_SERVER", srv.URL)
	t.Setenv("FLEETBOOT_TOKEN", clienttest.Token)
	must := func(args ...string) string { t.Helper(); return mustCLI(t, args...) }
	must("iso", "upload", p, "--name", "fedora", "-q")
	ks := filepath.Join(t.TempDir(), "ks.cfg")
	os.WriteFile(ks, []byte("network --hostname={{.Hostname}}\n# tz={{.Vars.tz}}\n"), 0o644)
	must("profile", "put", "fed", "--iso", "fedora", "--template-file", ks, "--template-kind", "kickstart", "--var", "tz=UTC")
	if out := must("profile", "ls"); !strings.Contains(out, "fed") || !strings.Contains(out, "kickstart") {
		t.Fatalf("profile ls:\n%s", out)
	}
	if out := must("profile", "show", "fed"); !strings.Contains(out, `"tz": "UTC"`) {
		t.Fatalf("profile show:\n%s", out)
	}
	// The Fedora DVD's grub.cfg boots with inst.stage2=hd:LABEL=…, which the recipe drops.
	if out := must("profile", "boot", "fed"); !strings.Contains(out, "cmdline  quiet ip=dhcp inst.repo=") ||
		!regexp.MustCompile(`inst.stage2=hd:LABEL=\S+\s+dropped\s+locates`).MatchString(out) {
		t.Fatalf("profile boot:\n%s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.cfg")
	os.WriteFile(bad, []byte("{{ if .Hostname }}"), 0o644)
	if _, _, err := runCLI(t, "profile", "put", "bad", "--iso", "fedora", "--template-file", bad, "--template-kind", "kickstart"); err == nil || !strings.Contains(err.Error(), "422") {
		t.Fatalf("profile put with a broken template: %v", err)
	}

	out := must("machine", "add", "52:54:00:12:34:56", "--profile", "fed", "--hostname", "web1", "--label", "rack=r1", "--label", "role=web")
	if !strings.Contains(out, "52:54:00:12:34:56") || !strings.Contains(out, "web1") || !strings.Contains(out, "rack=r1,role=web") {
		t.Fatalf("machine add:\n%s", out)
	}
	out = must("machine", "ls")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "discovered") || !strings.Contains(lines[1], "fed") {
		t.Fatalf("machine ls:\n%s", out)
	}
	if out := must("machine", "reinstall", "52-54-00-12-34-56"); !strings.Contains(out, "install-pending") {
		t.Fatalf("machine reinstall:\n%s", out)
	}
	if out := must("machine", "set", "52:54:00:12:34:56", "--hostname", "web2"); !strings.Contains(out, "web2") || !strings.Contains(out, "rack=r1") {
		t.Fatalf("machine set kept other fields?\n%s", out)
	}
	if _, _, err := runCLI(t, "machine", "set", "52:54:00:12:34:56"); err == nil || !strings.Contains(err.Error(), "nothing to change") {
		t.Fatalf("machine set without flags: %v", err)
	}
	if out := must("machine", "show", "52:54:00:12:34:56"); !strings.Contains(out, `"state": "install-pending"`) {
		t.Fatalf("machine show:\n%s", out)
	}
	if out := must("machine", "events", "52:54:00:12:34:56"); !strings.Contains(out, "created") {
		t.Fatalf("machine events:\n%s", out)
	}
	if out := must("machine", "ls", "--state", "installed"); strings.Contains(out, "52:54:00") {
		t.Fatalf("machine ls --state installed:\n%s", out)
	}

	if out := must("rule", "add", "--profile", "fed", "--mac-prefix", "52:54:01", "--install", "--priority", "3"); !strings.Contains(out, "added rule 1") {
		t.Fatalf("rule add:\n%s", out)
	}
	if out := must("rule", "ls"); !strings.Contains(out, "52:54:01") || !strings.Contains(out, "true") {
		t.Fatalf("rule ls:\n%s", out)
	}
	if out := must("rule", "add", "--profile", "fed", "--hardware", "product=PowerEdge R650", "--hardware", "manufacturer=Dell*"); !strings.Contains(out, "added rule 2") {
		t.Fatalf("rule add --hardware:\n%s", out)
	}
	if out := must("rule", "ls"); !strings.Contains(out, "manufacturer=Dell*,product=PowerEdge R650") {
		t.Fatalf("rule ls with hardware:\n%s", out)
	}
	if _, _, err := runCLI(t, "rule", "add", "--profile", "fed", "--hardware", "colour=red"); err == nil || !strings.Contains(err.Error(), "want one of manufacturer") {
		t.Fatalf("rule add with an unknown fact: %v", err)
	}
	must("rule", "rm", "2")
	must("rule", "rm", "1")
	if _, _, err := runCLI(t, "rule", "rm", "x"); err == nil {
		t.Fatal("rule rm x: no error")
	}
	must("machine", "rm", "52:54:00:12:34:56")
	must("profile", "rm", "fed")
	if _, _, err := runCLI(t, "machine", "show", "52:54:00:12:34:56"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("machine show after rm: %v", err)
	}
}

func TestCLIErrorsSayWhatToDo(t *testing.T) {
	cliEnv(t)
	srv := clienttest.Start(t, nil)
	_, _, err := runCLI(t, "machine", "add", "52:54:00:12:34:56", "--server", srv.URL, "--token", "wrong-token-wrong-token")
	if err == nil || !strings.Contains(err.Error(), "refused the API token") || !strings.Contains(err.Error(), "--token") {
		t.Fatalf("wrong token: %v", err)
	}
	// Reading needs the token too (profiles carry password hashes and SSH keys); without one
	// the CLI says where to get it.
	t.Chdir(t.TempDir()) // no ./data/api-token here
	for _, list := range [][]string{{"iso", "ls"}, {"machine", "ls"}, {"profile", "ls"}, {"rule", "ls"}} {
		_, _, err := runCLI(t, append(list, "--server", srv.URL)...)
		if err == nil || !strings.Contains(err.Error(), "none was found") || !strings.Contains(err.Error(), "--token") {
			t.Fatalf("%s without a token: %v", strings.Join(list, " "), err)
		}
	}
	if _, _, err := runCLI(t, "iso", "ls", "--server", srv.URL, "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), "api-token") {
		t.Fatalf("--data without a token file: %v", err)
	}

	if _, _, err := runCLI(t, "iso", "upload", "/nonexistent.iso", "--server", srv.URL); err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Fatalf("upload of a missing file: %v", err)
	}
	if _, _, err := runCLI(t, "machine", "add", "52:54:00:00:00:09", "--label", "novalue", "--server", srv.URL, "--token", clienttest.Token); err == nil || !strings.Contains(err.Error(), "key=value") {
		t.Fatalf("bad --label: %v", err)
	}
}

// A profile whose kernel cannot boot under Secure Boot is saved, with a warning that says so,
// and `profile ls` and `iso show` carry the verdict (the fixture's kernel is not even a PE).
func TestCLIWarnsWhenAProfileCannotBootWithSecureBoot(t *testing.T) {
	cliEnv(t)
	srv := clienttest.Start(t, nil)
	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	t.Setenv("FLEETBOOT_SERVER", srv.URL)
	t.Setenv("FLEETBOOT_TOKEN", clienttest.Token)
	if _, errOut, err := runCLI(t, "iso", "upload", p, "--name", "fedora", "-q"); err != nil {
		t.Fatalf("iso upload: %v\n%s", err, errOut)
	}
	out, errOut, err := runCLI(t, "profile", "put", "fed", "--iso", "fedora")
	if err != nil || !strings.Contains(out, "saved profile fed") {
		t.Fatalf("profile put: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "warning: machines with Secure Boot on cannot boot profile fed (entry install): the kernel is not an EFI (PE/COFF) image") {
		t.Errorf("no Secure Boot warning on stderr:\n%s", errOut)
	}
	out, _, _ = runCLI(t, "profile", "ls")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "SECURE BOOT") || !strings.Contains(lines[1], " no ") {
		t.Errorf("profile ls:\n%s", out)
	}
	out, _, _ = runCLI(t, "iso", "show", "fedora")
	if !strings.Contains(out, `"secure_boot"`) || !strings.Contains(out, `"entry": "install"`) {
		t.Errorf("iso show has no Secure Boot readiness:\n%s", out)
	}
}
