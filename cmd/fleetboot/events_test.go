package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/client"
	"github.com/fleetboot/fleetboot/internal/client/clienttest"
	"github.com/fleetboot/fleetboot/internal/inventory"
)

// followCLI runs `fleetboot args…` until the test ends, its stdout as a channel of lines.
func followCLI(t *testing.T, args ...string) <-chan string {
	t.Helper()
	return followCLIWithStderr(t, io.Discard, args...)
}

// followCLIWithStderr is followCLI with the command's stderr going to stderr.
func followCLIWithStderr(t *testing.T, stderr io.Writer, args ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	root := newRootCmd()
	root.SetOut(pw)
	root.SetErr(stderr)
	root.SetArgs(args)
	done := make(chan error, 1)
	go func() { err := root.ExecuteContext(ctx); pw.Close(); done <- err }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		cancel()
		go io.Copy(io.Discard, pr)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("fleetboot %s ended with %v after Ctrl-C", strings.Join(args, " "), err)
			}
		case <-time.After(time.Minute):
			t.Errorf("fleetboot %s still running a minute after Ctrl-C", strings.Join(args, " "))
		}
	})
	return lines
}

// nextLine waits (boundedly) for the next line that contains want.
func nextLine(t *testing.T, lines <-chan string, want string) string {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before a line with %q", want)
			}
			if strings.Contains(l, want) {
				return l
			}
		case <-timeout:
			t.Fatalf("no line with %q within a minute", want)
		}
	}
}

func TestEventsFollowStreamsNewEventsAsLinesAndJSONLines(t *testing.T) {
	srv := cliServer(t)
	ctx := context.Background()
	const a, b = "52:54:00:12:34:01", "52:54:00:12:34:02"
	for _, mac := range []string{a, b} {
		if _, err := srv.Inv.CreateMachine(ctx, mac, inventory.MachineUpdate{}); err != nil {
			t.Fatal(err)
		}
	}
	srv.Inv.AddEvent(ctx, a, "boot", "before following")

	people := followCLI(t, "events", "--follow", "--machine", a)
	scripts := followCLI(t, "events", "-f", "-o", "json", "--limit", "1")
	// The recent events come first (the other machine's are filtered out) …
	nextLine(t, people, "before following")
	nextLine(t, scripts, "before following")
	// … then what happens from now on, live.
	srv.Inv.AddEvent(ctx, b, "boot", "other machine")
	srv.Inv.AddEvent(ctx, a, "dhcp", "ack 10.0.0.9 firmware=efi-x64")
	l := nextLine(t, people, "ack 10.0.0.9")
	if !strings.Contains(l, a) || !strings.Contains(l, "dhcp") || strings.Contains(l, "{") {
		t.Errorf("line for people: %q", l)
	}
	for _, want := range []string{"other machine", "ack 10.0.0.9"} {
		var e client.Event
		if err := json.Unmarshal([]byte(nextLine(t, scripts, want)), &e); err != nil || e.ID == 0 || e.Time.IsZero() {
			t.Errorf("JSON line for %q: %+v %v", want, e, err)
		}
	}
}

func TestEventsWithoutFollowListsRecentEventsOfAllMachines(t *testing.T) {
	srv := cliServer(t)
	ctx := context.Background()
	for _, mac := range []string{"52:54:00:12:34:01", "52:54:00:12:34:02"} {
		srv.Inv.CreateMachine(ctx, mac, inventory.MachineUpdate{})
	}
	var ev []client.Event
	decode(t, mustCLI(t, "events", "-o", "json"), &ev)
	if len(ev) != 2 || ev[0].MAC != "52:54:00:12:34:01" || ev[1].MAC != "52:54:00:12:34:02" {
		t.Fatalf("events -o json: %+v", ev)
	}
	out := mustCLI(t, "events", "--limit", "1")
	if !strings.Contains(out, "TIME") || strings.Contains(out, "34:01") || !strings.Contains(out, "52:54:00:12:34:02") {
		t.Fatalf("events --limit 1:\n%s", out)
	}
	// Listing an unknown machine's events is an error (following one waits for it).
	if _, _, err := runCLI(t, "events", "--machine", "52:54:00:99:99:99"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("unknown machine: %v", err)
	}
}

