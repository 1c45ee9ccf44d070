package isostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/iso9660/isotest"

	"github.com/fleetboot/fleetboot/internal/iso9660"
	"github.com/fleetboot/fleetboot/internal/store"
)

// fileServer serves the files of one ISO the way the HTTP layer is meant to: OpenFile, set
// Content-Type and ETag, http.ServeContent. After each request it reports how many bytes
// went through File.Read (the rest went through sendfile).
func fileServer(t testing.TB, s *Store, id string) (*httptest.Server, chan int64) {
	readLens := make(chan int64, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := s.OpenFile(r.Context(), id, r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		cf := &countingFile{File: f}
		defer func() {
			f.Close()
			readLens <- cf.read
		}()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", f.ETag())
		http.ServeContent(w, r, f.Name(), f.ModTime(), cf)
	}))
	t.Cleanup(srv.Close)
	return srv, readLens
}

// countingFile counts the bytes that go through Read; embedding keeps File's SyscallConn, so
// what net/http sends with sendfile does not pass through it.
type countingFile struct {
	*iso9660.File
	read int64
}

func (c *countingFile) Read(p []byte) (int, error) {
	n, err := c.File.Read(p)
	c.read += int64(n)
	return n, err
}

// readFromRecorder records what its ReadFrom was handed: an *os.File (or an
// io.LimitedReader around one) is what net/http sends with sendfile.
type readFromRecorder struct {
	http.ResponseWriter
	srcs []io.Reader
}

func (w *readFromRecorder) ReadFrom(r io.Reader) (int64, error) {
	w.srcs = append(w.srcs, r)
	return w.ResponseWriter.(io.ReaderFrom).ReadFrom(r)
}

