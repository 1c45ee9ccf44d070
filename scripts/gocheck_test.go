package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goModVersion is the version go.mod's go line asks for.
func goModVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no go line in go.mod")
	}
	return string(m[1])
}

// fakeGo writes a `go` into a new directory that answers `go version` with version and
// `go env GOTOOLCHAIN` with toolchain, like the real one, and returns the directory.
func fakeGo(t *testing.T, version, toolchain string) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\ncase $1 in\nversion) echo 'go version go" + version + " linux/amd64' ;;\nenv) echo '" + toolchain + "' ;;\n*) exit 3 ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// toolsOnly is a PATH directory holding just the tools gocheck.sh uses, so that a go installed
// on the machine running the test (/usr/bin/go, say) cannot leak in.
func toolsOnly(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range []string{"awk", "sort", "head"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not installed", tool)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// gocheck sources scripts/lib/gocheck.sh in the repository root with PATH set to path and
// go.dev's install directory at tarball, runs gocheck_require, and returns the output (which
// ends with the go it settled on) and the exit code.
func gocheck(t *testing.T, path, tarball string) (string, int) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	cmd := exec.Command(bash, "-c", `set -euo pipefail
. scripts/lib/gocheck.sh
gocheck_tarball_bin=$1
gocheck_require run.sh
echo "using $(command -v go)"`, "gocheck", tarball)
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + path, "HOME=" + t.TempDir()}
	return combined(t, cmd)
}

func TestGoCheckSaysWhatToDoForEachGo(t *testing.T) {
	need := goModVersion(t)
	tools := toolsOnly(t)
	none := filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		name      string
		path      []string // directories before the tools
		tarball   string
		wantCode  int
		wantOut   []string
		wantUsing string // directory of the go the script ends up with
	}{
		{name: "no go anywhere", tarball: none, wantCode: 1,
			wantOut: []string{"Go is not installed", "needs Go " + need, "https://go.dev/dl/", "Debian 12's golang-go package is Go 1.19"}},
		{name: "Debian 12's 1.19", path: []string{fakeGo(t, "1.19.8", "")}, tarball: none, wantCode: 1,
			wantOut: []string{"is Go 1.19.8: too old", "needs Go " + need, "before 1.21 cannot fetch", "https://go.dev/dl/"}},
		{name: "1.22 with GOTOOLCHAIN=local", path: []string{fakeGo(t, "1.22.0", "local")}, tarball: none, wantCode: 1,
			wantOut: []string{"is Go 1.22.0", "GOTOOLCHAIN=local stops Go from fetching it", "GOTOOLCHAIN=auto bash scripts/run.sh"}},
		{name: "1.22 with GOTOOLCHAIN=path and no go" + need + " on PATH", path: []string{fakeGo(t, "1.22.0", "path")}, tarball: none, wantCode: 1,
			wantOut: []string{"GOTOOLCHAIN=path stops Go from fetching it"}},
		{name: "1.22 with GOTOOLCHAIN=auto fetches the toolchain", path: []string{fakeGo(t, "1.22.0", "auto")}, tarball: none,
			wantOut: []string{"is Go 1.22.0, go.mod needs Go " + need + ": the go command downloads go" + need}},
		{name: "the version go.mod asks for", path: []string{fakeGo(t, need, "local")}, tarball: none},
		{name: "a newer one", path: []string{fakeGo(t, "1.99.0", "local")}, tarball: none},
		{name: "a release candidate of a newer one", path: []string{fakeGo(t, "1.99rc1", "local")}, tarball: none},
		{name: "1.19 on PATH, go.dev's tarball in /usr/local/go: the tarball wins",
			path: []string{fakeGo(t, "1.19.8", "")}, tarball: fakeGo(t, need, "local"), wantUsing: "tarball"},
		{name: "only the tarball, not on PATH", tarball: fakeGo(t, need, "local"), wantUsing: "tarball"},
		{name: "a good go on PATH is kept over an older tarball",
			path: []string{fakeGo(t, need, "local")}, tarball: fakeGo(t, "1.19.8", ""), wantUsing: "path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := gocheck(t, strings.Join(append(tc.path, tools), ":"), tc.tarball)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if code == 0 && len(tc.wantOut) == 0 && strings.Contains(out, "run.sh:") {
				t.Errorf("a good Go gets a message:\n%s", out)
			}
			switch tc.wantUsing {
			case "tarball":
				if !strings.Contains(out, "using "+filepath.Join(tc.tarball, "go")) {
					t.Errorf("did not switch to the tarball's go:\n%s", out)
				}
			case "path":
				if !strings.Contains(out, "using "+filepath.Join(tc.path[0], "go")) {
					t.Errorf("did not keep the go on PATH:\n%s", out)
				}
			}
		})
	}
}

// The scripts a new operator runs first check Go before anything else.
func TestRunAndTestScriptsCheckGoFirst(t *testing.T) {
	for _, s := range []string{"run.sh", "test.sh"} {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		body := string(b)
		check := strings.Index(body, "gocheck_require "+s)
		if check < 0 {
			t.Errorf("%s does not call gocheck_require %s", s, s)
			continue
		}
		for _, later := range []string{"apt-get", "fetch-ipxe.sh", "go build", "go vet", "deps.sh"} {
			if i := strings.Index(body, later); i >= 0 && i < check && !strings.HasPrefix(strings.TrimSpace(body[strings.LastIndex(body[:i], "\n")+1:i]), "#") {
				t.Errorf("%s runs %q before checking Go", s, later)
			}
		}
	}
}
