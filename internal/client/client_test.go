package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/client/clienttest"
	"github.com/fleetboot/fleetboot/internal/config"
)

// bigISO is an image of a few hundred KiB, enough for several 64 KiB chunks.
func bigISO(t *testing.T) (string, string) {
	t.Helper()
	p := clienttest.BuildISO(t, map[string][]byte{
		"a/one.bin": clienttest.Pattern(1, 300_000),
		"b/two.bin": clienttest.Pattern(2, 200_000),
		"README":    []byte("client test\n"),
	})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return p, hex.EncodeToString(s[:])
}

// startCountingPatches starts a test server that counts the upload chunks (PATCHes) it gets.
func startCountingPatches(t *testing.T) (*clienttest.Server, *atomic.Int32) {
	var patches atomic.Int32
	srv := clienttest.Start(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPatch {
				patches.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	return srv, &patches
}

func newClient(srv *clienttest.Server) *Client {
	return &Client{Base: srv.URL, Token: clienttest.Token, ChunkSize: 64 << 10, Backoff: 10 * time.Millisecond}
}

func TestUploadISOInChunksReportsProgress(t *testing.T) {
	srv, patches := startCountingPatches(t)
	p, sum := bigISO(t)
	st, _ := os.Stat(p)
	c := newClient(srv)

	var last, calls int64
	monotonic := true
	iso, err := c.UploadISO(context.Background(), p, "", func(done, total int64) {
		if total != st.Size() || done < last {
			monotonic = false
		}
		last, calls = done, calls+1
	})
	if err != nil {
		t.Fatal(err)
	}
	if iso.SHA256 != sum || iso.Name != filepath.Base(p) || iso.Size != st.Size() || iso.ID != sum[:16] {
		t.Fatalf("uploaded: %+v, want sha256 %s", iso, sum)
	}
	wantPatches := (st.Size() + 64<<10 - 1) / (64 << 10)
	if int64(patches.Load()) != wantPatches {
		t.Errorf("%d PATCH requests, want %d chunks of 64 KiB", patches.Load(), wantPatches)
	}
	if !monotonic || last != st.Size() || calls < wantPatches {
		t.Errorf("progress: monotonic %v, last %d of %d, %d calls", monotonic, last, st.Size(), calls)
	}

	isos, err := c.ListISOs(context.Background())
	if err != nil || len(isos) != 1 || isos[0].SHA256 != sum {
		t.Fatalf("ListISOs: %+v %v", isos, err)
	}
	got, err := c.GetISO(context.Background(), iso.Name)
	if err != nil || got.ID != iso.ID || got.Files != 3 || !strings.HasSuffix(got.URL, "/isos/"+iso.ID) {
		t.Fatalf("GetISO: %+v %v", got, err)
	}
	// Uploading the same content again publishes nothing new.
	again, err := c.UploadISO(context.Background(), p, "other-name", nil)
	if err != nil || !again.Existed || again.ID != iso.ID {
		t.Fatalf("second upload: %+v %v", again, err)
	}
}

// cutSecondPatch passes requests through, except that the second PATCH hands the API only
// the first cutAfter bytes of its body and then drops the connection without an answer, as
// a broken network would.
func cutSecondPatch(cutAfter int64, patches, heads *atomic.Int32) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodHead:
				heads.Add(1)
			case http.MethodPatch:
				if patches.Add(1) == 2 {
					conn, buf, err := http.NewResponseController(w).Hijack()
					if err != nil {
						panic(err) // test wiring broken
					}
					defer conn.Close()
					r2 := r.Clone(r.Context())
					r2.Body = io.NopCloser(io.MultiReader(io.LimitReader(buf, cutAfter), errReader{io.ErrUnexpectedEOF}))
					h.ServeHTTP(discardWriter{http.Header{}}, r2)
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

func TestUploadISOResumesAfterAConnectionIsCut(t *testing.T) {
	var patches, heads atomic.Int32
	srv := clienttest.Start(t, cutSecondPatch(10_000, &patches, &heads))
	p, sum := bigISO(t)
	st, _ := os.Stat(p)
	c := newClient(srv)
	iso, err := c.UploadISO(context.Background(), p, "cut.iso", nil)
	if err != nil {
		t.Fatal(err)
	}
	if iso.SHA256 != sum || iso.Size != st.Size() {
		t.Fatalf("after a cut: %+v, want sha256 %s", iso, sum)
	}
	// The server kept the 10000 bytes of the cut chunk, so the client resumed mid-chunk: one
	// PATCH more than the chunk count, at least.
	chunks := int32((st.Size() + 64<<10 - 1) / (64 << 10))
	if patches.Load() < chunks+1 || heads.Load() == 0 {
		t.Errorf("%d PATCHes (%d chunks), %d HEADs: the cut did not happen or was not resumed", patches.Load(), chunks, heads.Load())
	}
}

func TestUploadISOResumesAcrossRuns(t *testing.T) {
	var creates, patches atomic.Int32
	var mu sync.Mutex
	var offsets []string
	srv := clienttest.Start(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/api/v1/uploads" {
				creates.Add(1)
			}
			if r.Method == http.MethodPatch {
				patches.Add(1)
				mu.Lock()
				offsets = append(offsets, r.Header.Get("Upload-Offset"))
				mu.Unlock()
			}
			h.ServeHTTP(w, r)
		})
	})
	p, sum := bigISO(t)
	state := t.TempDir()

	// Run 1 is interrupted (Ctrl-C) once the server holds 3 chunks.
	c := newClient(srv)
	c.StateDir = state
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := c.UploadISO(ctx, p, "runs.iso", func(done, _ int64) {
		if done >= 3*64<<10 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run 1: %v, want context.Canceled", err)
	}
	// The error says how much the server holds (asked after the interruption).
	var ie *InterruptedError
	st, _ := os.Stat(p)
	if !errors.As(err, &ie) || ie.Size != st.Size() || ie.Offset < 2*64<<10 || ie.Offset >= ie.Size || ie.Percent() != ie.Offset*100/ie.Size {
		t.Fatalf("run 1: %#v, want an InterruptedError with the server's offset", err)
	}
	left, _ := filepath.Glob(filepath.Join(state, "*.upload"))
	if len(left) != 1 {
		t.Fatalf("state files after run 1: %v", left)
	}
	held := patches.Load()

	// Run 2, a new client (a new process), continues the same upload.
	c2 := newClient(srv)
	c2.StateDir = state
	iso, err := c2.UploadISO(context.Background(), p, "runs.iso", nil)
	if err != nil {
		t.Fatal(err)
	}
	if iso.SHA256 != sum {
		t.Fatalf("run 2: sha256 %s, want %s", iso.SHA256, sum)
	}
	if creates.Load() != 1 {
		t.Errorf("%d uploads created, want 1 (run 2 must resume, not start over)", creates.Load())
	}
	mu.Lock()
	first2 := offsets[held]
	mu.Unlock()
	if o, _ := strconv.ParseInt(first2, 10, 64); o < ie.Offset {
		t.Errorf("run 2 started at offset %s, before the %d bytes run 1 reported", first2, ie.Offset)
	}
	if left, _ := filepath.Glob(filepath.Join(state, "*.upload")); len(left) != 0 {
		t.Errorf("state files after success: %v", left)
	}

	// A remembered upload the server no longer has (aborted, expired) starts afresh.
	c3 := newClient(srv)
	c3.StateDir = state
	ctx, cancel = context.WithCancel(context.Background())
	p2 := clienttest.BuildISO(t, map[string][]byte{"x.bin": clienttest.Pattern(9, 200_000)})
	c3.UploadISO(ctx, p2, "gone.iso", func(done, _ int64) {
		if done >= 64<<10 {
			cancel()
		}
	})
	left, _ = filepath.Glob(filepath.Join(state, "*.upload"))
	if len(left) != 1 {
		t.Fatalf("state after an interrupted run: %v", left)
	}
	id, _ := os.ReadFile(left[0])
	// The server may still be finishing the cancelled PATCH (409 busy) for a moment: retry
	// API errors for up to a minute (a moment under -race on a loaded machine can be seconds).
	for deadline := time.Now().Add(time.Minute); ; {
		_, err := c3.do(context.Background(), http.MethodDelete, "/api/v1/uploads/"+strings.TrimSpace(string(id)), nil, nil, nil)
		if err == nil {
			break
		}
		if !errors.As(err, new(*APIError)) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c3.UploadISO(context.Background(), p2, "gone.iso", nil); err != nil {
		t.Fatalf("after the server forgot the upload: %v", err)
	}
}

func TestISOCallsAndAPIErrors(t *testing.T) {
	srv := clienttest.Start(t, nil)
	c := newClient(srv)
	ctx := context.Background()
	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))

	iso, err := c.RegisterISO(ctx, "fedora", p)
	if err != nil || iso.Path != p || iso.Name != "fedora" {
		t.Fatalf("RegisterISO: %+v %v", iso, err)
	}
	if len(iso.Detected) == 0 {
		t.Errorf("RegisterISO: no detection result")
	}
	prof, err := c.PutProfile(ctx, Profile{Name: "fed", ISO: "fedora", ExtraArgs: "console=ttyS0"})
	if err != nil || prof.ISO != iso.ID {
		t.Fatalf("PutProfile: %+v %v", prof, err)
	}

	var ae *APIError
	err = c.DeleteISO(ctx, "fedora", false)
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || !strings.Contains(ae.Message, "in use") {
		t.Fatalf("DeleteISO in use: %v", err)
	}
	if err := c.DeleteISO(ctx, "fedora", true); err != nil {
		t.Fatalf("forced DeleteISO: %v", err)
	}
	_, err = c.GetISO(ctx, "fedora")
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Message == "" {
		t.Fatalf("GetISO after delete: %v", err)
	}

	// Errors surface with the server's message.
	_, err = c.PutProfile(ctx, Profile{Name: "x", ISO: "nosuch"})
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity || !strings.Contains(ae.Message, "nosuch") {
		t.Fatalf("PutProfile unknown ISO: %v", err)
	}
	_, err = (&Client{Base: srv.URL, Token: "wrong-token-but-long-enough"}).CreateMachine(ctx, "52:54:00:00:00:01", MachineChange{})
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(ae.Message, "token") {
		t.Fatalf("wrong token: %v", err)
	}
	_, err = c.RegisterISO(ctx, "rel", "relative.iso")
	if !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("RegisterISO relative: %v", err)
	}
	// A file that only looks like an ISO (the volume descriptor's magic, junk around it):
	// refused by the server, and the state is not kept.
	junk := filepath.Join(t.TempDir(), "junk.iso")
	os.WriteFile(junk, withISO9660Magic(clienttest.Pattern(5, 100_000)), 0o644)
	c.StateDir = t.TempDir()
	_, err = c.UploadISO(ctx, junk, "", nil)
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity {
		t.Fatalf("UploadISO of junk: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(c.StateDir, "*")); len(left) != 0 {
		t.Errorf("state kept after the server refused the content: %v", left)
	}
}

