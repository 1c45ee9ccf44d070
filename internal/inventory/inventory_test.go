package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// Every test of this file runs against both backends (TestX/sqlite, TestX/postgres): the
// inventory has one implementation whose queries storetest's PostgreSQL server runs as well.
func openInv(t *testing.T, b storetest.Backend) (*Inventory, *store.Store) {
	t.Helper()
	st := b.Open(t)
	inv, err := Open(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return inv, st
}

func ptr[T any](v T) *T { return &v }

// twoInstances opens two inventories on one fresh database of b: two fleetboot processes on
// one PostgreSQL server, or on one SQLite file.
func twoInstances(t *testing.T, b storetest.Backend) [2]*Inventory {
	t.Helper()
	ctx := context.Background()
	open := b.Fresh(t)
	var invs [2]*Inventory
	for i := range invs {
		st, err := open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if invs[i], err = Open(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	return invs
}

func TestOneShotInstallStateMachine(t *testing.T) { storetest.Run(t, testOneShotInstallStateMachine) }

func testOneShotInstallStateMachine(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	if _, _, err := inv.PutProfile(ctx, &Profile{Name: "deb12", ISO: "iso1"}); err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:00:00:01"
	m, created, err := inv.See(ctx, Sighting{MAC: mac, Arch: "x86_64", Platform: "efi", IP: "10.0.0.5"})
	if err != nil || !created || m.State != Discovered {
		t.Fatalf("first sighting: %+v %v %v", m, created, err)
	}
	// Pending needs a profile.
	if _, err := inv.UpdateMachine(ctx, mac, MachineUpdate{State: ptr(InstallPending)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("pending without profile: %v", err)
	}
	m, err = inv.UpdateMachine(ctx, mac, MachineUpdate{Profile: ptr("deb12"), State: ptr(InstallPending)})
	if err != nil || m.State != InstallPending || m.Profile != "deb12" {
		t.Fatalf("assign: %+v %v", m, err)
	}
	// The boot path takes pending → installing exactly once.
	if _, err := inv.Transition(ctx, mac, []State{InstallPending}, Installing, "script served"); err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Transition(ctx, mac, []State{InstallPending}, Installing, "again"); !errors.Is(err, ErrConflict) {
		t.Fatalf("second pending→installing: %v", err)
	}
	// Done callback.
	m, err = inv.Transition(ctx, mac, []State{Installing}, Installed, "installer done")
	if err != nil || m.State != Installed {
		t.Fatalf("done: %+v %v", m, err)
	}
	// A second done is a conflict, not a silent success.
	if _, err := inv.Transition(ctx, mac, []State{Installing}, Installed, "dup"); !errors.Is(err, ErrConflict) {
		t.Fatalf("dup done: %v", err)
	}
	// Re-install = pending again.
	if m, err = inv.UpdateMachine(ctx, mac, MachineUpdate{State: ptr(InstallPending)}); err != nil || m.State != InstallPending {
		t.Fatalf("reinstall: %+v %v", m, err)
	}
	ev, err := inv.Events(ctx, mac, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind+":"+e.Detail)
	}
	want := []string{
		"discovered:arch=x86_64 platform=efi ip=10.0.0.5",
		"profile:assigned deb12",
		"state:discovered → install-pending: set by operator",
		"state:install-pending → installing: script served",
		"state:installing → installed: installer done",
		"state:installed → install-pending: set by operator",
	}
	if len(kinds) != len(want) {
		t.Fatalf("events %q", kinds)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Errorf("event %d = %q, want %q", i, kinds[i], want[i])
		}
	}
}

func TestSightingKeepsKnownFieldsAndRefreshesLastSeen(t *testing.T) {
	storetest.Run(t, testSightingKeepsKnownFieldsAndRefreshesLastSeen)
}

func testSightingKeepsKnownFieldsAndRefreshesLastSeen(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	const mac = "52:54:00:00:00:02"
	inv.See(ctx, Sighting{MAC: mac, UUID: "u-1", Arch: "x86_64"})
	m, created, err := inv.See(ctx, Sighting{MAC: mac, IP: "10.0.0.9"})
	if err != nil || created || m.UUID != "u-1" || m.Arch != "x86_64" || m.IP != "10.0.0.9" {
		t.Fatalf("%+v %v %v", m, created, err)
	}
}

func TestRulesAssignByMACPrefixAndLabels(t *testing.T) {
	storetest.Run(t, testRulesAssignByMACPrefixAndLabels)
}

func testRulesAssignByMACPrefixAndLabels(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	inv.PutProfile(ctx, &Profile{Name: "rack1", ISO: "a"})
	inv.PutProfile(ctx, &Profile{Name: "gpu", ISO: "b"})
	if _, _, err := inv.AddRule(ctx, Rule{Profile: "rack1"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("match-all rule accepted: %v", err)
	}
	if _, _, err := inv.AddRule(ctx, Rule{Profile: "nope", MACPrefix: "52:54"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("rule with unknown profile: %v", err)
	}
	// An existing unassigned machine is picked up when the rule is added.
	inv.See(ctx, Sighting{MAC: "52:54:00:aa:00:01"})
	r, applied, err := inv.AddRule(ctx, Rule{Priority: 10, MACPrefix: "52-54-00-AA", Profile: "rack1", Install: true})
	if err != nil || applied != 1 || r.MACPrefix != "52:54:00:aa" {
		t.Fatalf("add rule: %+v applied=%d %v", r, applied, err)
	}
	if _, _, err := inv.AddRule(ctx, Rule{Priority: 5, Labels: map[string]string{"role": "gpu"}, Profile: "gpu"}); err != nil {
		t.Fatal(err)
	}
	m, _ := inv.Machine(ctx, "52:54:00:aa:00:01")
	if m.Profile != "rack1" || m.State != InstallPending {
		t.Fatalf("existing machine: %+v", m)
	}
	// A new machine matching the prefix is assigned at discovery.
	m, _, _ = inv.See(ctx, Sighting{MAC: "52:54:00:aa:00:02"})
	if m.Profile != "rack1" || m.State != InstallPending {
		t.Fatalf("new machine: %+v", m)
	}
	// Another prefix: nothing; labelled later: the label rule applies (but does not install).
	m, _, _ = inv.See(ctx, Sighting{MAC: "52:54:00:bb:00:01"})
	if m.Profile != "" {
		t.Fatalf("unmatched machine got %q", m.Profile)
	}
	m, err = inv.UpdateMachine(ctx, m.MAC, MachineUpdate{Labels: map[string]string{"role": "gpu"}})
	if err != nil || m.Profile != "gpu" || m.State != Discovered {
		t.Fatalf("labelled machine: %+v %v", m, err)
	}
	// Profiles in use cannot be deleted.
	if err := inv.DeleteProfile(ctx, "gpu"); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete used profile: %v", err)
	}
	if users, _ := inv.ISOUsers(ctx, "a"); strings.Join(users, ",") != "rack1" {
		t.Fatalf("users of ISO a: %v", users)
	}
	if users, _ := inv.ISOUsers(ctx, "zzz"); len(users) != 0 {
		t.Fatalf("ISO zzz should not be in use: %v", users)
	}
}

func TestConcurrentSightingsOfOneMachineCreateItOnce(t *testing.T) {
	storetest.Run(t, testConcurrentSightingsOfOneMachineCreateItOnce)
}

func testConcurrentSightingsOfOneMachineCreateItOnce(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	var wg sync.WaitGroup
	var mu sync.Mutex
	creations := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created, err := inv.See(ctx, Sighting{MAC: "52:54:00:00:00:99"})
			if err != nil {
				t.Error(err)
			}
			if created {
				mu.Lock()
				creations++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if creations != 1 {
		t.Fatalf("created %d times", creations)
	}
}

func TestEventsAreBoundedPerMachine(t *testing.T) { storetest.Run(t, testEventsAreBoundedPerMachine) }

func testEventsAreBoundedPerMachine(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	inv.See(ctx, Sighting{MAC: "52:54:00:00:00:03"})
	for i := 0; i < maxEventsPerMachine+50; i++ {
		if err := inv.AddEvent(ctx, "52:54:00:00:00:03", "boot", "x"); err != nil {
			t.Fatal(err)
		}
	}
	ev, _ := inv.Events(ctx, "52:54:00:00:00:03", 0)
	if len(ev) != maxEventsPerMachine || ev[0].Kind != "boot" {
		t.Fatalf("%d events, first %+v", len(ev), ev[0])
	}
}

func TestCreateMachineIsAtomic(t *testing.T) { storetest.Run(t, testCreateMachineIsAtomic) }

func testCreateMachineIsAtomic(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	if _, err := inv.CreateMachine(ctx, "52:54:00:00:00:10", MachineUpdate{Profile: ptr("missing")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("create with unknown profile: %v", err)
	}
	if _, err := inv.Machine(ctx, "52:54:00:00:00:10"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused create left a machine behind: %v", err)
	}
	inv.PutProfile(ctx, &Profile{Name: "p", ISO: "i"})
	m, err := inv.CreateMachine(ctx, "52:54:00:00:00:10", MachineUpdate{Profile: ptr("p"), State: ptr(InstallPending), Hostname: ptr("n1")})
	if err != nil || m.State != InstallPending || m.Hostname != "n1" {
		t.Fatalf("create: %+v %v", m, err)
	}
	if _, err := inv.CreateMachine(ctx, "52:54:00:00:00:10", MachineUpdate{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
}

func TestProfileModeIsStoredAndValidated(t *testing.T) {
	storetest.Run(t, testProfileModeIsStoredAndValidated)
}

func testProfileModeIsStoredAndValidated(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	p, _, err := inv.PutProfile(ctx, &Profile{Name: "deb", ISO: "a"})
	if err != nil || p.Mode != ModeInstallOnce {
		t.Fatalf("default mode: %+v %v", p, err)
	}
	p, _, err = inv.PutProfile(ctx, &Profile{Name: "memtest", ISO: "a", Mode: ModeAlways})
	if err != nil || p.Mode != ModeAlways {
		t.Fatalf("always: %+v %v", p, err)
	}
	if _, _, err := inv.PutProfile(ctx, &Profile{Name: "x", ISO: "a", Mode: "sometimes"}); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "install-once, boot-once or always") {
		t.Fatalf("bad mode: %v", err)
	}
}

// TestRulesMatchHardwareFacts: a rule on hardware facts (exact, glob, case-insensitive)
// assigns machines by what iPXE reported at boot; a machine that did not report the fact does
// not match; facts arriving later (a machine added by hand before its first boot) apply rules
// then; facts are recorded on the machine and in its timeline.
func TestRulesMatchHardwareFacts(t *testing.T) { storetest.Run(t, testRulesMatchHardwareFacts) }

func testRulesMatchHardwareFacts(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	inv.PutProfile(ctx, &Profile{Name: "r650", ISO: "a"})
	inv.PutProfile(ctx, &Profile{Name: "dell", ISO: "b"})
	for _, bad := range []map[string]string{{"colour": "red"}, {"product": ""}, {"product": "a\nb"}} {
		if _, _, err := inv.AddRule(ctx, Rule{Profile: "r650", Hardware: bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("rule with hardware %q accepted: %v", bad, err)
		}
	}
	if _, _, err := inv.AddRule(ctx, Rule{Priority: 1, Profile: "r650", Install: true,
		Hardware: map[string]string{"product": "PowerEdge R650", "manufacturer": "dell*"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inv.AddRule(ctx, Rule{Priority: 2, Profile: "dell", Hardware: map[string]string{"manufacturer": "Dell ?nc."}}); err != nil {
		t.Fatal(err)
	}
	rules, _ := inv.Rules(ctx)
	if len(rules) != 2 || rules[0].Hardware["product"] != "PowerEdge R650" {
		t.Fatalf("rules as stored: %+v", rules)
	}
	cases := []struct {
		mac     string
		hw      map[string]string
		profile string
	}{
		{"52:54:00:00:01:01", map[string]string{"manufacturer": "Dell Inc.", "product": "PowerEdge R650", "serial": "7XK2LM3"}, "r650"},
		{"52:54:00:00:01:02", map[string]string{"manufacturer": "DELL INC.", "product": "PowerEdge R650xs"}, "dell"},
		{"52:54:00:00:01:03", map[string]string{"manufacturer": "Supermicro", "product": "PowerEdge R650"}, ""},
		{"52:54:00:00:01:04", map[string]string{"product": "PowerEdge R650"}, ""}, // no manufacturer reported
		{"52:54:00:00:01:05", nil, ""},
	}
	for _, c := range cases {
		m, _, err := inv.See(ctx, Sighting{MAC: c.mac, Hardware: c.hw})
		if err != nil {
			t.Fatal(err)
		}
		if m.Profile != c.profile {
			t.Errorf("%s with %v got profile %q, want %q", c.mac, c.hw, m.Profile, c.profile)
		}
		for k, v := range c.hw {
			if m.Hardware[k] != v {
				t.Errorf("%s: hardware %s = %q, want %q", c.mac, k, m.Hardware[k], v)
			}
		}
	}
	m, _ := inv.Machine(ctx, "52:54:00:00:01:01")
	if m.State != InstallPending {
		t.Errorf("install rule did not set install-pending: %s", m.State)
	}
	ev, _ := inv.Events(ctx, m.MAC, 0)
	if len(ev) == 0 || ev[0].Kind != "discovered" || ev[0].Detail != `manufacturer="Dell Inc." product="PowerEdge R650" serial=7XK2LM3` {
		t.Errorf("discovery event: %+v", ev)
	}
	// Added by hand before it ever booted: the first boot's facts apply the rules, and a
	// later boot that does not report a fact keeps what was known.
	if _, err := inv.CreateMachine(ctx, "52:54:00:00:01:06", MachineUpdate{}); err != nil {
		t.Fatal(err)
	}
	m, _, _ = inv.See(ctx, Sighting{MAC: "52:54:00:00:01:06", Hardware: map[string]string{"manufacturer": "Dell Inc.", "product": "PowerEdge R650"}})
	if m.Profile != "r650" || m.State != InstallPending {
		t.Errorf("machine added by hand, then booted: %+v", m)
	}
	m, _, _ = inv.See(ctx, Sighting{MAC: "52:54:00:00:01:06", Hardware: map[string]string{"nic_chip": "i350"}})
	if m.Hardware["product"] != "PowerEdge R650" || m.Hardware["nic_chip"] != "i350" {
		t.Errorf("facts after a second boot: %v", m.Hardware)
	}
}

// Two instances sharing one database (two fleetboot processes on one PostgreSQL server, or on
// one SQLite file): concurrent first sightings of one machine create it once, and of
// concurrent compare-and-set transitions exactly one wins; each sees the other's events.
func TestTwoInstancesShareOneInventory(t *testing.T) {
	storetest.Run(t, testTwoInstancesShareOneInventory)
}

func testTwoInstancesShareOneInventory(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	invs := twoInstances(t, b)
	if _, _, err := invs[0].PutProfile(ctx, &Profile{Name: "p", ISO: "i"}); err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:00:07:01"
	var wg sync.WaitGroup
	var mu sync.Mutex
	creations, wins := 0, 0
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created, err := invs[i%2].See(ctx, Sighting{MAC: mac})
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			if created {
				creations++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if creations != 1 {
		t.Fatalf("two instances created machine %d times", creations)
	}
	if _, err := invs[1].UpdateMachine(ctx, mac, MachineUpdate{Profile: ptr("p"), State: ptr(InstallPending)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := invs[i%2].Transition(ctx, mac, []State{InstallPending}, Installing, "handed out")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, ErrConflict):
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent transitions install-pending → installing succeeded, want 1", wins)
	}
	ev, err := invs[0].Events(ctx, mac, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind)
	}
	if got := strings.Join(kinds, ","); got != "discovered,profile,state,state" {
		t.Fatalf("events seen by instance 0: %s", got)
	}
}

// With PostgreSQL, events committed by one instance wake the live streams of another (a
// notification), and a reader following "id > last seen" while two instances write
// concurrently sees every event: ids become visible in increasing order.
func TestEventsOfOneInstanceReachAnother(t *testing.T) {
	ctx := context.Background()
	invs := twoInstances(t, storetest.Backends[1])
	reader, writer := invs[1], invs[0]
	// One wake-up from another instance's commit (bounded wait: the notification arrives in
	// milliseconds; a minute is for a loaded machine).
	woken := reader.EventsWritten()
	if err := writer.AddEvent(ctx, "52:54:00:00:08:01", "boot", "first"); err != nil {
		t.Fatal(err)
	}
	// The listener's first call after connecting may be what closes woken; look until the
	// event is there.
	deadline := time.After(time.Minute)
	for {
		ev, err := reader.EventsAfter(ctx, 0, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev) == 1 && ev[0].Detail == "first" {
			break
		}
		select {
		case <-woken:
			woken = reader.EventsWritten()
		case <-deadline:
			t.Fatal("instance 1 was not woken by instance 0's event within a minute")
		}
	}

	// Concurrent writers on both instances; a follower on instance 1 misses nothing.
	const writers, each = 6, 30
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := invs[w%2].AddEvent(ctx, fmt.Sprintf("52:54:00:00:09:%02x", w), "boot", fmt.Sprint(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if stored, missed := followAll(t, reader, done); stored != 1+writers*each || missed != 0 {
		t.Fatalf("%d events stored (want %d); the follower missed %d", stored, 1+writers*each, missed)
	}
}

// RecordDHCP (the DHCP server's batched timeline writer) on both backends: events for known
// and unknown machines, facts of unknown machines kept until See records them.
func TestRecordDHCPBatches(t *testing.T) { storetest.Run(t, testRecordDHCPBatches) }

func testRecordDHCPBatches(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	const known, unknown = "52:54:00:00:0a:01", "52:54:00:00:0a:02"
	if _, _, err := inv.See(ctx, Sighting{MAC: known}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // twice: the second batch updates the kept facts (upsert)
		if err := inv.RecordDHCP(ctx, []DHCPSighting{
			{MAC: known, Firmware: "uefi-http", Detail: "offer 10.0.0.5"},
			{MAC: unknown, Firmware: "bios-pxe", UUID: fmt.Sprintf("uuid-%d", i), Detail: "discover"},
		}); err != nil {
			t.Fatal(err)
		}
	}
	m, err := inv.Machine(ctx, known)
	if err != nil || m.Firmware != "uefi-http" {
		t.Fatalf("known machine after DHCP: %+v %v", m, err)
	}
	m, _, err = inv.See(ctx, Sighting{MAC: unknown})
	if err != nil || m.Firmware != "bios-pxe" || m.UUID != "uuid-1" {
		t.Fatalf("machine first seen after DHCP: %+v %v", m, err)
	}
	ev, _ := inv.Events(ctx, unknown, 0)
	if len(ev) != 3 || ev[0].Kind != "dhcp" || ev[2].Kind != "discovered" {
		t.Fatalf("timeline of the machine DHCP saw first: %+v", ev)
	}

	// A line carries the time its packet was handled, not the time its batch was written.
	at := time.Now().Add(-90 * time.Second).Truncate(time.Millisecond)
	if err := inv.RecordDHCP(ctx, []DHCPSighting{{MAC: known, Detail: "ack 10.0.0.5", Time: at}}); err != nil {
		t.Fatal(err)
	}
	ev, _ = inv.Events(ctx, known, 0)
	if last := ev[len(ev)-1]; last.Detail != "ack 10.0.0.5" || !last.Time.Equal(at) {
		t.Errorf("line written with the packet's time %s: %+v", at, last)
	}
}

// Event text that is not UTF-8 or holds NUL (bytes another host sent: a foreign DHCP reply's
// boot file name) is stored as valid text, alike on both
// backends, whichever writer wrote it; and the other lines of its batch with it. PostgreSQL
// refuses such text, and writes a batch of events in one statement: every line of the batch
// was lost, while SQLite stored the raw bytes.
func TestEventsWithBytesFromTheWireAreStoredAsText(t *testing.T) {
	storetest.Run(t, testEventsWithBytesFromTheWireAreStoredAsText)
}

func testEventsWithBytesFromTheWireAreStoredAsText(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	const raw, want = "file caf\xe9 \x00end", "file caf\uFFFD \uFFFDend" // Latin-1 é, NUL
	macs := []string{"52:54:00:00:0b:01", "52:54:00:00:0b:02", "52:54:00:00:0b:03"}
	// The DHCP server's batch (one statement on PostgreSQL): the bad line between good ones.
	if err := inv.RecordDHCP(ctx, []DHCPSighting{
		{MAC: macs[0], Detail: "offer 10.0.0.5"},
		{MAC: macs[1], Firmware: "uefi-pxe", Detail: raw},
		{MAC: macs[2], Detail: "ack 10.0.0.7"},
	}); err != nil {
		t.Fatalf("RecordDHCP: %v", err)
	}
	// Any other writer (on SQLite through a transaction's commit).
	if err := inv.AddEvent(ctx, macs[0], "download", raw); err != nil {
		t.Fatalf("AddEvent: %v", err)
	}
	wantLines := map[string][]string{
		macs[0]: {"offer 10.0.0.5", want},
		macs[1]: {want},
		macs[2]: {"ack 10.0.0.7"},
	}
	for _, mac := range macs {
		evs, err := inv.Events(ctx, mac, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.Detail)
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", wantLines[mac]) {
			t.Errorf("%s: timeline %q, want %q", mac, got, wantLines[mac])
		}
	}
}
