package dhcp

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestSlowTimelineDoesNotDelayAnswers proves that DHCP answers do not wait for the timeline
// sink (in fleetboot, a database write): the sink blocks on a channel this test holds, and
// three times MaxInFlight clients, each a new machine, still all get their offer. Before the
// sink was asynchronous, the 65th client got nothing: every handling slot waited on the
// database. The queue is small here, so events beyond it are dropped and counted, and what
// was queued is delivered when the server stops.
func TestSlowTimelineDoesNotDelayAnswers(t *testing.T) {
	ns := requireNetns(t)
	c := newRawClient(t, ns)
	hold := make(chan struct{})
	var release sync.Once
	// Registered before startServer's cleanup, so it runs after it: never leave Run blocked.
	t.Cleanup(func() { release.Do(func() { close(hold) }) })
	got := make(chan []Event, 1024)
	cfg := Config{Mode: ModeProxy, Interface: "fbs0", ServerIP: serverIP, HTTPBase: testHTTP, TimelineQueue: 16, MaxInFlight: 64,
		Timeline: func(evs []Event) {
			<-hold
			got <- evs
		}}
	rs := startServer(t, ns, cfg, nil)

	const clients = 3 * 64 // MaxInFlight
	for i := range clients {
		mac := net.HardwareAddr{0x52, 0x54, 0, 0x7e, byte(i >> 8), byte(i)}
		m := msg(t, dhcpv4.MessageTypeDiscover, append(uefiPXE(), withXID(i), dhcpv4.WithHwAddr(mac))...)
		if o := exchange(t, c, rs, m).pkt; o.MessageType() != dhcpv4.MessageTypeOffer || o.ClientHWAddr.String() != mac.String() {
			t.Fatalf("client %d: got %s for %s", i, o.MessageType(), o.ClientHWAddr)
		}
	}
	// exchange may have sent a packet more than once; every answer is one timeline event. A
	// handler reports its answer just after sending it: wait for the last report.
	answers := 0
	for deadline := time.Now().Add(liveness); answers < clients && time.Now().Before(deadline); {
		select {
		case ev := <-rs.events:
			if ev.Kind == "proxy-offer" {
				answers++
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	for len(rs.events) > 0 {
		if ev := <-rs.events; ev.Kind == "proxy-offer" {
			answers++
		}
	}
	if answers < clients {
		t.Fatalf("%d answers reported, want at least %d", answers, clients)
	}
	dropped := rs.srv.TimelineDropped()
	if dropped == 0 {
		t.Errorf("a queue of 16 behind a blocked sink dropped nothing of %d events", answers)
	}

	released := time.Now()
	release.Do(func() { close(hold) })
	if err := rs.stop(); err != nil {
		t.Fatal(err)
	}
	// Run has returned: every handler has reported (a retransmitted request may have been
	// answered after the count above).
	for len(rs.events) > 0 {
		if ev := <-rs.events; ev.Kind == "proxy-offer" {
			answers++
		}
	}
	dropped = rs.srv.TimelineDropped()
	delivered, before := 0, 0
	for len(got) > 0 {
		for _, ev := range <-got {
			if ev.Kind != "proxy-offer" || ev.Firmware != "uefi-pxe" || ev.UUID == "" || ev.Time.IsZero() {
				t.Errorf("timeline event %+v", ev)
			}
			if ev.Time.Before(released) {
				before++
			}
			delivered++
		}
	}
	// The events queued while the sink was blocked carry the time of their packets, which is
	// before the sink got them.
	if before == 0 {
		t.Errorf("none of the %d events delivered after the release carries a time before it", delivered)
	}
	if uint64(delivered)+dropped != uint64(answers) {
		t.Errorf("%d events delivered + %d dropped, want the %d answers: Run must deliver what it queued before it returns",
			delivered, dropped, answers)
	}
	t.Logf("%d clients answered while the sink was blocked; %d timeline events delivered after release, %d dropped", clients, delivered, dropped)
}
