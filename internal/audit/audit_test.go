package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

func TestRecordAndListNewestFirstWithPages(t *testing.T) {
	storetest.Run(t, testRecordAndListNewestFirstWithPages)
}

func testRecordAndListNewestFirstWithPages(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	open := b.Fresh(t)
	s, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 5; i++ {
		e := Entry{Time: t0.Add(time.Duration(i) * time.Minute), Scope: "admin", IP: "192.0.2.1", Method: "DELETE",
			Route: "/api/v1/machines/:mac", Target: "mac=52:54:00:00:00:0" + string(rune('1'+i)), Status: 204}
		if i == 4 {
			e.Status, e.Error = 404, strings.Repeat("x", 2000)
		}
		if err := l.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// Survives a restart.
	s, err = open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if l, err = Open(ctx, s); err != nil {
		t.Fatal(err)
	}
	all, err := l.List(ctx, Query{})
	if err != nil || len(all) != 5 {
		t.Fatalf("%d entries, %v", len(all), err)
	}
	if all[0].Target != "mac=52:54:00:00:00:05" || all[0].Status != 404 || len(all[0].Error) > maxError+4 || !all[0].Time.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("newest: %+v", all[0])
	}
	page, err := l.List(ctx, Query{Limit: 2, Before: all[1].ID})
	if err != nil || len(page) != 2 || page[0].ID != all[2].ID || page[1].ID != all[3].ID {
		t.Fatalf("page: %+v %v", page, err)
	}
	since, err := l.List(ctx, Query{Since: t0.Add(3 * time.Minute)})
	if err != nil || len(since) != 2 {
		t.Fatalf("since: %+v %v", since, err)
	}
}

// TestOldestEntriesArePrunedBeyondKeep: the log keeps the newest Keep entries, pruning in
// batches as records arrive.
func TestOldestEntriesArePrunedBeyondKeep(t *testing.T) {
	storetest.Run(t, testOldestEntriesArePrunedBeyondKeep)
}

func testOldestEntriesArePrunedBeyondKeep(t *testing.T, b storetest.Backend) {
	ctx := context.Background()
	s := b.Open(t)
	l, err := Open(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if l.Keep != DefaultKeep {
		t.Fatalf("Keep = %d", l.Keep)
	}
	l.Keep = 10
	for i := 0; i < pruneEvery; i++ {
		if err := l.Record(ctx, Entry{Scope: "admin", IP: "192.0.2.1", Method: "POST", Route: "/api/v1/machines", Status: 201}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := l.List(ctx, Query{Limit: MaxLimit})
	if err != nil || len(all) != 10 || all[0].ID != pruneEvery || all[9].ID != pruneEvery-9 {
		t.Fatalf("after %d records with Keep 10: %d entries (%v), newest %d", pruneEvery, len(all), err, all[0].ID)
	}
}
