package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/config"
	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/httpapi"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/iso9660"
	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/provision"
	"github.com/fleetboot/fleetboot/internal/server"
)

const (
	testToken         = "test-token-0123456789"
	testReadOnlyToken = "test-readonly-0123456789"
)

// isoEnv is a real API (ISO store, inventory, provisioning, boot planner) on a temp data dir,
// built by server.Build as fleetboot serve builds it, behind a real loopback HTTP server.
type isoEnv struct {
	srv  *httptest.Server
	app  *server.App
	api  *httpapi.API
	base string
	data string
	isos *isostore.Store
	inv  *inventory.Inventory
	prov *provision.Service
}

func newISOEnv(t *testing.T) *isoEnv { t.Helper(); return newISOEnvWith(t, nil) }

// newISOEnvWith is newISOEnv with a hook that adjusts what Build gets (logger, limiter).
func newISOEnvWith(t *testing.T, adjust func(*server.Deps)) *isoEnv {
	t.Helper()
	return newISOEnvConfig(t, nil, adjust)
}

// newISOEnvConfig is newISOEnvWith that also adjusts the configuration (limits, timeouts).
func newISOEnvConfig(t *testing.T, adjustCfg func(*config.Config), adjust func(*server.Deps)) *isoEnv {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	chain, err := grub.LoadChain(fstest.MapFS{
		"shimx64.efi":    {Data: []byte("SIGNED-SHIM")},
		"grubnetx64.efi": {Data: []byte("SIGNED-GRUB")},
	}, "test")
	if err != nil {
		t.Fatal(err)
	}
	// The base URL goes into scripts and recipes, so the listener must exist first.
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	cfg := config.Default()
	cfg.DataDir, cfg.DHCPMode, cfg.MenuTimeout = data, config.DHCPOff, 0
	// The test's own temporary directories: where buildISO puts the images tests register.
	cfg.RegisterDirs = []string{filepath.Dir(t.TempDir())}
	if adjustCfg != nil {
		adjustCfg(&cfg)
	}
	deps := server.Deps{Binaries: testBinaries(t), Chain: chain, Tokens: auth.Tokens{Admin: testToken, ReadOnly: testReadOnlyToken},
		// The access tests send a hundred wrong tokens from one address; the limit on failed
		// sign-ins has its own test (TestFailedSignInsAreRateLimitedPerAddress).
		AuthLimiter: auth.NewLimiter(1<<20, time.Second, 16, nil)}
	if adjust != nil {
		adjust(&deps)
	}
	app, err := server.Build(ctx, cfg, &config.Resolved{HTTPBase: base}, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	srv.Config.Handler = app.API
	srv.Start()
	t.Cleanup(srv.Close)
	return &isoEnv{srv: srv, app: app, api: app.API, base: base, data: data, isos: app.ISOs, inv: app.Inventory, prov: app.Provision}
}

// do sends one request; token "" sends none. It returns the response and its whole body.
func (e *isoEnv) do(t *testing.T, method, path, token string, hdr map[string]string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return res, b
}

func (e *isoEnv) listISOs(t *testing.T) []httpapi.ISOInfo {
	t.Helper()
	res, b := e.do(t, "GET", "/api/v1/isos", testToken, nil, nil)
	if res.StatusCode != 200 {
		t.Fatalf("list: %d %s", res.StatusCode, b)
	}
	var out []httpapi.ISOInfo
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// putISO uploads the image at p under name and decodes the answer.
func (e *isoEnv) putISO(t *testing.T, name, p string, wantCode int) httpapi.ISOInfo {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, b := e.do(t, "PUT", "/api/v1/isos/"+name, testToken, map[string]string{"Content-Type": "application/octet-stream"}, f)
	if res.StatusCode != wantCode {
		t.Fatalf("PUT %s: %d, want %d: %s", name, res.StatusCode, wantCode, b)
	}
	var v httpapi.ISOInfo
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("PUT %s: %v: %s", name, err, b)
	}
	return v
}

// patternBytes is deterministic, non-repeating-looking content: a wrong offset shows up.
func patternBytes(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// buildISO writes files (path → content) and symlinks (path → target) into a tree and makes
// an ISO of it with `xorriso -as mkisofs -R -J`; it skips the test when xorriso is missing.
func buildISO(t testing.TB, files map[string][]byte, links map[string]string) string {
	t.Helper()
	x, err := exec.LookPath("xorriso")
	if err != nil {
		t.Skip("xorriso not installed (apt-get install xorriso)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "tree")
	for p, b := range files {
		fp := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fp, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		fp := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, fp); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "image.iso")
	cmd := exec.Command(x, "-as", "mkisofs", "-R", "-J", "-V", "FBTEST", "-quiet", "-o", out, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, b)
	}
	return out
}

// genericFiles is a small tree with a file big enough for sendfile and Range tests.
func genericFiles() map[string][]byte {
	return map[string][]byte{
		"README.TXT":          []byte("hello from the iso\n"),
		"boot/big.bin":        patternBytes(1, 300_000),
		"boot/sub/small.cfg":  []byte("set timeout=5\n"),
		"docs/space name.txt": []byte("spaces work\n"),
	}
}

// fedoraFiles is a Fedora Server DVD layout (real .treeinfo and grub.cfg from the distro
// package's fixtures; small stand-ins for kernel and initrd).
// bootConfigFile reads a real ISO's boot config from testdata/boot-configs.
func bootConfigFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "boot-configs", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fedoraFiles(t testing.TB) map[string][]byte {
	t.Helper()
	read := func(name string) []byte { return bootConfigFile(t, name) }
	return map[string][]byte{
		".treeinfo":                  read("fedora-41-server-dvd.treeinfo"),
		".discinfo":                  []byte("1729013212.512\n41\nx86_64\n"),
		"EFI/BOOT/grub.cfg":          read("fedora-41-server-dvd.grub.cfg"),
		"EFI/BOOT/BOOTX64.EFI":       patternBytes(2, 4096),
		"boot/grub2/grub.cfg":        read("fedora-41-server-dvd.grub.cfg"),
		"images/pxeboot/vmlinuz":     patternBytes(3, 200_000),
		"images/pxeboot/initrd.img":  patternBytes(4, 150_000),
		"images/install.img":         patternBytes(5, 8192),
		"repodata/repomd.xml":        []byte("<repomd/>"),
		"Packages/a/acl-2.3.2.rpm":   patternBytes(6, 1000),
		"Packages/b/bash-5.2.26.rpm": patternBytes(7, 1000),
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestISOPutUploadPublishesThenReportsExisting(t *testing.T) {
	e := newISOEnv(t)
	p := buildISO(t, fedoraFiles(t), nil)
	raw, _ := os.ReadFile(p)

	v := e.putISO(t, "fedora-41", p, http.StatusCreated)
	if v.SHA256 != sha256Hex(raw) || v.ID != v.SHA256[:16] || v.Size != int64(len(raw)) || v.Name != "fedora-41" {
		t.Fatalf("published ISO: %+v", v)
	}
	if v.Files != len(fedoraFiles(t)) || v.Label != "FBTEST" {
		t.Errorf("files %d label %q, want %d FBTEST", v.Files, v.Label, len(fedoraFiles(t)))
	}
	var det provision.Detection
	if err := json.Unmarshal(v.Detected, &det); err != nil || det.Family == "" || len(det.Recipes) == 0 {
		t.Fatalf("detected %s (err %v), want a family and recipes", v.Detected, err)
	}

	// Same content under another name: nothing new is stored, the existing ISO answers 200.
	again := e.putISO(t, "fedora-again", p, http.StatusOK)
	if !again.Existed || again.ID != v.ID || again.Name != "fedora-41" ||
		!strings.Contains(again.Message, `the name "fedora-again" was not added`) || !strings.Contains(again.Message, `use "fedora-41"`) {
		t.Fatalf("second upload: %+v", again)
	}
	// The same file under its own name again, without a checksum: 200, it is there.
	same := e.putISO(t, "fedora-41", p, http.StatusOK)
	if !same.Existed || same.ID != v.ID || !strings.Contains(same.Message, `already stored as "fedora-41"`) {
		t.Fatalf("same name again: %+v", same)
	}
	if res, _ := e.do(t, "GET", "/api/v1/isos/fedora-again", testToken, nil, nil); res.StatusCode != http.StatusNotFound {
		t.Fatalf("fedora-again became a name: %d", res.StatusCode)
	}
	if l := e.listISOs(t); len(l) != 1 {
		t.Fatalf("list after duplicate: %d ISOs, want 1", len(l))
	}
	res, b := e.do(t, "GET", "/api/v1/isos/fedora-41", testToken, nil, nil)
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(v.ID)) {
		t.Fatalf("get by name: %d %s", res.StatusCode, b)
	}
}

func TestISOMultipartUploadStreams(t *testing.T) {
	e := newISOEnv(t)
	p := buildISO(t, genericFiles(), nil)
	raw, _ := os.ReadFile(p)

	// The body is produced while it is sent (io.Pipe): the request has no length, so the
	// server cannot have relied on buffering a known-size body.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		mw.WriteField("name", "from-form")
		mw.WriteField("sha256", sha256Hex(raw))
		fw, err := mw.CreateFormFile("file", "ignored-because-name-came-first.iso")
		if err == nil {
			for off := 0; off < len(raw); off += 32 << 10 {
				if _, err = fw.Write(raw[off:min(off+32<<10, len(raw))]); err != nil {
					break
				}
			}
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	res, b := e.do(t, "POST", "/api/v1/isos", testToken, map[string]string{"Content-Type": mw.FormDataContentType()}, pr)
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("multipart: %d %s", res.StatusCode, b)
	}
	var v httpapi.ISOInfo
	json.Unmarshal(b, &v)
	if v.Name != "from-form" || v.SHA256 != sha256Hex(raw) {
		t.Fatalf("multipart result: %+v", v)
	}
	if loc := res.Header.Get("Location"); loc != "/api/v1/isos/"+v.ID {
		t.Errorf("Location %q", loc)
	}

	// Without a name part the file name names the ISO.
	var buf bytes.Buffer
	mw = multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "named-by-file.iso")
	fw.Write(raw)
	mw.Close()
	e.isos.Delete(context.Background(), v.ID, true)
	res, b = e.do(t, "POST", "/api/v1/isos", testToken, map[string]string{"Content-Type": mw.FormDataContentType()}, &buf)
	if res.StatusCode != http.StatusCreated || !bytes.Contains(b, []byte(`"name":"named-by-file.iso"`)) {
		t.Fatalf("multipart by file name: %d %s", res.StatusCode, b)
	}
}

func TestISOUploadChecksumMismatchAndNonISOAreRefused(t *testing.T) {
	e := newISOEnv(t)
	p := buildISO(t, genericFiles(), nil)
	raw, _ := os.ReadFile(p)
	wrong := sha256.Sum256([]byte("something else"))
	right := sha256.Sum256(raw)

	cases := []struct {
		name string
		hdr  map[string]string
		body []byte
		code int
	}{
		{"x-checksum mismatch", map[string]string{"X-Checksum-Sha256": hex.EncodeToString(wrong[:])}, raw, 422},
		{"digest mismatch", map[string]string{"Digest": "sha-256=" + base64.StdEncoding.EncodeToString(wrong[:])}, raw, 422},
		{"digest not base64 of 32 bytes", map[string]string{"Digest": "sha-256=AAAA"}, raw, 400},
		{"x-checksum not hex", map[string]string{"X-Checksum-Sha256": "xyz"}, raw, 400},
		{"not an ISO", nil, bytes.Repeat([]byte("not an iso "), 10000), 422},
		{"empty body", nil, nil, 422},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, b := e.do(t, "PUT", "/api/v1/isos/x.iso", testToken, c.hdr, bytes.NewReader(c.body))
			if res.StatusCode != c.code {
				t.Fatalf("%d, want %d: %s", res.StatusCode, c.code, b)
			}
			var msg map[string]string
			if json.Unmarshal(b, &msg) != nil || msg["error"] == "" {
				t.Errorf("error body %q is not {\"error\": ...}", b)
			}
			if l := e.listISOs(t); len(l) != 0 {
				t.Fatalf("a refused upload is listed: %+v", l)
			}
		})
	}
	// Both headers with the right sum are accepted.
	res, b := e.do(t, "PUT", "/api/v1/isos/ok.iso", testToken,
		map[string]string{"Digest": "sha-256=" + base64.StdEncoding.EncodeToString(right[:])}, bytes.NewReader(raw))
	if res.StatusCode != 201 {
		t.Fatalf("right Digest: %d %s", res.StatusCode, b)
	}
	// Staging leftovers of the refused uploads are gone.
	if left, _ := os.ReadDir(filepath.Join(e.data, "isos", "tmp")); len(left) != 0 {
		t.Errorf("tmp dir keeps %d files after refused uploads", len(left))
	}
}

