package boot

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/store"
)

// noTimeline is the inventory with a timeline that cannot be written.
type noTimeline struct{ *inventory.Inventory }

func (noTimeline) AddEvent(context.Context, string, string, string) error {
	return errors.New("database is full")
}

// A boot step whose timeline line cannot be written still boots the machine, and the failure
// is logged instead of vanishing.
func TestBootStepWithoutTimelineStillBootsAndIsLogged(t *testing.T) {
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
	const mac = "52:54:00:00:00:07"
	installed := inventory.Installed
	if _, err := inv.CreateMachine(ctx, mac, inventory.MachineUpdate{State: &installed}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	p := &Planner{Scripts: ipxe.ScriptConfig{HTTPBase: "http://s:8080"}, Machines: noTimeline{inv},
		Log: slog.New(slog.NewTextHandler(&logs, nil))}
	d, err := p.Decide(ctx, Request{Identity: ipxe.Identity{MAC: mac, Platform: "efi"}})
	if err != nil || d.Kind != KindLocal {
		t.Fatalf("installed machine: %v %s", err, d.Kind)
	}
	if !strings.Contains(logs.String(), "cannot record a boot step") || !strings.Contains(logs.String(), "database is full") {
		t.Errorf("the lost timeline line is not logged:\n%s", logs.String())
	}
}
