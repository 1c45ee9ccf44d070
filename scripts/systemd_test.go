package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const unitFile = "systemd/fleetboot.service"

// unitCopy is the unit with ExecStart's binary replaced by one that exists here (verify checks
// that the binary is executable; fleetboot is not installed in /usr/local/bin on a CI machine).
func unitCopy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "ExecStart=/usr/local/bin/fleetboot serve ") {
		t.Fatalf("%s: ExecStart does not run /usr/local/bin/fleetboot serve", unitFile)
	}
	p := filepath.Join(t.TempDir(), "fleetboot.service")
	os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/fleetboot", exe)), 0o644)
	return p
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (scripts/deps.sh installs systemd)")
	}
	return p
}

// TestSystemdUnitVerifies: systemd-analyze verify accepts the unit without a single warning
// (it exits 0 even for unknown keys and bad values, so any output fails the test).
func TestSystemdUnitVerifies(t *testing.T) {
	sa := systemdAnalyze(t)
	out, err := exec.Command(sa, "verify", unitCopy(t)).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
}

// TestSystemdUnitIsHardened: the capabilities are exactly what serving needs, and systemd's own
// exposure score (0 safest … 10) stays low.
func TestSystemdUnitIsHardened(t *testing.T) {
	b, _ := os.ReadFile(unitFile)
	for _, want := range []string{
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_RAW\n", "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW\n",
		"ProtectSystem=strict\n", "NoNewPrivileges=yes\n", "DynamicUser=yes\n", "StateDirectory=fleetboot\n",
		"ExecStart=/usr/local/bin/fleetboot serve --config /etc/fleetboot/fleetboot.yaml\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q", unitFile, strings.TrimSpace(want))
		}
	}
	sa := systemdAnalyze(t)
	out, err := exec.Command(sa, "security", "--offline=yes", "--no-pager", unitCopy(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0 (was 1.6):\n%s", level, out)
	}
}
