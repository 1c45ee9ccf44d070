package inventory

import (
	"context"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// A row whose JSON columns do not decode is reported, not read as empty labels, facts,
// variables or SSH keys (which a later write would then store, losing the real ones).
func TestCorruptJSONColumnsAreErrors(t *testing.T) { storetest.Run(t, testCorruptJSONColumnsAreErrors) }

func testCorruptJSONColumnsAreErrors(t *testing.T, b storetest.Backend) {
	inv, _ := openInv(t, b)
	ctx := context.Background()
	mac := "52:54:00:00:00:09"
	if _, _, err := inv.See(ctx, Sighting{MAC: mac}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inv.PutProfile(ctx, &Profile{Name: "p", ISO: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inv.AddRule(ctx, Rule{Profile: "p", MACPrefix: "52:54:01"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE machines SET labels = '{"rack":'`,
		`UPDATE profiles SET ssh_keys = '["ssh-ed25519 AAAA'`,
		`UPDATE rules SET hardware = 'not json'`,
	} {
		if _, err := inv.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := inv.Machine(ctx, mac); err == nil || !strings.Contains(err.Error(), "labels") || !strings.Contains(err.Error(), mac) {
		t.Errorf("machine with corrupt labels: %v", err)
	}
	if _, err := inv.Profile(ctx, "p"); err == nil || !strings.Contains(err.Error(), "ssh_keys") {
		t.Errorf("profile with corrupt ssh_keys: %v", err)
	}
	if _, err := inv.Rules(ctx); err == nil || !strings.Contains(err.Error(), "hardware") {
		t.Errorf("rule with corrupt hardware: %v", err)
	}
}

// When the timeline cannot be written, the change it records is not made either: a machine
// is never discovered, relabelled or reassigned without its event.
// (SQLite: the failure is provoked with a SQLite trigger.)
func TestFailedEventWriteUndoesTheChange(t *testing.T) {
	inv, _ := openInv(t, storetest.Backends[0])
	ctx := context.Background()
	known := "52:54:00:00:00:01"
	if _, _, err := inv.See(ctx, Sighting{MAC: known}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inv.PutProfile(ctx, &Profile{Name: "p", ISO: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := inv.db.ExecContext(ctx, `CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'events full'); END`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inv.See(ctx, Sighting{MAC: "52:54:00:00:00:02"}); err == nil || !strings.Contains(err.Error(), "events full") {
		t.Errorf("sighting of a new machine: %v", err)
	}
	if _, err := inv.Machine(ctx, "52:54:00:00:00:02"); err == nil {
		t.Error("the new machine was recorded without its discovered event")
	}
	if _, err := inv.UpdateMachine(ctx, known, MachineUpdate{Labels: map[string]string{"rack": "r1"}}); err == nil {
		t.Error("labels changed without their event")
	}
	if _, err := inv.UpdateMachine(ctx, known, MachineUpdate{Profile: ptr("p")}); err == nil {
		t.Error("profile assigned without its event")
	}
	if _, _, err := inv.See(ctx, Sighting{MAC: known, Hardware: map[string]string{"product": "X"}}); err == nil {
		t.Error("hardware recorded without its event")
	}
	m, err := inv.Machine(ctx, known)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Labels) != 0 || m.Profile != "" || len(m.Hardware) != 0 {
		t.Errorf("machine changed anyway: %+v", m)
	}
}

// A machine DHCP saw before the operator added it by hand keeps the firmware kind and UUID
// DHCP reported.
func TestCreatedMachineTakesWhatDHCPSaw(t *testing.T) {
	storetest.Run(t, testCreatedMachineTakesWhatDHCPSaw)
}

func testCreatedMachineTakesWhatDHCPSaw(t *testing.T, b storetest.Backend) {
	inv, _ := openInv(t, b)
	ctx := context.Background()
	const mac, uuid = "52:54:00:00:00:0a", "8a7f6e5d-4c3b-2a19-0807-060504030201"
	if err := inv.RecordDHCP(ctx, []DHCPSighting{{MAC: mac, Firmware: "bios-pxe", UUID: uuid, Detail: "proxy-offer"}}); err != nil {
		t.Fatal(err)
	}
	m, err := inv.CreateMachine(ctx, mac, MachineUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Firmware != "bios-pxe" || m.UUID != uuid {
		t.Errorf("machine added after DHCP saw it: firmware %q uuid %q", m.Firmware, m.UUID)
	}
}