// createUpload starts a resumable upload and returns its id.
func (e *isoEnv) createUpload(t *testing.T, name string, size int) string {
	t.Helper()
	res, b := e.do(t, "POST", "/api/v1/uploads", testToken, map[string]string{"Content-Type": "application/json"},
		strings.NewReader(fmt.Sprintf(`{"name":%q,"size":%d}`, name, size)))
	if res.StatusCode != 201 || res.Header.Get("Upload-Offset") != "0" {
		t.Fatalf("create upload: %d offset %q: %s", res.StatusCode, res.Header.Get("Upload-Offset"), b)
	}
	var u httpapi.UploadInfo
	if err := json.Unmarshal(b, &u); err != nil || u.ID == "" {
		t.Fatalf("create upload: %v %s", err, b)
	}
	if res.Header.Get("Location") != "/api/v1/uploads/"+u.ID {
		t.Errorf("Location %q", res.Header.Get("Location"))
	}
	return u.ID
}

func (e *isoEnv) uploadOffset(t *testing.T, id string) int64 {
	t.Helper()
	res, _ := e.do(t, "HEAD", "/api/v1/uploads/"+id, testToken, nil, nil)
	if res.StatusCode != 200 {
		t.Fatalf("HEAD upload: %d", res.StatusCode)
	}
	n, err := strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		t.Fatalf("HEAD upload: Upload-Offset %q", res.Header.Get("Upload-Offset"))
	}
	return n
}

