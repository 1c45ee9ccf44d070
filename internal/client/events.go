package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Events returns the newest limit events (0: the server's default, 100) of machine mac, or of
// every machine when mac is "", oldest first.
func (c *Client) Events(ctx context.Context, mac string, limit int) ([]Event, error) {
	q := url.Values{}
	if mac != "" {
		q.Set("machine", mac)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	p := "/api/v1/events"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out []Event
	err := c.sendJSON(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// FollowEvents calls fn with every timeline event of machine mac (every machine when ""),
// recorded after the event with id after (after < 0: only events from now on), as the
// server's live stream delivers them. A broken stream is reopened where it stopped
// (Last-Event-ID), so no event is lost or repeated; only when the server cannot be reached
// Retries times in a row (backoff as for uploads) does FollowEvents give up. It returns when
// ctx ends (nil), fn fails (fn's error) or the server refuses the stream (an *APIError: bad
// MAC, wrong token). A machine not seen yet may be followed: its events arrive once it is.
func (c *Client) FollowEvents(ctx context.Context, mac string, after int64, fn func(Event) error) error {
	retries := c.Retries
	if retries <= 0 {
		retries = 8
	}
	backoff := c.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	failures := 0
	for {
		delivered, err := c.followOnce(ctx, mac, after, func(e Event) error {
			after = e.ID
			return fn(e)
		})
		if ctx.Err() != nil {
			return nil
		}
		var fnErr callbackError
		var apiErr *APIError
		switch {
		case errors.As(err, &fnErr):
			return fnErr.error
		case errors.As(err, &apiErr) && apiErr.Status != http.StatusServiceUnavailable:
			return err
		}
		if delivered {
			failures = 0
		}
		if failures++; failures > retries {
			return fmt.Errorf("event stream: gave up after %d attempts: %w", failures, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(failures) * backoff):
		}
	}
}

// callbackError is fn's own error, to tell it apart from the stream's.
type callbackError struct{ error }

// followOnce reads one connection of the stream until it breaks. connected says whether the
// server accepted it (then a later failure starts a fresh count of retries).
func (c *Client) followOnce(ctx context.Context, mac string, after int64, fn func(Event) error) (connected bool, err error) {
	p := "/api/v1/events/stream"
	if mac != "" {
		p += "?machine=" + url.QueryEscape(mac)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.Base, "/")+p, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if after >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	res, err := c.send(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return false, apiError(res)
	}
	err = readSSE(res.Body, func(id, data string) error {
		var e Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return fmt.Errorf("event stream: event %s: %w", id, err)
		}
		if err := fn(e); err != nil {
			return callbackError{err}
		}
		return nil
	})
	if err == nil {
		err = io.ErrUnexpectedEOF // the server ended the stream (it is shutting down)
	}
	return true, err
}

// readSSE parses a text/event-stream body (the WHATWG server-sent events format: fields
// "id", "data" (lines joined by \n), comments and "retry" ignored, an empty line ends an
// event) and calls fn for each event with data.
func readSSE(r io.Reader, fn func(id, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(data) > 0 {
				if err := fn(id, strings.Join(data, "\n")); err != nil {
					return err
				}
			}
			data = data[:0]
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "data":
			data = append(data, value)
		}
	}
	return sc.Err()
}
