package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/provision"
	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/fleetboot/fleetboot/internal/urls"
)

// TestLookupCache: an answer is kept while the version stays, dropped when it moves (also when
// it moved while the answer was loading), never kept where the version is not to be relied on
// or when the lookup failed, and forgotten after maxAge.
func TestLookupCache(t *testing.T) {
	var ver uint64
	reliable := true
	c := newLookupCache[string, string](func() (uint64, bool) { return ver, reliable }, 0)
	loads := 0
	val := "a"
	load := func() (string, error) { loads++; return val, nil }
	get := func(want string, wantLoads int) {
		t.Helper()
		v, err := c.get("k", load)
		if err != nil || v != want || loads != wantLoads {
			t.Fatalf("get = %q, %v after %d loads; want %q after %d", v, err, loads, want, wantLoads)
		}
	}
	get("a", 1)
	get("a", 1) // kept
	val, ver = "b", ver+1
	get("b", 2) // the version moved: loaded again
	get("b", 2)

	// A change committed while loading: the answer is kept under the old version only.
	val = "c"
	if v, _ := c.get("k2", func() (string, error) { ver++; return "stale", nil }); v != "stale" {
		t.Fatal(v)
	}
	get("c", 3)

	// A failed lookup is not kept.
	fails := 0
	for range 2 {
		if _, err := c.get("bad", func() (string, error) { fails++; return "", errors.New("db down") }); err == nil {
			t.Fatal("error lost")
		}
	}
	if fails != 2 {
		t.Errorf("a failed lookup was kept (%d loads for 2 gets)", fails)
	}

	// Not reliable (PostgreSQL): every get loads.
	reliable = false
	get("c", 4)
	get("c", 5)
	reliable = true

	// maxAge forgets answers that also depend on something else.
	now := time.Unix(1000, 0)
	aged := newLookupCache[string, string](func() (uint64, bool) { return 7, true }, 2*time.Second)
	aged.now = func() time.Time { return now }
	n := 0
	for i, want := range []int{1, 1, 2} {
		if i == 2 {
			now = now.Add(2 * time.Second)
		}
		aged.get("k", func() (string, error) { n++; return "x", nil })
		if n != want {
			t.Fatalf("get %d: %d loads, want %d", i, n, want)
		}
	}
}

// TestDHCPAnswerURLFollowsTheInventory: option 250's lookup, cached, still answers from the
// inventory as it is now: nothing while no profile uses an answer file, the URL as soon as
// the machine's profile does, nothing again once the machine leaves it.
func TestDHCPAnswerURLFollowsTheInventory(t *testing.T) {
	ctx := context.Background()
	inv := openTestInventory(t)
	prov := &provision.Service{Inv: inv, HTTPBase: "http://10.0.0.1:8080"}
	answer := dhcpAnswerURL(ctx, inv, prov, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mac, _ := net.ParseMAC("52:54:00:00:00:07")
	want := urls.Base(prov.HTTPBase).ProxmoxAnswer()
	check := func(step, want string) {
		t.Helper()
		for range 2 { // the second call is answered from the cache
			if got := answer(mac); got != want {
				t.Fatalf("%s: option 250 %q, want %q", step, got, want)
			}
		}
	}
	check("unknown machine", "")
	if _, _, err := inv.See(ctx, inventory.Sighting{MAC: mac.String()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inv.PutProfile(ctx, &inventory.Profile{Name: "pve", ISO: "iso", Kind: provision.KindAnswer}); err != nil {
		t.Fatal(err)
	}
	check("answer profile exists, machine not on it", "")
	if _, err := inv.UpdateMachine(ctx, mac.String(), inventory.MachineUpdate{Profile: ptr("pve")}); err != nil {
		t.Fatal(err)
	}
	check("machine on the answer profile", want)
	if _, _, err := inv.PutProfile(ctx, &inventory.Profile{Name: "deb", ISO: "iso", Kind: provision.KindPreseed}); err != nil {
		t.Fatal(err)
	}
	if _, err := inv.UpdateMachine(ctx, mac.String(), inventory.MachineUpdate{Profile: ptr("deb")}); err != nil {
		t.Fatal(err)
	}
	check("machine moved to a preseed profile", "")
}

func ptr[T any](v T) *T { return &v }

// openTestInventory is an inventory in a SQLite store in a temporary directory.
func openTestInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inv, err := inventory.Open(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// TestDHCPOfferShimFollowsTheInventory: the boot chain DHCP offers follows the server's
// default for unknown machines and a machine's own boot-chain label from the moment it is set.
func TestDHCPOfferShimFollowsTheInventory(t *testing.T) {
	ctx := context.Background()
	inv := openTestInventory(t)
	planner := &boot.Planner{Machines: inv, DefaultChain: boot.ChainIPXE}
	offerShim := dhcpOfferShim(ctx, inv, planner, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mac, _ := net.ParseMAC("52:54:00:00:00:08")
	check := func(step string, want bool) {
		t.Helper()
		for range 2 {
			if got := offerShim(mac); got != want {
				t.Fatalf("%s: offer shim %v, want %v", step, got, want)
			}
		}
	}
	check("unknown machine, server default ipxe", false)
	if _, _, err := inv.See(ctx, inventory.Sighting{MAC: mac.String()}); err != nil {
		t.Fatal(err)
	}
	check("known machine without label", false)
	if _, err := inv.UpdateMachine(ctx, mac.String(), inventory.MachineUpdate{Labels: map[string]string{boot.ChainLabel: boot.ChainShim}}); err != nil {
		t.Fatal(err)
	}
	check("machine labelled shim", true)
	if err := inv.DeleteMachine(ctx, mac.String()); err != nil {
		t.Fatal(err)
	}
	check("machine deleted", false)
	planner.DefaultChain = boot.ChainAuto
	check("unknown machine, server default auto", true)
}
