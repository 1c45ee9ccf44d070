package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/fleetboot/fleetboot/internal/config"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/server"
)

// newTestAPI is the real API built by server.Build on a fresh data directory with files in
// <data>/assets (and a symlink out of it); kernel, when set, is the default boot target
// (--boot-kernel, --boot-initrd initrd.img, --boot-cmdline cmdline). It returns the server and
// the assets directory.
func newTestAPI(t *testing.T, kernel, cmdline string) (*httptest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	assets := filepath.Join(dir, "assets")
	os.MkdirAll(filepath.Join(assets, "sub"), 0o755)
	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(assets, "sub", "blob.bin"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("secret"), 0o644)
	os.Symlink("../secret", filepath.Join(assets, "escape"))
	cfg := config.Default()
	cfg.DataDir, cfg.DHCPMode, cfg.BootKernel, cfg.BootCmdline = dir, config.DHCPOff, kernel, cmdline
	res := &config.Resolved{HTTPBase: "http://10.77.0.1:8080"}
	if kernel != "" {
		res.BootInitrd = []string{"initrd.img"}
	}
	app := build(t, cfg, res)
	srv := httptest.NewServer(app.API)
	t.Cleanup(srv.Close)
	return srv, assets
}

// testBinaries are small stand-ins for the three iPXE binaries.
func testBinaries(t *testing.T) *ipxe.Binaries {
	t.Helper()
	bins, err := ipxe.LoadBinaries(fstest.MapFS{
		"undionly.kpxe": {Data: []byte("BIOS-IPXE")},
		"snponly.efi":   {Data: []byte("SNP-IPXE-EFI")},
		"ipxe.efi":      {Data: []byte("FULL-IPXE-EFI")},
	}, "test")
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

// build is server.Build with stand-in iPXE binaries; the App is closed when the test ends.
func build(t *testing.T, cfg config.Config, res *config.Resolved) *server.App {
	t.Helper()
	app, err := server.Build(context.Background(), cfg, res, server.Deps{Binaries: testBinaries(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app
}

func get(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestBootScriptChainsThenBootsTarget(t *testing.T) {
	srv, _ := newTestAPI(t, "vmlinuz", "console=ttyS0 fbtoken=T1")
	res, body := get(t, "GET", srv.URL+"/boot.ipxe", nil)
	if res.StatusCode != 200 || !strings.Contains(body, "chain --autofree http://10.77.0.1:8080/boot.ipxe?mac=${netX/mac:hexhyp}") {
		t.Fatalf("first script: %d\n%s", res.StatusCode, body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	_, body = get(t, "GET", srv.URL+"/boot.ipxe?mac=52-54-00-12-34-56&arch=x86_64&platform=efi", nil)
	if !strings.Contains(body, "kernel http://10.77.0.1:8080/assets/vmlinuz initrd=initrd.img console=ttyS0 fbtoken=T1") {
		t.Fatalf("target script:\n%s", body)
	}
	res, body = get(t, "HEAD", srv.URL+"/boot.ipxe?mac=52-54-00-12-34-56", nil)
	if res.StatusCode != 200 || body != "" || res.ContentLength <= 0 {
		t.Fatalf("HEAD: %d len=%d body=%q", res.StatusCode, res.ContentLength, body)
	}
}

func TestBootScriptWithoutTargetIsMenu(t *testing.T) {
	srv, _ := newTestAPI(t, "", "")
	_, body := get(t, "GET", srv.URL+"/boot.ipxe?mac=52:54:00:12:34:56", nil)
	if !strings.Contains(body, "item local Boot from local disk") {
		t.Fatalf("menu:\n%s", body)
	}
}

func TestIPXEBinariesAndAutoexec(t *testing.T) {
	srv, _ := newTestAPI(t, "", "")
	res, body := get(t, "GET", srv.URL+"/ipxe/snponly.efi", nil)
	if res.StatusCode != 200 || body != "SNP-IPXE-EFI" || res.Header.Get("ETag") == "" {
		t.Fatalf("snponly: %d %q etag=%q", res.StatusCode, body, res.Header.Get("ETag"))
	}
	// UEFI HTTP Boot sends HEAD first, and must learn the size.
	res, _ = get(t, "HEAD", srv.URL+"/ipxe/snponly.efi", nil)
	if res.StatusCode != 200 || res.ContentLength != int64(len("SNP-IPXE-EFI")) {
		t.Fatalf("HEAD snponly: %d len %d", res.StatusCode, res.ContentLength)
	}
	_, body = get(t, "GET", srv.URL+"/ipxe/autoexec.ipxe", nil)
	if !strings.HasPrefix(body, "#!ipxe\nifconf -c dhcp && chain --autofree http://10.77.0.1:8080/boot.ipxe?") {
		t.Fatalf("autoexec:\n%s", body)
	}
	for _, p := range []string{"/ipxe/nothere.efi", "/ipxe/..%2fsecret", "/ipxe/%2e%2e"} {
		if res, _ := get(t, "GET", srv.URL+p, nil); res.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, res.StatusCode)
		}
	}
}

func TestAssetsRangeSemantics(t *testing.T) {
	srv, assets := newTestAPI(t, "", "")
	full, _ := os.ReadFile(filepath.Join(assets, "sub", "blob.bin"))
	u := srv.URL + "/assets/sub/blob.bin"

	res, body := get(t, "GET", u, nil)
	if res.StatusCode != 200 || body != string(full) || res.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("full GET: %d, %d bytes", res.StatusCode, len(body))
	}
	etag := res.Header.Get("ETag")

	res, body = get(t, "GET", u, map[string]string{"Range": "bytes=1000-1999"})
	if res.StatusCode != 206 || body != string(full[1000:2000]) || res.Header.Get("Content-Range") != "bytes 1000-1999/100000" {
		t.Fatalf("range: %d %q %d bytes", res.StatusCode, res.Header.Get("Content-Range"), len(body))
	}
	res, body = get(t, "GET", u, map[string]string{"Range": "bytes=-10"})
	if res.StatusCode != 206 || body != string(full[len(full)-10:]) {
		t.Fatalf("suffix range: %d", res.StatusCode)
	}
	res, _ = get(t, "GET", u, map[string]string{"Range": "bytes=200000-"})
	if res.StatusCode != 416 {
		t.Fatalf("unsatisfiable: %d", res.StatusCode)
	}
	res, body = get(t, "GET", u, map[string]string{"Range": "bytes=0-9,20-29"})
	if res.StatusCode != 206 || !strings.HasPrefix(res.Header.Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("multi range: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	res, body = get(t, "GET", u, map[string]string{"Range": "bytes=0-9", "If-Range": etag})
	if res.StatusCode != 206 || len(body) != 10 {
		t.Fatalf("If-Range match: %d", res.StatusCode)
	}
	res, body = get(t, "GET", u, map[string]string{"Range": "bytes=0-9", "If-Range": `"stale"`})
	if res.StatusCode != 200 || len(body) != len(full) {
		t.Fatalf("If-Range mismatch must send the whole file: %d %d", res.StatusCode, len(body))
	}
	res, _ = get(t, "GET", u, map[string]string{"If-None-Match": etag})
	if res.StatusCode != 304 {
		t.Fatalf("If-None-Match: %d", res.StatusCode)
	}
	res, body = get(t, "HEAD", u, nil)
	if res.StatusCode != 200 || res.ContentLength != int64(len(full)) || body != "" {
		t.Fatalf("HEAD: %d %d", res.StatusCode, res.ContentLength)
	}
}

func TestAssetsDecodeNonCanonicalEscapes(t *testing.T) {
	srv, assets := newTestAPI(t, "", "")
	os.WriteFile(filepath.Join(assets, "a+b c.txt"), []byte("plus"), 0o644)
	for _, p := range []string{"/assets/a+b%20c.txt", "/assets/a%2Bb%20c.txt", "/assets/a%2bb%20c%2Etxt"} {
		if res, body := get(t, "GET", srv.URL+p, nil); res.StatusCode != 200 || body != "plus" {
			t.Errorf("%s: %d %q", p, res.StatusCode, body)
		}
	}
}

func TestAssetsRefuseTraversalAndEscapingSymlinks(t *testing.T) {
	srv, _ := newTestAPI(t, "", "")
	for _, p := range []string{
		"/assets/../secret", "/assets/%2e%2e/secret", "/assets/sub/../../secret", "/assets/escape",
		"/assets/sub", "/assets/sub/", "/assets/", "/assets/sub//blob.bin", "/assets/%00",
		"/assets/%2e%2e/secret", "/assets/sub/%2E%2E/%2e%2e/secret", "/assets/%2E%2E%2Fsecret",
	} {
		res, body := get(t, "GET", srv.URL+p, nil)
		if res.StatusCode == 200 || strings.Contains(body, "secret") {
			t.Errorf("%s: %d %q", p, res.StatusCode, body)
		}
	}
}

// recordingWriter is an http.ResponseWriter whose ReadFrom records what it was handed.
type recordingWriter struct {
	httptest.ResponseRecorder
	src io.Reader
}

func (w *recordingWriter) ReadFrom(r io.Reader) (int64, error) {
	w.src = r
	return io.Copy(&w.ResponseRecorder, r)
}

// TestAssetBodyReachesReadFromAsFile proves the sendfile path: net/http's response writer
// uses sendfile(2) when ReadFrom gets an *os.File, or an io.LimitedReader around one. If the
// body went through echo's wrapper (no ReadFrom) or a SectionReader, this would fail.
func TestAssetBodyReachesReadFromAsFile(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "assets"), 0o755)
	os.WriteFile(filepath.Join(dir, "assets", "f"), make([]byte, 4096), 0o644)
	cfg := config.Default()
	cfg.DataDir, cfg.DHCPMode = dir, config.DHCPOff
	api := build(t, cfg, &config.Resolved{HTTPBase: "http://10.77.0.1:8080"}).API
	for _, rng := range []string{"", "bytes=100-199"} {
		w := &recordingWriter{ResponseRecorder: *httptest.NewRecorder()}
		req := httptest.NewRequest("GET", "/assets/f", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		api.ServeHTTP(w, req)
		src := w.src
		if lr, ok := src.(*io.LimitedReader); ok {
			src = lr.R
		}
		if _, ok := src.(*os.File); !ok {
			t.Errorf("range %q: ReadFrom got %T, want *os.File (sendfile lost)", rng, w.src)
		}
	}
}
