package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/fleetboot/fleetboot/internal/config"
	"github.com/fleetboot/fleetboot/internal/tlstest"
)

// TestHelperProcessFleetboot is not a test: it is the fleetboot process the serve tests start
// (the test binary run again with FLEETBOOT_HELPER_ARGS set), so that they can signal a real
// process and read its exit status.
func TestHelperProcessFleetboot(t *testing.T) {
	raw := os.Getenv("FLEETBOOT_HELPER_ARGS")
	if raw == "" {
		t.Skip("helper process for the serve tests")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, "helper args:", err)
		os.Exit(2)
	}
	os.Args = append([]string{"fleetboot"}, args...)
	main() // exits 1 on error; returning means exit 0
}

// serveProc is a `fleetboot serve` child process with its log.
type serveProc struct {
	cmd    *exec.Cmd
	log    string
	done   chan struct{}
	err    error
	http   string
	assets string
	data   string
	args   []string
}

// startServe runs fleetboot serve on loopback (DHCP and TFTP off) with a fresh data directory
// and stand-in iPXE binaries, and waits until it logs that it serves.
func startServe(t *testing.T, extra ...string) *serveProc {
	t.Helper()
	return startServeOn(t, "", extra...)
}

// startServeOn is startServe on the data directory data ("" for a fresh one).
func startServeOn(t *testing.T, data string, extra ...string) *serveProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	bins := filepath.Join(dir, "ipxe")
	os.Mkdir(bins, 0o755)
	for _, n := range []string{"undionly.kpxe", "snponly.efi", "ipxe.efi"} {
		os.WriteFile(filepath.Join(bins, n), []byte("binary "+n), 0o644)
	}
	if data == "" {
		data = filepath.Join(dir, "data")
	}
	args := append([]string{"serve", "--data", data, "--interface", "lo", "--advertise-ip", "127.0.0.1",
		"--http", addr, "--tftp", "off", "--dhcp", "off", "--ipxe-dir", bins, "--log-format", "json"}, extra...)
	p := launchServe(t, args, filepath.Join(dir, "fleetboot.log"))
	p.http, p.assets, p.data = addr, filepath.Join(data, "assets"), data
	if !p.waitLog(t, "fleetboot serving", 60*time.Second) {
		t.Fatalf("fleetboot did not start:\n%s", p.logText())
	}
	return p
}

// launchServe starts the helper process with args, its output in logFile; killed (by its own
// PID) when the test ends if it still runs.
func launchServe(t *testing.T, args []string, logFile string) *serveProc {
	t.Helper()
	raw, _ := json.Marshal(args)
	p := &serveProc{log: logFile, done: make(chan struct{}), args: args}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperProcessFleetboot$")
	p.cmd.Env = append(os.Environ(), "FLEETBOOT_HELPER_ARGS="+string(raw))
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill() // by its own PID
			<-p.done
		}
	})
	return p
}

// A second fleetboot started on the same data directory and addresses is refused; its log
// says why, as a record of its own, and nothing in it says "serving" (every listener is bound
// before Run logs that).
func TestSecondInstanceLogsItsRefusalAndNeverServing(t *testing.T) {
	first := startServe(t)
	second := launchServe(t, first.args, filepath.Join(t.TempDir(), "second.log"))
	if code := second.exitCode(60 * time.Second); code != 1 {
		t.Fatalf("second instance exit status %d, want 1:\n%s", code, second.logText())
	}
	var msgs []string
	refusal := ""
	sc := bufio.NewScanner(strings.NewReader(second.logText()))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			t.Errorf("not a JSON log record: %q", sc.Text())
			continue
		}
		msg, _ := rec["msg"].(string)
		msgs = append(msgs, msg)
		if strings.Contains(msg, "serving") {
			t.Errorf("the refused instance logged %q", msg)
		}
		if msg == "fleetboot not started" && rec["level"] == "ERROR" {
			refusal, _ = rec["err"].(string)
		}
	}
	if !strings.Contains(refusal, "address already in use") || !strings.Contains(refusal, "another fleetboot") {
		t.Errorf("refusal %q does not say another fleetboot holds the address (log: %v)", refusal, msgs)
	}
	if len(msgs) == 0 || msgs[len(msgs)-1] != "fleetboot not started" {
		t.Errorf("the refusal is not the last record: %v", msgs)
	}
	// The first one still serves.
	res, err := http.Get("http://" + first.http + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("first instance after the refused start: %v", err)
	}
	res.Body.Close()
}

