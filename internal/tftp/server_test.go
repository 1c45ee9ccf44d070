package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestDownloadReturnsExactBytesAtEveryBlockSize(t *testing.T) {
	files := testFiles()
	ts := startServer(t, files, nil)
	for _, tc := range []struct {
		blksize     int
		tsize       bool
		wantBlksize int
	}{
		{0, false, 512},      // no options: plain RFC 1350
		{0, true, 512},       // tsize only
		{512, true, 512},     // explicit 512
		{1468, true, 1468},   // what EDK2 asks
		{1468, false, 1468},  // blksize without tsize
		{8192, true, 1468},   // capped to MaxBlockSize
		{65464, false, 1468}, // the largest legal ask
	} {
		for _, name := range []string{"undionly.kpxe", "snponly.efi", "ipxe.efi", "boundary.bin", "autoexec.ipxe"} {
			t.Run(fmt.Sprintf("%s/blksize=%d/tsize=%v", name, tc.blksize, tc.tsize), func(t *testing.T) {
				got, announced, err := download(ts.addr, name, tc.blksize, tc.tsize)
				if err != nil {
					t.Fatalf("download: %v", err)
				}
				if !bytes.Equal(got, files[name]) {
					t.Fatalf("got %d bytes that differ from the %d-byte file", len(got), len(files[name]))
				}
				if tc.tsize && announced != int64(len(files[name])) {
					t.Errorf("tsize announced %d, want %d", announced, len(files[name]))
				}
				tr := ts.next(t)
				if tr.Err != nil || tr.Probe {
					t.Fatalf("transfer reported err=%v probe=%v", tr.Err, tr.Probe)
				}
				if tr.File != name || tr.Bytes != int64(len(files[name])) || tr.Size != int64(len(files[name])) {
					t.Errorf("reported file=%q bytes=%d size=%d, want %q %d", tr.File, tr.Bytes, tr.Size, name, len(files[name]))
				}
				if tr.BlockSize != tc.wantBlksize {
					t.Errorf("reported blksize %d, want %d", tr.BlockSize, tc.wantBlksize)
				}
				if tr.Client == nil || tr.Dur <= 0 {
					t.Errorf("reported client=%v dur=%v", tr.Client, tr.Dur)
				}
			})
		}
	}
}

func TestNegotiatedBlockSizeIsCappedInTheOACK(t *testing.T) {
	files := testFiles()
	ts := startServer(t, files, func(c *Config) { c.MaxBlockSize = 1024 })
	for _, tc := range []struct {
		ask, want string
	}{
		{"8192", "1024"},
		{"1024", "1024"},
		{"600", "600"},
		{"0001000", "0001000"}, // numerically fine: echoed as sent
	} {
		t.Run(tc.ask, func(t *testing.T) {
			peer := newRawPeer(t)
			peer.send(ts.addr, request(opRRQ, "undionly.kpxe", "octet", "blksize", tc.ask, "tsize", "0"))
			p, tid := peer.mustRecv()
			if p.op != opOACK {
				t.Fatalf("want OACK, got %+v", p)
			}
			if p.opts["blksize"] != tc.want {
				t.Fatalf("OACK blksize %q, want %q", p.opts["blksize"], tc.want)
			}
			n, _ := strconv.Atoi(tc.want)
			if got := peer.lockstep(p, tid, n); !bytes.Equal(got, files["undionly.kpxe"]) {
				t.Fatalf("lock-step download differs (%d bytes)", len(got))
			}
			if tr := ts.next(t); tr.Err != nil || tr.BlockSize != n {
				t.Fatalf("reported err=%v blksize=%d", tr.Err, tr.BlockSize)
			}
		})
	}
}

