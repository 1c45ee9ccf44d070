package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/client"
	"github.com/fleetboot/fleetboot/internal/client/clienttest"
	"github.com/fleetboot/fleetboot/internal/inventory"
)

// cutAfterFirstEvent ends the first event stream right after its first event is written, the
// way a proxy restart or a lost connection would.
type cutWriter struct {
	http.ResponseWriter
	cut     func()
	written *bool
}

func (w cutWriter) Write(b []byte) (int, error) {
	i := strings.Index(string(b), "\n\n")
	if strings.HasPrefix(string(b), "id: ") && i > 0 {
		// Only the first event gets through, then the connection ends.
		n, err := w.ResponseWriter.Write(b[:i+2])
		*w.written = true
		return n, err
	}
	return w.ResponseWriter.Write(b)
}

func (w cutWriter) Flush() {
	w.ResponseWriter.(http.Flusher).Flush()
	if *w.written {
		w.cut()
	}
}

func TestFollowEventsResumesAfterTheStreamBreaksWithoutLosingOrRepeating(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	srv := clienttest.Start(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/events/stream" {
				h.ServeHTTP(w, r)
				return
			}
			mu.Lock()
			lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
			first := len(lastIDs) == 1
			mu.Unlock()
			if first {
				ctx, cancel := context.WithCancel(r.Context())
				defer cancel()
				h.ServeHTTP(cutWriter{w, cancel, new(bool)}, r.WithContext(ctx))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	const mac = "52:54:00:00:00:01"
	if _, err := srv.Inv.CreateMachine(ctx, mac, inventory.MachineUpdate{}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		srv.Inv.AddEvent(ctx, mac, "boot", fmt.Sprint(i))
	}
	c := &client.Client{Base: srv.URL, Token: clienttest.Token, Backoff: time.Millisecond}
	var got []string
	stop := errors.New("enough")
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := c.FollowEvents(fctx, mac, 0, func(e client.Event) error {
		got = append(got, e.Kind+":"+e.Detail)
		if len(got) == 6 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("FollowEvents: %v (got %v)", err, got)
	}
	want := "created:added by operator boot:0 boot:1 boot:2 boot:3 boot:4"
	if strings.Join(got, " ") != want {
		t.Fatalf("events:\n got %v\nwant %s", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lastIDs) < 2 || lastIDs[0] != "0" || lastIDs[1] == "" || lastIDs[1] == "0" {
		t.Fatalf("Last-Event-ID of the streams: %q (the second must resume after the first event)", lastIDs)
	}
}

func TestFollowEventsStopsOnRefusal(t *testing.T) {
	srv := clienttest.Start(t, nil)
	// A machine not seen yet is followed (its events come when it is); a malformed MAC and a
	// wrong token are refusals, which end the follow with the server's answer.
	c := &client.Client{Base: srv.URL, Token: clienttest.Token}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.FollowEvents(ctx, "not-a-mac", -1, func(client.Event) error { return nil })
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
		t.Fatalf("malformed MAC: %v", err)
	}
	bad := &client.Client{Base: srv.URL, Token: "wrong-token-0123456789"}
	err = bad.FollowEvents(ctx, "", -1, func(client.Event) error { return nil })
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
}
