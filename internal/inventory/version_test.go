package inventory

import (
	"context"
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