func get(t testing.TB, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServeContentSendsSingleExtentFilesWithSendfile(t *testing.T) {
	s, _ := newStore(t)
	fx := makeFixture(t, isotest.RichTree(), "-R")
	iso, err := uploadFile(t, s, "rich", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	srv, readLens := fileServer(t, s, iso.ID)
	want := isotest.FileContent("casper/initrd", 150_000)

	resp, body := get(t, srv.URL+"/casper/initrd", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("GET: %d, %d bytes, equal=%v", resp.StatusCode, len(body), bytes.Equal(body, want))
	}
	// net/http copies the first 512 bytes itself (sniffing before ReadFrom); everything
	// after went from the image's descriptor to the socket without passing through Read.
	if n := <-readLens; n > 512 {
		t.Fatalf("%d of %d bytes went through Read: sendfile was not used", n, len(want))
	}
	if resp.Header.Get("ETag") != ETag(iso.SHA256, "/casper/initrd") || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("headers %v", resp.Header)
	}

	ranges := []struct {
		hdr        string
		status     int
		start, end int // want[start:end]
	}{
		{"bytes=0-0", 206, 0, 1},
		{"bytes=100-2047", 206, 100, 2048},
		{"bytes=2048-100000", 206, 2048, 100001},
		{"bytes=149000-", 206, 149000, 150000},
		{"bytes=-10", 206, 149990, 150000},
		{"bytes=0-", 206, 0, 150000},
		{"bytes=150000-", 416, 0, 0},
	}
	for _, r := range ranges {
		resp, body := get(t, srv.URL+"/casper/initrd", map[string]string{"Range": r.hdr})
		<-readLens
		if resp.StatusCode != r.status {
			t.Errorf("Range %s: status %d, want %d", r.hdr, resp.StatusCode, r.status)
			continue
		}
		if r.status == 206 && !bytes.Equal(body, want[r.start:r.end]) {
			t.Errorf("Range %s: %d bytes differ from want[%d:%d]", r.hdr, len(body), r.start, r.end)
		}
	}

	// Multipart ranges go through Read (net/http copies them into a multipart writer).
	resp, body = get(t, srv.URL+"/casper/initrd", map[string]string{"Range": "bytes=0-99,70000-70099"})
	<-readLens
	checkMultipart(t, resp, body, [][]byte{want[0:100], want[70000:70100]})

	// Conditional requests.
	resp, _ = get(t, srv.URL+"/casper/initrd", map[string]string{"If-None-Match": ETag(iso.SHA256, "/casper/initrd")})
	<-readLens
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
	}
	resp, body = get(t, srv.URL+"/casper/initrd", map[string]string{"Range": "bytes=0-9", "If-Range": `"stale"`})
	<-readLens
	if resp.StatusCode != 200 || len(body) != len(want) {
		t.Errorf("If-Range stale: %d with %d bytes, want the whole file", resp.StatusCode, len(body))
	}

	// HEAD: length, no body, nothing read.
	hresp, err := http.Head(srv.URL + "/casper/initrd")
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	<-readLens
	if hresp.ContentLength != int64(len(want)) {
		t.Errorf("HEAD Content-Length %d", hresp.ContentLength)
	}

	// Every file of the fixture, including empty ones, comes back intact over HTTP.
	err = filepath.Walk(fx.src, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(fx.src, p)
		resp, body := get(t, srv.URL+"/"+filepath.ToSlash(rel), nil)
		<-readLens
		src, _ := os.ReadFile(p)
		if resp.StatusCode != 200 || !bytes.Equal(body, src) {
			t.Errorf("GET %s: %d, %d bytes, want %d", rel, resp.StatusCode, len(body), len(src))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkMultipart(t *testing.T, resp *http.Response, body []byte, want [][]byte) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("multi-range response type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i, w := range want {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		got, _ := io.ReadAll(part)
		if !bytes.Equal(got, w) {
			t.Fatalf("part %d differs", i)
		}
	}
}

// multiExtentFile makes a File over a scratch file with extents deliberately out of order,
// the way a > 4 GiB file's parts sit in an image, and returns the bytes it must read as.
func multiExtentFile(t testing.TB) (*iso9660.File, []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "image")
	img := isotest.FileContent("image", 64<<10)
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	extents := []iso9660.Extent{{Offset: 40000, Length: 5000}, {Offset: 2048, Length: 30000}, {Offset: 60000, Length: 123}}
	var want []byte
	var size int64
	for _, x := range extents {
		want = append(want, img[x.Offset:x.Offset+x.Length]...)
		size += x.Length
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	file, err := iso9660.OpenFile(f, iso9660.Entry{Path: "/big", Size: size, Extents: extents}, `"x"`, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	return file, want
}

func TestMultiExtentFileReadsSeeksAndServesAcrossExtents(t *testing.T) {
	f, want := multiExtentFile(t)
	if _, err := f.SyscallConn(); err == nil {
		t.Fatal("a multi-extent file offered its descriptor to sendfile")
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAll: %d bytes, %v", len(got), err)
	}
	for _, off := range []int64{0, 4999, 5000, 5001, 34999, 35000, 35122} {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, f); err != nil || !bytes.Equal(buf.Bytes(), want[off:]) { // WriteTo
			t.Fatalf("WriteTo from %d: %d bytes, %v", off, buf.Len(), err)
		}
		p := make([]byte, 10)
		n, err := f.ReadAt(p, off)
		if end := min(off+10, int64(len(want))); n != int(end-off) || !bytes.Equal(p[:n], want[off:end]) {
			t.Fatalf("ReadAt %d = %d, %v", off, n, err)
		}
	}
	if pos, _ := f.Seek(-10, io.SeekEnd); pos != int64(len(want))-10 {
		t.Fatalf("SeekEnd = %d", pos)
	}
	if _, err := f.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("negative seek accepted")
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.Seek(0, io.SeekStart)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "big", time.Time{}, f)
	}))
	defer srv.Close()
	for _, r := range []struct {
		hdr        string
		start, end int
	}{
		{"", 0, len(want)}, {"bytes=4990-5010", 4990, 5011}, {"bytes=34990-", 34990, len(want)}, {"bytes=-200", len(want) - 200, len(want)},
	} {
		_, body := get(t, srv.URL, map[string]string{"Range": r.hdr})
		if !bytes.Equal(body, want[r.start:r.end]) {
			t.Errorf("Range %q: %d bytes differ", r.hdr, len(body))
		}
	}
}

