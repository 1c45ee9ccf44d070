// Package scripts_test checks the behaviour of the repository's shell scripts (scripts/*.sh):
// what CI and a new operator run first.
package scripts_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// writeModule lays out a throwaway Go module from path → content. One leading tab is removed
// from every line of a .go file: the sources below are indented so that fuzz-smoke.sh's scan
// of this file (for lines starting "func Fuzz") does not take them for targets of this package.
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if strings.HasSuffix(name, ".go") {
			body = strings.ReplaceAll(strings.TrimPrefix(body, "\t"), "\n\t", "\n")
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// fuzzSmoke runs scripts/fuzz-smoke.sh with args and extra environment, returning its
// combined output and exit code.
func fuzzSmoke(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go not on PATH")
	}
	cmd := exec.Command("bash", append([]string{"fuzz-smoke.sh"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return combined(t, cmd)
}

// combined runs cmd and returns its stdout and stderr together and its exit code; it fails the
// test only when cmd cannot run at all.
func combined(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out), code
}

const scratchGoMod = "module scratch\n\ngo 1.26\n"

// fineTarget is a fuzz target with nothing to find.
const fineTarget = `	package fine

	import "testing"

	func FuzzFine(f *testing.F) {
		f.Add(1)
		f.Fuzz(func(t *testing.T, n int) { _ = n * 2 })
	}
`

// A target that panics on input only the mutator can produce (the seed is fine) must fail the
// smoke, with the input written where Go's fuzzer puts it, and the other targets still run.
func TestFuzzSmokeFailsOnARealCrasher(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles and fuzzes a scratch module")
	}
	mod := writeModule(t, map[string]string{
		"go.mod": scratchGoMod,
		"crash/crash.go": `	package crash

	// Parse panics on inputs longer than 8 bytes: the bug the smoke must catch.
	func Parse(s string) int {
		if len(s) > 8 {
			var m map[string]int
			m[s] = 1
		}
		return len(s)
	}
`,
		"crash/crash_test.go": `	package crash

	import "testing"

	func FuzzParse(f *testing.F) {
		f.Add("seed")
		f.Fuzz(func(t *testing.T, s string) { Parse(s) })
	}
`,
		"fine/fine_test.go": fineTarget,
	})
	out, code := fuzzSmoke(t, []string{"FUZZTIME=200000x"}, mod)
	if code == 0 {
		t.Fatalf("fuzz smoke passed although FuzzParse panics on long input:\n%s", out)
	}
	if !strings.Contains(out, "FAILED: crash:FuzzParse") {
		t.Errorf("summary does not name the crashing target:\n%s", out)
	}
	if strings.Contains(out, "FAILED: crash:FuzzParse fine:FuzzFine") || !strings.Contains(out, "-- FuzzFine (fine, 200000x)") {
		t.Errorf("FuzzFine did not run, or was counted as failed, after the crash:\n%s", out)
	}
	inputs, _ := filepath.Glob(filepath.Join(mod, "crash/testdata/fuzz/FuzzParse/*"))
	if len(inputs) == 0 {
		t.Errorf("no failing input written to crash/testdata/fuzz/FuzzParse:\n%s", out)
	}
}

// A clean module passes, and FUZZTIME (a count) replaces every target's budget.
func TestFuzzSmokePassesAndHonoursFUZZTIME(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles and fuzzes a scratch module")
	}
	mod := writeModule(t, map[string]string{
		"go.mod":            scratchGoMod,
		"fine/fine_test.go": fineTarget,
	})
	out, code := fuzzSmoke(t, []string{"FUZZTIME=321x"}, mod)
	if code != 0 {
		t.Fatalf("exit %d on a clean module:\n%s", code, out)
	}
	if !regexp.MustCompile(`execs: 321 \(`).MatchString(out) {
		t.Errorf("FUZZTIME=321x did not bound the run to 321 executions:\n%s", out)
	}
	if !strings.Contains(out, "fuzz-smoke: 1 targets passed") {
		t.Errorf("no summary line:\n%s", out)
	}
}

// Durations are refused before anything runs: they are what made the smoke flaky
// (golang/go#75804).
func TestFuzzSmokeRefusesADurationFUZZTIME(t *testing.T) {
	for _, v := range []string{"5s", "1m", "0x", "x", "10"} {
		out, code := fuzzSmoke(t, []string{"FUZZTIME=" + v}, "--list")
		if code != 2 || !strings.Contains(out, "FUZZTIME must be an execution count") {
			t.Errorf("FUZZTIME=%s: exit %d, output:\n%s", v, code, out)
		}
	}
}

// Every fuzz target of this repository has a count budget, and the budget table names no
// target that is gone.
func TestFuzzSmokeBudgetTableMatchesTheTargets(t *testing.T) {
	out, code := fuzzSmoke(t, nil, "--list")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 10 {
		t.Fatalf("only %d targets listed:\n%s", len(lines), out)
	}
	line := regexp.MustCompile(`^internal/[a-z0-9/]+ Fuzz[A-Za-z0-9_]+ [1-9][0-9]*x$`)
	for _, l := range lines {
		if !line.MatchString(l) {
			t.Errorf("unexpected line %q", l)
		}
	}
	if !strings.Contains(out, "internal/tftp FuzzRequestName 25000x") {
		t.Errorf("FuzzRequestName does not have its table budget:\n%s", out)
	}
}

// A budget entry whose target is gone fails the smoke (after listing or running the rest), so
// the table cannot silently drift from the code.
func TestFuzzSmokeFailsOnAStaleBudgetEntry(t *testing.T) {
	script, err := os.ReadFile("fuzz-smoke.sh")
	if err != nil {
		t.Fatal(err)
	}
	// The script's own table names internal/tftp:FuzzRequestName; this copy of the layout
	// has only FuzzRequest.
	mod := writeModule(t, map[string]string{
		"go.mod":                scratchGoMod,
		"scripts/fuzz-smoke.sh": string(script),
		"internal/tftp/x_test.go": `	package tftp

	import "testing"

	func FuzzRequest(f *testing.F) { f.Fuzz(func(t *testing.T, b []byte) {}) }
`,
	})
	cmd := exec.Command("bash", filepath.Join(mod, "scripts/fuzz-smoke.sh"), "--list")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("stale budget entries accepted:\n%s", out)
	}
	if !strings.Contains(string(out), "internal/tftp:FuzzRequestName") || !strings.Contains(string(out), "do not exist") {
		t.Errorf("message does not name the stale entry:\n%s", out)
	}
	if !strings.Contains(string(out), "internal/tftp FuzzRequest 15000x") {
		t.Errorf("the existing target was not listed with its budget:\n%s", out)
	}
}