func TestBadBlksizeFallsBackTo512(t *testing.T) {
	files := testFiles()
	ts := startServer(t, files, nil)
	for _, ask := range []string{"100", "511", "abc", "-1", "99999999999999999999", ""} {
		t.Run(ask, func(t *testing.T) {
			peer := newRawPeer(t)
			peer.send(ts.addr, request(opRRQ, "autoexec.ipxe", "octet", "blksize", ask))
			// Nothing left to acknowledge: the server starts with DATA 1.
			p, tid := peer.mustRecv()
			if got := peer.lockstep(p, tid, 512); !bytes.Equal(got, files["autoexec.ipxe"]) {
				t.Fatalf("got %q", got)
			}
			ts.next(t)
		})
	}
}

func TestLeadingSlashNamesTheSameFile(t *testing.T) {
	files := testFiles()
	ts := startServer(t, files, nil)
	got, _, err := download(ts.addr, "/undionly.kpxe", 1468, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, files["undionly.kpxe"]) {
		t.Fatal("content differs")
	}
	if tr := ts.next(t); tr.File != "undionly.kpxe" || tr.Err != nil {
		t.Fatalf("reported %q err=%v", tr.File, tr.Err)
	}
}

func TestRefusedRequestsGetTheirTFTPErrorCode(t *testing.T) {
	files := testFiles()
	ts := startServer(t, files, nil)
	for _, tc := range []struct {
		name     string
		pkt      []byte
		code     uint16
		msg      string
		reported error
	}{
		{"unknown", request(opRRQ, "pxelinux.0", "octet"), 1, "File not found", ErrNotFound},
		{"traversal", request(opRRQ, "../etc/passwd", "octet"), 1, "File not found", ErrNotFound},
		{"absolute", request(opRRQ, "/etc/passwd", "octet"), 1, "File not found", ErrNotFound},
		{"dotdot back to a served name", request(opRRQ, "a/../undionly.kpxe", "octet"), 1, "File not found", ErrNotFound},
		{"two leading slashes", request(opRRQ, "//undionly.kpxe", "octet"), 1, "File not found", ErrNotFound},
		{"trailing slash", request(opRRQ, "undionly.kpxe/", "octet"), 1, "File not found", ErrNotFound},
		{"backslash", request(opRRQ, "\\undionly.kpxe", "octet"), 1, "File not found", ErrNotFound},
		{"dot", request(opRRQ, ".", "octet"), 1, "File not found", ErrNotFound},
		{"dotdot", request(opRRQ, "..", "octet"), 1, "File not found", ErrNotFound},
		{"root", request(opRRQ, "/", "octet"), 1, "File not found", ErrNotFound},
		{"empty", request(opRRQ, "", "octet"), 1, "File not found", ErrNotFound},
		{"case differs", request(opRRQ, "UNDIONLY.KPXE", "octet"), 1, "File not found", ErrNotFound},
		{"trailing space", request(opRRQ, "undionly.kpxe ", "octet"), 1, "File not found", ErrNotFound},
		{"control character", request(opRRQ, "undionly.kpxe\n", "octet"), 1, "File not found", ErrNotFound},
		{"with options", request(opRRQ, "nope.efi", "octet", "tsize", "0", "blksize", "1468"), 1, "File not found", ErrNotFound},
		{"write", request(opWRQ, "undionly.kpxe", "octet"), 2, "Access violation", ErrAccessViolation},
		{"write new file", request(opWRQ, "new.bin", "octet", "tsize", "10"), 2, "Access violation", ErrAccessViolation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := newRawPeer(t)
			peer.send(ts.addr, tc.pkt)
			p, _ := peer.mustRecv()
			if p.op != opERROR || p.code != tc.code || p.msg != tc.msg {
				t.Fatalf("got %+v, want ERROR %d %q", p, tc.code, tc.msg)
			}
			tr := ts.next(t)
			if !errors.Is(tr.Err, tc.reported) {
				t.Fatalf("reported err %v, want %v", tr.Err, tc.reported)
			}
			if tr.Bytes != 0 || tr.Probe {
				t.Fatalf("reported bytes=%d probe=%v", tr.Bytes, tr.Probe)
			}
		})
	}
}