func TestFileWriteToSendsExactlyTheFileOverTCP(t *testing.T) {
	s, _ := newStore(t)
	fx := makeFixture(t, isotest.RichTree(), "-R")
	iso, err := uploadFile(t, s, "rich", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := s.OpenFile(r.Context(), iso.ID, "/casper/vmlinuz")
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		f.Seek(1000, io.SeekStart)
		w.Header().Set("Content-Length", fmt.Sprint(f.Size()-1000))
		rw := &readFromRecorder{ResponseWriter: w}
		io.Copy(rw, f) // File.WriteTo → io.CopyN(w, *os.File, n) → sendfile
		for _, src := range rw.srcs {
			if lr, ok := src.(*io.LimitedReader); ok {
				src = lr.R
			}
			if _, ok := src.(*os.File); !ok {
				t.Errorf("ReadFrom got %T, want the image's *os.File (sendfile)", src)
			}
		}
		if len(rw.srcs) == 0 {
			t.Error("WriteTo never reached the response writer's ReadFrom")
		}
	}))
	defer srv.Close()
	_, body := get(t, srv.URL, nil)
	if want := isotest.FileContent("casper/vmlinuz", 70_000)[1000:]; !bytes.Equal(body, want) {
		t.Fatalf("%d bytes, want %d", len(body), len(want))
	}
}

// TestBigMultiExtentISO builds a real image holding a 4.5 GiB file, which ISO 9660 stores as
// two extents, and reads across the boundary. It writes ~4.5 GB: set FLEETBOOT_BIG_ISO=1.
func TestBigMultiExtentISO(t *testing.T) {
	if os.Getenv("FLEETBOOT_BIG_ISO") != "1" {
		t.Skip("set FLEETBOOT_BIG_ISO=1 to build a 4.5 GiB image (about a minute, 4.5 GB of disk)")
	}
	src := t.TempDir()
	big := filepath.Join(src, "big.img")
	const size = 4<<30 + 512<<20
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse, with markers at places that land in each extent and at the boundary.
	marks := map[int64]string{0: "START", 4<<30 - 2048 - 3: "BOUNDARY", 4 << 30: "FOUR-GIB", size - 3: "END"}
	for off, m := range marks {
		if _, err := f.WriteAt([]byte(m), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Truncate(size)
	f.Close()
	os.WriteFile(filepath.Join(src, "small.txt"), []byte("small"), 0o644)
	img := isotest.BuildISO(t, src, "-R", "-iso-level", "3")
	os.Remove(big)

	imgFile, imgSize := isotest.OpenImage(t, img)
	ix, err := iso9660.BuildIndex(imgFile, imgSize)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ix.Lookup("/big.img")
	if err != nil {
		t.Fatal(err)
	}
	if e.Size != size || len(e.Extents) < 2 {
		t.Fatalf("big.img: size %d in %d extents, want %d in several", e.Size, len(e.Extents), int64(size))
	}
	t.Logf("extents: %+v", e.Extents)
	fl, err := iso9660.OpenFile(imgFile, *e, `"big"`, nil)
	if err != nil {
		t.Fatal(err)
	}
	for off, m := range marks {
		start := max(off-5, 0)
		buf := make([]byte, min(int64(len(m))+10, size-start))
		if _, err := fl.ReadAt(buf, start); err != nil {
			t.Fatalf("ReadAt %d: %v", start, err)
		}
		if !strings.Contains(string(buf), m) {
			t.Errorf("marker %q not at %d: %q", m, off, buf)
		}
	}
	// Serve a range across the extent boundary through ServeContent.
	b0 := e.Extents[0].Length
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fl.Seek(0, io.SeekStart)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "big.img", time.Time{}, fl)
	}))
	defer srv.Close()
	_, body := get(t, srv.URL, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", b0-10, b0+10)})
	want := make([]byte, 21)
	if _, err := fl.ReadAt(want, b0-10); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, want) {
		t.Fatalf("range across the boundary: %q, want %q", body, want)
	}
	if _, err := fl.ReadAt(make([]byte, 1), b0-1); err != nil {
		t.Fatal(err)
	}
}

