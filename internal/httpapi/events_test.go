package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/server"
)

// sseStream is an open GET /api/v1/events/stream read line by line.
type sseStream struct {
	res   *http.Response
	lines chan string
	done  chan struct{}
}

func openStream(t *testing.T, e *isoEnv, query string, hdr map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/events/stream"+query, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &sseStream{res: res, lines: make(chan string, 10000), done: make(chan struct{})}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		t.Fatalf("stream%s: %d %s", query, res.StatusCode, b)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q", ct)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { cancel(); res.Body.Close(); <-s.done })
	return s
}

// next returns the next event (skipping comments and retry lines), failing after a generous bound.
func (s *sseStream) next(t *testing.T) inventory.Event {
	t.Helper()
	var id string
	timeout := time.After(time.Minute)
	for {
		select {
		case l := <-s.lines:
			switch {
			case strings.HasPrefix(l, "id: "):
				id = strings.TrimPrefix(l, "id: ")
			case strings.HasPrefix(l, "data: "):
				var ev inventory.Event
				if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &ev); err != nil {
					t.Fatalf("data line %q: %v", l, err)
				}
				if strconv.FormatInt(ev.ID, 10) != id {
					t.Fatalf("id line %q does not match the event's id %d", id, ev.ID)
				}
				return ev
			}
		case <-s.done:
			t.Fatal("stream ended")
		case <-timeout:
			t.Fatal("no event within a minute")
		}
	}
}