// On the wire a NUL ends the file name: "undionly.kpxe\x00x" is the name "undionly.kpxe"
// followed by the mode "x". It cannot reach another file; the library serves unknown modes as
// octet.
func TestNULEndsTheNameOnTheWire(t *testing.T) {
	files := testFiles()
	ts := startServer(t, files, nil)
	peer := newRawPeer(t)
	peer.send(ts.addr, request(opRRQ, "undionly.kpxe\x00x", "octet"))
	p, tid := peer.mustRecv()
	if got := peer.lockstep(p, tid, 512); !bytes.Equal(got, files["undionly.kpxe"]) {
		t.Fatalf("served %d bytes that are not undionly.kpxe", len(got))
	}
	if tr := ts.next(t); tr.File != "undionly.kpxe" || tr.Err != nil {
		t.Fatalf("reported %q err=%v", tr.File, tr.Err)
	}
}

// EDK2 asks for the size first and aborts once the OACK has told it, then downloads for real
// with windowsize 4, which pin/tftp does not implement: leaving it out of the OACK must make
// the client fall back to lock-step.
func TestEDK2SizeProbeThenDownload(t *testing.T) {
	files := testFiles()
	// A running server has two goroutines: Run and the library's Serve loop.
	running := runtime.NumGoroutine() + 2
	ts := startServer(t, files, nil)

	peer := newRawPeer(t)
	peer.send(ts.addr, request(opRRQ, "snponly.efi", "octet", "tsize", "0", "blksize", "1468", "windowsize", "4"))
	p, tid := peer.mustRecv()
	if p.op != opOACK {
		t.Fatalf("want OACK, got %+v", p)
	}
	want := map[string]string{"tsize": strconv.Itoa(len(files["snponly.efi"])), "blksize": "1468"}
	if fmt.Sprint(p.opts) != fmt.Sprint(want) {
		t.Fatalf("OACK options %v, want %v (windowsize must be left out)", p.opts, want)
	}
	// What OVMF sends.
	peer.send(tid, append([]byte{0, opERROR, 0, 8}, "User aborted the transfer\x00"...))

	tr := ts.next(t)
	if !tr.Probe || tr.Err != nil {
		t.Fatalf("reported probe=%v err=%v, want a probe and no error", tr.Probe, tr.Err)
	}
	if tr.File != "snponly.efi" || tr.Bytes != 0 || tr.Size != int64(len(files["snponly.efi"])) {
		t.Fatalf("reported %+v", tr)
	}
	// The library answers the abort with an ERROR of its own; drain it.
	if p, _, ok := peer.recv(200 * time.Millisecond); ok && p.op != opERROR {
		t.Fatalf("after the abort got %+v", p)
	}
	waitGoroutines(t, running)
	if !portClosed(t, tid) {
		t.Fatalf("transfer port %v still open after the probe", tid)
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "level=DEBUG msg=\"tftp size probe\"") || strings.Contains(logs, "level=WARN") {
		t.Fatalf("want the probe logged at debug and no warning; logs:\n%s", logs)
	}

	// The real download, lock-step at 1468.
	peer.send(ts.addr, request(opRRQ, "snponly.efi", "octet", "blksize", "1468", "windowsize", "4"))
	p, tid = peer.mustRecv()
	if p.op != opOACK || p.opts["blksize"] != "1468" || p.opts["windowsize"] != "" {
		t.Fatalf("want OACK blksize 1468 only, got %+v", p)
	}
	if got := peer.lockstep(p, tid, 1468); !bytes.Equal(got, files["snponly.efi"]) {
		t.Fatalf("download differs (%d bytes)", len(got))
	}
	if tr := ts.next(t); tr.Err != nil || tr.Probe || tr.Bytes != int64(len(files["snponly.efi"])) {
		t.Fatalf("reported %+v", tr)
	}
	waitGoroutines(t, running)
}

