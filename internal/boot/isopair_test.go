package boot

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/secureboot"
)

// pairMap adapts a map of ISO id → pair to PairLookup.
type pairMap map[string]grub.ISOPair

func (m pairMap) ISOPair(_ context.Context, iso string) (grub.ISOPair, bool, error) {
	p, ok := m[iso]
	return p, ok, nil
}

func newPairPlanner(t *testing.T) (*Planner, *inventory.Inventory) {
	t.Helper()
	ctx := context.Background()
	p, inv := newTestPlanner(t)
	for name, iso := range map[string]string{"di": "di-iso", "trixie": "trixie-iso", "plain": "plain-iso"} {
		if _, _, err := inv.PutProfile(ctx, &inventory.Profile{Name: name, ISO: iso, ExtraArgs: "console=ttyS0"}); err != nil {
			t.Fatal(err)
		}
	}
	pair := func(iso, version string) grub.ISOPair {
		return grub.ISOPair{ISO: iso, Pair: secureboot.Pair{Arch: "x86_64", Shim: "/EFI/boot/bootx64.efi", GRUB: "/EFI/boot/grubx64.efi",
			Loader: "grubx64.efi", GRUBTrusted: true, GRUBSBAT: "grub,5,Free Software Foundation,grub," + version + ",x"}}
	}
	p.Targets = targetFunc(func(p *inventory.Profile, m *inventory.Machine) (ipxe.BootTarget, error) {
		return ipxe.BootTarget{Label: p.Name, Kernel: "http://s:8080/isos/" + p.ISO + "/files/linux", Cmdline: p.ExtraArgs}, nil
	})
	p.GRUB = GRUBRenderer{Config: grub.Config{HTTPBase: "http://s:8080", IPXEFile: "snponly.efi", TFTPServer: "10.77.0.1"}}
	p.Pairs = pairMap{"di-iso": pair("di-iso", "2.06"), "trixie-iso": pair("trixie-iso", "2.12")}
	return p, inv
}

func putMachine(t *testing.T, inv *inventory.Inventory, mac, profile string, state inventory.State) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := inv.See(ctx, inventory.Sighting{MAC: mac, IP: "10.77.0.50"}); err != nil {
		t.Fatal(err)
	}
	if _, err := inv.UpdateMachine(ctx, mac, inventory.MachineUpdate{Profile: &profile, State: &state}); err != nil {
		t.Fatal(err)
	}
}

// TestShimPathGivesInstallingMachinesTheirISOsPair: only a machine about to install a profile
// whose ISO carries a pair gets it; installed, menu and unknown machines get fleetboot's own;
// an HTTP Boot client gets the ISO's pair only when its GRUB is 2.12 or newer, and the
// timeline says why not otherwise.
func TestShimPathGivesInstallingMachinesTheirISOsPair(t *testing.T) {
	ctx := context.Background()
	p, inv := newPairPlanner(t)
	putMachine(t, inv, "52:54:00:00:00:01", "di", inventory.InstallPending)
	putMachine(t, inv, "52:54:00:00:00:02", "di", inventory.Installed)
	putMachine(t, inv, "52:54:00:00:00:03", "plain", inventory.InstallPending)
	putMachine(t, inv, "52:54:00:00:00:04", "trixie", inventory.Installing)
	putMachine(t, inv, "52:54:00:00:00:05", "", inventory.Discovered)
	for _, c := range []struct {
		mac  string
		http bool
		want string
	}{
		{"52:54:00:00:00:01", false, "isopair/di-iso/bootx64.efi"},
		{"52:54:00:00:00:01", true, ""}, // GRUB 2.06 over HTTP Boot: Debian's pair
		{"52:54:00:00:00:02", false, ""},
		{"52:54:00:00:00:03", false, ""},
		{"52:54:00:00:00:04", false, "isopair/trixie-iso/bootx64.efi"},
		{"52:54:00:00:00:04", true, "isopair/trixie-iso/bootx64.efi"},
		{"52:54:00:00:00:05", false, ""},
		{"52:54:00:00:00:99", false, ""}, // unknown
	} {
		got, err := p.ShimPath(ctx, c.mac, c.http)
		if err != nil || got != c.want {
			t.Errorf("ShimPath(%s, http %v) = %q, %v; want %q", c.mac, c.http, got, err, c.want)
		}
	}
	// Asked again, as the same boot's REQUEST and a retry do: still one note.
	for i := 0; i < 3; i++ {
		if got, err := p.ShimPath(ctx, "52:54:00:00:00:01", true); err != nil || got != "" {
			t.Fatalf("ShimPath again = %q, %v", got, err)
		}
	}
	evs, err := inv.Events(ctx, "52:54:00:00:00:01", 0)
	if err != nil {
		t.Fatal(err)
	}
	notes := 0
	for _, e := range evs {
		if strings.Contains(e.Detail, "UEFI HTTP Boot: Debian's shim + GRUB instead of the ISO's own pair: its GRUB is 2.06") {
			notes++
		}
	}
	if notes != 1 {
		t.Errorf("timeline says why HTTP Boot got Debian's pair %d times, want once: %+v", notes, evs)
	}
	if got, _ := (&Planner{Machines: inv}).ShimPath(ctx, "52:54:00:00:00:01", false); got != "" {
		t.Errorf("without Pairs: %q", got)
	}
}

