package client

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/client/clienttest"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// Two fleetboot instances on one PostgreSQL database (--database), each with its --site: a
// machine seen by one is in the other's API with its timeline, each event naming the instance
// that wrote it; the other's live stream delivers events the first writes; leases bound
// through one are listed by the other.
func TestInstancesShareOneInventoryThroughTheAPI(t *testing.T) {
	dsn := storetest.DSN(t)
	a := clienttest.StartShared(t, dsn, "rack-a")
	b := clienttest.StartShared(t, dsn, "rack-b")
	ca, cb := newClient(a), newClient(b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const mac = "52:54:00:00:0b:01"
	if _, _, err := a.Inv.See(ctx, inventory.Sighting{MAC: mac, Arch: "x86_64"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Machine(ctx, mac); err != nil {
		t.Fatalf("instance b does not know the machine instance a saw: %v", err)
	}
	// b's live stream, from now on: an event a writes must arrive (through the database's
	// notification; the stream's own heartbeat is far longer than this test). The event is
	// written only once b has answered the stream, so b has taken its "now" before it: a
	// fixed pause was not always long enough on a loaded machine, and an event written before
	// the stream opened is not "from now on" (the stream never delivers it).
	opened := make(chan struct{})
	cb.HTTP = &http.Client{Transport: &streamOpened{RoundTripper: http.DefaultTransport, opened: opened}}
	got := make(chan Event, 1)
	go cb.FollowEvents(ctx, mac, -1, func(e Event) error {
		if e.Kind == "boot" {
			got <- e
			return context.Canceled
		}
		return nil
	})
	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatal("instance b never answered the event stream")
	}
	if err := a.Inv.AddEvent(ctx, mac, "boot", "script served"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Site != "rack-a" {
			t.Errorf("live event from a through b: site %q, want rack-a", e.Site)
		}
	case <-ctx.Done():
		t.Fatal("instance b's live stream did not deliver instance a's event")
	}
	if _, _, err := b.Inv.See(ctx, inventory.Sighting{MAC: mac, IP: "10.0.0.7"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Inv.AddEvent(ctx, mac, "boot", "local disk"); err != nil {
		t.Fatal(err)
	}
	ev, err := ca.MachineEvents(ctx, mac, 0)
	if err != nil {
		t.Fatal(err)
	}
	sites := map[string]string{}
	for _, e := range ev {
		sites[e.Detail] = e.Site
	}
	if sites["script served"] != "rack-a" || sites["local disk"] != "rack-b" {
		t.Fatalf("timeline through a: %+v", ev)
	}

	hw, _ := net.ParseMAC(mac)
	ip := b.BindLease(t, hw, "node1")
	leases, err := ca.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range leases {
		found = found || l.IP == ip.String()
	}
	if !found {
		t.Fatalf("lease %s bound through b is not listed by a: %+v", ip, leases)
	}
}

// streamOpened closes opened once a server has answered a request for its live event stream
// (its 200 comes after the stream took its starting point).
type streamOpened struct {
	http.RoundTripper
	once   sync.Once
	opened chan struct{}
}

func (s *streamOpened) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := s.RoundTripper.RoundTrip(req)
	if err == nil && res.StatusCode == http.StatusOK && req.URL.Path == "/api/v1/events/stream" {
		s.once.Do(func() { close(s.opened) })
	}
	return res, err
}