func TestUnreachableServerIsNamed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := &Client{Base: "http://" + addr, Token: clienttest.Token}
	_, err = c.ListISOs(context.Background())
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("got %v, want ErrUnreachable naming %s", err, addr)
	}
	var ae *APIError
	if errors.As(err, &ae) {
		t.Fatalf("a transport failure is not an APIError: %v", err)
	}

	// A remembered upload survives a run that could not reach the server.
	f := filepath.Join(t.TempDir(), "x.iso")
	os.WriteFile(f, withISO9660Magic(make([]byte, 40000)), 0o644)
	st, _ := os.Stat(f)
	c.StateDir = t.TempDir()
	state := c.statePath(f, "x.iso", st)
	c.saveState(state, "0123456789abcdef")
	if _, err := c.UploadISO(context.Background(), f, "", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("UploadISO while the server is down: %v", err)
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("the resume state was dropped because the server was down: %v", err)
	}
}

func TestInventoryCalls(t *testing.T) {
	srv := clienttest.Start(t, nil)
	c := newClient(srv)
	ctx := context.Background()
	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	if _, err := c.UploadISO(ctx, p, "fedora", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutProfile(ctx, Profile{Name: "fed", ISO: "fedora", Template: "network --hostname={{.Hostname}}", Kind: "kickstart"}); err != nil {
		t.Fatal(err)
	}
	host := "n1"
	m, err := c.CreateMachine(ctx, "52-54-00-00-00-01", MachineChange{Hostname: &host, Labels: map[string]string{"rack": "a"}})
	if err != nil || m.MAC != "52:54:00:00:00:01" || m.State != "discovered" {
		t.Fatalf("CreateMachine: %+v %v", m, err)
	}
	prof := "fed"
	if m, err = c.UpdateMachine(ctx, m.MAC, MachineChange{Profile: &prof}); err != nil || m.Profile != "fed" || m.Labels["rack"] != "a" {
		t.Fatalf("UpdateMachine: %+v %v", m, err)
	}
	if m, err = c.UpdateMachine(ctx, m.MAC, MachineChange{Labels: map[string]string{}}); err != nil || len(m.Labels) != 0 {
		t.Fatalf("UpdateMachine clearing labels: %+v %v", m, err)
	}
	if m, err = c.ReinstallMachine(ctx, m.MAC); err != nil || m.State != "install-pending" {
		t.Fatalf("ReinstallMachine: %+v %v", m, err)
	}
	ms, err := c.Machines(ctx, "install-pending")
	if err != nil || len(ms) != 1 {
		t.Fatalf("Machines: %+v %v", ms, err)
	}
	if ms, _ := c.Machines(ctx, "installed"); len(ms) != 0 {
		t.Fatalf("Machines(installed): %+v", ms)
	}
	ev, err := c.MachineEvents(ctx, m.MAC, 2)
	if err != nil || len(ev) != 2 {
		t.Fatalf("MachineEvents: %+v %v", ev, err)
	}
	ps, err := c.Profiles(ctx)
	if err != nil || len(ps) != 1 || ps[0].Kind != "kickstart" {
		t.Fatalf("Profiles: %+v %v", ps, err)
	}
	if got, err := c.Profile(ctx, "fed"); err != nil || got.Template == "" {
		t.Fatalf("Profile: %+v %v", got, err)
	}
	c.CreateMachine(ctx, "52:54:00:00:00:02", MachineChange{})
	r, applied, err := c.AddRule(ctx, Rule{Profile: "fed", MACPrefix: "52:54:00", Priority: 3})
	if err != nil || r.ID == 0 || applied != 1 {
		t.Fatalf("AddRule: %+v %d %v", r, applied, err)
	}
	rs, err := c.Rules(ctx)
	if err != nil || len(rs) != 1 || rs[0].MACPrefix != "52:54:00" {
		t.Fatalf("Rules: %+v %v", rs, err)
	}
	var ae *APIError
	if err := c.DeleteProfile(ctx, "fed"); !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Fatalf("DeleteProfile in use: %v", err)
	}
	if err := c.DeleteRule(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	for _, mac := range []string{"52:54:00:00:00:01", "52:54:00:00:00:02"} {
		if err := c.DeleteMachine(ctx, mac); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeleteProfile(ctx, "fed"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Machine(ctx, "52:54:00:00:00:01"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("Machine after delete: %v", err)
	}
}

// withISO9660Magic puts a primary volume descriptor's first bytes at sector 16 of b.
func withISO9660Magic(b []byte) []byte {
	copy(b[16*2048:], "\x01CD001\x01")
	return b
}

// TestUploadChecksTheISO9660HeaderLocally: a file without "CD001" at sector 16 is refused
// before the server is asked anything, with a message that says why.
func TestUploadChecksTheISO9660HeaderLocally(t *testing.T) {
	var requests atomic.Int64
	srv := clienttest.Start(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests.Add(1); h.ServeHTTP(w, r) })
	})
	c := &Client{Base: srv.URL, Token: clienttest.Token, StateDir: t.TempDir()}
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"random.iso":     clienttest.Pattern(9, 3<<20),
		"short.iso":      []byte("CD001"),
		"empty.iso":      nil,
		"gzip.iso.gz":    append([]byte{0x1f, 0x8b, 8, 0}, make([]byte, 40000)...),
		"magic-at-0.img": append([]byte("\x01CD001"), make([]byte, 40000)...),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, content, 0o644)
		_, err := c.UploadISO(context.Background(), p, "", nil)
		if !errors.Is(err, ErrNotISO9660) || !strings.Contains(err.Error(), "sector 16") || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d requests reached the server for files that are no ISO", n)
	}
	// A real image passes the check.
	if _, err := c.UploadISO(context.Background(), clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../..")), "ok", nil); err != nil {
		t.Fatal(err)
	}
}