// An operator starts following a machine before powering it on for the first time: the
// command waits, and prints the machine's events once it appears.
func TestEventsFollowWaitsForAMachineNotSeenYet(t *testing.T) {
	srv := cliServer(t)
	const mac = "52:54:00:12:34:77"
	notes := make(chan string, 10)
	lines := followCLIWithStderr(t, lineWriter(notes), "events", "--follow", "--machine", mac)
	// The machine appears only once the command has found it unknown (which used to end it).
	select {
	case n := <-notes:
		if !strings.Contains(n, "has not been seen yet") {
			t.Fatalf("stderr: %q", n)
		}
	case <-time.After(time.Minute):
		t.Fatal("no note about the unknown machine within a minute")
	}
	if _, err := srv.Inv.CreateMachine(context.Background(), mac, inventory.MachineUpdate{}); err != nil {
		t.Fatal(err)
	}
	srv.Inv.AddEvent(context.Background(), mac, "dhcp", "ack 10.0.0.77 firmware=bios")
	nextLine(t, lines, "created")
	nextLine(t, lines, "ack 10.0.0.77")
}

// lineWriter sends each Write (the CLI writes whole lines) to ch, dropping it when ch is full.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	select {
	case w <- string(p):
	default:
	}
	return len(p), nil
}

// TestEventsFollowShowsInstallerPhasesReportedByTemplateHooks is the chain an operator
// watches: a kickstart profile with {{.ProgressHooks}}, the machine boots the installer, the
// installer runs the rendered %pre and %onerror hooks (here: the shell, as anaconda runs them),
// and `fleetboot events --follow` prints "installer started" and the failure as they arrive.
func TestEventsFollowShowsInstallerPhasesReportedByTemplateHooks(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	srv := cliServer(t)
	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	tmpl := filepath.Join(t.TempDir(), "ks.cfg")
	os.WriteFile(tmpl, []byte("text\n{{.ProgressHooks}}\n"), 0o644)
	const mac = "52:54:00:12:34:56"
	for _, args := range [][]string{
		{"iso", "upload", p, "--name", "fedora", "-q"},
		{"profile", "put", "fed", "--iso", "fedora", "--template-kind", "kickstart", "--template-file", tmpl},
		{"machine", "add", mac, "--profile", "fed"},
		{"machine", "reinstall", mac},
	} {
		mustCLI(t, args...)
	}
	follow := followCLI(t, "events", "--follow", "--machine", mac, "--limit", "1")
	// The machine network-boots (from 127.0.0.1, its address from now on) and is handed the installer.
	get := func(path string) string {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
		}
		return string(b)
	}
	if s := get("/boot.ipxe?mac=" + mac + "&arch=x86_64&platform=efi"); !strings.Contains(s, "inst.ks=") {
		t.Fatalf("installer script:\n%s", s)
	}
	nextLine(t, follow, "installing")
	ks := get("/unattended/52-54-00-12-34-56/ks.cfg")
	hook := func(section string) string {
		m := regexp.MustCompile(`(?m)^` + section + `\n(.*)\n%end$`).FindStringSubmatch(ks)
		if m == nil {
			t.Fatalf("ks.cfg has no %s hook:\n%s", section, ks)
		}
		return m[1]
	}
	for _, c := range []struct{ section, want string }{
		{"%pre", "installer started"},
		{"%onerror", "failed: anaconda"},
	} {
		if out, err := exec.Command("sh", "-c", hook(c.section)).CombinedOutput(); err != nil {
			t.Fatalf("%s hook: %v\n%s", c.section, err, out)
		}
		if l := nextLine(t, follow, c.want); !strings.Contains(l, "installer") || !strings.Contains(l, mac) {
			t.Errorf("events --follow line: %q", l)
		}
	}
	if l := nextLine(t, follow, "installing → failed"); !strings.Contains(l, "state") {
		t.Errorf("state line: %q", l)
	}
}
