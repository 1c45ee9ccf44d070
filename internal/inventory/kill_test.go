package inventory

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/faulttest"
	"github.com/fleetboot/fleetboot/internal/store"
)

const killChildEnv = "FLEETBOOT_INVENTORY_KILL_CHILD"

// lifeSteps is one machine's install life as the child drives it; each ACK names the state
// reached.
var lifeSteps = []State{Discovered, InstallPending, Installing, Installed}

// killChild drives machines through their install life, printing "ACK mac state" after each
// change returned, until it is killed.
func killChild(t *testing.T, dir string) {
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Open(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 5000; i++ {
		mac := fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff)
		if _, _, err := inv.See(ctx, Sighting{MAC: mac, Arch: "x86_64"}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("ACK %s %s\n", mac, Discovered)
		prof, pending := "p", InstallPending
		if _, err := inv.UpdateMachine(ctx, mac, MachineUpdate{Profile: &prof, State: &pending}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("ACK %s %s\n", mac, InstallPending)
		if _, err := inv.Transition(ctx, mac, []State{InstallPending}, Installing, "installer handed out"); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("ACK %s %s\n", mac, Installing)
		if _, err := inv.Transition(ctx, mac, []State{Installing}, Installed, "done"); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("ACK %s %s\n", mac, Installed)
	}
	time.Sleep(5 * time.Minute) // the parent kills before; this bounds an orphan
}

// TestKillDuringStateTransitionsKeepsStateAndTimelineTogether SIGKILLs a process moving
// machines through discovered → install-pending → installing → installed once it acknowledged
// 300 changes. After a restart each machine is in the state last acknowledged for it (or the
// next one, committed as the kill came), and its timeline's last state event says so: no change
// without its event, no event without its change.
func TestKillDuringStateTransitionsKeepsStateAndTimelineTogether(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(t, dir)
		return
	}
	dir := t.TempDir()
	{
		st, err := store.Open(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := Open(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := inv.PutProfile(context.Background(), &Profile{Name: "p", ISO: "x"}); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	acked := map[string]State{}
	acks := faulttest.KillAfterAcks(t, 300, killChildEnv+"="+dir)
	for _, f := range acks {
		if len(f) == 2 {
			acked[f[0]] = State(f[1])
		}
	}
	n := len(acks)

	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	inv, err := Open(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ms, err := inv.Machines(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	index := func(s State) int {
		for i, x := range lifeSteps {
			if x == s {
				return i
			}
		}
		return -1
	}
	for mac, want := range acked {
		m, err := inv.Machine(ctx, mac)
		if err != nil {
			t.Errorf("acknowledged machine %s lost: %v", mac, err)
			continue
		}
		if d := index(m.State) - index(want); d != 0 && d != 1 {
			t.Errorf("%s is %s, acknowledged %s", mac, m.State, want)
		}
	}
	for _, m := range ms {
		evs, err := inv.Events(ctx, m.MAC, 0)
		if err != nil {
			t.Fatal(err)
		}
		last := Discovered
		for _, e := range evs {
			if e.Kind == "state" {
				_, to, _ := strings.Cut(e.Detail, " → ")
				to, _, _ = strings.Cut(to, ":")
				last = State(to)
			}
		}
		if len(evs) == 0 || evs[0].Kind != "discovered" || last != m.State {
			t.Errorf("%s is %s but its timeline says %s: %+v", m.MAC, m.State, last, evs)
		}
	}
	t.Logf("killed after %d acknowledged changes on %d machines; %d machines after restart, states and timelines agree", n, len(acked), len(ms))
}
