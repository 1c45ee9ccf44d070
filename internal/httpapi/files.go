package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/ipxe"
)

// sendfileWriter is the response writer file bodies go through. echo's Response wrapper has
// no ReadFrom, so io.Copy through it would read the file into user space; this one forwards
// ReadFrom to net/http's own writer, which hands an *os.File (inside the io.LimitedReader that
// http.ServeContent makes) to sendfile(2). It also counts bytes and keeps the status for logs
// and metrics.
type sendfileWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *sendfileWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *sendfileWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *sendfileWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	// net/http copies the first 512 bytes through user space while the header is unwritten
	// (so it could sniff a Content-Type); with the header flushed first, the whole body of a
	// file-backed source goes out by sendfile.
	if fileBacked(r) {
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.n += n
	return n, err
}

// fileBacked reports whether r (or the reader an io.LimitedReader wraps) has a file descriptor
// net/http can sendfile from.
func fileBacked(r io.Reader) bool {
	if lr, ok := r.(*io.LimitedReader); ok {
		r = lr.R
	}
	_, ok := r.(syscall.Conn)
	return ok
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *sendfileWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveContent serves body with Range, If-Range, If-None-Match, If-Modified-Since and HEAD
// (http.ServeContent), writing past echo's wrapper so sendfile stays possible. Set ETag and
// Content-Type before the call; a missing Content-Type is taken from the name's extension
// and otherwise is application/octet-stream (ServeContent would sniff the first 512 bytes).
func serveContent(c echo.Context, name string, mod time.Time, etag string, body io.ReadSeeker) error {
	h := c.Response().Header()
	if etag != "" {
		h.Set("ETag", etag)
	}
	if h.Get("Content-Type") == "" {
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
	}
	w := &sendfileWriter{ResponseWriter: c.Response().Writer}
	http.ServeContent(w, c.Request(), name, mod, body)
	// Tell echo (and the observe middleware) what went out.
	c.Response().Committed = true
	c.Response().Status = w.status
	c.Response().Size = w.n
	return nil
}

// ipxeFile serves the iPXE binaries (UEFI HTTP Boot fetches them here) and autoexec.ipxe.
func (a *API) ipxeFile(c echo.Context) error {
	name := ipxe.CleanName(c.Param("file"))
	if name == ipxe.AutoexecScript {
		a.m.BootScripts.WithLabelValues(string(boot.KindAutoexec)).Inc()
		a.log.Info("autoexec script", "ip", remoteIP(c), "via", "http")
		return serveScript(c, ipxe.Autoexec(a.cfg.Scripts))
	}
	f, ok := a.cfg.Binaries.Get(name)
	if !ok {
		return httpError(http.StatusNotFound, fmt.Sprintf("no iPXE binary %q", c.Param("file")))
	}
	a.log.Info("ipxe binary", "file", name, "ip", remoteIP(c), "method", c.Request().Method, "range", c.Request().Header.Get("Range"))
	c.Response().Header().Set("Content-Type", "application/efi")
	if strings.HasSuffix(name, ".kpxe") {
		c.Response().Header().Set("Content-Type", "application/octet-stream")
	}
	return serveContent(c, name, f.ModTime, `"`+f.SHA256+`"`, f.Reader())
}

// asset serves <data>/assets. os.Root confines every lookup to that directory: "..", absolute
// paths and symlinks that leave it all fail.
func (a *API) asset(c echo.Context) error {
	if a.cfg.Assets == nil {
		return httpError(http.StatusNotFound, "no assets directory")
	}
	p, err := wildcardPath(c)
	if err != nil {
		return err
	}
	if p == "" || strings.HasSuffix(p, "/") {
		return httpError(http.StatusNotFound, "not found")
	}
	clean := path.Clean("/" + p)[1:]
	if clean != p {
		return httpError(http.StatusBadRequest, "path must be clean (no '..', '.', '//')")
	}
	f, err := a.cfg.Assets.Open(clean)
	if err != nil {
		return httpError(http.StatusNotFound, "not found")
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return httpError(http.StatusNotFound, "not found")
	}
	// nginx-style validator: mtime and size, no content hashing on the serving path.
	etag := fmt.Sprintf(`"%x-%x"`, st.ModTime().Unix(), st.Size())
	return serveContent(c, st.Name(), st.ModTime(), etag, f)
}

// wildcardPath is the decoded "*" route parameter. echo routes on the escaped path when the
// request spells it in a non-canonical way (RawPath set, e.g. "a%2Bb" or "%2e") and then hands
// the parameter over still escaped; decoding here means "%2e%2e" is seen as ".." and refused
// by the lookup rather than looked up literally.
func wildcardPath(c echo.Context) (string, error) {
	p := c.Param("*")
	if c.Request().URL.RawPath != "" {
		u, err := url.PathUnescape(p)
		if err != nil {
			return "", httpError(http.StatusBadRequest, "bad escape in path")
		}
		p = u
	}
	if strings.ContainsRune(p, 0) {
		return "", httpError(http.StatusBadRequest, "NUL in path")
	}
	return p, nil
}

// serveScript sends an iPXE script. Scripts change with machine state: never cache them.
func serveScript(c echo.Context, script []byte) error {
	h := c.Response().Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	return serveContent(c, "boot.ipxe", time.Time{}, "", bytes.NewReader(script))
}

var _ io.ReaderFrom = (*sendfileWriter)(nil)