func TestClientAbortMidTransferIsAnError(t *testing.T) {
	files := testFiles()
	ts := startServer(t, files, nil)
	peer := newRawPeer(t)
	peer.send(ts.addr, request(opRRQ, "undionly.kpxe", "octet", "blksize", "1468"))
	p, tid := peer.mustRecv()
	peer.send(tid, ack(0))
	if p, _ = peer.mustRecv(); p.op != opDATA || p.block != 1 {
		t.Fatalf("want DATA 1, got %+v", p)
	}
	peer.send(tid, append([]byte{0, opERROR, 0, 0}, "disk full\x00"...))
	tr := ts.next(t)
	if tr.Probe || tr.Err == nil || !strings.Contains(tr.Err.Error(), "block 1") {
		t.Fatalf("reported probe=%v err=%v", tr.Probe, tr.Err)
	}
}

func TestSilentClientTimesOutAndCountsRetransmits(t *testing.T) {
	files := testFiles()
	ts := startServer(t, files, func(c *Config) { c.Timeout = 100 * time.Millisecond; c.Retries = 3 })
	peer := newRawPeer(t)
	peer.send(ts.addr, request(opRRQ, "undionly.kpxe", "octet"))
	// Never ACK: DATA 1 comes once and then Retries times more.
	for i := range 4 {
		p, _ := peer.mustRecv()
		if p.op != opDATA || p.block != 1 {
			t.Fatalf("send %d: got %+v", i, p)
		}
	}
	tr := ts.next(t)
	if p, _, ok := peer.recv(300 * time.Millisecond); ok && p.op == opDATA {
		t.Fatalf("DATA sent a fifth time: %+v", p)
	}
	var ne net.Error
	if !errors.As(tr.Err, &ne) || !ne.Timeout() {
		t.Fatalf("reported err %v, want a timeout", tr.Err)
	}
	if tr.Retransmits != 3 {
		t.Errorf("reported %d retransmits, want 3", tr.Retransmits)
	}
}

// A blksize padded with zeros keeps its text in the OACK; with a short name and a long tsize
// the OACK outgrows the library's 516-byte buffer, and pin/tftp v3.2.0 panics building it.
func TestOversizedOACKDoesNotCrashTheServer(t *testing.T) {
	files := map[string][]byte{"a": bytes.Repeat([]byte{7}, 1_000_000), "b": []byte("still here")}
	ts := startServer(t, files, nil)
	pad := strings.Repeat("0", 492) + "512"
	pkt := request(opRRQ, "a", "", "blksize", pad, "tsize", "")
	if len(pkt) != 516 {
		t.Fatalf("crafted RRQ is %d bytes, want 516", len(pkt))
	}
	peer := newRawPeer(t)
	peer.send(ts.addr, pkt)
	tr := ts.next(t)
	if tr.Err == nil || !strings.Contains(tr.Err.Error(), "panic") {
		t.Fatalf("reported err %v, want the recovered panic", tr.Err)
	}
	got, _, err := download(ts.addr, "b", 0, false)
	if err != nil || string(got) != "still here" {
		t.Fatalf("server stopped serving: %q %v", got, err)
	}
}

