package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Dockerfile cannot be built here (no Docker engine in CI); these tests hold what its
// build depends on. The build steps themselves were run by hand in a copy of the context
// (README, "Container image").

// The build stage's Go is exactly go.mod's: the official golang images set GOTOOLCHAIN=local,
// so an older 1.26.x would refuse the module instead of fetching the toolchain.
func TestDockerfileGoMatchesGoMod(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^FROM golang:(\S+?)-\S+ AS build$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no `FROM golang:<version>-<os> AS build` line")
	}
	if need := goModVersion(t); string(m[1]) != need {
		t.Errorf("Dockerfile builds with golang:%s, go.mod needs %s", m[1], need)
	}
}

// .dockerignore keeps state, secrets and host build outputs out of the build context.
func TestDockerignoreKeepsStateAndSecretsOut(t *testing.T) {
	b, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			rules = append(rules, l)
		}
	}
	for _, want := range []string{"data/", "**/api-token", "**/fleetboot.db", "bin/", ".cache/", "embed/ipxe/*", "!embed/ipxe/README.md", "embed/secureboot/*", "!embed/secureboot/README.md"} {
		found := false
		for _, r := range rules {
			found = found || r == want
		}
		if !found {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
	for _, r := range rules {
		if r == "*" || r == "**" || r == "go.mod" || r == "scripts/" || r == "cmd/" || r == "internal/" {
			t.Errorf(".dockerignore drops %q, which the build needs", r)
		}
	}
}

// debfetch finds the mirror in the system's apt sources even when apt has no package lists
// (a fresh container image): from the URIs `apt-get update` would fetch. Both source formats.
func TestDebfetchMirrorWithoutPackageLists(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("apt-get not installed")
	}
	lib, err := filepath.Abs("lib/debfetch.sh")
	if err != nil {
		t.Fatal(err)
	}
	for name, sources := range map[string]map[string]string{
		"deb822": {"debian.sources": "Types: deb\nURIs: http://debian.invalid/debian-mirror/\nSuites: fbtest fbtest-updates\nComponents: main\n\n" +
			"Types: deb\nURIs: http://security.invalid/debian-security\nSuites: fbtest-security\nComponents: main\n"},
		"one-line": {"debian.list": "deb http://security.invalid/debian-security fbtest-security main\ndeb http://debian.invalid/debian-mirror fbtest main contrib\n"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			parts := filepath.Join(dir, "sources.list.d")
			lists := filepath.Join(dir, "lists")
			for _, d := range []string{parts, filepath.Join(lists, "partial")} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for f, body := range sources {
				os.WriteFile(filepath.Join(parts, f), []byte(body), 0o644)
			}
			conf := filepath.Join(dir, "apt.conf")
			os.WriteFile(conf, []byte(`Dir::Etc::sourcelist "/dev/null";
Dir::Etc::sourceparts "`+parts+`";
Dir::State::Lists "`+lists+`";
`), 0o644)
			cmd := exec.Command("bash", "-c", `. "$1" && debfetch_mirror`, "debfetch", lib)
			cmd.Env = append(os.Environ(), "APT_CONFIG="+conf, "DEBIAN_MIRROR=")
			out, code := combined(t, cmd)
			if code != 0 || strings.TrimSpace(out) != "http://debian.invalid/debian-mirror" {
				t.Errorf("exit %d, output %q; want the main repository http://debian.invalid/debian-mirror", code, out)
			}
		})
	}
}

// TestDockerfileBuildsWhatTheScriptsBuild: the image's binary is built like scripts/run.sh
// builds bin/fleetboot — the same fetch scripts embed the pinned iPXE and signed shim + GRUB,
// a static CGO_ENABLED=0 build of ./cmd/fleetboot — and checked (`fleetboot version` lists the
// embedded files); the image runs serve on a /data volume with DHCP, proxyDHCP, TFTP and HTTP
// ports, and the documented run line uses host networking.
func TestDockerfileBuildsWhatTheScriptsBuild(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	run, err := os.ReadFile("run.sh")
	if err != nil {
		t.Fatal(err)
	}
	d, r := string(df), string(run)
	for _, step := range []string{"bash scripts/fetch-ipxe.sh", "bash scripts/fetch-secureboot.sh"} {
		if !strings.Contains(d, step) || !strings.Contains(r, step) {
			t.Errorf("%q: in the Dockerfile %v, in run.sh %v — the image must embed what run.sh embeds", step, strings.Contains(d, step), strings.Contains(r, step))
		}
	}
	build := regexp.MustCompile(`CGO_ENABLED=0 go build .*\./cmd/fleetboot`)
	if !build.MatchString(d) || !build.MatchString(r) {
		t.Errorf("both must build ./cmd/fleetboot with CGO_ENABLED=0 (static): Dockerfile %v, run.sh %v", build.MatchString(d), build.MatchString(r))
	}
	if !regexp.MustCompile(`/out/fleetboot version`).MatchString(d) {
		t.Error("the build stage does not run `fleetboot version` (which fails without embedded iPXE binaries)")
	}
	for _, want := range []string{"VOLUME /data", `CMD ["serve", "--data", "/data"]`, "EXPOSE 67/udp 69/udp 4011/udp 8080/tcp",
		"COPY --from=build /out/fleetboot /usr/local/bin/fleetboot"} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	readme, _ := os.ReadFile("../README.md")
	if !regexp.MustCompile("docker run --net=host [^\n]*-v [^\n]*:/data fleetboot").Match(readme) {
		t.Error("README's docker run line does not use --net=host and a /data volume")
	}
}
