// Package client talks to a fleetboot server's HTTP API (ISOs, machines, profiles, rules): the
// CLI's `iso`, `machine`, `profile` and `rule` commands use it. ISO
// uploads go through the resumable upload API in chunks, so an upload cut off at 7 of 9 GB
// continues from 7 GB — within one run (retries) and across runs (the upload id is remembered
// per file in the user's cache directory).
package client

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/fleetboot/fleetboot/internal/httpapi"
	"hash"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Client is a fleetboot API client.
type Client struct {
	// Base is the server's base URL, e.g. http://10.0.0.5:8080.
	Base string
	// Token is the API bearer token.
	Token string
	// HTTP is the client used; nil means one without an overall timeout (uploads are long).
	HTTP *http.Client
	// ChunkSize is the PATCH size for uploads (default 64 MiB).
	ChunkSize int64
	// StateDir remembers unfinished uploads between runs ("" disables).
	StateDir string
	// Retries is how often a failed chunk is retried (with backoff) before giving up; 0 means 8.
	Retries int
	// Backoff is the wait before the first retry of a chunk, growing linearly with each
	// further failure (default 1s).
	Backoff time.Duration
	// BusyWait bounds how long an upload waits in all for a server that answers 503 with
	// Retry-After because it is running its --max-uploads already (default 1h). Such answers
	// are not failures: the chunk is sent again after the wait the server asked for.
	BusyWait time.Duration
	// Notice, when set, is told why an upload is waiting (a busy server), for a CLI to show.
	Notice func(msg string)

	busyCap time.Duration // the longest single wait for a busy server; 0 means maxBusyWait
}

// ErrUnreachable marks errors where no connection to the server could be made at all
// (errors.Is); errors.As gives the *UnreachableError with the server and the cause.
var ErrUnreachable = errors.New("cannot reach fleetboot")

// UnreachableError is a connection to Base that could not be made: refused, no route,
// unknown host.
type UnreachableError struct {
	Base string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach fleetboot at %s: %v", e.Base, e.Err)
}

// Unwrap gives the cause (a *net.OpError, *net.DNSError, …).
func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// ISO is the server's description of a stored ISO.
type ISO = httpapi.ISOInfo

// APIError is a non-2xx answer; Message is the server's {"error": …} text.
type APIError struct {
	Status  int
	Message string
	// RetryAfter is the answer's Retry-After in seconds (0 when absent or an HTTP date).
	RetryAfter time.Duration
}

func (e *APIError) Error() string { return fmt.Sprintf("server said %d: %s", e.Status, e.Message) }

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{}
}

func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, body io.Reader, out any) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		return res, apiError(res)
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			return res, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return res, nil
}

// apiError reads a non-2xx answer's {"error": …} body (or its text, or for a HEAD the status).
func apiError(res *http.Response) *APIError {
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	if e.Error == "" {
		e.Error = http.StatusText(res.StatusCode)
	}
	ae := &APIError{Status: res.StatusCode, Message: e.Error}
	if secs, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && secs > 0 {
		ae.RetryAfter = time.Duration(secs) * time.Second
	}
	return ae
}

// transportError names the server when it could not be reached at all (refused, no route,
// unknown host), which is almost always a wrong --server or a server that is not running.
func (c *Client) transportError(err error) error {
	var op *net.OpError
	var dns *net.DNSError
	if (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns) {
		return &UnreachableError{Base: c.Base, Err: err}
	}
	return err
}

// ListISOs lists the stored ISOs.
func (c *Client) ListISOs(ctx context.Context) ([]ISO, error) {
	var out []ISO
	_, err := c.do(ctx, http.MethodGet, "/api/v1/isos", nil, nil, &out)
	return out, err
}