func TestManyClientsAtOnce(t *testing.T) {
	files := testFiles()
	ts := startServer(t, files, nil)
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			name := []string{"undionly.kpxe", "snponly.efi"}[i%2]
			got, _, err := download(ts.addr, name, 1468, true)
			if err == nil && !bytes.Equal(got, files[name]) {
				err = fmt.Errorf("%s differs", name)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for range n {
		if tr := ts.next(t); tr.Err != nil {
			t.Error(tr.Err)
		}
	}
}

// Promptly is shown without a stopwatch: with a 10-minute transfer timeout, a Run that waited
// for any timeout (a lingering transfer, a read deadline) would not return within liveness.
func TestRunStopsPromptlyWhenIdle(t *testing.T) {
	before := runtime.NumGoroutine()
	ts := startServer(t, testFiles(), func(c *Config) { c.Timeout = 10 * time.Minute })
	if _, _, err := download(ts.addr, "autoexec.ipxe", 0, false); err != nil {
		t.Fatal(err)
	}
	ts.stop() // fails the test if Run does not return within liveness
	waitGoroutines(t, before)
	if !portClosed(t, ts.addr) {
		t.Fatal("listening socket still open")
	}
	// The port can be bound again.
	c, err := net.ListenUDP("udp4", ts.addr)
	if err != nil {
		t.Fatalf("rebind %v: %v", ts.addr, err)
	}
	c.Close()
}

// A client that vanished mid-transfer holds shutdown for at most Timeout × (Retries+1).
func TestRunStopsWithinBoundWithAStalledClient(t *testing.T) {
	before := runtime.NumGoroutine()
	ts := startServer(t, testFiles(), func(c *Config) { c.Timeout = 200 * time.Millisecond; c.Retries = 3 })
	peer := newRawPeer(t)
	peer.send(ts.addr, request(opRRQ, "ipxe.efi", "octet"))
	peer.mustRecv() // DATA 1, never acknowledged
	// Bounded, not fast: without the bound Run would wait for an ACK that never comes; with it
	// Run returns after 4 × 200 ms (longer on a loaded machine, which is not a failure).
	ts.stop() // fails the test if Run does not return within liveness
	waitGoroutines(t, before)
	if tr := ts.next(t); tr.Err == nil {
		t.Fatal("stalled transfer reported as success")
	}
}

// A transfer in progress ends at its next block when the server stops.
func TestRunAbortsActiveTransfersOnStop(t *testing.T) {
	before := runtime.NumGoroutine()
	// A 10-minute timeout: a Run that waited for the transfer to time out instead of ending it
	// would not return within liveness.
	ts := startServer(t, testFiles(), func(c *Config) { c.Timeout = 10 * time.Minute; c.Retries = 5 })
	peer := newRawPeer(t)
	peer.send(ts.addr, request(opRRQ, "ipxe.efi", "octet"))
	p, tid := peer.mustRecv()
	if p.op != opDATA || p.block != 1 {
		t.Fatalf("got %+v", p)
	}
	stopped := make(chan time.Duration, 1)
	go func() { stopped <- ts.stop() }()
	// Keep acknowledging until the server gives up on us.
	block := uint16(1)
	for i := 0; i < 100; i++ {
		peer.send(tid, ack(block))
		p, _, ok := peer.recv(liveness)
		if !ok {
			t.Fatal("no reply after ACK")
		}
		if p.op == opERROR {
			if p.msg != "Server shutting down" {
				t.Fatalf("got ERROR %q", p.msg)
			}
			break
		}
		block = p.block
	}
	select {
	case <-stopped:
	case <-time.After(liveness):
		t.Fatal("Run did not return")
	}
	if tr := ts.next(t); !errors.Is(tr.Err, ErrShutdown) {
		t.Fatalf("reported %v, want ErrShutdown", tr.Err)
	}
	waitGoroutines(t, before)
}

func TestRunReturnsBindErrorsAtOnce(t *testing.T) {
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s, err := New(Config{Addr: busy.LocalAddr().String(), Files: StaticFiles(nil)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(liveness):
		t.Fatal("Run did not return a bind error")
	}
	<-s.Ready()
	if s.Addr() != nil {
		t.Fatalf("Addr %v after a failed bind", s.Addr())
	}
	if err := s.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	files := StaticFiles(nil)
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Addr: ":69", Files: files}, true},
		{"no addr", Config{Files: files}, false},
		{"no files", Config{Addr: ":69"}, false},
		{"negative timeout", Config{Addr: ":69", Files: files, Timeout: -1}, false},
		{"negative retries", Config{Addr: ":69", Files: files, Retries: -1}, false},
		{"block 512", Config{Addr: ":69", Files: files, MaxBlockSize: 512}, false},
		{"block 513", Config{Addr: ":69", Files: files, MaxBlockSize: 513}, true},
		{"block max", Config{Addr: ":69", Files: files, MaxBlockSize: 65464}, true},
		{"block too big", Config{Addr: ":69", Files: files, MaxBlockSize: 65465}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
			if tc.name == "defaults" && (s.timeout != DefaultTimeout || s.retries != DefaultRetries || s.maxBlock != DefaultMaxBlockSize) {
				t.Fatalf("defaults not applied: %v %d %d", s.timeout, s.retries, s.maxBlock)
			}
		})
	}
}

