package quirk

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func kinds(rs []Report) string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Kind)+": "+r.Detail)
	}
	return strings.Join(out, "\n")
}

// A machine that fetches its kernel and starts over without the initrd, three times: the
// first restart names the missing initrd, the third also the loop and the step.
func TestTrackerSeesKernelWithoutInitrdAndTheLoop(t *testing.T) {
	var tr Tracker
	const mac, ip = "52:54:00:00:00:01", "10.0.0.5"
	if rs := tr.Script(mac, ip, "target", t0); len(rs) != 0 {
		t.Fatalf("first script: %s", kinds(rs))
	}
	var all []Report
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		if rs := tr.Fetched(ip, "/isos/x/files/linux", 8000, 8000, now); len(rs) != 0 {
			t.Fatalf("complete kernel reported: %s", kinds(rs))
		}
		all = append(all, tr.Script(mac, ip, "target", now.Add(30*time.Second))...)
	}
	got := kinds(all)
	if strings.Count(got, "incomplete-fetch: fetched the kernel /isos/x/files/linux but never its initrd") != 3 {
		t.Errorf("kernel without initrd not reported per cycle:\n%s", got)
	}
	if !strings.Contains(got, "boot-loop: started the boot chain over 3 times") || !strings.Contains(got, "after fetching the kernel /isos/x/files/linux (no initrd)") {
		t.Errorf("loop not reported with its step:\n%s", got)
	}
}

// A machine that boots its installer (kernel, initrd, more) and comes back twice is not a loop;
// three cycles spread over more than the window are not either.
func TestTrackerDoesNotCallNormalRebootsALoop(t *testing.T) {
	var tr Tracker
	const mac, ip = "52:54:00:00:00:02", "10.0.0.6"
	cycle := func(at time.Time, kind string, files int) []Report {
		rs := tr.Script(mac, ip, kind, at)
		for i := 0; i < files; i++ {
			rs = append(rs, tr.Fetched(ip, "/f", 10, 10, at.Add(time.Second))...)
		}
		return rs
	}
	var all []Report
	all = append(all, cycle(t0, "target", 3)...)
	all = append(all, cycle(t0.Add(5*time.Minute), "target", 3)...) // rebooted mid-install, installer again
	all = append(all, cycle(t0.Add(30*time.Minute), "local", 0)...)
	all = append(all, cycle(t0.Add(90*time.Minute), "local", 0)...)
	all = append(all, cycle(t0.Add(200*time.Minute), "local", 0)...)
	if len(all) != 0 {
		t.Fatalf("normal boots reported:\n%s", kinds(all))
	}
	// A UEFI machine whose disk does not boot: exit, PXE again, local script again.
	for i := 1; i <= 3; i++ {
		all = append(all, cycle(t0.Add(200*time.Minute+time.Duration(i)*time.Minute), "local", 0)...)
	}
	if got := kinds(all); !strings.Contains(got, "boot-loop: started the boot chain over 3 times") || !strings.Contains(got, "after the local boot script") {
		t.Fatalf("local-boot loop:\n%s", got)
	}
}

func TestTrackerSeesADownloadStoppedMidTransfer(t *testing.T) {
	var tr Tracker
	tr.Script("52:54:00:00:00:03", "10.0.0.7", "target", t0)
	rs := tr.Fetched("10.0.0.7", "/isos/x/files/initrd.gz", 4096, 40<<20, t0)
	if len(rs) != 1 || rs[0].Kind != IncompleteFetch || rs[0].MAC != "52:54:00:00:00:03" ||
		!strings.Contains(rs[0].Detail, "stopped mid-transfer: /isos/x/files/initrd.gz, 4096 of 41943040 bytes") {
		t.Fatalf("got %+v", rs)
	}
	// An address fleetboot never gave a script to: reported without a machine.
	if rs := tr.Fetched("10.0.0.99", "/assets/k", 1, 2, t0); len(rs) != 1 || rs[0].MAC != "" {
		t.Fatalf("unknown client: %+v", rs)
	}
}

// The reporter logs with the advice, counts every report, records an event, and does not
// repeat the line or event within the quiet window.
func TestReporterLogsCountsRecordsOnce(t *testing.T) {
	var logs bytes.Buffer
	counted := 0
	var events []string
	now := t0
	r := &Reporter{Log: slog.New(slog.NewTextHandler(&logs, nil)), Count: func(Kind) { counted++ },
		Event: func(_ context.Context, mac, kind, detail string) error {
			events = append(events, mac+" "+kind+" "+detail)
			return nil
		}, Now: func() time.Time { return now }}
	q := Report{Kind: SharedServerID, MAC: "52:54:00:00:00:04", Detail: "REQUEST names fleetboot's address"}
	r.Report(context.Background(), q)
	now = now.Add(10 * time.Second)
	r.Report(context.Background(), q)
	if counted != 2 || len(events) != 1 || strings.Count(logs.String(), "network quirk") != 1 {
		t.Fatalf("counted %d, events %v, log:\n%s", counted, events, logs.String())
	}
	if !strings.Contains(logs.String(), "--dhcp off") || events[0] != "52:54:00:00:00:04 quirk shared-server-id: REQUEST names fleetboot's address" {
		t.Fatalf("log or event lacks the advice/detail:\n%s\n%v", logs.String(), events)
	}
	now = now.Add(2 * time.Minute)
	r.Report(context.Background(), q)
	if len(events) != 2 {
		t.Fatalf("after the quiet window: %v", events)
	}
	for _, k := range Kinds {
		if k.Advice() == "" {
			t.Errorf("%s has no advice", k)
		}
	}
}

func TestTrackerNamesTheKernelAndInitrdsAsBootFilesOnly(t *testing.T) {
	var tr Tracker
	now := time.Now()
	const mac, ip = "52:54:00:00:00:01", "10.0.0.5"
	if _, _, ok := tr.BootFile(ip); ok {
		t.Fatal("a file from an address that fetched no script is a boot file")
	}
	tr.Script(mac, ip, "target", now)
	for i := 1; i <= BootFiles+2; i++ {
		tr.Fetched(ip, fmt.Sprintf("/isos/x/files/f%d", i), 10, 10, now)
		got, n, ok := tr.BootFile(ip)
		if want := i <= BootFiles; ok != want || (ok && (got != mac || n != i)) {
			t.Errorf("file %d: BootFile = %q %d %v, want ok=%v", i, got, n, ok, want)
		}
	}
	// After a script that boots nothing (local disk, menu), nothing is a boot file.
	tr.Script(mac, ip, "local", now)
	tr.Fetched(ip, "/assets/x", 10, 10, now)
	if _, _, ok := tr.BootFile(ip); ok {
		t.Error("a file after a local-boot script is a boot file")
	}
	if _, _, ok := tr.BootFile("10.0.0.6"); ok {
		t.Error("another address's file is a boot file")
	}
}