// GetISO returns one ISO by id or name.
func (c *Client) GetISO(ctx context.Context, idOrName string) (*ISO, error) {
	var out ISO
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/isos/"+url.PathEscape(idOrName), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteISO deletes an ISO; force deletes it even while a profile uses it.
func (c *Client) DeleteISO(ctx context.Context, idOrName string, force bool) error {
	p := "/api/v1/isos/" + url.PathEscape(idOrName)
	if force {
		p += "?force=1"
	}
	_, err := c.do(ctx, http.MethodDelete, p, nil, nil, nil)
	return err
}

// RegisterISO makes the server use an ISO already on its own disk (no copy).
func (c *Client) RegisterISO(ctx context.Context, name, serverPath string) (*ISO, error) {
	b, _ := json.Marshal(map[string]string{"name": name, "path": serverPath})
	var out ISO
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/isos/register", jsonHeader(), bytes.NewReader(b), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func jsonHeader() http.Header { return http.Header{"Content-Type": {"application/json"}} }

// Progress is told how many bytes the server holds of total.
type Progress func(done, total int64)

// Errors of UploadISO found before a byte is sent.
var (
	// ErrNotISO9660: the file has no ISO 9660 primary volume descriptor, so the server would
	// refuse it after the whole upload.
	ErrNotISO9660 = errors.New("not an ISO 9660 image")
	// ErrNameTaken: the server has an ISO of that name with other content.
	ErrNameTaken = errors.New("name already used by another ISO")
)

// InterruptedError is an upload stopped by its context (Ctrl-C). Nothing is lost: the
// server keeps what it received, the upload stays resumable, and UploadISO of the same file
// under the same name continues from Offset.
type InterruptedError struct {
	// Offset is how many bytes the server holds (asked after the interruption; the last
	// confirmed offset when it could not be asked); Size is the file's size.
	Offset, Size int64
	Err          error
}

// Percent is the share of the file the server holds, rounded down.
func (e *InterruptedError) Percent() int64 {
	if e.Size <= 0 {
		return 0
	}
	return e.Offset * 100 / e.Size
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("upload interrupted at %d %% (%d of %d bytes on the server; resumable): %v", e.Percent(), e.Offset, e.Size, e.Err)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// iso9660Magic is the standard identifier of every ISO 9660 volume descriptor; the first
// descriptor (the primary one) starts at sector 16 (ECMA-119 §8.1), after the system area.
const (
	iso9660Magic      = "CD001"
	iso9660PVDOffset  = 16 * 2048
	iso9660MagicStart = iso9660PVDOffset + 1 // after the descriptor's type byte
)

// checkISO9660 fails with ErrNotISO9660 unless sector 16 holds a volume descriptor: one read
// of 6 bytes instead of streaming gigabytes to be told so.
func checkISO9660(f *os.File, path string) error {
	var b [len(iso9660Magic)]byte
	n, err := f.ReadAt(b[:], iso9660MagicStart)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if n < len(b) || string(b[:]) != iso9660Magic {
		return fmt.Errorf("%s: %w: no %q volume descriptor at sector 16 (byte %d); nothing was uploaded "+
			"(a compressed image must be unpacked first, and a disk image (.img) is not an ISO)", path, ErrNotISO9660, iso9660Magic, iso9660MagicStart)
	}
	return nil
}

// UploadISO uploads the file at path under name through the resumable API. The file is
// checked for an ISO 9660 volume descriptor first. When the server already has an ISO of that
// name, nothing is sent: the same content is returned with Existed set, other content fails
// with ErrNameTaken. An unfinished upload of the same file (same path, size and modification
// time, same server, same name) is resumed. The file is hashed as the server confirms each
// chunk, and the published ISO's sha256 must match: bytes damaged on the way would fail the
// upload rather than publish silently. When ctx ends mid-way the error is an
// *InterruptedError and the upload stays resumable.
func (c *Client) UploadISO(ctx context.Context, path, name string, progress Progress) (*ISO, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if err := checkISO9660(f, path); err != nil {
		return nil, err
	}
	if name == "" {
		name = filepath.Base(path)
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	size := st.Size()
	if stored, err := c.GetISO(ctx, name); err == nil && stored.Name == name {
		return c.sameAsStored(ctx, f, path, size, stored)
	} else if ae := (*APIError)(nil); err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
		return nil, err
	}
	id, offset := "", int64(0)
	iso, err := c.upload(ctx, f, path, name, st, progress, &id, &offset)
	if err != nil && ctx.Err() != nil {
		return nil, c.interrupted(ctx, id, offset, size)
	}
	return iso, err
}

// sameAsStored compares the file with the ISO the server has under its name: the same
// content is simply there (Existed), other content is ErrNameTaken. Only a file of the
// stored size is hashed.
func (c *Client) sameAsStored(ctx context.Context, f *os.File, path string, size int64, stored *ISO) (*ISO, error) {
	taken := func() error {
		return fmt.Errorf("%w: the server's %q (id %s, %d bytes) is not %s: choose another --name, or delete it first (fleetboot iso rm %s)",
			ErrNameTaken, stored.Name, stored.ID, stored.Size, path, stored.Name)
	}
	if stored.Size != size {
		return nil, taken()
	}
	h := sha256.New()
	if _, err := io.Copy(h, &ctxReader{ctx: ctx, r: io.NewSectionReader(f, 0, size)}); err != nil {
		if ctx.Err() != nil {
			return nil, &InterruptedError{Size: size, Err: ctx.Err()}
		}
		return nil, fmt.Errorf("hash %s: %w", path, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != stored.SHA256 {
		return nil, taken()
	}
	stored.Existed = true
	return stored, nil
}

// ctxReader stops reading once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// interrupted asks the server how much of upload id it holds, with a context of its own (the
// caller's has ended), so that the user learns where a rerun continues.
func (c *Client) interrupted(ctx context.Context, id string, offset, size int64) error {
	if id != "" {
		ask, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		if o, err := c.offset(ask, id); err == nil {
			offset = o
		}
		cancel()
	}
	return &InterruptedError{Offset: offset, Size: size, Err: ctx.Err()}
}

// upload runs the resumable protocol; *id and *offset follow the upload and what the server
// confirmed, for the caller to report an interruption.
func (c *Client) upload(ctx context.Context, f *os.File, path, name string, st os.FileInfo, progress Progress, idp *string, offp *int64) (*ISO, error) {
	size := st.Size()
	state := c.statePath(path, name, st)
	id, offset, err := c.resume(ctx, state)
	if err != nil {
		return nil, err
	}
	if id == "" {
		var created struct {
			ID string `json:"id"`
		}
		b, _ := json.Marshal(map[string]any{"name": name, "size": size})
		if _, err := c.do(ctx, http.MethodPost, "/api/v1/uploads", jsonHeader(), bytes.NewReader(b), &created); err != nil {
			return nil, fmt.Errorf("start upload: %w", err)
		}
		id, offset = created.ID, 0
		c.saveState(state, id)
	}
	*idp = id
	defer func() { *offp = offset }()
	chunk := c.ChunkSize
	if chunk <= 0 {
		chunk = 64 << 20
	}
	retries := c.Retries
	if retries <= 0 {
		retries = 8
	}
	backoff := c.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	busyLeft := c.BusyWait
	if busyLeft <= 0 {
		busyLeft = time.Hour
	}
	sum := &fileHash{f: f, h: sha256.New()}
	progress(offset, size)
	failures := 0
	for offset < size {
		if err := sum.upTo(offset); err != nil {
			return nil, err
		}
		n := min(chunk, size-offset)
		newOffset, err := c.patch(ctx, id, f, offset, n, size, progress)
		if err == nil {
			offset, failures = newOffset, 0
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Status != http.StatusConflict && ae.Status < 500 {
			return nil, fmt.Errorf("upload %s at byte %d: %w", id, offset, err)
		}
		if wait, ok := c.busy(ae, busyLeft); ok {
			// The server runs as many uploads as it takes (--max-uploads) and says when to
			// come back: wait our turn, which is not a failure of this upload.
			if c.Notice != nil {
				c.Notice(fmt.Sprintf("server busy (%s); waiting %v", ae.Message, wait))
			}
			busyLeft -= wait
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		failures++
		if failures > retries {
			return nil, fmt.Errorf("upload %s: giving up at byte %d after %d failures (run again to resume): %w", id, offset, failures-1, err)
		}
		select {
		case <-time.After(time.Duration(failures) * backoff):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// The server knows best how much it kept.
		if o, err := c.offset(ctx, id); err == nil {
			offset = o
			progress(offset, size)
		}
	}
	if err := sum.upTo(size); err != nil {
		return nil, err
	}
	var iso ISO
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/uploads/"+id+"/finish", nil, nil, &iso); err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status < 500 {
			c.clearState(state) // the server refused the content; a rerun must start afresh
		}
		return nil, fmt.Errorf("finish upload: %w", err)
	}
	c.clearState(state)
	if local := hex.EncodeToString(sum.h.Sum(nil)); iso.SHA256 != local {
		return &iso, fmt.Errorf("upload %s: the server stored sha256 %s but %s has %s: delete ISO %s and upload again",
			id, iso.SHA256, path, local, iso.ID)
	}
	return &iso, nil
}

// maxBusyWait caps one wait for a busy server, whatever its Retry-After says.
const maxBusyWait = 2 * time.Minute

// busy says whether ae is a server's "come back later" (503 with Retry-After) and how long to
// wait before that, within the budget left.
func (c *Client) busy(ae *APIError, left time.Duration) (time.Duration, bool) {
	if ae == nil || ae.Status != http.StatusServiceUnavailable || ae.RetryAfter <= 0 || left <= 0 {
		return 0, false
	}
	limit := c.busyCap
	if limit <= 0 {
		limit = maxBusyWait
	}
	return min(ae.RetryAfter, limit, left), true
}

// fileHash hashes a file front to back as the server confirms bytes, reading them again
// (from the page cache, just after they were sent): a resumed upload then still ends with the
// hash of exactly the bytes the server holds.
type fileHash struct {
	f   *os.File
	h   hash.Hash
	pos int64
}

func (s *fileHash) upTo(end int64) error {
	if end <= s.pos {
		return nil
	}
	n, err := io.Copy(s.h, io.NewSectionReader(s.f, s.pos, end-s.pos))
	s.pos += n
	if err == nil && s.pos != end {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("hash %s: %w", s.f.Name(), err)
	}
	return nil
}

// send adds the API token to req and sends it; a failure to reach the server comes back as
// transportError words it.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	res, err := c.http().Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	return res, nil
}

// patch sends bytes [offset, offset+n) of f and returns the server's new offset.
func (c *Client) patch(ctx context.Context, id string, f *os.File, offset, n, total int64, progress Progress) (int64, error) {
	body := &countingReader{r: io.NewSectionReader(f, offset, n), report: func(k int64) { progress(offset+k, total) }}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, strings.TrimRight(c.Base, "/")+"/api/v1/uploads/"+id, body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	res, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		return 0, apiError(res)
	}
	o, err := strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || o < offset || o > total {
		return 0, fmt.Errorf("upload %s: server answered Upload-Offset %q to a chunk at %d", id, res.Header.Get("Upload-Offset"), offset)
	}
	return o, nil
}

func (c *Client) offset(ctx context.Context, id string) (int64, error) {
	res, err := c.do(ctx, http.MethodHead, "/api/v1/uploads/"+id, nil, nil, nil)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
}

// statePath names the file remembering an upload of this file under this name to this server.
func (c *Client) statePath(path, name string, st os.FileInfo) string {
	if c.StateDir == "" {
		return ""
	}
	abs, _ := filepath.Abs(path)
	h := sha1.Sum([]byte(fmt.Sprintf("%s|%s|%s|%d|%d", strings.TrimRight(c.Base, "/"), abs, name, st.Size(), st.ModTime().UnixNano())))
	return filepath.Join(c.StateDir, hex.EncodeToString(h[:])+".upload")
}

// resume returns the remembered upload and the server's offset for it. An upload the server
// no longer knows is forgotten; any other failure (server down, …) keeps the state so that a
// later run can still resume.
func (c *Client) resume(ctx context.Context, state string) (string, int64, error) {
	if state == "" {
		return "", 0, nil
	}
	b, err := os.ReadFile(state)
	if err != nil {
		return "", 0, nil
	}
	id := strings.TrimSpace(string(b))
	if id == "" || strings.ContainsAny(id, "/?#") {
		os.Remove(state)
		return "", 0, nil
	}
	o, err := c.offset(ctx, id)
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusGone) {
		os.Remove(state) // expired, aborted or finished elsewhere
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("resume upload %s: %w", id, err)
	}
	return id, o, nil
}

func (c *Client) saveState(state, id string) {
	if state == "" {
		return
	}
	os.MkdirAll(filepath.Dir(state), 0o700)
	os.WriteFile(state, []byte(id+"\n"), 0o600)
}

func (c *Client) clearState(state string) {
	if state != "" {
		os.Remove(state)
	}
}

type countingReader struct {
	r      io.Reader
	n      int64
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.report(c.n)
	return n, err
}