// TestUploadSameFileAgainAndUnderAnotherName: the same file under its own name is already
// there (no bytes sent); under another name the server answers with the ISO under its one
// name; other content under a taken name is refused before any byte is sent.
func TestUploadSameFileAgainAndUnderAnotherName(t *testing.T) {
	srv, patched := startCountingPatches(t)
	ctx := context.Background()
	c := &Client{Base: srv.URL, Token: clienttest.Token, StateDir: t.TempDir()}
	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	first, err := c.UploadISO(ctx, p, "fedora", nil)
	if err != nil || first.Existed {
		t.Fatalf("first upload: %+v %v", first, err)
	}
	before := patched.Load()
	again, err := c.UploadISO(ctx, p, "fedora", nil)
	if err != nil || !again.Existed || again.ID != first.ID || again.Name != "fedora" {
		t.Fatalf("same file, same name: %+v %v", again, err)
	}
	if patched.Load() != before {
		t.Fatalf("the same file under its own name was sent again")
	}
	other, err := c.UploadISO(ctx, p, "fedora-copy", nil)
	if err != nil || !other.Existed || other.Name != "fedora" || !strings.Contains(other.Message, `the name "fedora-copy" was not added`) {
		t.Fatalf("same file, another name: %+v %v", other, err)
	}
	if l, _ := c.ListISOs(ctx); len(l) != 1 {
		t.Fatalf("%d ISOs listed, want 1", len(l))
	}
	files := clienttest.FedoraFiles(t, "../..")
	files["extra.txt"] = []byte("other content")
	q := clienttest.BuildISO(t, files)
	before = patched.Load()
	if _, err := c.UploadISO(ctx, q, "fedora", nil); !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), "--name") {
		t.Fatalf("other content, taken name: %v", err)
	}
	if patched.Load() != before {
		t.Fatalf("other content under a taken name was sent")
	}
}

