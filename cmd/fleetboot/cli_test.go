package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/client"
	"github.com/fleetboot/fleetboot/internal/client/clienttest"
	"github.com/fleetboot/fleetboot/internal/inventory"
)

func TestUnknownSubcommandFailsWithASuggestion(t *testing.T) {
	cliEnv(t)
	for _, c := range []struct{ args, want []string }{
		{[]string{"iso", "uplod"}, []string{`unknown command "uplod" for "fleetboot iso"`, "did you mean upload?"}},
		{[]string{"machine", "sett", "52:54:00:12:34:56"}, []string{`unknown command "sett" for "fleetboot machine"`, "did you mean set?"}},
		{[]string{"profile", "lss"}, []string{`unknown command "lss" for "fleetboot profile"`, "did you mean ls?"}},
		{[]string{"rule", "remove"}, []string{`unknown command "remove" for "fleetboot rule"`, "fleetboot rule --help"}},
		{[]string{"isoo", "ls"}, []string{`unknown command "isoo" for "fleetboot"`, "iso"}},
	} {
		out, _, err := runCLI(t, c.args...)
		if err == nil {
			t.Errorf("fleetboot %s: no error, output:\n%s", strings.Join(c.args, " "), out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("fleetboot %s: %q lacks %q", strings.Join(c.args, " "), err, w)
			}
		}
	}
	// The group alone still prints its help and succeeds.
	out, _, err := runCLI(t, "iso")
	if err != nil || !strings.Contains(out, "Available Commands:") || !strings.Contains(out, "upload") {
		t.Fatalf("fleetboot iso: %v\n%s", err, out)
	}
}

func TestDescribeBuild(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, c := range []struct {
		bi   debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3 (go1.26.8)"},
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "devel (go1.26.8)"},
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261203135623-6ea0f7e0cd95+dirty"},
			Settings: settings("vcs", "git", "vcs.revision", "6ea0f7e0cd95ad23892d5276e1cd079d8065efc9", "vcs.time", "2026-12-03T13:56:23Z", "vcs.modified", "true")},
			"v0.0.0-20261203135623-6ea0f7e0cd95+dirty (commit 6ea0f7e0cd95ad23892d5276e1cd079d8065efc9, modified, 2026-12-03T13:56:23Z, go1.26.8)"},
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: ""},
			Settings: settings("vcs.revision", "abc", "vcs.modified", "false")}, "devel (commit abc, go1.26.8)"},
	} {
		if got := describeBuild(&c.bi); got != c.want {
			t.Errorf("describeBuild(%+v) = %q, want %q", c.bi.Main, got, c.want)
		}
	}
}

var built struct {
	once sync.Once
	path string
	err  error
}

// buildBinary compiles ./cmd/fleetboot as scripts/run.sh and the Dockerfile do
// (CGO_ENABLED=0), once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "fleetboot-cli-test-")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "fleetboot")
		cmd := exec.Command("go", "build", "-o", built.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			built.err = err
			t.Logf("%s", b)
		}
	})
	if built.err != nil {
		t.Fatalf("go build: %v", built.err)
	}
	return built.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.path != "" {
		os.RemoveAll(filepath.Dir(built.path))
	}
	os.Exit(code)
}

// TestBinaryIsStaticAndPrintsItsBuild checks README's "static binary" claim on the binary the
// scripts build, and that `version` and `--version` print what the toolchain stamped into it.
func TestBinaryIsStaticAndPrintsItsBuild(t *testing.T) {
	bin := buildBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("binary has program header %v: dynamically linked", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Fatalf("binary needs shared libraries %v", libs)
	}

	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := "fleetboot " + describeBuild(bi)
	if !strings.Contains(want, bi.GoVersion) {
		t.Fatalf("describeBuild lacks the Go version: %q", want)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("fleetboot %s: %v", args[0], err)
		}
		if first, _, _ := strings.Cut(string(out), "\n"); first != want {
			t.Errorf("fleetboot %s: first line %q, want %q", args[0], first, want)
		}
	}
}

func TestUnreachableServerMessage(t *testing.T) {
	cliEnv(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, _, err := runCLI(t, "machine", "ls", "--server", addr, "--token", clienttest.Token)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "%!") || !strings.Contains(msg, "cannot reach fleetboot at http://"+addr) ||
		!strings.Contains(msg, "connection refused") || !strings.Contains(msg, "--server") {
		t.Fatalf("unreachable: %s", msg)
	}
}