func (e *isoEnv) patch(t *testing.T, id string, off int, chunk []byte) (*http.Response, []byte) {
	t.Helper()
	return e.do(t, "PATCH", "/api/v1/uploads/"+id, testToken, map[string]string{
		"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.Itoa(off)}, bytes.NewReader(chunk))
}

func TestResumableUploadSurvivesACutOffChunk(t *testing.T) {
	e := newISOEnv(t)
	p := buildISO(t, genericFiles(), nil)
	raw, _ := os.ReadFile(p)
	id := e.createUpload(t, "resumed.iso", len(raw))

	// First chunk: 100000 bytes.
	res, b := e.patch(t, id, 0, raw[:100000])
	if res.StatusCode != 204 || res.Header.Get("Upload-Offset") != "100000" {
		t.Fatalf("chunk 1: %d offset %q %s", res.StatusCode, res.Header.Get("Upload-Offset"), b)
	}
	// A chunk at the wrong offset is refused and says where the upload stands.
	res, b = e.patch(t, id, 5, raw[5:100])
	if res.StatusCode != http.StatusConflict || res.Header.Get("Upload-Offset") != "100000" {
		t.Fatalf("wrong offset: %d offset %q %s", res.StatusCode, res.Header.Get("Upload-Offset"), b)
	}
	if got := e.uploadOffset(t, id); got != 100000 {
		t.Fatalf("HEAD after wrong offset: %d", got)
	}
	// GET shows the same as JSON.
	res, b = e.do(t, "GET", "/api/v1/uploads/"+id, testToken, nil, nil)
	if res.StatusCode != 200 || !bytes.Contains(b, []byte(`"offset":100000`)) || res.Header.Get("Upload-Length") != strconv.Itoa(len(raw)) {
		t.Fatalf("GET upload: %d %s length %q", res.StatusCode, b, res.Header.Get("Upload-Length"))
	}
	// Finishing early is refused.
	if res, b := e.do(t, "POST", "/api/v1/uploads/"+id+"/finish", testToken, nil, nil); res.StatusCode != http.StatusConflict {
		t.Fatalf("early finish: %d %s", res.StatusCode, b)
	}

	// Second chunk announces 150000 bytes, sends 60000 and the client disconnects.
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH /api/v1/uploads/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 100000\r\nContent-Length: 150000\r\n\r\n", id, testToken)
	if _, err := conn.Write(raw[100000:160000]); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	// The server notices the disconnect, keeps what arrived and releases the upload.
	// Probe with an empty PATCH only once HEAD shows the cut-off chunk stored: a probe sent
	// before the server has even read that request could claim the upload first and make the
	// cut-off chunk be refused as busy, losing its bytes (seen under load with -race).
	deadline := time.Now().Add(time.Minute)
	var off int64
	for {
		res, _ := e.do(t, "HEAD", "/api/v1/uploads/"+id, testToken, nil, nil)
		off, _ = strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
		probeCode := 0
		if off == 160000 {
			probe, _ := e.patch(t, id, int(off), nil) // an empty chunk: 204 once the cut-off one let go
			if probeCode = probe.StatusCode; probeCode == 204 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the cut-off chunk: offset %d (want 160000), empty PATCH %d", off, probeCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The client resumes from the server's offset.
	res, b = e.patch(t, id, int(off), raw[off:])
	if res.StatusCode != 204 || res.Header.Get("Upload-Offset") != strconv.Itoa(len(raw)) {
		t.Fatalf("resume: %d offset %q %s", res.StatusCode, res.Header.Get("Upload-Offset"), b)
	}
	// One byte more than announced is refused.
	if res, b := e.patch(t, id, len(raw), []byte{0}); res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("byte past the announced size: %d %s", res.StatusCode, b)
	}
	res, b = e.do(t, "POST", "/api/v1/uploads/"+id+"/finish", testToken, nil, nil)
	if res.StatusCode != 201 {
		t.Fatalf("finish: %d %s", res.StatusCode, b)
	}
	var v httpapi.ISOInfo
	json.Unmarshal(b, &v)
	if v.SHA256 != sha256Hex(raw) || v.Name != "resumed.iso" {
		t.Fatalf("finished ISO: %+v", v)
	}
	// The upload is gone once published.
	if res, _ := e.do(t, "HEAD", "/api/v1/uploads/"+id, testToken, nil, nil); res.StatusCode != 404 {
		t.Errorf("HEAD after finish: %d, want 404", res.StatusCode)
	}
	// Aborting another upload removes it.
	id2 := e.createUpload(t, "aborted.iso", 10)
	if res, _ := e.do(t, "DELETE", "/api/v1/uploads/"+id2, testToken, nil, nil); res.StatusCode != 204 {
		t.Fatalf("abort: %d", res.StatusCode)
	}
	if res, _ := e.do(t, "HEAD", "/api/v1/uploads/"+id2, testToken, nil, nil); res.StatusCode != 404 {
		t.Errorf("HEAD after abort: %d, want 404", res.StatusCode)
	}
}

func TestISOFilesServeExactBytesWithHTTPSemantics(t *testing.T) {
	e := newISOEnv(t)
	files := genericFiles()
	v := e.putISO(t, "generic", buildISO(t, files, nil), http.StatusCreated)
	full := files["boot/big.bin"]

	for _, prefix := range []string{"/isos/" + v.ID, "/isos/generic"} {
		u := prefix + "/files/boot/big.bin"
		res, body := e.do(t, "GET", u, "", nil, nil)
		if res.StatusCode != 200 || !bytes.Equal(body, full) || res.Header.Get("Accept-Ranges") != "bytes" {
			t.Fatalf("%s: %d, %d bytes, equal %v", u, res.StatusCode, len(body), bytes.Equal(body, full))
		}
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("%s: no ETag", u)
		}
		for p, want := range files {
			res, body := e.do(t, "GET", prefix+"/files/"+strings.ReplaceAll(p, " ", "%20"), "", nil, nil)
			if res.StatusCode != 200 || !bytes.Equal(body, want) {
				t.Errorf("%s: %d, %d bytes, want %d", p, res.StatusCode, len(body), len(want))
			}
		}

		res, body = e.do(t, "GET", u, "", map[string]string{"Range": "bytes=1000-70999"}, nil)
		if res.StatusCode != 206 || !bytes.Equal(body, full[1000:71000]) || res.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-70999/%d", len(full)) {
			t.Fatalf("range: %d %q %d bytes", res.StatusCode, res.Header.Get("Content-Range"), len(body))
		}
		res, body = e.do(t, "GET", u, "", map[string]string{"Range": "bytes=-10"}, nil)
		if res.StatusCode != 206 || !bytes.Equal(body, full[len(full)-10:]) {
			t.Fatalf("suffix range: %d", res.StatusCode)
		}
		res, _ = e.do(t, "GET", u, "", map[string]string{"Range": "bytes=400000-"}, nil)
		if res.StatusCode != 416 || res.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(full)) {
			t.Fatalf("unsatisfiable: %d %q", res.StatusCode, res.Header.Get("Content-Range"))
		}
		res, body = e.do(t, "GET", u, "", map[string]string{"Range": "bytes=0-9,200000-200009"}, nil)
		if res.StatusCode != 206 || !strings.HasPrefix(res.Header.Get("Content-Type"), "multipart/byteranges") ||
			!bytes.Contains(body, full[0:10]) || !bytes.Contains(body, full[200000:200010]) {
			t.Fatalf("multi range: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
		res, body = e.do(t, "GET", u, "", map[string]string{"Range": "bytes=0-9", "If-Range": etag}, nil)
		if res.StatusCode != 206 || !bytes.Equal(body, full[:10]) {
			t.Fatalf("If-Range match: %d", res.StatusCode)
		}
		res, body = e.do(t, "GET", u, "", map[string]string{"Range": "bytes=0-9", "If-Range": `"stale"`}, nil)
		if res.StatusCode != 200 || !bytes.Equal(body, full) {
			t.Fatalf("If-Range mismatch must send the whole file: %d %d", res.StatusCode, len(body))
		}
		res, _ = e.do(t, "GET", u, "", map[string]string{"If-None-Match": etag}, nil)
		if res.StatusCode != 304 {
			t.Fatalf("If-None-Match: %d", res.StatusCode)
		}
		res, body = e.do(t, "HEAD", u, "", nil, nil)
		if res.StatusCode != 200 || res.ContentLength != int64(len(full)) || len(body) != 0 {
			t.Fatalf("HEAD: %d %d", res.StatusCode, res.ContentLength)
		}
		// Non-canonical escapes name the same file (echo then routes on the raw path).
		res, body = e.do(t, "GET", prefix+"/files/docs/space%20name%2Etxt", "", nil, nil)
		if res.StatusCode != 200 || !bytes.Equal(body, files["docs/space name.txt"]) {
			t.Errorf("escaped name: %d %q", res.StatusCode, body)
		}
		res, _ = e.do(t, "GET", prefix+"/files/README.TXT", "", nil, nil)
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("README.TXT Content-Type %q", ct)
		}
	}
	if res, _ := e.do(t, "GET", "/isos/"+v.ID+"/files/nothere", "", nil, nil); res.StatusCode != 404 {
		t.Errorf("missing file: %d", res.StatusCode)
	}
	if res, _ := e.do(t, "GET", "/isos/nosuchiso/files/README.TXT", "", nil, nil); res.StatusCode != 404 {
		t.Errorf("missing ISO: %d", res.StatusCode)
	}
}

func TestISODirectoriesRedirectAndList(t *testing.T) {
	e := newISOEnv(t)
	v := e.putISO(t, "generic", buildISO(t, genericFiles(), nil), http.StatusCreated)

	res, _ := e.do(t, "GET", "/isos/"+v.ID+"/files/boot?x=1", "", nil, nil)
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/isos/"+v.ID+"/files/boot/?x=1" {
		t.Fatalf("dir without slash: %d Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	res, body := e.do(t, "GET", "/isos/"+v.ID+"/files/boot/", "", nil, nil)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") ||
		!bytes.Contains(body, []byte(`<a href="big.bin">big.bin</a>`)) || !bytes.Contains(body, []byte(`<a href="sub/">sub/</a>`)) {
		t.Fatalf("HTML listing: %d %s\n%s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	res, body = e.do(t, "GET", "/isos/"+v.ID+"/files/docs/", "", nil, nil)
	if !bytes.Contains(body, []byte(`href="space%20name.txt"`)) {
		t.Errorf("listing does not escape names:\n%s", body)
	}
	for _, u := range []string{"/isos/" + v.ID + "/files/boot/?format=json", "/isos/generic/files/boot/"} {
		hdr := map[string]string{}
		if !strings.Contains(u, "format") {
			hdr["Accept"] = "application/json"
		}
		res, body = e.do(t, "GET", u, "", hdr, nil)
		var entries []httpapi.DirEntryInfo
		if res.StatusCode != 200 || json.Unmarshal(body, &entries) != nil {
			t.Fatalf("JSON listing %s: %d %s", u, res.StatusCode, body)
		}
		got := map[string]string{}
		for _, en := range entries {
			got[en.Name] = fmt.Sprintf("%s/%d", en.Type, en.Size)
		}
		if got["big.bin"] != "file/300000" || !strings.HasPrefix(got["sub"], "dir/") || len(got) != 2 {
			t.Fatalf("JSON listing %s: %v", u, got)
		}
	}
	// The root lists too.
	res, body = e.do(t, "GET", "/isos/"+v.ID+"/files/?format=json", "", nil, nil)
	if res.StatusCode != 200 || !bytes.Contains(body, []byte(`"README.TXT"`)) {
		t.Fatalf("root listing: %d %s", res.StatusCode, body)
	}
}

func TestISOFilesRefuseTraversal(t *testing.T) {
	e := newISOEnv(t)
	secret := "TOP-SECRET-OUTSIDE-THE-ISO"
	outside := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(outside, []byte(secret), 0o644)
	// The data dir holds the database and the token-like files an escape would reach.
	os.WriteFile(filepath.Join(e.data, "api-token"), []byte(secret), 0o600)
	files := genericFiles()
	links := map[string]string{
		"boot/abs-escape":  outside,
		"boot/rel-escape":  "../../../../../../../../" + strings.TrimPrefix(outside, "/"),
		"boot/data-escape": filepath.Join(e.data, "api-token"),
		"boot/dotdot":      "../..",
	}
	v := e.putISO(t, "generic", buildISO(t, files, links), http.StatusCreated)

	paths := []string{
		"/files/../../api-token", "/files/%2e%2e/%2e%2e/api-token", "/files/boot/..%2f..%2f..%2fapi-token",
		"/files/boot/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/files/README.TXT%00.iso", "/files/%00",
		"/files/boot/abs-escape", "/files/boot/rel-escape", "/files/boot/data-escape", "/files/boot/dotdot/api-token",
		"/files//etc/passwd", "/files/..", "/files/boot/../../../isos",
	}
	for _, p := range paths {
		for _, method := range []string{"GET", "HEAD"} {
			res, body := e.do(t, method, "/isos/"+v.ID+p, "", map[string]string{"Accept": "application/json"}, nil)
			if bytes.Contains(body, []byte(secret)) || bytes.Contains(body, []byte("root:x:0:0")) || bytes.Contains(body, []byte(".idx")) {
				t.Errorf("%s %s leaked data from outside the ISO: %d %s", method, p, res.StatusCode, body)
			}
			switch res.StatusCode {
			case 400, 404:
			case 301, 308:
				// A redirect is acceptable only when it stays inside this ISO's files.
				if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/isos/"+v.ID+"/files/") || strings.Contains(loc, "..") {
					t.Errorf("%s %s: redirect to %q", method, p, loc)
				}
			default:
				// 200 only for a path that cleans to something inside the ISO (/files/.. is the root).
				if res.StatusCode != 200 || !(p == "/files/.." || p == "/files/boot/../../../isos") {
					t.Errorf("%s %s: %d, want 400 or 404", method, p, res.StatusCode)
				}
			}
		}
	}
}

func TestISOImageServesWholeImageWithRange(t *testing.T) {
	e := newISOEnv(t)
	p := buildISO(t, genericFiles(), nil)
	raw, _ := os.ReadFile(p)
	v := e.putISO(t, "generic", p, http.StatusCreated)

	res, body := e.do(t, "GET", "/isos/"+v.ID+"/image.iso", "", nil, nil)
	if res.StatusCode != 200 || !bytes.Equal(body, raw) || res.Header.Get("ETag") != `"`+v.SHA256+`"` ||
		res.Header.Get("Content-Type") != "application/x-iso9660-image" {
		t.Fatalf("image: %d %d bytes etag %q type %q", res.StatusCode, len(body), res.Header.Get("ETag"), res.Header.Get("Content-Type"))
	}
	res, body = e.do(t, "GET", "/isos/generic/image.iso", "", map[string]string{"Range": "bytes=32768-34815"}, nil)
	if res.StatusCode != 206 || !bytes.Equal(body, raw[32768:34816]) {
		t.Fatalf("image range: %d %d bytes", res.StatusCode, len(body))
	}
	res, _ = e.do(t, "HEAD", "/isos/"+v.ID+"/image.iso", "", nil, nil)
	if res.StatusCode != 200 || res.ContentLength != int64(len(raw)) {
		t.Fatalf("image HEAD: %d %d", res.StatusCode, res.ContentLength)
	}
}

func TestISODeleteRefusedWhileAProfileUsesIt(t *testing.T) {
	e := newISOEnv(t)
	v := e.putISO(t, "fedora", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	res, b := e.do(t, "PUT", "/api/v1/profiles/fed", testToken, map[string]string{"Content-Type": "application/json"},
		strings.NewReader(`{"iso":"fedora"}`))
	if res.StatusCode != 201 {
		t.Fatalf("profile: %d %s", res.StatusCode, b)
	}
	res, b = e.do(t, "DELETE", "/api/v1/isos/"+v.ID, testToken, nil, nil)
	if res.StatusCode != http.StatusConflict || !bytes.Contains(b, []byte("in use")) {
		t.Fatalf("delete in use: %d %s", res.StatusCode, b)
	}
	if len(e.listISOs(t)) != 1 {
		t.Fatal("refused delete removed the ISO")
	}
	res, b = e.do(t, "DELETE", "/api/v1/isos/fedora?force=1", testToken, nil, nil)
	if res.StatusCode != 204 {
		t.Fatalf("forced delete: %d %s", res.StatusCode, b)
	}
	if len(e.listISOs(t)) != 0 {
		t.Fatal("forced delete kept the ISO")
	}
	if left, _ := filepath.Glob(filepath.Join(e.data, "isos", v.SHA256+".*")); len(left) != 0 {
		t.Errorf("image files left after delete: %v", left)
	}
	if res, _ := e.do(t, "GET", "/isos/"+v.ID+"/files/.treeinfo", "", nil, nil); res.StatusCode != 404 {
		t.Errorf("files of a deleted ISO: %d", res.StatusCode)
	}
	if res, _ := e.do(t, "DELETE", "/api/v1/isos/"+v.ID, testToken, nil, nil); res.StatusCode != 404 {
		t.Errorf("second delete: %d, want 404", res.StatusCode)
	}
}

func TestISORegisterByPathServesWithoutCopying(t *testing.T) {
	e := newISOEnv(t)
	p := buildISO(t, genericFiles(), nil)
	raw, _ := os.ReadFile(p)
	res, b := e.do(t, "POST", "/api/v1/isos/register", testToken, map[string]string{"Content-Type": "application/json"},
		strings.NewReader(fmt.Sprintf(`{"name":"on-nas","path":%q}`, p)))
	if res.StatusCode != 201 {
		t.Fatalf("register: %d %s", res.StatusCode, b)
	}
	var v httpapi.ISOInfo
	json.Unmarshal(b, &v)
	if v.Path != p || v.SHA256 != sha256Hex(raw) || v.Name != "on-nas" {
		t.Fatalf("registered: %+v", v)
	}
	if copies, _ := filepath.Glob(filepath.Join(e.data, "isos", "*.iso")); len(copies) != 0 {
		t.Fatalf("register copied the image: %v", copies)
	}
	res, body := e.do(t, "GET", "/isos/on-nas/files/boot/big.bin", "", nil, nil)
	if res.StatusCode != 200 || !bytes.Equal(body, genericFiles()["boot/big.bin"]) {
		t.Fatalf("file of a registered ISO: %d", res.StatusCode)
	}
	for _, bad := range []string{`{"path":"relative/x.iso"}`, `{"path":"/nonexistent/x.iso"}`, `{"name":"x","path":"` + filepath.Dir(p) + `"}`} {
		if res, b := e.do(t, "POST", "/api/v1/isos/register", testToken, map[string]string{"Content-Type": "application/json"}, strings.NewReader(bad)); res.StatusCode/100 != 4 {
			t.Errorf("register %s: %d %s", bad, res.StatusCode, b)
		}
	}
	// Deleting never removes the source file.
	if res, _ := e.do(t, "DELETE", "/api/v1/isos/on-nas", testToken, nil, nil); res.StatusCode != 204 {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("delete removed the registered source: %v", err)
	}
}

// TestISOFileBodyReachesReadFromAsSendfileSource proves the sendfile path for files inside an
// ISO: http.ServeContent hands the response writer's ReadFrom an io.LimitedReader around the
// isostore File; net's sendfile (Go 1.26) unwraps the LimitedReader and accepts any
// syscall.Conn source, sending N bytes from the descriptor's current offset. So the source
// must be a syscall.Conn whose descriptor sits at the range start, and N must not exceed the
// bytes left in the file (else sendfile would run into the rest of the image).
func TestISOFileBodyReachesReadFromAsSendfileSource(t *testing.T) {
	e := newISOEnv(t)
	files := genericFiles()
	v := e.putISO(t, "generic", buildISO(t, files, nil), http.StatusCreated)
	full := files["boot/big.bin"]

	for _, c := range []struct {
		rng        string
		start, end int
	}{{"", 0, len(full)}, {"bytes=100000-164999", 100000, 165000}, {"bytes=-5000", len(full) - 5000, len(full)}} {
		w := &sendfileProbe{ResponseRecorder: httptest.NewRecorder()}
		req := httptest.NewRequest("GET", "/isos/"+v.ID+"/files/boot/big.bin", nil)
		if c.rng != "" {
			req.Header.Set("Range", c.rng)
		}
		e.api.ServeHTTP(w, req)
		if !bytes.Equal(w.Body.Bytes(), full[c.start:c.end]) {
			t.Fatalf("range %q: body differs (%d bytes)", c.rng, w.Body.Len())
		}
		lr, ok := w.src.(*io.LimitedReader)
		if !ok {
			t.Fatalf("range %q: ReadFrom got %T, want *io.LimitedReader around the ISO file", c.rng, w.src)
		}
		if _, ok := lr.R.(*iso9660.File); !ok {
			t.Errorf("range %q: LimitedReader wraps %T, want *iso9660.File", c.rng, lr.R)
		}
		if !w.syscallConn {
			t.Errorf("range %q: source is no syscall.Conn with a usable descriptor: sendfile lost", c.rng)
		}
		if w.n != int64(c.end-c.start) {
			t.Errorf("range %q: LimitedReader N %d, want %d (the range, never past the file)", c.rng, w.n, c.end-c.start)
		}
		// The descriptor must sit at the range start inside the image: that is where
		// sendfile(2) with a nil offset starts.
		if w.wantFdOffset < 32768 || w.fdOffset != w.wantFdOffset {
			t.Errorf("range %q: descriptor at %d, want %d", c.rng, w.fdOffset, w.wantFdOffset)
		}
	}
}

// sendfileProbe records what ReadFrom is handed and checks it as net's sendfile would.
type sendfileProbe struct {
	*httptest.ResponseRecorder
	src          io.Reader
	n            int64
	syscallConn  bool
	fdOffset     int64
	wantFdOffset int64
}

func (w *sendfileProbe) ReadFrom(r io.Reader) (int64, error) {
	w.src = r
	if lr, ok := r.(*io.LimitedReader); ok {
		w.n = lr.N
		if f, ok := lr.R.(*iso9660.File); ok {
			pos, _ := f.Seek(0, io.SeekCurrent)
			if ext := f.Entry().Extents; len(ext) == 1 {
				w.wantFdOffset = ext[0].Offset + pos
			}
		}
		if sc, ok := lr.R.(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				w.syscallConn = true
				rc.Control(func(fd uintptr) {
					w.fdOffset, _ = syscall.Seek(int(fd), 0, io.SeekCurrent)
				})
			}
		}
	}
	return io.Copy(w.ResponseRecorder, r)
}

// The url the API gives for an ISO (and `iso show` prints) is a real page: it leads to the
// listing of the ISO's files, by id or by name.
func TestISOURLExists(t *testing.T) {
	e := newISOEnv(t)
	v := e.putISO(t, "generic", buildISO(t, genericFiles(), nil), http.StatusCreated)
	if v.URL != e.base+"/isos/"+v.ID {
		t.Fatalf("url %q", v.URL)
	}
	res, err := http.Get(v.URL) // follows redirects, as a browser or curl -L does
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("README.TXT")) {
		t.Fatalf("GET %s: %d\n%s", v.URL, res.StatusCode, body)
	}
	for _, p := range []string{"/isos/" + v.ID, "/isos/" + v.ID + "/", "/isos/generic"} {
		res, _ := e.do(t, "GET", p, "", nil, nil)
		if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/isos/"+v.ID+"/files/" {
			t.Errorf("GET %s: %d Location %q", p, res.StatusCode, res.Header.Get("Location"))
		}
	}
	if res, _ := e.do(t, "GET", "/isos/nosuch", "", nil, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown ISO: %d", res.StatusCode)
	}
}

// TestISORegisterOutsideRegisterDirsIs403: a path outside --register-dir is refused with 403
// and a message naming the allowed directories.
func TestISORegisterOutsideRegisterDirsIs403(t *testing.T) {
	e := newISOEnv(t)
	res, b := e.do(t, "POST", "/api/v1/isos/register", testToken, map[string]string{"Content-Type": "application/json"},
		strings.NewReader(`{"name":"x","path":"/etc/hostname"}`))
	if res.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "not below a --register-dir") {
		t.Fatalf("register /etc/hostname: %d %s", res.StatusCode, b)
	}
}