func (p *serveProc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// waitLog waits up to d for a log record whose msg is msg; false when it did not come or the
// process ended first.
func (p *serveProc) waitLog(t *testing.T, msg string, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(p.logText()))
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
				return true
			}
		}
		select {
		case <-p.done:
			return strings.Contains(p.logText(), `"msg":"`+msg+`"`)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// exitCode waits up to d for the process to exit and returns its status (-1: still running).
func (p *serveProc) exitCode(d time.Duration) int {
	select {
	case <-p.done:
	case <-time.After(d):
		return -1
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		return -2
	}
	return 0
}

// bigAsset puts a sparse file of size bytes below the server's assets directory.
func bigAsset(t *testing.T, p *serveProc, size int64) {
	t.Helper()
	f, err := os.Create(filepath.Join(p.assets, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// startDownload GETs the big asset and reads its first bytes, so that the transfer is running.
func startDownload(t *testing.T, p *serveProc) (*http.Response, int64) {
	t.Helper()
	res, err := http.Get("http://" + p.http + "/assets/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET big.bin: %d", res.StatusCode)
	}
	n, err := io.CopyN(io.Discard, res.Body, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	return res, n
}

// SIGTERM during a download: fleetboot says it drains one transfer, lets it finish, exits 0.
func TestSIGTERMDrainsRunningDownloadsAndExitsZero(t *testing.T) {
	const size = 256 << 20
	p := startServe(t, "--drain-timeout", "10m")
	bigAsset(t, p, size)
	res, n := startDownload(t, p)

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !p.waitLog(t, "shutting down, draining 1 transfers", 30*time.Second) {
		t.Fatalf("no drain message:\n%s", p.logText())
	}
	// New connections are refused (soon after the message) while the running download goes on.
	// The budget is time, not a count of attempts, and generous: a loaded machine only delays
	// the refusal, and a listener that stays open still fails.
	refused := false
	for deadline := time.Now().Add(time.Minute); !refused && time.Now().Before(deadline); {
		c, err := net.DialTimeout("tcp", p.http, 5*time.Second)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	if !refused {
		t.Error("new connections still accepted a minute into the drain")
	}
	rest, err := io.Copy(io.Discard, res.Body)
	if err != nil || n+rest != size {
		t.Fatalf("download during drain: %d of %d bytes, %v", n+rest, size, err)
	}
	if code := p.exitCode(60 * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM:\n%s", code, p.logText())
	}
	if !p.waitLog(t, "fleetboot stopped", time.Second) {
		t.Errorf("no stop message:\n%s", p.logText())
	}
}

// A download that does not finish within --drain-timeout is cut off, and fleetboot still exits
// 0, shortly after the drain timeout rather than never.
func TestSIGTERMCutsOffStalledDownloadsAfterDrainTimeout(t *testing.T) {
	p := startServe(t, "--drain-timeout", "1s")
	bigAsset(t, p, 1<<30)
	startDownload(t, p) // and never read again

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Generous bound for a loaded machine: the point is that it ends by itself.
	if code := p.exitCode(60 * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM with a stalled download:\n%s", code, p.logText())
	}
	log := p.logText()
	for _, want := range []string{"shutting down, draining 1 transfers", "drain timeout reached"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestServeWithTLSAndTheCLIOverHTTPS: serve --tls-cert moves the API to --api-addr; the CLI
// reaches it with --ca-cert (and refuses the unknown certificate without it), and the plain
// port refuses the API.
func TestServeWithTLSAndTheCLIOverHTTPS(t *testing.T) {
	cliEnv(t)
	certFile, keyFile, _ := tlstest.WriteSelfSigned(t, t.TempDir(), "fleetboot-cli-test")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := l.Addr().String()
	l.Close()
	p := startServe(t, "--tls-cert", certFile, "--tls-key", keyFile, "--api-addr", apiAddr)
	if out := mustCLI(t, "machine", "ls", "--server", "https://"+apiAddr, "--ca-cert", certFile, "--data", p.data); !strings.Contains(out, "MAC") {
		t.Fatalf("machine ls over HTTPS:\n%s", out)
	}
	if _, _, err := runCLI(t, "machine", "ls", "--server", "https://"+apiAddr, "--data", p.data); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an untrusted certificate was accepted: %v", err)
	}
	if _, _, err := runCLI(t, "machine", "ls", "--server", "http://"+p.http, "--data", p.data); err == nil ||
		!strings.Contains(err.Error(), "served over HTTPS only") {
		t.Fatalf("the plain port served the API: %v", err)
	}
}

// TestConfigExampleCoversEveryFlagAndIsCurrent: docs/fleetboot.yaml is what `fleetboot
// config` prints from the serve flag set — a flag added later fails here until the file is
// regenerated — and the file with every key uncommented loads and changes nothing.
func TestConfigExampleCoversEveryFlagAndIsCurrent(t *testing.T) {
	out := mustCLI(t, "config")
	doc, err := os.ReadFile("../../docs/fleetboot.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(doc) != out {
		t.Fatalf("docs/fleetboot.yaml is not what `fleetboot config` prints: run\n  go run ./cmd/fleetboot config > docs/fleetboot.yaml")
	}
	serve := newServeCmd()
	var keys []string
	uncommented := regexp.MustCompile(`(?m)^# ([a-z0-9-]+): `).ReplaceAllStringFunc(out, func(m string) string {
		keys = append(keys, strings.TrimSuffix(strings.TrimPrefix(m, "# "), ": "))
		return strings.TrimPrefix(m, "# ")
	})
	serve.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" && f.Name != "dry-run" && !slices.Contains(keys, f.Name) {
			t.Errorf("--%s is not in the example configuration", f.Name)
		}
	})
	p := filepath.Join(t.TempDir(), "fleetboot.yaml")
	os.WriteFile(p, []byte(uncommented), 0o644)
	fs := newServeCmd().Flags()
	if err := config.ApplyFile(fs, p); err != nil {
		t.Fatalf("the example with every key set does not load: %v", err)
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Value.String() != f.DefValue {
			t.Errorf("--%s: the example sets %q, the default is %q", f.Name, f.Value.String(), f.DefValue)
		}
	})
}

// TestServeReadsTheConfigFile: serve --config sets what the flags would, and FLEETBOOT_CONFIG
// names the file too.
func TestServeReadsTheConfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fleetboot.yaml")
	os.WriteFile(p, []byte("dhcp: nonsense\n"), 0o644)
	for _, args := range [][]string{{"serve", "--config", p, "--dry-run"}, {"serve", "--dry-run"}} {
		t.Setenv("FLEETBOOT_CONFIG", p)
		_, _, err := runCLI(t, args...)
		if err == nil || !strings.Contains(err.Error(), "nonsense") {
			t.Errorf("fleetboot %v with dhcp: nonsense in the file: %v", args, err)
		}
	}
	os.WriteFile(p, []byte("dhcp: sideways\n"), 0o644)
	if _, _, err := runCLI(t, "serve", "--config", p, "--dry-run", "--dhcp", "nonsense2"); err == nil || !strings.Contains(err.Error(), "nonsense2") {
		t.Errorf("the command line wins over the file: %v", err)
	}
	os.WriteFile(p, []byte("dchp: full\n"), 0o644)
	if _, _, err := runCLI(t, "serve", "--config", p, "--dry-run"); err == nil || !strings.Contains(err.Error(), `unknown key "dchp" (did you mean dhcp?)`) {
		t.Errorf("misspelt key: %v", err)
	}
}
