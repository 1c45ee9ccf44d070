package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"
)

// uploadSlot takes one of the Config.MaxUploads slots for an upload request, or answers 503
// with Retry-After when all are taken: disk bandwidth is shared, and an unbounded number of
// streams would each get a trickle while holding a goroutine, a file and a connection.
func (a *API) uploadSlot(c echo.Context) (release func(), err error) {
	if a.uploads == nil {
		return func() {}, nil
	}
	select {
	case a.uploads <- struct{}{}:
		return func() { <-a.uploads }, nil
	default:
		a.m.HTTPLimited.WithLabelValues("uploads").Inc()
		c.Response().Header().Set("Retry-After", "30")
		return nil, httpError(http.StatusServiceUnavailable, fmt.Sprintf(
			"%d uploads are running, the most this server takes at once (--max-uploads): retry in 30 s", cap(a.uploads)))
	}
}

// bodyIdle is the /api/v1 middleware that gives a request body Config.BodyIdleTimeout per
// read: a client that stops sending mid-body is cut off, one that sends slowly is not. Boot
// paths have no bodies and are not affected; response writes have no timeout at all, since
// firmware downloads big files slowly.
func (a *API) bodyIdle(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if a.cfg.BodyIdleTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(c.Response().Writer)
			orig := r.Body
			r.Body = &idleBody{ReadCloser: orig, rc: rc, idle: a.cfg.BodyIdleTimeout}
			defer func() {
				// net/http decides what to do with a body the handler left unread (a refused
				// upload) by its own body type: more than 256 KiB declared → answer at once
				// and close; less or unknown → read it first. So it gets its body back, and
				// that read gets the idle timeout too: a refused client that stalls must not
				// hold the connection, nor wait for its answer, for ever.
				r.Body = orig
				_ = rc.SetReadDeadline(time.Now().Add(a.cfg.BodyIdleTimeout))
			}()
		}
		return next(c)
	}
}

// idleBody moves the connection's read deadline forward before every read.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	// An error here means the writer cannot set deadlines (a test recorder): read without.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.ReadCloser.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("request body: nothing received for %v: %w", b.idle, io.ErrUnexpectedEOF)
	}
	return n, err
}
