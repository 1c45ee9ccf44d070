package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requirement is something the boot suite needs on the host, with the Debian package that
// provides it (scripts/deps.sh installs them all).
type requirement struct {
	what string
	pkg  string
	ok   func() bool
}

func fileExists(p string) func() bool {
	return func() bool { _, err := os.Stat(p); return err == nil }
}

func onPath(name string) func() bool {
	return func() bool { _, err := exec.LookPath(name); return err == nil }
}

var requirements = []requirement{
	{"root (network namespaces, tap devices)", "", func() bool { return os.Geteuid() == 0 }},
	{"/dev/net/tun", "", fileExists("/dev/net/tun")},
	{"ip", "iproute2", onPath("ip")},
	{qemuBinary, "qemu-system-x86", onPath(qemuBinary)},
	{"SeaBIOS", "seabios", fileExists("/usr/share/seabios/bios-256k.bin")},
	// QEMU loads the virtio-net option ROM (iPXE) from here; the bios scenario boots through it.
	{"virtio-net iPXE ROM", "ipxe-qemu", fileExists("/usr/lib/ipxe/qemu/efi-virtio.rom")},
	{ovmfCode, "ovmf", fileExists(ovmfCode)},
	{ovmfVars, "ovmf", fileExists(ovmfVars)},
	// Secure Boot scenarios: OVMF with Secure Boot and Microsoft's keys enrolled.
	{ovmfSecCode, "ovmf", fileExists(ovmfSecCode)},
	{ovmfMSVars, "ovmf", fileExists(ovmfMSVars)},
	{ipxeLkrn, "ipxe", fileExists(ipxeLkrn)},
	{kernelPath, "debian-installer-12-netboot-amd64", fileExists(kernelPath)},
	{"static " + busyboxPath, "busybox-static", func() bool { return checkStatic(busyboxPath) == nil }},
	{"dnsmasq (the site DHCP server in proxy mode)", "dnsmasq-base", onPath("dnsmasq")},
	// The ISO scenarios build their images with it and take virtio-net modules from here.
	{"xorriso", "xorriso", onPath("xorriso")},
	{diInitrdPath, "debian-installer-12-netboot-amd64", fileExists(diInitrdPath)},
	// The arm64 machines of the mixed-fleet scenario (arm64_test.go).
	{qemuAarch64, "qemu-system-arm", onPath(qemuAarch64)},
	{aavmfCode, "qemu-efi-aarch64", fileExists(aavmfCode)},
	{aavmfVars, "qemu-efi-aarch64", fileExists(aavmfVars)},
	{diNetbootDir("arm64") + "/linux", "debian-installer-12-netboot-arm64", fileExists(diNetbootDir("arm64") + "/linux")},
}

// missingRequirements lists what is absent, with the packages to install.
func missingRequirements() (missing []string, pkgs []string) {
	seen := map[string]bool{}
	for _, r := range requirements {
		if r.ok() {
			continue
		}
		missing = append(missing, r.what)
		if r.pkg != "" && !seen[r.pkg] {
			seen[r.pkg] = true
			pkgs = append(pkgs, r.pkg)
		}
	}
	return missing, pkgs
}

// e2eDemanded reports whether a missing requirement is a failure rather than a reason to skip:
// in CI, or when a developer asked for the suite explicitly.
func e2eDemanded() bool {
	return os.Getenv("CI") == "true" || os.Getenv("FLEETBOOT_E2E") == "1"
}

// e2eDisabled lets a developer with everything installed skip the slow suite.
func e2eDisabled() bool { return os.Getenv("FLEETBOOT_E2E") == "0" }

// suite is what TestMain prepared for the boot tests.
var suite struct {
	bin      string // fleetboot binary under test
	buildErr error
	skipWhy  string // non-empty: boot tests skip (or fail, when demanded) with this
}

// requireBootSuite skips or fails t when the boot suite cannot run here.
func requireBootSuite(t *testing.T) {
	t.Helper()
	if suite.skipWhy != "" {
		if e2eDemanded() && !e2eDisabled() && !testing.Short() {
			t.Fatal(suite.skipWhy)
		}
		t.Skip(suite.skipWhy)
	}
	if suite.buildErr != nil {
		t.Fatalf("build fleetboot: %v", suite.buildErr)
	}
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse() // testing.Short below needs the test flags
	missing, pkgs := missingRequirements()
	switch {
	case e2eDisabled():
		suite.skipWhy = "FLEETBOOT_E2E=0: boot suite disabled"
	case testing.Short():
		suite.skipWhy = "-short: boot suite skipped"
	case len(missing) > 0:
		suite.skipWhy = fmt.Sprintf("boot suite needs: %s", strings.Join(missing, ", "))
		if len(pkgs) > 0 {
			suite.skipWhy += fmt.Sprintf(" — install with scripts/deps.sh (apt packages: %s)", strings.Join(pkgs, " "))
		}
	}
	if suite.skipWhy != "" {
		return m.Run()
	}
	removeStaleNamespaces()
	if bin := os.Getenv("FLEETBOOT_BIN"); bin != "" {
		suite.bin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "fleetboot-e2e-bin-")
	if err != nil {
		suite.buildErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	suite.bin = filepath.Join(dir, "fleetboot")
	suite.buildErr = buildFleetboot(suite.bin)
	return m.Run()
}

// buildFleetboot compiles ./cmd/fleetboot of the module this package belongs to.
func buildFleetboot(out string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd := exec.Command("go", "build", "-o", out, "./cmd/fleetboot")
	cmd.Dir = root
	// The static binary scripts/run.sh and the Dockerfile build, not a cgo variant.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/fleetboot in %s: %w\n%s", root, err, b)
	}
	return nil
}
