package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
)

// Defaults of the live event stream (GET /api/v1/events/stream).
const (
	// DefaultMaxEventStreams bounds the streams open at once: each holds a connection and a
	// goroutine and queries the database when events arrive.
	DefaultMaxEventStreams = 64
	// DefaultEventHeartbeat is how often an idle stream sends a comment line, so proxies and
	// load balancers with idle timeouts keep the connection and the client sees that the
	// server is alive.
	DefaultEventHeartbeat = 15 * time.Second
	// DefaultEventWriteTimeout drops a subscriber that does not take a batch of events within
	// this time (it stalls, or reads slower than the fleet writes). Its client reconnects with
	// Last-Event-ID and catches up from the database; nothing else waits for it.
	DefaultEventWriteTimeout = 30 * time.Second
	// eventBatch is the most events one stream reads from the database, and has in memory, at once.
	eventBatch = 200
)

// streams counts open event streams and ends them all at shutdown.
type streams struct {
	mu   sync.Mutex
	open int
	stop chan struct{}
}

func (s *streams) acquire(max int) (stop <-chan struct{}, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop == nil {
		s.stop = make(chan struct{})
	}
	if s.open >= max {
		return nil, false
	}
	s.open++
	return s.stop, true
}

// OpenStreams is how many live event streams are open now.
func (a *API) OpenStreams() int {
	a.streams.mu.Lock()
	defer a.streams.mu.Unlock()
	return a.streams.open
}

func (s *streams) release() {
	s.mu.Lock()
	s.open--
	s.mu.Unlock()
}

// StopStreams ends every open event stream (the server calls it when it shuts down: streams
// never end by themselves, and a graceful shutdown waits for open requests). Later streams
// are refused with 503.
func (a *API) StopStreams() {
	a.streams.mu.Lock()
	defer a.streams.mu.Unlock()
	if a.streams.stop == nil {
		a.streams.stop = make(chan struct{})
	}
	select {
	case <-a.streams.stop:
	default:
		close(a.streams.stop)
	}
}

// eventsMachine reads ?machine= (a MAC, "" for every machine); known says it must be a
// machine the inventory has (404 otherwise).
func (a *API) eventsMachine(c echo.Context, known bool) (string, error) {
	q := c.QueryParam("machine")
	if q == "" {
		return "", nil
	}
	mac := ipxe.NormalizeMAC(q)
	if mac == "" {
		return "", httpError(http.StatusBadRequest, fmt.Sprintf("machine %q is not a MAC address: %s", q, macFormat))
	}
	if !known {
		return mac, nil
	}
	if _, err := a.cfg.Inventory.Machine(c.Request().Context(), mac); err != nil {
		return "", err
	}
	return mac, nil
}

// recentEvents serves GET /api/v1/events[?machine=MAC][&limit=N][&after=ID]: the newest
// events of one machine or of all, oldest first; with after, the events after that id.
func (a *API) recentEvents(c echo.Context) error {
	mac, err := a.eventsMachine(c, true)
	if err != nil {
		return err
	}
	limit := 100
	if s := c.QueryParam("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return httpError(http.StatusBadRequest, "limit must be a positive number")
		}
	}
	ctx := c.Request().Context()
	var ev []inventory.Event
	switch after := c.QueryParam("after"); {
	case after != "":
		id, err := strconv.ParseInt(after, 10, 64)
		if err != nil || id < 0 {
			return httpError(http.StatusBadRequest, "after must be an event id (a number)")
		}
		ev, err = a.cfg.Inventory.EventsAfter(ctx, id, mac, limit)
		if err != nil {
			return err
		}
	case mac != "":
		ev, err = a.cfg.Inventory.Events(ctx, mac, limit)
	default:
		ev, err = a.cfg.Inventory.RecentEvents(ctx, limit)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ev)
}

// eventStream serves GET /api/v1/events/stream[?machine=MAC][&after=ID] as server-sent
// events: every timeline event from then on, one `data:` JSON object (inventory.Event) per
// event with its id in `id:`. Where it starts: the Last-Event-ID header (what a browser's
// EventSource sends when it reconnects), else ?after=, else the newest event now (only new
// events). Events come from the database, so a reconnect with the last id it saw misses
// nothing that is still in the timeline (each machine keeps its newest 500). A machine no
// instance has seen yet may be followed: its first events (its DHCP exchange, "discovered")
// arrive when it is powered on, or "created" when an operator adds it.
func (a *API) eventStream(c echo.Context) error {
	mac, err := a.eventsMachine(c, false)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	inv := a.cfg.Inventory
	var after int64
	from := c.Request().Header.Get("Last-Event-ID")
	if from == "" {
		from = c.QueryParam("after")
	}
	if from != "" {
		if after, err = strconv.ParseInt(strings.TrimSpace(from), 10, 64); err != nil || after < 0 {
			return httpError(http.StatusBadRequest, "Last-Event-ID / after must be an event id (a number)")
		}
	} else if after, err = inv.LastEventID(ctx); err != nil {
		return err
	}
	max := a.cfg.MaxEventStreams
	if max <= 0 {
		max = DefaultMaxEventStreams
	}
	stop, ok := a.streams.acquire(max)
	if !ok {
		c.Response().Header().Set("Retry-After", "10")
		return httpError(http.StatusServiceUnavailable, fmt.Sprintf("too many event streams open (at most %d); close one", max))
	}
	defer a.streams.release()
	select {
	case <-stop:
		return httpError(http.StatusServiceUnavailable, "fleetboot is shutting down")
	default:
	}
	beat := a.cfg.EventHeartbeat
	if beat <= 0 {
		beat = DefaultEventHeartbeat
	}

	res := c.Response()
	h := res.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx in front: pass events on at once
	res.WriteHeader(http.StatusOK)
	writeTimeout := a.cfg.EventWriteTimeout
	if writeTimeout <= 0 {
		writeTimeout = DefaultEventWriteTimeout
	}
	rc := http.NewResponseController(res)
	defer rc.SetWriteDeadline(time.Time{}) // the connection may serve further requests
	// A write that does not finish in time is a subscriber too slow or gone: drop it (its
	// client resumes from its last id). Nothing else waits for it: writers only wake it.
	write := func(b []byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := res.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	// retry: how long a browser waits before reconnecting after the stream broke.
	if err := write([]byte("retry: 2000\n: fleetboot event stream\n\n")); err != nil {
		return nil
	}
	tick := time.NewTicker(beat)
	defer tick.Stop()
	var buf []byte
	for {
		// Take the wake-up channel before reading: an event committed after the read closes it.
		woken := inv.EventsWritten()
		for {
			evs, err := inv.EventsAfter(ctx, after, mac, eventBatch)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				a.log.Warn("event stream: reading events", "err", err)
				break // try again at the next wake-up or heartbeat
			}
			if len(evs) == 0 {
				break
			}
			buf = buf[:0]
			for _, e := range evs {
				j, _ := json.Marshal(e)
				buf = fmt.Appendf(buf, "id: %d\ndata: %s\n\n", e.ID, j)
			}
			if err := write(buf); err != nil {
				a.log.Info("event stream subscriber dropped", "ip", remoteIP(c), "err", err)
				return nil
			}
			after = evs[len(evs)-1].ID
			if len(evs) < eventBatch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		case <-woken:
		case <-tick.C:
			// Also a safety net: the loop reads the database again after every heartbeat.
			if err := write([]byte(": keepalive\n\n")); err != nil {
				return nil
			}
		}
	}
}
