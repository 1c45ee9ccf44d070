// Package client talks to a fleetboot server's HTTP API: the CLI's `iso` commands use it. ISO
// uploads go through the resumable upload API in chunks, so an upload cut off at 7 of 9 GB
// continues from 7 GB — within one run (retries) and across runs (the upload id is remembered
// per file in the user's cache directory).
package client

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// Retries is how often a failed chunk is retried (with backoff) before giving up.
	Retries int
}

// ISO is the server's description of a stored ISO.
type ISO struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Label      string          `json:"label"`
	Size       int64           `json:"size"`
	SHA256     string          `json:"sha256"`
	Files      int             `json:"files"`
	UploadedAt time.Time       `json:"uploaded_at"`
	Path       string          `json:"path,omitempty"`
	Detected   json.RawMessage `json:"detected,omitempty"`
}

// APIError is a non-2xx answer.
type APIError struct {
	Status  int
	Message string
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
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	res, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return res, &APIError{Status: res.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			return res, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return res, nil
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
	_, err := c.do(ctx, http.MethodGet, "/api/v1/isos/"+url.PathEscape(idOrName), nil, nil, &out)
	return &out, err
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
	_, err := c.do(ctx, http.MethodPost, "/api/v1/isos/register", http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(b), &out)
	return &out, err
}

// Progress is told how many bytes the server holds of total.
type Progress func(done, total int64)

// UploadISO uploads the file at path under name through the resumable API. An unfinished
// upload of the same file (same path, size and modification time, same server) is resumed.
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
	if name == "" {
		name = filepath.Base(path)
	}
	if progress == nil {
		progress = func(int64, int64) {}
	}
	state := c.statePath(path, st)
	id, offset := c.resume(ctx, state)
	if id == "" {
		var created struct {
			ID string `json:"id"`
		}
		b, _ := json.Marshal(map[string]any{"name": name, "size": st.Size()})
		if _, err := c.do(ctx, http.MethodPost, "/api/v1/uploads", http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(b), &created); err != nil {
			return nil, fmt.Errorf("start upload: %w", err)
		}
		id, offset = created.ID, 0
		c.saveState(state, id)
	}
	chunk := c.ChunkSize
	if chunk <= 0 {
		chunk = 64 << 20
	}
	retries := c.Retries
	if retries <= 0 {
		retries = 8
	}
	progress(offset, st.Size())
	failures := 0
	for offset < st.Size() {
		n := min(chunk, st.Size()-offset)
		newOffset, err := c.patch(ctx, id, f, offset, n, st.Size(), progress)
		if err == nil {
			offset, failures = newOffset, 0
			continue
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Status != http.StatusConflict && ae.Status < 500 {
			return nil, err
		}
		failures++
		if failures > retries {
			return nil, fmt.Errorf("upload %s: giving up at byte %d after %d failures (run again to resume): %w", id, offset, failures-1, err)
		}
		select {
		case <-time.After(time.Duration(failures) * time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// The server knows best how much it kept.
		if o, err := c.offset(ctx, id); err == nil {
			offset = o
		}
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
	return &iso, nil
}

func (c *Client) patch(ctx context.Context, id string, f *os.File, offset, n, total int64, progress Progress) (int64, error) {
	body := &countingReader{r: io.NewSectionReader(f, offset, n), report: func(k int64) { progress(offset+k, total) }}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, strings.TrimRight(c.Base, "/")+"/api/v1/uploads/"+id, body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	req.Header.Set("Authorization", "Bearer "+c.Token)
	res, err := c.http().Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil {
			e.Error = strings.TrimSpace(string(b))
		}
		return 0, &APIError{Status: res.StatusCode, Message: e.Error}
	}
	return strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
}

func (c *Client) offset(ctx context.Context, id string) (int64, error) {
	res, err := c.do(ctx, http.MethodHead, "/api/v1/uploads/"+id, nil, nil, nil)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
}

// statePath names the file remembering an upload of this file to this server.
func (c *Client) statePath(path string, st os.FileInfo) string {
	if c.StateDir == "" {
		return ""
	}
	abs, _ := filepath.Abs(path)
	h := sha1.Sum([]byte(fmt.Sprintf("%s|%s|%d|%d", strings.TrimRight(c.Base, "/"), abs, st.Size(), st.ModTime().UnixNano())))
	return filepath.Join(c.StateDir, hex.EncodeToString(h[:])+".upload")
}

func (c *Client) resume(ctx context.Context, state string) (string, int64) {
	if state == "" {
		return "", 0
	}
	b, err := os.ReadFile(state)
	if err != nil {
		return "", 0
	}
	id := strings.TrimSpace(string(b))
	o, err := c.offset(ctx, id)
	if err != nil {
		os.Remove(state) // expired or finished elsewhere
		return "", 0
	}
	return id, o
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
