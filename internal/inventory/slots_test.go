package inventory

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// A write waiting for one of this process's writer slots gives up when its request's context
// ends, with the context's error: while the database does not answer, every slot stays taken,
// and the waits piled up for as long, long after their clients had given up.
func TestWriteSlotWaitEndsWithTheContext(t *testing.T) {
	storetest.Run(t, testWriteSlotWaitEndsWithTheContext)
}

func testWriteSlotWaitEndsWithTheContext(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	inv, _ := openInv(t, b)
	const known = "52:54:00:00:0c:01"
	if _, _, err := inv.See(ctx, Sighting{MAC: known, IP: "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inv.PutProfile(ctx, &Profile{Name: "p", ISO: "iso"}); err != nil {
		t.Fatal(err)
	}
	// Every slot taken, as by writes to a database that stopped answering.
	for range cap(inv.writers) {
		inv.writers <- struct{}{}
	}
	// Give them back at the end, so that writes still waiting without the fix finish.
	defer func() {
		for range cap(inv.writers) {
			<-inv.writers
		}
	}()
	writes := map[string]func(context.Context) error{
		"AddRule": func(ctx context.Context) error {
			_, _, err := inv.AddRule(ctx, Rule{MACPrefix: "52:54:00", Profile: "p"})
			return err
		},
		"See (new machine)": func(ctx context.Context) error {
			_, _, err := inv.See(ctx, Sighting{MAC: "52:54:00:00:0c:02"})
			return err
		},
		"Transition": func(ctx context.Context) error {
			_, err := inv.Transition(ctx, known, []State{Discovered}, Installing, "test")
			return err
		},
		"RecordDHCP": func(ctx context.Context) error {
			// Not known: Transition holds its gate, and RecordDHCP does not wait for a gate.
			return inv.RecordDHCP(ctx, []DHCPSighting{{MAC: "52:54:00:00:0c:03", Firmware: "uefi-pxe", Detail: "ack"}})
		},
	}
	if b.Name == "sqlite" {
		// On PostgreSQL it is one statement outside any transaction, without a slot (seeKnown).
		writes["See (known machine)"] = func(ctx context.Context) error {
			_, _, err := inv.See(ctx, Sighting{MAC: known, IP: "10.0.0.2"})
			return err
		}
	}
	type result struct {
		name string
		err  error
	}
	done := make(chan result, len(writes))
	for name, write := range writes {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			done <- result{name, write(ctx)}
		}()
	}
	// Not a timing assertion: a wait that does not watch its context never returns here.
	bound := time.After(30 * time.Second)
	for range writes {
		select {
		case r := <-done:
			delete(writes, r.name)
			if !errors.Is(r.err, context.DeadlineExceeded) {
				t.Errorf("%s with every writer slot taken: %v, want the context's deadline error", r.name, r.err)
			}
		case <-bound:
			var left []string
			for name := range writes {
				left = append(left, name)
			}
			t.Fatalf("%q still wait for a writer slot 30 s after their context ended", left)
		}
	}
}