// processCPU is the user+system CPU time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkServeContent compares serving a file inside an image through File (sendfile)
// with an io.SectionReader over the image (what a naive implementation would hand
// ServeContent): whole 8 MiB files and 64 KiB ranges, over loopback TCP.
func BenchmarkServeContent(b *testing.B) {
	src := b.TempDir()
	isotest.WriteTree(b, src, isotest.TreeSpec{Files: map[string]int{"payload.bin": 8 << 20}})
	img := isotest.BuildISO(b, src, "-R")
	imgFile, imgSize := isotest.OpenImage(b, img)
	ix, err := iso9660.BuildIndex(imgFile, imgSize)
	if err != nil {
		b.Fatal(err)
	}
	e, err := ix.Lookup("/payload.bin")
	if err != nil {
		b.Fatal(err)
	}
	x := e.Extents[0]
	handlers := map[string]http.HandlerFunc{
		"File": func(w http.ResponseWriter, r *http.Request) {
			f, _ := os.Open(img)
			fl, _ := iso9660.OpenFile(f, *e, `"e"`, nil)
			defer fl.Close()
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(w, r, "payload.bin", time.Time{}, fl)
		},
		"SectionReader": func(w http.ResponseWriter, r *http.Request) {
			f, _ := os.Open(img)
			defer f.Close()
			w.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(w, r, "payload.bin", time.Time{}, io.NewSectionReader(f, x.Offset, x.Length))
		},
	}
	for _, kind := range []string{"File", "SectionReader"} {
		srv := httptest.NewServer(handlers[kind])
		client := srv.Client()
		for _, mode := range []struct {
			name  string
			bytes int64
			rng   func(i int) string
		}{
			{"whole-8MiB", 8 << 20, func(int) string { return "" }},
			{"range-64KiB", 64 << 10, func(i int) string {
				start := int64(i*7919*4096) % (8<<20 - 64<<10)
				return fmt.Sprintf("bytes=%d-%d", start, start+64<<10-1)
			}},
		} {
			b.Run(kind+"/"+mode.name, func(b *testing.B) {
				b.SetBytes(mode.bytes)
				cpu0 := processCPU()
				ops := 0
				for i := 0; b.Loop(); i++ {
					ops++
					req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
					if r := mode.rng(i); r != "" {
						req.Header.Set("Range", r)
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if n != mode.bytes {
						b.Fatalf("%d bytes", n)
					}
				}
				// CPU of client and server together (same process); the client's share is
				// the same for both kinds, so the difference is the server's.
				b.ReportMetric(float64(processCPU()-cpu0)/float64(ops)/(float64(mode.bytes)/(1<<20)), "cpu-ns/MiB")
			})
		}
		srv.Close()
	}
}

// remoteImages is an ImageStore whose readers are not *os.File, as an object store's are:
// the bytes live in a DirImages, but Open hides the file behind a plain io.ReaderAt.
type remoteImages struct {
	DirImages
	opened chan string
}

type remoteReader struct{ r iso9660.ReaderAt }

func (r remoteReader) ReadAt(p []byte, off int64) (int, error) { return r.r.ReadAt(p, off) }
func (r remoteReader) Close() error                            { return r.r.Close() }

func (m remoteImages) Open(ctx context.Context, sum string) (iso9660.ReaderAt, ImageInfo, error) {
	r, info, err := m.DirImages.Open(ctx, sum)
	if err != nil {
		return nil, info, err
	}
	m.opened <- sum
	return remoteReader{r}, info, nil
}

// An ImageStore that is not a local directory serves the same bytes, ranges and whole
// images; there is no sendfile, so every byte goes through Read.
func TestImageStoreWithoutLocalFilesServesThroughReadAt(t *testing.T) {
	dir := t.TempDir()
	db, err := store.OpenPath(context.Background(), filepath.Join(dir, "fleetboot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	images := remoteImages{DirImages: DirImages{Dir: filepath.Join(dir, "isos")}, opened: make(chan string, 100)}
	s, err := Open(context.Background(), Config{DataDir: dir, DB: db, Images: images})
	if err != nil {
		t.Fatal(err)
	}
	fx := makeFixture(t, isotest.RichTree(), "-R")
	iso, err := uploadFile(t, s, "rich", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	srv, readLens := fileServer(t, s, iso.ID)
	want := isotest.FileContent("casper/initrd", 150_000)
	resp, body := get(t, srv.URL+"/casper/initrd", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("GET: %d, %d bytes, equal=%v", resp.StatusCode, len(body), bytes.Equal(body, want))
	}
	if n := <-readLens; n != int64(len(want)) {
		t.Fatalf("%d of %d bytes went through Read; a non-file image has no sendfile path", n, len(want))
	}
	if got := <-images.opened; got != iso.SHA256 {
		t.Fatalf("opened %q, want the image %s", got, iso.SHA256)
	}
	resp, body = get(t, srv.URL+"/casper/initrd", map[string]string{"Range": "bytes=2048-100000"})
	<-readLens
	if resp.StatusCode != 206 || !bytes.Equal(body, want[2048:100001]) {
		t.Fatalf("Range: %d, %d bytes", resp.StatusCode, len(body))
	}

	// The whole image, through WriteTo (io.Copy) and through a range.
	img, _, err := s.OpenImage(context.Background(), iso.ID)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, img); err != nil {
		t.Fatal(err)
	}
	img.Close()
	orig, err := os.ReadFile(fx.iso)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), orig) {
		t.Fatalf("whole image: %d bytes, differs from the uploaded %d", buf.Len(), len(orig))
	}

	// Delete goes through the ImageStore too.
	if err := s.Delete(context.Background(), iso.ID, true); err != nil {
		t.Fatal(err)
	}
	if sums, err := images.List(context.Background()); err != nil || len(sums) != 0 {
		t.Fatalf("after delete the image store holds %v (%v)", sums, err)
	}
}

func TestUploadedImageDescriptorsAreReusedAndClosedOnDelete(t *testing.T) {
	s, _ := newStore(t)
	fx := makeFixture(t, isotest.RichTree(), "-R")
	iso, err := uploadFile(t, s, "rich", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	open := func() *iso9660.File {
		t.Helper()
		f, err := s.OpenFile(ctx, iso.ID, "/casper/initrd")
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	// idle lists the image's descriptors waiting in the store for the next request.
	idle := func() []*os.File {
		p := s.fds.pool(iso.SHA256)
		p.mu.Lock()
		defer p.mu.Unlock()
		return slices.Clone(p.idle)
	}
	a := open()
	// A File seeks without moving the descriptor; reading still starts where it should,
	// and a reused descriptor left anywhere by sendfile does not matter.
	if _, err := a.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := io.ReadFull(a, buf); err != nil || !bytes.Equal(buf, isotest.FileContent("casper/initrd", 150_000)[1000:1100]) {
		t.Fatalf("read at 1000: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	if len(idle()) != 1 {
		t.Fatalf("%d idle descriptors after Close, want the one handed back", len(idle()))
	}
	fdA := idle()[0]
	if _, err := fdA.Seek(12345, io.SeekStart); err != nil { // as sendfile would leave it
		t.Fatal(err)
	}
	b := open()
	if len(idle()) != 0 {
		t.Fatal("the second request opened the image again instead of reusing the idle descriptor")
	}
	c := open() // b holds the idle one: c needs its own
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, isotest.FileContent("casper/initrd", 150_000)) {
		t.Fatalf("reused descriptor read %d bytes, err %v", len(got), err)
	}
	c.Close() // idle now
	if len(idle()) != 1 || idle()[0] == fdA {
		t.Fatal("two open Files shared a descriptor")
	}
	fdC := idle()[0]
	if err := s.Delete(ctx, iso.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := fdC.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("idle descriptor of the deleted image still open (stat: %v)", err)
	}
	// b, still reading when the image was deleted, closes its descriptor on Close.
	b.Close()
	if _, err := fdA.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("descriptor of a deleted image handed back instead of closed (stat: %v)", err)
	}
}
