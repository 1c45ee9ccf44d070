package boot

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/store"
)

func TestDecideTable(t *testing.T) {
	cases := []struct {
		state      inventory.State
		profile    string
		unassigned Unassigned
		want       Action
	}{
		{inventory.Discovered, "", UnassignedMenu, ActMenu},
		{inventory.Discovered, "", UnassignedLocal, ActLocal},
		{inventory.Discovered, "p", UnassignedMenu, ActMenu}, // assigned but not started: operator starts it
		{inventory.InstallPending, "p", UnassignedMenu, ActInstall},
		{inventory.Installing, "p", UnassignedLocal, ActInstall},
		{inventory.Installed, "p", UnassignedMenu, ActLocal},
		{inventory.Installed, "", UnassignedMenu, ActLocal},
	}
	for _, c := range cases {
		mode := ""
		if c.profile != "" {
			mode = inventory.ModeInstallOnce
		}
		got := decide(&inventory.Machine{State: c.state, Profile: c.profile}, mode, c.unassigned)
		if got != c.want {
			t.Errorf("decide(%s, profile=%q, %s) = %d, want %d", c.state, c.profile, c.unassigned, got, c.want)
		}
		// A profile in mode always boots in every state.
		if c.profile != "" {
			if got := decide(&inventory.Machine{State: c.state, Profile: c.profile}, inventory.ModeAlways, c.unassigned); got != ActInstall {
				t.Errorf("decide(%s, always profile) = %d, want ActInstall", c.state, got)
			}
		}
	}
}

// targetFunc adapts a function to Targets.
type targetFunc func(p *inventory.Profile, m *inventory.Machine) (ipxe.BootTarget, error)

func (f targetFunc) Target(_ context.Context, p *inventory.Profile, m *inventory.Machine) (ipxe.BootTarget, error) {
	return f(p, m)
}

// Problem reports profiles on the ISO "deleted" as unbootable, as provision does for an ISO
// that was force-deleted.
func (f targetFunc) Problem(_ context.Context, p *inventory.Profile) string {
	if p.ISO == "deleted" {
		return "its ISO deleted was deleted"
	}
	return ""
}