// TestEveryListCommandPrintsJSON runs each list command with -o json against a real server
// and decodes the output into the API's own types.
func TestEveryListCommandPrintsJSON(t *testing.T) {
	srv := cliServer(t)
	must := func(args ...string) string { t.Helper(); return mustCLI(t, args...) }
	// Empty lists are [] for scripts, never null.
	for _, list := range [][]string{{"iso", "ls"}, {"machine", "ls"}, {"profile", "ls"}, {"rule", "ls"}, {"leases"}, {"audit"}} {
		if out := must(append(list, "-o", "json")...); strings.TrimSpace(out) != "[]" {
			t.Errorf("%s -o json on an empty server: %q", strings.Join(list, " "), out)
		}
	}

	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	must("iso", "upload", p, "--name", "fedora", "-q")
	must("profile", "put", "fed", "--iso", "fedora", "--args", "console=ttyS0")
	must("machine", "add", "52:54:00:12:34:56", "--profile", "fed", "--hostname", "web1")
	must("rule", "add", "--profile", "fed", "--mac-prefix", "52:54:01")
	ip := srv.BindLease(t, net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}, "web1")

	var isos []client.ISO
	decode(t, must("iso", "ls", "-o", "json"), &isos)
	if len(isos) != 1 || isos[0].Name != "fedora" || len(isos[0].SHA256) != 64 {
		t.Errorf("iso ls -o json: %+v", isos)
	}
	var ms []client.Machine
	decode(t, must("machine", "ls", "--output", "json"), &ms)
	if len(ms) != 1 || ms[0].MAC != "52:54:00:12:34:56" || ms[0].Hostname != "web1" || ms[0].Profile != "fed" {
		t.Errorf("machine ls -o json: %+v", ms)
	}
	var ps []client.Profile
	decode(t, must("profile", "ls", "-o", "json"), &ps)
	if len(ps) != 1 || ps[0].Name != "fed" || ps[0].ExtraArgs != "console=ttyS0" {
		t.Errorf("profile ls -o json: %+v", ps)
	}
	var rs []client.Rule
	decode(t, must("rule", "ls", "-o", "json"), &rs)
	if len(rs) != 1 || rs[0].MACPrefix != "52:54:01" || rs[0].Profile != "fed" {
		t.Errorf("rule ls -o json: %+v", rs)
	}
	var ls []client.Lease
	decode(t, must("leases", "-o", "json"), &ls)
	if len(ls) != 1 || ls[0].IP != ip.String() || ls[0].MAC != "52:54:00:12:34:56" || ls[0].State != "bound" || !ls[0].Active {
		t.Errorf("leases -o json: %+v", ls)
	}
	if out := must("leases"); !strings.Contains(out, ip.String()) || !strings.Contains(out, "bound") || !strings.Contains(out, "web1") {
		t.Errorf("leases table:\n%s", out)
	}
	var au []client.AuditEntry
	decode(t, must("audit", "-o", "json", "--limit", "2"), &au)
	if len(au) != 2 || au[0].Method != "POST" || au[0].Route != "/api/v1/rules" || au[0].Scope != "admin" || au[0].Status != http.StatusCreated {
		t.Errorf("audit -o json: %+v", au)
	}
	if out := must("audit"); !strings.Contains(out, "SCOPE") || !strings.Contains(out, "/api/v1/machines") || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("audit table:\n%s", out)
	}
	var ev []client.Event
	decode(t, must("machine", "events", "52:54:00:12:34:56", "-o", "json"), &ev)
	if len(ev) == 0 || ev[len(ev)-1].Kind == "" {
		t.Errorf("machine events -o json: %+v", ev)
	}
	// A format that does not exist fails before the server is asked.
	if _, _, err := runCLI(t, "machine", "ls", "-o", "yaml", "--server", "http://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "want table or json") {
		t.Fatalf("-o yaml: %v", err)
	}
}

// cliServer starts a test server and points the CLI at it through the environment.
func cliServer(t *testing.T) *clienttest.Server {
	t.Helper()
	cliEnv(t)
	srv := clienttest.Start(t, nil)
	t.Setenv("FLEETBOOT_SERVER", srv.URL)
	t.Setenv("FLEETBOOT_TOKEN", clienttest.Token)
	return srv
}

func decode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
}

