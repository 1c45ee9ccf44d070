package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a process the suite started (fleetboot, a site DHCP server, QEMU), with its output in
// a log file. It is stopped by its own PID in t.Cleanup, never by name.
type proc struct {
	name string
	log  string // stdout+stderr
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done
}

// startProc starts argv with output to logPath. Pdeathsig takes the process down with the test
// binary should the binary die without running cleanups (go test's timeout panic).
func startProc(t *testing.T, name, logPath string, argv ...string) *proc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s (%s): %v", name, strings.Join(argv, " "), err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(5 * time.Second) })
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the process to exit by itself.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// stop sends SIGTERM, then SIGKILL after grace; it returns once the process is gone.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if p.wait(grace) {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// ansiEscape matches the terminal control sequences firmware paints its screens with (OVMF's
// setup browser, iPXE's cursor moves): noise in a failure message.
var ansiEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>c])`)

// readableTail returns the last n lines of a log file, with escape sequences and other control
// characters removed and carriage returns turned into line breaks (firmware redraws lines with
// a bare CR).
func readableTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return tailLines(data, n)
}

func tailLines(data []byte, n int) string {
	data = ansiEscape.ReplaceAll(data, nil)
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	clean := bytes.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= ' ' && r != 0x7f {
			return r
		}
		return -1
	}, data)
	var lines []string
	for _, l := range strings.Split(string(clean), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestTailLinesDropsTerminalNoiseAndKeepsTheEnd(t *testing.T) {
	in := []byte("first\r\n\x1b[1;1H\x1b[0mBdsDxe: loading\r\x1b[2Jsecond\x00\n\n\nthird\r\nfourth")
	if got, want := tailLines(in, 3), "second\nthird\nfourth"; got != want {
		t.Errorf("tailLines = %q, want %q", got, want)
	}
	if got := tailLines(in, 100); !strings.HasPrefix(got, "first\nBdsDxe: loading\n") {
		t.Errorf("tailLines(all) = %q", got)
	}
}