func TestPlannerInstallsOnceThenBootsLocally(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inv, err := inventory.Open(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	inv.PutProfile(ctx, &inventory.Profile{Name: "deb", ISO: "iso1"})
	inv.PutProfile(ctx, &inventory.Profile{Name: "broken", ISO: "gone"})
	p := &Planner{
		Scripts:  ipxe.ScriptConfig{HTTPBase: "http://s:8080"},
		Machines: inv,
		Targets: targetFunc(func(p *inventory.Profile, m *inventory.Machine) (ipxe.BootTarget, error) {
			if p.ISO == "gone" {
				return ipxe.BootTarget{}, errors.New("ISO gone is not in the store")
			}
			return ipxe.BootTarget{Label: p.Name, Kernel: "http://s:8080/isos/" + p.ISO + "/files/linux", Cmdline: "host=" + m.MAC}, nil
		}),
	}
	const mac = "52:54:00:00:00:07"
	req := Request{Identity: ipxe.Identity{MAC: mac, Platform: "efi"}}

	d, err := p.Decide(ctx, req)
	if err != nil || d.Kind != KindMenu || !strings.Contains(string(d.Script), "Install deb (iso1)") {
		t.Fatalf("unknown machine: %v %s\n%s", err, d.Kind, d.Script)
	}
	m, _ := inv.Machine(ctx, mac)
	if m.State != inventory.Discovered || m.Platform != "efi" {
		t.Fatalf("not recorded as discovered: %+v", m)
	}

	state := inventory.InstallPending
	prof := "deb"
	inv.UpdateMachine(ctx, mac, inventory.MachineUpdate{Profile: &prof, State: &state})
	d, _ = p.Decide(ctx, req)
	if d.Kind != KindTarget || !strings.Contains(string(d.Script), "host="+mac) {
		t.Fatalf("pending machine: %s\n%s", d.Kind, d.Script)
	}
	if m, _ = inv.Machine(ctx, mac); m.State != inventory.Installing {
		t.Fatalf("state after handing out installer: %s", m.State)
	}
	// Rebooted before the callback: installer again, still installing.
	if d, _ = p.Decide(ctx, req); d.Kind != KindTarget {
		t.Fatalf("installing machine got %s", d.Kind)
	}
	inv.Transition(ctx, mac, []inventory.State{inventory.Installing}, inventory.Installed, "done")
	d, _ = p.Decide(ctx, req)
	if d.Kind != KindLocal || !strings.Contains(string(d.Script), "iseq ${platform} efi && exit") {
		t.Fatalf("installed machine: %s\n%s", d.Kind, d.Script)
	}

	// A broken profile falls back to the menu with the reason, and the timeline says so.
	state, prof = inventory.InstallPending, "broken"
	inv.UpdateMachine(ctx, mac, inventory.MachineUpdate{Profile: &prof, State: &state})
	d, _ = p.Decide(ctx, req)
	if d.Kind != KindMenu || !strings.Contains(string(d.Script), "ISO gone is not in the store") {
		t.Fatalf("broken profile: %s\n%s", d.Kind, d.Script)
	}
	if m, _ = inv.Machine(ctx, mac); m.State != inventory.InstallPending {
		t.Fatalf("a profile that cannot boot moved the machine to %s", m.State)
	}
	ev, _ := inv.Events(ctx, mac, 0)
	if last := ev[len(ev)-1]; last.Kind != "error" {
		t.Fatalf("last event %+v", last)
	}

	// Menu choice boots a profile once without changing state.
	other := Request{Identity: ipxe.Identity{MAC: "52:54:00:00:00:08"}, Profile: "deb"}
	if d, _ = p.Decide(ctx, other); d.Kind != KindTarget {
		t.Fatalf("menu choice: %s", d.Kind)
	}
	if m, _ = inv.Machine(ctx, "52:54:00:00:00:08"); m.State != inventory.Discovered {
		t.Fatalf("menu choice changed state to %s", m.State)
	}

	// Unassigned policy local.
	p.Unassigned = UnassignedLocal
	if d, _ = p.Decide(ctx, Request{Identity: ipxe.Identity{MAC: "52:54:00:00:00:09"}}); d.Kind != KindLocal {
		t.Fatalf("unassigned local: %s", d.Kind)
	}
	// Fallback target instead of menu.
	p.Unassigned = UnassignedMenu
	p.Fallback = &Target{Kernel: "k", Cmdline: "c"}
	if d, _ = p.Decide(ctx, Request{Identity: ipxe.Identity{MAC: "52:54:00:00:00:0a"}}); d.Kind != KindTarget ||
		!strings.Contains(string(d.Script), "kernel http://s:8080/assets/k c") {
		t.Fatalf("fallback: %s\n%s", d.Kind, d.Script)
	}
}

func newTestPlanner(t *testing.T) (*Planner, *inventory.Inventory) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inv, err := inventory.Open(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	return &Planner{
		Scripts:  ipxe.ScriptConfig{HTTPBase: "http://s:8080"},
		Machines: inv,
		Targets: targetFunc(func(p *inventory.Profile, m *inventory.Machine) (ipxe.BootTarget, error) {
			return ipxe.BootTarget{Label: p.Name, Kernel: "http://s:8080/isos/" + p.ISO + "/files/linux"}, nil
		}),
	}, inv
}

// A profile whose ISO was force-deleted is not in the menu, and a machine assigned to it gets
// the menu with the reason, an error event, and keeps its state.
func TestPlannerSkipsProfilesThatCannotBoot(t *testing.T) {
	ctx := context.Background()
	p, inv := newTestPlanner(t)
	inv.PutProfile(ctx, &inventory.Profile{Name: "deb", ISO: "iso1"})
	inv.PutProfile(ctx, &inventory.Profile{Name: "orphan", ISO: "deleted"})
	const mac = "52:54:00:00:00:21"
	req := Request{Identity: ipxe.Identity{MAC: mac, Platform: "efi"}}
	d, err := p.Decide(ctx, req)
	if err != nil || d.Kind != KindMenu || !strings.Contains(string(d.Script), "Install deb") || strings.Contains(string(d.Script), "orphan") {
		t.Fatalf("menu offers a profile that cannot boot: %v\n%s", err, d.Script)
	}
	prof, state := "orphan", inventory.InstallPending
	if _, err := inv.UpdateMachine(ctx, mac, inventory.MachineUpdate{Profile: &prof, State: &state}); err != nil {
		t.Fatal(err)
	}
	d, err = p.Decide(ctx, req)
	if err != nil || d.Kind != KindMenu || !strings.Contains(string(d.Script), "its ISO deleted was deleted") {
		t.Fatalf("assigned broken profile: %v %s\n%s", err, d.Kind, d.Script)
	}
	if m, _ := inv.Machine(ctx, mac); m.State != inventory.InstallPending {
		t.Fatalf("state moved to %s", m.State)
	}
	ev, _ := inv.Events(ctx, mac, 0)
	if last := ev[len(ev)-1]; last.Kind != "error" || !strings.Contains(last.Detail, "profile orphan cannot boot: its ISO deleted was deleted") {
		t.Fatalf("last event %+v", last)
	}
	// Chosen from an old menu: not booted either.
	if d, _ = p.Decide(ctx, Request{Identity: ipxe.Identity{MAC: "52:54:00:00:00:22"}, Profile: "orphan"}); d.Kind != KindMenu {
		t.Fatalf("menu choice of a broken profile: %s", d.Kind)
	}
}

// boot-once boots the profile once and then the local disk, with no callback; always boots it
// every time and never moves the state; neither is left "installing".
func TestPlannerProfileModes(t *testing.T) {
	ctx := context.Background()
	p, inv := newTestPlanner(t)
	inv.PutProfile(ctx, &inventory.Profile{Name: "rescue", ISO: "iso1", Mode: inventory.ModeBootOnce})
	inv.PutProfile(ctx, &inventory.Profile{Name: "memtest", ISO: "iso2", Mode: inventory.ModeAlways})

	once := Request{Identity: ipxe.Identity{MAC: "52:54:00:00:00:31", Platform: "pcbios"}}
	p.Decide(ctx, once)
	prof, pending := "rescue", inventory.InstallPending
	inv.UpdateMachine(ctx, once.MAC, inventory.MachineUpdate{Profile: &prof, State: &pending})
	if d, _ := p.Decide(ctx, once); d.Kind != KindTarget || !strings.Contains(string(d.Script), "/isos/iso1/") {
		t.Fatalf("boot-once first boot: %s\n%s", d.Kind, d.Script)
	}
	if m, _ := inv.Machine(ctx, once.MAC); m.State != inventory.Installed {
		t.Fatalf("boot-once left the machine %s", m.State)
	}
	if d, _ := p.Decide(ctx, once); d.Kind != KindLocal {
		t.Fatalf("boot-once second boot: %s", d.Kind)
	}

	always := Request{Identity: ipxe.Identity{MAC: "52:54:00:00:00:32", Platform: "efi"}}
	p.Decide(ctx, always)
	prof = "memtest"
	inv.UpdateMachine(ctx, always.MAC, inventory.MachineUpdate{Profile: &prof})
	for i := 0; i < 3; i++ {
		if d, _ := p.Decide(ctx, always); d.Kind != KindTarget || !strings.Contains(string(d.Script), "/isos/iso2/") {
			t.Fatalf("always, boot %d: %s\n%s", i+1, d.Kind, d.Script)
		}
		if m, _ := inv.Machine(ctx, always.MAC); m.State != inventory.Discovered {
			t.Fatalf("always moved the state to %s", m.State)
		}
	}
	inv.UpdateMachine(ctx, always.MAC, inventory.MachineUpdate{State: &pending})
	if d, _ := p.Decide(ctx, always); d.Kind != KindTarget {
		t.Fatalf("always, install-pending: %s", d.Kind)
	}
	if m, _ := inv.Machine(ctx, always.MAC); m.State != inventory.InstallPending {
		t.Fatalf("always moved an install-pending machine to %s", m.State)
	}
}

// The menu names each profile with its ISO's name, not the ISO's content-hash id.
func TestMenuLabelsNameTheProfileAndTheISO(t *testing.T) {
	ctx := context.Background()
	p, inv := newTestPlanner(t)
	p.Targets = targetFunc(func(pr *inventory.Profile, m *inventory.Machine) (ipxe.BootTarget, error) {
		return ipxe.BootTarget{Label: pr.Name, Kernel: "http://s:8080/isos/" + pr.ISO + "/files/linux", ISOName: "rocky-9.4-x86_64-dvd.iso"}, nil
	})
	inv.PutProfile(ctx, &inventory.Profile{Name: "rocky9", ISO: "3f9a0b1c2d3e4f50"})
	d, err := p.Decide(ctx, Request{Identity: ipxe.Identity{MAC: "52:54:00:00:00:31", Platform: "pcbios"}})
	if err != nil || d.Kind != KindMenu {
		t.Fatalf("%v %s", err, d.Kind)
	}
	if !strings.Contains(string(d.Script), "Install rocky9 (rocky-9.4-x86_64-dvd.iso)") || strings.Contains(string(d.Script), "3f9a0b1c2d3e4f50") {
		t.Fatalf("menu labels:\n%s", d.Script)
	}
}