func addMachine(t *testing.T, e *isoEnv, mac string) {
	t.Helper()
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"`+mac+`"}`, 201, nil)
}

func TestEventStreamDeliversLiveEventsOfOneMachineAndResumesFromLastEventID(t *testing.T) {
	// No heartbeat (whose re-read is a safety net) during the test: events must arrive because
	// their commit woke the stream.
	e := newISOEnvWith(t, func(d *server.Deps) { d.EventHeartbeat = time.Hour })
	ctx := context.Background()
	a, b := "52:54:00:00:00:0a", "52:54:00:00:00:0b"
	addMachine(t, e, a)
	addMachine(t, e, b)

	s := openStream(t, e, "?machine=52-54-00-00-00-0A", nil)
	// Events from before the stream opened are not replayed without Last-Event-ID / after.
	e.inv.AddEvent(ctx, b, "boot", "other machine")
	e.inv.AddEvent(ctx, a, "boot", "first")
	e.jsonCall(t, "PATCH", "/api/v1/machines/"+a, `{"hostname":"node-a"}`, 200, nil) // no event
	e.jsonCall(t, "PATCH", "/api/v1/machines/"+a, `{"labels":{"rack":"r1"}}`, 200, nil)
	first := s.next(t)
	if first.MAC != a || first.Kind != "boot" || first.Detail != "first" {
		t.Fatalf("first event: %+v", first)
	}
	if ev := s.next(t); ev.Kind != "labels" || ev.MAC != a {
		t.Fatalf("second event: %+v", ev)
	}

	// Disconnected: what happens meanwhile arrives on reconnect with the last id seen.
	for i := range 3 {
		e.inv.AddEvent(ctx, a, "boot", fmt.Sprint("missed ", i))
	}
	s2 := openStream(t, e, "?machine="+a, map[string]string{"Last-Event-ID": strconv.FormatInt(first.ID, 10)})
	if ev := s2.next(t); ev.Kind != "labels" {
		t.Fatalf("resume starts after the given id: %+v", ev)
	}
	for i := range 3 {
		if ev := s2.next(t); ev.Detail != fmt.Sprint("missed ", i) {
			t.Fatalf("resumed event %d: %+v", i, ev)
		}
	}
	// ?after= is the same for clients that cannot set headers.
	s3 := openStream(t, e, "?after=0", nil)
	if ev := s3.next(t); ev.MAC != a || ev.Kind != "created" {
		t.Fatalf("after=0 starts at the oldest event: %+v", ev)
	}
}

func TestEventStreamRefusesBadRequests(t *testing.T) {
	e := newISOEnv(t)
	for _, tc := range []struct {
		path, token string
		hdr         map[string]string
		want        int
	}{
		{"/api/v1/events/stream", "", nil, 401},
		{"/api/v1/events/stream?machine=nope", testToken, nil, 400},
		{"/api/v1/events?machine=52:54:00:00:00:99", testToken, nil, 404},
		{"/api/v1/events/stream?after=x", testToken, nil, 400},
		{"/api/v1/events/stream", testToken, map[string]string{"Last-Event-ID": "-3"}, 400},
		{"/api/v1/events?limit=0", testToken, nil, 400},
	} {
		res, b := e.do(t, "GET", tc.path, tc.token, tc.hdr, nil)
		if res.StatusCode != tc.want {
			t.Errorf("%s %v: %d, want %d: %s", tc.path, tc.hdr, res.StatusCode, tc.want, b)
		}
	}
}

// An operator follows a machine before it is powered on for the first time: the stream of a
// MAC nobody has seen opens, and the machine's first events arrive when it appears.
func TestEventStreamFollowsAMachineNotSeenYet(t *testing.T) {
	e := newISOEnvWith(t, func(d *server.Deps) { d.EventHeartbeat = time.Hour })
	mac := "52:54:00:00:00:77"
	s := openStream(t, e, "?machine="+mac, nil)
	addMachine(t, e, "52:54:00:00:00:78") // another machine: not delivered
	addMachine(t, e, mac)
	if ev := s.next(t); ev.MAC != mac || ev.Kind != "created" {
		t.Fatalf("first event of the new machine: %+v", ev)
	}
}

func TestEventStreamSendsHeartbeatsAndEndsAtShutdown(t *testing.T) {
	e := newISOEnvWith(t, func(d *server.Deps) { d.EventHeartbeat = 20 * time.Millisecond })
	s := openStream(t, e, "", nil)
	timeout := time.After(time.Minute)
	for beats := 0; beats < 2; {
		select {
		case l := <-s.lines:
			if l == ": keepalive" {
				beats++
			}
		case <-timeout:
			t.Fatal("no heartbeat within a minute")
		}
	}
	e.api.StopStreams()
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		t.Fatal("stream still open after StopStreams")
	}
	if res, _ := e.do(t, "GET", "/api/v1/events/stream", testToken, nil, nil); res.StatusCode != 503 {
		t.Errorf("stream after shutdown began: %d, want 503", res.StatusCode)
	}
}

func TestEventStreamLimitsSubscribers(t *testing.T) {
	e := newISOEnvWith(t, func(d *server.Deps) { d.MaxEventStreams = 2 })
	openStream(t, e, "", nil)
	openStream(t, e, "", nil)
	res, b := e.do(t, "GET", "/api/v1/events/stream", testToken, nil, nil)
	if res.StatusCode != 503 || res.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "at most 2") {
		t.Fatalf("third stream: %d %q %s", res.StatusCode, res.Header.Get("Retry-After"), b)
	}
}

// Writers never wait for streams: with one stream nobody reads, many concurrent writers finish,
// and the stream then delivers every event exactly once, in id order.
func TestEventStreamMissesNothingFromConcurrentWritersAndNeverBlocksThem(t *testing.T) {
	e := newISOEnvWith(t, func(d *server.Deps) { d.EventHeartbeat = time.Hour })
	ctx := context.Background()
	const writers, each = 8, 50
	for w := range writers {
		addMachine(t, e, fmt.Sprintf("52:54:00:00:01:%02x", w))
	}
	idle := openStream(t, e, "", nil) // read only at the end
	live := openStream(t, e, "", nil)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := e.inv.AddEvent(ctx, fmt.Sprintf("52:54:00:00:01:%02x", w), "boot", fmt.Sprint(i)+strings.Repeat(".", 500)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	got := map[int64]bool{}
	var last int64
	for range writers * each {
		ev := live.next(t)
		if ev.ID <= last || got[ev.ID] {
			t.Fatalf("event %d after %d", ev.ID, last)
		}
		got[ev.ID], last = true, ev.ID
	}
	wg.Wait()
	var lastIdle int64
	for range writers * each {
		ev := idle.next(t)
		if !got[ev.ID] || ev.ID <= lastIdle {
			t.Fatalf("idle stream: event %d after %d", ev.ID, lastIdle)
		}
		lastIdle = ev.ID
	}
}

func TestRecentEventsOfAllMachinesOrOne(t *testing.T) {
	e := newISOEnv(t)
	ctx := context.Background()
	addMachine(t, e, "52:54:00:00:02:01")
	addMachine(t, e, "52:54:00:00:02:02")
	e.inv.AddEvent(ctx, "52:54:00:00:02:01", "boot", "x")
	var all, one, after []inventory.Event
	e.jsonCall(t, "GET", "/api/v1/events", "", 200, &all)
	if len(all) != 3 || all[0].Kind != "created" || all[2].Detail != "x" {
		t.Fatalf("all: %+v", all)
	}
	e.jsonCall(t, "GET", "/api/v1/events?machine=52:54:00:00:02:02&limit=5", "", 200, &one)
	if len(one) != 1 || one[0].MAC != "52:54:00:00:02:02" {
		t.Fatalf("one: %+v", one)
	}
	e.jsonCall(t, "GET", "/api/v1/events?after="+strconv.FormatInt(all[0].ID, 10), "", 200, &after)
	if len(after) != 2 || after[0].ID != all[1].ID {
		t.Fatalf("after: %+v", after)
	}
}

// A subscriber that stops reading is dropped once a write to it stalls for the write timeout;
// the writers recording events never wait for it.
func TestEventStreamDropsASubscriberThatStopsReading(t *testing.T) {
	e := newISOEnvWith(t, func(d *server.Deps) { d.EventWriteTimeout = 300 * time.Millisecond; d.EventHeartbeat = time.Hour })
	ctx := context.Background()
	const machines = 2
	for m := range machines {
		addMachine(t, e, fmt.Sprintf("52:54:00:00:03:%02x", m))
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /api/v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", testToken)
	// Wait until the stream is open, reading nothing of it.
	for deadline := time.Now().Add(time.Minute); e.api.OpenStreams() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("stream not open within a minute")
		}
	}
	// Up to 64 MiB of events: far more than the socket buffers between them hold.
	detail := strings.Repeat("x", 64<<10)
	for range 500 {
		for m := range machines {
			if err := e.inv.AddEvent(ctx, fmt.Sprintf("52:54:00:00:03:%02x", m), "boot", detail); err != nil {
				t.Fatal(err)
			}
		}
		if e.api.OpenStreams() == 0 {
			break
		}
	}
	for deadline := time.Now().Add(time.Minute); e.api.OpenStreams() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stalled subscriber still holds its stream a minute later")
		}
	}
}
