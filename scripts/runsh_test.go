package scripts_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A plan as `fleetboot serve --dry-run` prints it (cmd/fleetboot/serve_plan_test.go holds
// the Go side of this format).
const proxyPlan = `interface: eth7 (the default route's; --interface to choose another)
address:   10.9.0.5/24 (machines reach fleetboot here; --advertise-ip to override)
lan:       10.9.0.0/24
dhcp:      proxy: answers PXE, UEFI HTTP Boot and iPXE clients on that LAN (UDP 67, 4011) with boot options; hands out no addresses
tftp:      10.9.0.5:69 (UDP; the iPXE binaries for PXE firmware)
http:      :8080 (TCP: boot scripts, files, API), boot script http://10.9.0.5:8080/boot.ipxe
data:      ./data`

// runNotice sources scripts/lib/runnotice.sh and calls runnotice PLAN ARGS… with stdin from
// /dev/null (as in CI), returning stderr+stdout, the exit code and how long it took.
func runNotice(t *testing.T, env []string, plan string, args ...string) (string, int, time.Duration) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"-c", `set -euo pipefail
. scripts/lib/runnotice.sh
runnotice "$@"`, "run.sh", plan}, args...)...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, code := combined(t, cmd)
	return out, code, time.Since(start)
}

func TestRunNoticeNamesInterfaceLANAndTheWayOut(t *testing.T) {
	out, code, _ := runNotice(t, []string{"RUN_WAIT="}, proxyPlan, "--interface", "eth7", "--dhcp=proxy", "--menu-timeout", "5s")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, w := range []string{
		"interface: eth7", // the plan itself is shown
		"answer PXE clients on interface eth7, on the LAN it is on (10.9.0.0/24)",
		"Proxy mode hands out no addresses",                                 // and what proxy means
		"bash scripts/run.sh --dhcp off --interface eth7 --menu-timeout 5s", // the way out, with the other arguments kept
	} {
		if !strings.Contains(out, w) {
			t.Errorf("notice lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "starting in") {
		t.Errorf("waited without a terminal:\n%s", out)
	}
}

func TestRunNoticeForFullAndOffModes(t *testing.T) {
	full := strings.Replace(proxyPlan, "dhcp:      proxy:", "dhcp:      full:", 1)
	out, _, _ := runNotice(t, nil, full, "--dhcp", "full", "--pool", "10.9.0.100-10.9.0.199")
	for _, w := range []string{"DHCP server on interface eth7", "Never run it next to another DHCP server",
		"bash scripts/run.sh --dhcp off --pool 10.9.0.100-10.9.0.199"} {
		if !strings.Contains(out, w) {
			t.Errorf("full-mode notice lacks %q:\n%s", w, out)
		}
	}
	off := strings.Replace(proxyPlan, "dhcp:      proxy:", "dhcp:      off:", 1)
	out, _, _ = runNotice(t, []string{"RUN_WAIT=5"}, off, "--dhcp", "off")
	if strings.Contains(out, "answer PXE") || strings.Contains(out, "run instead") || strings.Contains(out, "starting in") {
		t.Errorf("--dhcp off answers nothing on its own, yet got a warning or a wait:\n%s", out)
	}
}

// RUN_WAIT counts down (without a terminal nothing can end it early) and must be a number.
func TestRunNoticeWaitIsBoundedAndChecked(t *testing.T) {
	out, code, took := runNotice(t, []string{"RUN_WAIT=1"}, proxyPlan)
	if code != 0 || !strings.Contains(out, "starting in 1 s") {
		t.Errorf("RUN_WAIT=1: exit %d:\n%s", code, out)
	}
	if took < time.Second {
		t.Errorf("RUN_WAIT=1 returned after %v", took)
	}
	out, code, _ = runNotice(t, []string{"RUN_WAIT=soon"}, proxyPlan)
	if code != 2 || !strings.Contains(out, "RUN_WAIT must be a number of seconds") {
		t.Errorf("RUN_WAIT=soon: exit %d:\n%s", code, out)
	}
}

// run.sh end to end, on loopback with DHCP and TFTP off: it checks Go, builds, shows the plan
// (interface lo, the LAN, DHCP off), starts serving without waiting (no terminal), and stops
// cleanly on SIGTERM. The binary it built then proves the proxy-mode plan run.sh parses.
func TestRunShShowsThePlanThenServes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fleetboot")
	}
	if _, err := os.Stat("../embed/ipxe/VERSION"); err != nil {
		t.Skip("embed/ipxe not fetched (scripts/fetch-ipxe.sh); run.sh would install it")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command("bash", "scripts/run.sh", "--interface", "lo", "--dhcp", "off", "--tftp", "off",
		"--http", addr, "--data", data)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "RUN_WAIT=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan error, 1)
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var log []string
	deadline := time.After(10 * time.Minute) // building under load; normally seconds
	serving := false
	for !serving {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("run.sh ended before serving:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, l)
			serving = strings.Contains(l, "fleetboot serving")
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("run.sh not serving after 10 minutes:\n%s", strings.Join(log, "\n"))
		}
	}
	go func() { done <- cmd.Wait() }()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run.sh (exec'd fleetboot) exited with %v on SIGTERM", err)
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatal("fleetboot did not stop on SIGTERM")
	}
	all := strings.Join(log, "\n")
	plan := strings.Index(all, "fleetboot serve will run like this")
	if plan < 0 || plan > strings.Index(all, "fleetboot serving") {
		t.Errorf("the plan was not shown before serving:\n%s", all)
	}
	for _, w := range []string{"interface: lo (--interface)", "lan:       127.0.0.0/8", "dhcp:      off:", "data:      " + data} {
		if !strings.Contains(all, w) {
			t.Errorf("run.sh output lacks %q:\n%s", w, all)
		}
	}

	// The same binary's proxy plan, as run.sh would read it (a dry run sends nothing).
	b, err := exec.Command("../bin/fleetboot", "serve", "--dry-run", "--interface", "lo").Output()
	if err != nil {
		t.Fatal(err)
	}
	out, _, _ := runNotice(t, []string{"RUN_WAIT=0"}, string(b), "--interface", "lo")
	if !strings.Contains(out, "answer PXE clients on interface lo, on the LAN it is on (127.0.0.0/8)") {
		t.Errorf("run.sh's notice does not read the real plan:\n%s", out)
	}
}