func TestMachineSetInstall(t *testing.T) {
	srv := cliServer(t)
	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	for _, args := range [][]string{
		{"iso", "upload", p, "--name", "fedora", "-q"},
		{"profile", "put", "fed", "--iso", "fedora"},
		{"machine", "add", "52:54:00:12:34:56"},
	} {
		if _, errOut, err := runCLI(t, args...); err != nil {
			t.Fatalf("fleetboot %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
	}
	out, _, err := runCLI(t, "machine", "set", "52:54:00:12:34:56", "--profile", "fed", "--install")
	if err != nil || !strings.Contains(out, "install-pending") || !strings.Contains(out, "fed") {
		t.Fatalf("machine set --profile fed --install: %v\n%s", err, out)
	}
	m, err := srv.Inv.Machine(context.Background(), "52:54:00:12:34:56")
	if err != nil || m.State != "install-pending" || m.Profile != "fed" {
		t.Fatalf("stored machine: %+v %v", m, err)
	}
	if _, _, err := runCLI(t, "machine", "set", "52:54:00:12:34:56", "--install", "--state", "installed"); err == nil {
		t.Fatal("--install with --state: no error")
	}
}

// TestCtrlCDuringUploadLeavesItResumable runs the real binary, holds one chunk of its
// upload at the server past the middle of the file, sends SIGINT, and checks the message
// (with the share the server holds), the exit status, and that the same command then
// resumes from there.
func TestCtrlCDuringUploadLeavesItResumable(t *testing.T) {
	bin := buildBinary(t)
	var hold atomic.Bool
	hold.Store(true)
	held := make(chan int64, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	var mu sync.Mutex
	var offsets []int64
	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	const chunk = 64 << 10
	if st.Size() < 4*chunk {
		t.Fatalf("test image of %d bytes is too small for several chunks", st.Size())
	}
	srv := clienttest.Start(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch {
				off, _ := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
				if hold.Load() && off >= st.Size()/2 {
					select {
					case held <- off:
					default:
					}
					<-release // the client is interrupted meanwhile; this chunk never lands
					http.Error(w, "held by the test", http.StatusServiceUnavailable)
					return
				}
				mu.Lock()
				offsets = append(offsets, off)
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	})
	t.Cleanup(free) // before the server's Close, which waits for held handlers
	cache := t.TempDir()
	env := append(os.Environ(), "XDG_CACHE_HOME="+cache, "HOME="+t.TempDir(), "FLEETBOOT_SERVER="+srv.URL,
		"FLEETBOOT_TOKEN="+clienttest.Token, "FLEETBOOT_DATA=")
	args := []string{"iso", "upload", p, "--name", "big", "--chunk-size", strconv.Itoa(chunk)}

	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var at int64
	select {
	case at = <-held:
	case err := <-exited:
		t.Fatalf("upload ended before it reached the middle: %v\n%s%s", err, stdout.String(), stderr.String())
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("upload never reached the middle of the file")
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-exited:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("no exit after SIGINT:\n%s", stderr.String())
	}
	free()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit after SIGINT: %v, want status 130", err)
	}
	want := fmt.Sprintf("interrupted at %d %%, run the same command to resume", at*100/st.Size())
	if !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr lacks %q:\n%s", want, stderr.String())
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "fleetboot", "uploads", "*.upload")); len(left) != 1 {
		t.Fatalf("resume state after Ctrl-C: %v", left)
	}

	// The same command again continues where the server stopped.
	hold.Store(false)
	mu.Lock()
	offsets = nil
	mu.Unlock()
	cmd = exec.Command(bin, args...)
	cmd.Env = env
	stdout.Reset()
	stderr.Reset()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("rerun: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "uploaded big") || !strings.Contains(stderr.String(), "resuming at") {
		t.Fatalf("rerun did not resume:\nstdout: %s\nstderr: %s", stdout.String(), stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(offsets) == 0 || offsets[0] != at {
		t.Fatalf("rerun sent chunks at %v, want the first at %d", offsets, at)
	}
	iso, err := srv.ISOs.Get(context.Background(), "big")
	if err != nil || iso.Size != st.Size() {
		t.Fatalf("published: %+v %v", iso, err)
	}
}

// TestCLIUploadExplainsWhatHappened: a file that is no ISO is refused locally; the same
// file again under its name is "already there"; under another name the CLI says the name
// was not added.
func TestCLIUploadExplainsWhatHappened(t *testing.T) {
	cliServer(t)
	junk := filepath.Join(t.TempDir(), "disk.img")
	os.WriteFile(junk, clienttest.Pattern(1, 100_000), 0o644)
	if _, _, err := runCLI(t, "iso", "upload", junk); err == nil || !strings.Contains(err.Error(), "not an ISO 9660 image") ||
		!strings.Contains(err.Error(), `"CD001"`) || !strings.Contains(err.Error(), "nothing was uploaded") {
		t.Fatalf("upload of a disk image: %v", err)
	}
	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	mustCLI(t, "iso", "upload", p, "--name", "fedora", "-q")
	if out := mustCLI(t, "iso", "upload", p, "--name", "fedora", "-q"); !strings.HasPrefix(out, "already there: fedora") || !strings.Contains(out, "nothing was uploaded") {
		t.Fatalf("same file again:\n%s", out)
	}
	if out := mustCLI(t, "iso", "upload", p, "--name", "fedora-2", "-q"); !strings.Contains(out, "already stored as fedora") ||
		!strings.Contains(out, `the name "fedora-2" was NOT added`) {
		t.Fatalf("same file, another name:\n%s", out)
	}
}

// The firmware kind and option-97 UUID that DHCP recorded show in machine ls and show.
func TestMachineLsAndShowGiveFirmwareAndUUID(t *testing.T) {
	srv := cliServer(t)
	ctx := context.Background()
	const mac, uuid = "52:54:00:aa:bb:cc", "8a7f6e5d-4c3b-2a19-0807-060504030201"
	if err := srv.Inv.RecordDHCP(ctx, []inventory.DHCPSighting{{MAC: mac, Firmware: "uefi-http", UUID: uuid, Detail: "offer"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Inv.See(ctx, inventory.Sighting{MAC: mac, Arch: "x86_64"}); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "machine", "ls")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "FIRMWARE") || !strings.Contains(lines[1], "uefi-http") {
		t.Errorf("machine ls:\n%s", out)
	}
	if out, _, err := runCLI(t, "machine", "show", mac); err != nil || !strings.Contains(out, `"firmware": "uefi-http"`) || !strings.Contains(out, `"uuid": "`+uuid+`"`) {
		t.Errorf("machine show: %v\n%s", err, out)
	}
}
