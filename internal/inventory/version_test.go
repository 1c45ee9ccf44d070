package inventory

import (
	"context"
	"fmt"
	"testing"

	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// TestVersionMovesOnDecisionChanges: every change of machines, profiles and rules moves
// Version on (the DHCP path's lookup cache relies on it), timeline writes do not, and on
// PostgreSQL it is not to be relied on at all.
func TestVersionMovesOnDecisionChanges(t *testing.T) { storetest.Run(t, testVersion) }

func testVersion(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, st := openInv(t, b)
	v, ok := inv.Version()
	if ok != (st.Dialect() != store.Postgres) {
		t.Fatalf("Version ok = %v on %s", ok, st.Dialect())
	}
	const mac = "52:54:00:00:00:09"
	step := func(what string, moves bool, fn func() error) {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		n, _ := inv.Version()
		if moved := n != v; moved != moves {
			t.Errorf("%s: Version moved = %v, want %v", what, moved, moves)
		}
		v = n
	}
	step("put profile", true, func() error { _, _, err := inv.PutProfile(ctx, &Profile{Name: "p", ISO: "iso"}); return err })
	step("see machine", true, func() error { _, _, err := inv.See(ctx, Sighting{MAC: mac}); return err })
	step("assign profile", true, func() error {
		_, err := inv.UpdateMachine(ctx, mac, MachineUpdate{Profile: ptr("p"), State: ptr(InstallPending)})
		return err
	})
	step("transition", true, func() error {
		_, err := inv.Transition(ctx, mac, []State{InstallPending}, Installing, "test")
		return err
	})
	step("event", false, func() error { return inv.AddEvent(ctx, mac, "boot", "x") })
	step("dhcp timeline", false, func() error {
		return inv.RecordDHCP(ctx, []DHCPSighting{{MAC: mac, Firmware: "uefi-pxe", Detail: "offer"}, {MAC: "52:54:00:00:00:0a", Firmware: "bios-pxe", Detail: "offer"}})
	})
	var rule *Rule
	step("add rule", true, func() error {
		var err error
		rule, _, err = inv.AddRule(ctx, Rule{MACPrefix: "52:54", Profile: "p"})
		return err
	})
	step("delete rule", true, func() error { return inv.DeleteRule(ctx, rule.ID) })
	step("delete machine", true, func() error { return inv.DeleteMachine(ctx, mac) })
	step("delete profile", true, func() error { return inv.DeleteProfile(ctx, "p") })
}

// TestRecordDHCPMergesOneMACsSightings: several sightings of one MAC in a batch (a DHCP
// exchange) leave what separate batches would: every timeline line in order, the latest
// non-empty firmware and UUID, and a timeline still bounded by maxEventsPerMachine.
func TestRecordDHCPMergesOneMACsSightings(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		inv, _ := openInv(t, b)
		const known, unknown = "52:54:00:00:0b:01", "52:54:00:00:0b:02"
		if _, _, err := inv.See(ctx, Sighting{MAC: known}); err != nil {
			t.Fatal(err)
		}
		var batch []DHCPSighting
		for _, mac := range []string{known, unknown} {
			batch = append(batch,
				DHCPSighting{MAC: mac, Firmware: "uefi-pxe", UUID: "u1", Detail: "offer"},
				DHCPSighting{MAC: mac, Firmware: "", UUID: "u2", Detail: "ack"},
				DHCPSighting{MAC: mac, Detail: "ipxe offer"})
		}
		if err := inv.RecordDHCP(ctx, batch); err != nil {
			t.Fatal(err)
		}
		m, err := inv.Machine(ctx, known)
		if err != nil || m.Firmware != "uefi-pxe" || m.UUID != "u2" {
			t.Fatalf("known machine: %+v %v", m, err)
		}
		if m, _, err = inv.See(ctx, Sighting{MAC: unknown}); err != nil || m.Firmware != "uefi-pxe" || m.UUID != "u2" {
			t.Fatalf("machine DHCP saw first: %+v %v", m, err)
		}
		ev, _ := inv.Events(ctx, known, 0)
		var lines []string
		for _, e := range ev {
			if e.Kind == "dhcp" {
				lines = append(lines, e.Detail)
			}
		}
		if fmt.Sprint(lines) != "[offer ack ipxe offer]" {
			t.Fatalf("timeline %q", lines)
		}
		// One batch longer than the bound keeps the newest maxEventsPerMachine lines.
		batch = batch[:0]
		for i := range maxEventsPerMachine + 10 {
			batch = append(batch, DHCPSighting{MAC: known, Detail: fmt.Sprint("line ", i)})
		}
		if err := inv.RecordDHCP(ctx, batch); err != nil {
			t.Fatal(err)
		}
		ev, _ = inv.Events(ctx, known, maxEventsPerMachine+100)
		if len(ev) != maxEventsPerMachine || ev[len(ev)-1].Detail != fmt.Sprint("line ", maxEventsPerMachine+9) {
			t.Fatalf("%d events kept, last %+v", len(ev), ev[len(ev)-1])
		}
	})
}

// TestKnownFollowsMachines: Known answers without a query what Machine would (SQLite): a
// machine seen, created or deleted counts at once, and a reopened inventory knows the
// machines already recorded. On PostgreSQL it declines (ok false).
func TestKnownFollowsMachines(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		inv, st := openInv(t, b)
		const seen, made = "52:54:00:00:0c:01", "52:54:00:00:0c:02"
		check := func(step, mac string, want bool) {
			t.Helper()
			known, ok := inv.Known(mac)
			if !ok {
				if st.Dialect() != store.Postgres {
					t.Fatalf("%s: Known declines on %s", step, st.Dialect())
				}
				return
			}
			if known != want {
				t.Fatalf("%s: Known(%s) = %v, want %v", step, mac, known, want)
			}
		}
		check("empty", seen, false)
		if _, _, err := inv.See(ctx, Sighting{MAC: seen}); err != nil {
			t.Fatal(err)
		}
		check("seen", seen, true)
		if _, err := inv.CreateMachine(ctx, made, MachineUpdate{}); err != nil {
			t.Fatal(err)
		}
		check("created", made, true)
		inv2, err := Open(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		if known, ok := inv2.Known(made); ok && !known {
			t.Fatal("a reopened inventory does not know a recorded machine")
		}
		if err := inv.DeleteMachine(ctx, made); err != nil {
			t.Fatal(err)
		}
		check("deleted", made, false)
		check("still seen", seen, true)
	})
}