func TestPeerAbortParsesOnlyTheLibrarysClientErrorText(t *testing.T) {
	for _, tc := range []struct {
		err   string
		block int
		code  int
		msg   string
		ok    bool
	}{
		{"sending block 0: code=8, error: User aborted the transfer", 0, 8, "User aborted the transfer", true},
		{"sending block 17: code=0, error: ", 17, 0, "", true},
		{"sending block 3: code=1, error: a, error: b", 3, 1, "a, error: b", true},
		{"read udp 127.0.0.1:1: i/o timeout", 0, 0, "", false},
		{"sending block x: code=8, error: y", 0, 0, "", false},
		{"sending block 1: code=, error: y", 0, 0, "", false},
		{"sending block 1 code=2", 0, 0, "", false},
	} {
		block, code, msg, ok := peerAbort(errors.New(tc.err))
		if ok != tc.ok || block != tc.block || code != tc.code || msg != tc.msg {
			t.Errorf("peerAbort(%q) = %d %d %q %v", tc.err, block, code, msg, ok)
		}
	}
}

func TestServesOverIPv6Loopback(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	files := testFiles()
	ts := startServer(t, files, func(c *Config) { c.Addr = "[::1]:0" })
	got, announced, err := download(ts.addr, "undionly.kpxe", 1468, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, files["undionly.kpxe"]) || announced != int64(len(got)) {
		t.Fatalf("got %d bytes, tsize %d", len(got), announced)
	}
	if tr := ts.next(t); tr.Err != nil || tr.BlockSize != 1468 {
		t.Fatalf("reported err=%v blksize=%d", tr.Err, tr.BlockSize)
	}
}

// With a drain timeout, a transfer in progress when the server stops runs to the end: the
// client gets the whole file and the transfer is reported complete. Active counts it meanwhile.
func TestRunDrainsActiveTransfersOnStop(t *testing.T) {
	files := testFiles()
	ts := startServer(t, files, func(c *Config) { c.Timeout = 5 * time.Second; c.DrainTimeout = time.Minute })
	peer := newRawPeer(t)
	peer.send(ts.addr, request(opRRQ, "ipxe.efi", "octet"))
	first, tid := peer.mustRecv()
	if first.op != opDATA || first.block != 1 {
		t.Fatalf("got %+v", first)
	}
	if n := ts.srv.Active(); n != 1 {
		t.Fatalf("Active = %d during a transfer, want 1", n)
	}
	stopped := make(chan time.Duration, 1)
	go func() { stopped <- ts.stop() }()
	// New requests are refused (the socket is closed) while the running one goes on.
	got := peer.lockstep(first, tid, 512)
	if !bytes.Equal(got, files["ipxe.efi"]) {
		t.Fatalf("drained transfer delivered %d bytes, want %d", len(got), len(files["ipxe.efi"]))
	}
	select {
	case <-stopped:
	case <-time.After(liveness):
		t.Fatal("Run did not return after the transfer ended")
	}
	if tr := ts.next(t); tr.Err != nil || tr.Bytes != int64(len(files["ipxe.efi"])) {
		t.Fatalf("reported %+v", tr)
	}
	if n := ts.srv.Active(); n != 0 {
		t.Fatalf("Active = %d after the transfer, want 0", n)
	}
}

// Listen binds before Run, so a caller learns of a busy port (TestRunReturnsBindErrorsAtOnce
// shows the error) before it starts anything else, and Run then serves that socket.
func TestListenBindsBeforeRun(t *testing.T) {
	files := testFiles()
	s, err := New(Config{Addr: "127.0.0.1:0", Files: StaticFiles(files)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().(*net.UDPAddr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	data, _, err := download(addr, "autoexec.ipxe", 0, false)
	if err != nil || !bytes.Equal(data, files["autoexec.ipxe"]) {
		t.Fatalf("download from the pre-bound socket: %v (%d bytes)", err, len(data))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