// A server running its --max-uploads answers a chunk with 503 + Retry-After: the upload waits
// its turn, however many times it is told to, instead of counting those answers as failures
// and giving up (Retries is 1 here, and the server says "busy" three times).
func TestUploadWaitsForABusyServer(t *testing.T) {
	srv := clienttest.StartConfigured(t, func(c *config.Config) { c.MaxUploads = 1 })
	p, sum := bigISO(t)

	// Another upload holds the server's only slot until the test lets it go.
	release := clienttest.HoldUploadSlot(t, srv.URL, clienttest.Token)

	c := newClient(srv)
	c.Retries, c.busyCap = 1, 20*time.Millisecond
	notices := make(chan string, 100)
	c.Notice = func(msg string) { notices <- msg }
	done := make(chan error, 1)
	var iso *ISO
	go func() {
		var err error
		iso, err = c.UploadISO(context.Background(), p, "waited", func(int64, int64) {})
		done <- err
	}()
	for i := 0; i < 3; i++ {
		select {
		case msg := <-notices:
			if !strings.Contains(msg, "--max-uploads") || !strings.Contains(msg, "waiting") {
				t.Fatalf("notice %q does not say why the upload waits", msg)
			}
		case err := <-done:
			t.Fatalf("upload ended while the server was busy: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("no busy notice in 30 s")
		}
	}
	release() // frees the slot
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("upload after the server had room: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("upload did not finish within 60 s of the slot being freed")
	}
	if iso.SHA256 != sum {
		t.Fatalf("stored sha256 %s, want %s", iso.SHA256, sum)
	}
}

// The busy budget is bounded: a server that stays busy ends the upload with its own message
// once BusyWait is spent, and the upload stays resumable.
func TestUploadGivesUpOnAServerBusyForTooLong(t *testing.T) {
	srv := clienttest.StartConfigured(t, func(c *config.Config) { c.MaxUploads = 1 })
	p, _ := bigISO(t)
	clienttest.HoldUploadSlot(t, srv.URL, clienttest.Token)
	c := newClient(srv)
	c.Retries, c.busyCap, c.BusyWait = 1, 10*time.Millisecond, 100*time.Millisecond
	_, err := c.UploadISO(context.Background(), p, "never", func(int64, int64) {})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "--max-uploads") {
		t.Fatalf("err = %v, want the server's 503 naming --max-uploads", err)
	}
}
