package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/fleetboot/fleetboot/internal/config"
	"github.com/fleetboot/fleetboot/internal/grub"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// getWhenUp GETs url from a server that Run is starting in the background: it polls until the
// server answers, for up to a minute (startup is milliseconds; the bound is for -race on a
// loaded 2-core machine), and fails the test if Run returns first. logs, when not nil, is
// shown on failure.
func getWhenUp(t *testing.T, url string, done <-chan error, logs fmt.Stringer) (code int, body string) {
	t.Helper()
	show := func() string {
		if logs == nil {
			return ""
		}
		return "\n" + logs.String()
	}
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			return res.StatusCode, string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: no answer within a minute: %v%s", url, err, show())
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before %s answered: %v%s", url, err, show())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func testConfig(t *testing.T) config.Config {
	c := config.Default()
	c.DataDir = t.TempDir()
	c.Interface = "lo"
	c.AdvertiseIP = "127.0.0.1"
	c.HTTPAddr = freePort(t)
	c.TFTPAddr = "off"
	c.DHCPMode = config.DHCPOff
	// A directory of stand-in binaries keeps the test independent of scripts/fetch-ipxe.sh.
	dir := t.TempDir()
	for _, n := range []string{"undionly.kpxe", "snponly.efi", "ipxe.efi"} {
		os.WriteFile(filepath.Join(dir, n), []byte("binary "+n), 0o644)
	}
	c.IPXEDir = dir
	return c
}

func TestRunServesAndStopsOnCancel(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, nil) }()

	if _, body := getWhenUp(t, "http://"+cfg.HTTPAddr+"/healthz", done, nil); body != "ok\n" {
		t.Fatalf("healthz never answered ok (got %q)", body)
	}
	res, err := http.Get("http://" + cfg.HTTPAddr + "/ipxe/snponly.efi")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "binary snponly.efi" {
		t.Fatalf("snponly.efi: %q", b)
	}
	// The token was generated on first start with mode 0600.
	st, err := os.Stat(filepath.Join(cfg.DataDir, "api-token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("api-token: %v %v", st, err)
	}
	// Leases are only for full mode.
	tok, _ := os.ReadFile(filepath.Join(cfg.DataDir, "api-token"))
	req, _ := http.NewRequest(http.MethodGet, "http://"+cfg.HTTPAddr+"/api/v1/leases", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("leases in dhcp=off: %d", res.StatusCode)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRunRefusesBadConfigAndMissingBinaries(t *testing.T) {
	cfg := testConfig(t)
	cfg.DHCPMode = config.DHCPFull
	err := Run(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "--dhcp=full needs --pool") {
		t.Fatalf("full without pool: %v", err)
	}
	cfg = testConfig(t)
	cfg.IPXEDir = t.TempDir()
	err = Run(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "scripts/fetch-ipxe.sh") {
		t.Fatalf("missing binaries: %v", err)
	}
	// --boot-chain shim promises the signed chain: without it, refuse (auto only warns).
	cfg = testConfig(t)
	cfg.BootChain = "shim"
	cfg.SecureBootDir = t.TempDir()
	err = Run(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "scripts/fetch-secureboot.sh") {
		t.Fatalf("--boot-chain shim without the signed chain: %v", err)
	}
	cfg = testConfig(t)
	cfg.BootChain = "sometimes"
	if err := Run(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "--boot-chain must be auto, shim or ipxe") {
		t.Fatalf("bad --boot-chain: %v", err)
	}
}

// TestRunServesTheSignedChainWhenPresent: with a chain directory, shim and GRUB are served at
// /secureboot/ and GRUB's bootstrap at /grub/grub.cfg; without one (auto), fleetboot still runs.
func TestRunServesTheSignedChainWhenPresent(t *testing.T) {
	for _, withChain := range []bool{true, false} {
		cfg := testConfig(t)
		cfg.SecureBootDir = t.TempDir()
		if withChain {
			os.WriteFile(filepath.Join(cfg.SecureBootDir, "shimx64.efi"), []byte("SHIM"), 0o644)
			os.WriteFile(filepath.Join(cfg.SecureBootDir, "grubnetx64.efi"), []byte("GRUB"), 0o644)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg, nil) }()
		code, body := getWhenUp(t, "http://"+cfg.HTTPAddr+"/secureboot/grubx64.efi", done, nil)
		if withChain && (code != 200 || body != "GRUB") || !withChain && code != 404 {
			t.Errorf("chain present %v: /secureboot/grubx64.efi %d %q", withChain, code, body)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
}

// lockedBuffer is a log sink the server's goroutines may write to concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAndStop runs the server until /healthz answers, then stops it, and returns its log.
func startAndStop(t *testing.T, cfg config.Config) string {
	t.Helper()
	var logs lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil))) }()
	code, _ := getWhenUp(t, "http://"+cfg.HTTPAddr+"/healthz", done, &logs)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v\n%s", err, logs.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after cancel")
	}
	if code != http.StatusOK {
		t.Fatalf("/healthz answered %d:\n%s", code, logs.String())
	}
	return logs.String()
}