// TestGRUBFileOverTFTP: a GRUB that asks over TFTP gets its machine's decision rendered for
// TFTP, and may report a failed step only from the machine's own address.
func TestGRUBFileOverTFTP(t *testing.T) {
	ctx := context.Background()
	p, inv := newPairPlanner(t)
	const mac = "52:54:00:00:00:01"
	putMachine(t, inv, mac, "di", inventory.InstallPending)
	own := netip.MustParseAddr("10.77.0.50")
	d, err := p.GRUBFile(ctx, "grub/mac/"+mac+"/sb-on.cfg", own)
	if err != nil || d.Kind != KindTarget || !strings.Contains(string(d.Script), "linux '(tftp,10.77.0.1)/isos/di-iso/files/linux' 'console=ttyS0'") {
		t.Fatalf("sb-on.cfg: %v %s\n%s", err, d.Kind, d.Script)
	}
	// Secure Boot off with chain auto: a GRUB over TFTP cannot hand over to iPXE, so it boots
	// the installer itself.
	putMachine(t, inv, mac, "di", inventory.InstallPending)
	if d, err = p.GRUBFile(ctx, "grub/mac/"+mac+"/sb-off.cfg", own); err != nil || d.Kind != KindTarget || strings.Contains(string(d.Script), "chainloader") {
		t.Errorf("sb-off.cfg: %v %s\n%s", err, d.Kind, d.Script)
	}
	if _, err := p.GRUBFile(ctx, "grub/mac/"+mac+"/failed/linux.cfg", netip.MustParseAddr("10.77.0.66")); !errors.Is(err, ErrForeign) {
		t.Errorf("failure report from a foreign address: %v", err)
	}
	d, err = p.GRUBFile(ctx, "grub/mac/"+mac+"/failed/linux.cfg", own)
	if err != nil || !strings.Contains(string(d.Script), "recorded in this machine") {
		t.Fatalf("failure report: %v\n%s", err, d.Script)
	}
	evs, _ := inv.Events(ctx, mac, 0)
	if last := evs[len(evs)-1]; last.Kind != "error" || !strings.Contains(last.Detail, "boot failed: GRUB could not load the kernel") {
		t.Errorf("last event %+v", last)
	}
	for _, bad := range []string{"grub/mac/" + mac + "/other.cfg", "grub/mac/nomac/sb-on.cfg", "grub/grub.cfg", "grub/mac/" + mac + "/profile/../x.cfg"} {
		if _, err := p.GRUBFile(ctx, bad, own); !errors.Is(err, ErrNoGRUBFile) {
			t.Errorf("%s: %v, want ErrNoGRUBFile", bad, err)
		}
	}
}

// A note is written again after notedFor (the machine's next boot), and the memory stays
// bounded.
func TestNotedOnceForgets(t *testing.T) {
	var n notedOnce
	t0 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	if !n.first("a", t0) || n.first("a", t0.Add(time.Second)) {
		t.Fatal("a second note within notedFor was not suppressed")
	}
	if !n.first("a", t0.Add(notedFor)) {
		t.Fatal("a note after notedFor was suppressed")
	}
	for i := 0; i < 2*notedMax; i++ {
		n.first(fmt.Sprint(i), t0)
	}
	if len(n.seen) > notedMax {
		t.Fatalf("%d notes remembered, at most %d", len(n.seen), notedMax)
	}
}