func TestAPITokensAreNeverLoggedButTheirFilesAreOnEveryStart(t *testing.T) {
	cfg := testConfig(t)
	for i, want := range []string{"generated an API token", "API token: the CLI reads"} {
		logs := startAndStop(t, cfg)
		for _, name := range []string{"api-token", "api-token.readonly"} {
			file := filepath.Join(cfg.DataDir, name)
			tok, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if token := strings.TrimSpace(string(tok)); strings.Contains(logs, token) {
				t.Fatalf("start %d logged the token of %s:\n%s", i+1, name, logs)
			}
			if !strings.Contains(logs, want) || !strings.Contains(logs, "token_file="+file) {
				t.Fatalf("start %d does not say where the token is (%q, token_file=%s):\n%s", i+1, want, file, logs)
			}
		}
	}
	cfg.Token = "operator-given-token-0123456789"
	cfg.ReadOnlyToken = "operator-given-readonly-0123456789"
	if logs := startAndStop(t, cfg); strings.Contains(logs, cfg.Token) || strings.Contains(logs, cfg.ReadOnlyToken) ||
		!strings.Contains(logs, "--token / FLEETBOOT_TOKEN") || !strings.Contains(logs, "--readonly-token / FLEETBOOT_READONLY_TOKEN") {
		t.Fatalf("start with --token and --readonly-token:\n%s", logs)
	}
}

// A start that fails — a bad flag, a port in use — leaves no data directory behind, names the
// flag to change, and never claims to be serving.
func TestFailedFirstStartLeavesNoDataDir(t *testing.T) {
	busyTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyTCP.Close()
	busyUDP, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()

	for _, tc := range []struct {
		name string
		mod  func(*config.Config)
		want []string
	}{
		{"bad flag", func(c *config.Config) { c.DHCPMode = "fulll" }, []string{"--dhcp must be proxy, full or off"}},
		{"http port in use", func(c *config.Config) { c.HTTPAddr = busyTCP.Addr().String() },
			[]string{"--http " + busyTCP.Addr().String(), "address already in use", "choose another port with --http"}},
		{"tftp port in use", func(c *config.Config) { c.TFTPAddr = busyUDP.LocalAddr().String() },
			[]string{"--tftp " + busyUDP.LocalAddr().String(), "address already in use", "--tftp off"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.DataDir = filepath.Join(t.TempDir(), "new", "data")
			tc.mod(&cfg)
			var logs lockedBuffer
			err := Run(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err == nil {
				t.Fatal("Run succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, err := os.Stat(filepath.Dir(cfg.DataDir)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("failed start left %s behind (%v)", filepath.Dir(cfg.DataDir), err)
			}
			if strings.Contains(logs.String(), "fleetboot serving") {
				t.Errorf("failed start logged serving:\n%s", logs.String())
			}
		})
	}
}

// A start that fails after creating files in an existing data directory removes what it
// created and nothing else.
func TestFailedStartKeepsExistingData(t *testing.T) {
	cfg := testConfig(t)
	os.WriteFile(filepath.Join(cfg.DataDir, "keep.txt"), []byte("operator's"), 0o644)
	// A directory where the database file should be makes store.Open fail after assets/ exists.
	os.Mkdir(filepath.Join(cfg.DataDir, "fleetboot.db"), 0o755)
	if err := Run(context.Background(), cfg, nil); err == nil {
		t.Fatal("Run succeeded on an unusable database path")
	}
	entries, _ := os.ReadDir(cfg.DataDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "fleetboot.db,keep.txt" {
		t.Fatalf("data dir after a failed start: %v", names)
	}
}

func TestMakeDataDirUndoRemovesOnlyWhatItCreated(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "data")
	undo, err := makeDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "fleetboot.db"), nil, 0o644)
	undo()
	if _, err := os.Stat(filepath.Join(root, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("created parents left: %v", err)
	}
	if _, err := makeDataDir(filepath.Join(root, "file", "x")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "plain"), nil, 0o644)
	if _, err := makeDataDir(filepath.Join(root, "plain")); err == nil {
		t.Fatal("a file as data directory was accepted")
	}
}

// The served shim is what Secure Boot readiness judges pair-less ISOs against; a served GRUB
// that shim would refuse is said at start-up, and a chain that is not a shim gives no shim.
func TestServedShimsReadsTheChainAndChecksItsGRUB(t *testing.T) {
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			t.Skipf("%s not installed (shim-signed, grub-efi-amd64-signed)", p)
		}
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	shim := read("/usr/lib/shim/shimx64.efi.signed")
	grubNet := read("/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed")
	for _, c := range []struct {
		name       string
		shim, grub []byte
		want       string // in the log
		shims      bool
	}{
		{"Debian's pair", shim, grubNet, "Secure Boot chain verified", true},
		// shim is Microsoft-signed: the Debian shim does not trust it as a second stage.
		{"GRUB the shim refuses", shim, shim, "the served shim does not trust the served GRUB", true},
		{"not a shim", []byte("SHIM"), []byte("GRUB"), "cannot read the served shim's certificates", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			chain, err := grub.LoadChain(fstest.MapFS{"shimx64.efi": {Data: c.shim}, "grubnetx64.efi": {Data: c.grub}}, "test")
			if err != nil {
				t.Fatal(err)
			}
			var logs lockedBuffer
			got := servedShims(chain, slog.New(slog.NewTextHandler(&logs, nil)))
			if (got["x86_64"] != nil) != c.shims || !strings.Contains(logs.String(), c.want) {
				t.Errorf("shims %v, log:\n%s", got, logs.String())
			}
			if c.shims && got["x86_64"].Certs[0].Subject.CommonName != "Debian Secure Boot CA" {
				t.Errorf("vendor certificate %v", got["x86_64"].Certs[0].Subject)
			}
		})
	}
	if servedShims(nil, slog.New(slog.DiscardHandler)) != nil {
		t.Error("shims without a chain")
	}
}
