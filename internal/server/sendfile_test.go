package server

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendfileCalls records sendfileHook's reports for one test.
type sendfileCalls struct {
	mu             sync.Mutex
	raw, scheduled int64 // bytes sent by raw calls, by ordinary ones
}

func watchSendfile(t *testing.T) *sendfileCalls {
	c := &sendfileCalls{}
	sendfileHook = func(raw bool, n int64) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if raw {
			c.raw += n
		} else {
			c.scheduled += n
		}
	}
	t.Cleanup(func() { sendfileHook = nil })
	return c
}

func (c *sendfileCalls) get() (raw, scheduled int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raw, c.scheduled
}

// needCachestat skips on kernels before 6.5, where sendFile leaves everything to net.
func needCachestat(t *testing.T, f *os.File) {
	rng := unix.CachestatRange{Off: 0, Len: 4096}
	var st unix.Cachestat_t
	if _, _, e := syscall.Syscall6(unix.SYS_CACHESTAT, f.Fd(), uintptr(unsafe.Pointer(&rng)), uintptr(unsafe.Pointer(&st)), 0, 0, 0); e == unix.ENOSYS {
		t.Skip("no cachestat(2) on this kernel")
	}
}

// tcpPair returns both ends of a loopback TCP connection, the server's from the limited
// listener.
func tcpPair(t *testing.T) (server net.Conn, client net.Conn) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 4, 0)
	defer l.Close()
	client, err = net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// randomFile writes n random bytes to a new file and returns it open for reading.
func randomFile(t *testing.T, n int) (*os.File, []byte) {
	want := make([]byte, n)
	rand.Read(want)
	name := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(name, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, want
}

// send runs ReadFrom(r) on the server end and returns what the client received.
func send(t *testing.T, r io.Reader) (n int64, got []byte) {
	server, client := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		var err error
		n, err = server.(io.ReaderFrom).ReadFrom(r)
		server.(*limitedTCPConn).CloseWrite()
		done <- err
	}()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	return n, got
}

// TestSendFileCachedBytesBypassTheScheduler: a cached file goes out with raw sendfile calls,
// whole (to EOF) and as a LimitedReader (what http.ServeContent hands over: N bytes from the
// descriptor's offset, N and the offset updated as net's own ReadFrom does).
func TestSendFileCachedBytesBypassTheScheduler(t *testing.T) {
	f, want := randomFile(t, 3<<20+12345) // just written: in the page cache
	needCachestat(t, f)
	calls := watchSendfile(t)

	n, got := send(t, f)
	if n != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("whole file: ReadFrom said %d, client got %d bytes, equal %v", n, len(got), bytes.Equal(got, want))
	}
	if raw, sched := calls.get(); raw != int64(len(want)) || sched != 0 {
		t.Fatalf("cached file: %d bytes raw, %d through the scheduler; want all %d raw", raw, sched, len(want))
	}

	if _, err := f.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	lr := &io.LimitedReader{R: f, N: 2 << 20}
	n, got = send(t, lr)
	if n != 2<<20 || lr.N != 0 || !bytes.Equal(got, want[1000:1000+2<<20]) {
		t.Fatalf("LimitedReader: ReadFrom said %d, N left %d, client got %d bytes, equal %v", n, lr.N, len(got), bytes.Equal(got, want[1000:1000+2<<20]))
	}
	if pos, _ := f.Seek(0, io.SeekCurrent); pos != 1000+2<<20 {
		t.Fatalf("descriptor offset %d after sending, want %d", pos, 1000+2<<20)
	}
}

// TestSendFileUncachedBytesGoThroughTheScheduler: bytes that are not in the page cache may
// need a disk read, so they are sent with an ordinary syscall (the scheduler can hand the P
// to another thread while it blocks).
func TestSendFileUncachedBytesGoThroughTheScheduler(t *testing.T) {
	f, want := randomFile(t, 2<<20)
	needCachestat(t, f)
	// Written back and dropped from the cache: clean pages go on DONTNEED.
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if cached, err := pageCached(f.Fd(), 0, 2<<20); err != nil || cached {
		t.Skipf("the file stayed in the page cache after FADV_DONTNEED (cached %v, %v)", cached, err)
	}
	calls := watchSendfile(t)
	n, got := send(t, &io.LimitedReader{R: f, N: int64(len(want))})
	if n != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("ReadFrom said %d, client got %d bytes, equal %v", n, len(got), bytes.Equal(got, want))
	}
	if _, sched := calls.get(); sched == 0 {
		t.Fatal("an uncached file went out with raw sendfile calls only")
	}
}

// TestSendFileOtherReadersFallBack: readers without a descriptor, and descriptors sendfile
// cannot read (a pipe), still arrive whole, through net's own ReadFrom.
func TestSendFileOtherReadersFallBack(t *testing.T) {
	calls := watchSendfile(t)
	want := bytes.Repeat([]byte("fleetboot "), 100000)
	n, got := send(t, &io.LimitedReader{R: bytes.NewReader(want), N: 5000})
	if n != 5000 || !bytes.Equal(got, want[:5000]) {
		t.Fatalf("bytes.Reader: %d, %d bytes", n, len(got))
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		pw.Write(want)
		pw.Close()
	}()
	defer pr.Close()
	n, got = send(t, pr)
	if n != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("pipe: %d, %d bytes", n, len(got))
	}
	if raw, sched := calls.get(); raw != 0 || sched != 0 {
		t.Fatalf("sendfile reported %d raw + %d bytes for readers it cannot send", raw, sched)
	}
}

// TestSendFileNetworkFileSystemsNeverGoRaw: a file on a network file system (here: its
// statfs type made NFS's) goes out with ordinary calls only, cached or not — its cached pages
// may still need its server, and a raw call waiting for it would stall the whole process.
func TestSendFileNetworkFileSystemsNeverGoRaw(t *testing.T) {
	f, want := randomFile(t, 3<<20) // cached: would be all raw on a local file system
	needCachestat(t, f)
	defer func(orig func(int) (int64, error)) { fsType = orig; forgetFSVerdicts() }(fsType)
	fsType = func(int) (int64, error) { return 0x6969, nil } // NFS_SUPER_MAGIC
	forgetFSVerdicts()
	calls := watchSendfile(t)
	n, got := send(t, &io.LimitedReader{R: f, N: int64(len(want))})
	if n != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("ReadFrom said %d, client got %d bytes, equal %v", n, len(got), bytes.Equal(got, want))
	}
	if raw, sched := calls.get(); raw != 0 || sched != int64(len(want)) {
		t.Fatalf("file on NFS: %d bytes raw, %d through the scheduler; want all through the scheduler", raw, sched)
	}
}

// TestSendFileCachestatEPERMIsAboutOneFile: cachestat refusing one file (EPERM: an ISO
// registered in place, owned by another user) sends that body the ordinary way and leaves the
// raw path on for every other file; only ENOSYS (no cachestat at all) turns it off.
func TestSendFileCachestatEPERMIsAboutOneFile(t *testing.T) {
	f, want := randomFile(t, 1<<20)
	needCachestat(t, f)
	defer func(orig func(uintptr, int64, int64) (bool, error)) { pageCachedFn = orig }(pageCachedFn)
	pageCachedFn = func(uintptr, int64, int64) (bool, error) { return false, unix.EPERM }
	n, got := send(t, &io.LimitedReader{R: f, N: int64(len(want))})
	if n != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("EPERM: ReadFrom said %d, client got %d bytes", n, len(got))
	}
	if noCachestat.Load() {
		noCachestat.Store(false)
		t.Fatal("one file's EPERM turned the raw path off for every file")
	}
}

// forgetFSVerdicts empties localFS's memory.
func forgetFSVerdicts() {
	localDevs.Lock()
	localDevs.m = map[uint64]bool{}
	localDevs.Unlock()
}

// TestSendFileYieldsPerChunkNotPerCall: the raw loop yields the processor once a chunk's
// worth of bytes went out without a wait, not after every sendfile call (a call that filled
// the socket buffer is followed by a wait, which lets the scheduler in anyway).
func TestSendFileYieldsPerChunkNotPerCall(t *testing.T) {
	const size = 40 << 20
	f, want := randomFile(t, size)
	needCachestat(t, f)
	calls := watchSendfile(t)
	var yields, sends int64
	var mu sync.Mutex
	gosched = func() { mu.Lock(); yields++; mu.Unlock(); runtime.Gosched() }
	hook := sendfileHook
	sendfileHook = func(raw bool, n int64) { mu.Lock(); sends++; mu.Unlock(); hook(raw, n) }
	t.Cleanup(func() { gosched = runtime.Gosched })

	n, got := send(t, f)
	if n != size || !bytes.Equal(got, want) {
		t.Fatalf("ReadFrom said %d, client got %d bytes, equal %v", n, len(got), bytes.Equal(got, want))
	}
	if raw, _ := calls.get(); raw == 0 {
		t.Skip("no raw sendfile calls: the file was not found cached")
	}
	mu.Lock()
	defer mu.Unlock()
	if yields > size/sendfileChunk {
		t.Fatalf("%d yields for %d sendfile calls of %d bytes: want at most one per %d bytes", yields, sends, size, sendfileChunk)
	}
	t.Logf("%d sendfile calls, %d yields", sends, yields)
}

// TestSendFileWaitsAfterAShortSend: a sendfile call that sent less than asked filled the
// socket's buffer; the loop then waits for the socket to drain instead of calling again at
// once only to be told EAGAIN. The client reads slowly, so the buffer fills again and again.
func TestSendFileWaitsAfterAShortSend(t *testing.T) {
	const size = 24 << 20
	f, want := randomFile(t, size)
	needCachestat(t, f)
	var mu sync.Mutex
	var calls, again int64
	sendfileHook = func(bool, int64) { mu.Lock(); calls++; mu.Unlock() }
	sendfileAgainHook = func() { mu.Lock(); again++; mu.Unlock() }
	t.Cleanup(func() { sendfileHook, sendfileAgainHook = nil, nil })

	server, client := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		_, err := server.(io.ReaderFrom).ReadFrom(&io.LimitedReader{R: f, N: size})
		server.(*limitedTCPConn).CloseWrite()
		done <- err
	}()
	var got []byte
	buf := make([]byte, 256<<10)
	for {
		n, err := client.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // ~100–250 MB/s at most: slower than sendfile fills
	}
	if err := <-done; err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadFrom: %v; client got %d of %d bytes, equal %v", err, len(got), size, bytes.Equal(got, want))
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d sendfile calls sent bytes, %d found the socket full", calls, again)
	if calls < 4 {
		t.Fatalf("only %d sendfile calls for %d bytes to a slow reader: the buffer never filled", calls, size)
	}
	// Without the wait nearly every call that filled the buffer was followed by an EAGAIN.
	if again*4 > calls {
		t.Fatalf("%d of %d sendfile calls found the socket full: the loop calls again after a short send", again, calls)
	}
}

// TestSendFileShortAtTheEndDoesNotWait: a sendfile call that sends less than asked because
// the file ended (a LimitedReader promising more than the file holds) is not taken for a
// full socket: the loop must not wait for the socket to drain (no event would come: its
// buffer is not full) but finish with the bytes the file had.
func TestSendFileShortAtTheEndDoesNotWait(t *testing.T) {
	const size = 3<<20 + 100
	f, want := randomFile(t, size)
	needCachestat(t, f)
	server, client := tcpPair(t)
	done := make(chan error, 1)
	var n int64
	go func() {
		var err error
		n, err = server.(io.ReaderFrom).ReadFrom(&io.LimitedReader{R: f, N: 8 << 20})
		server.(*limitedTCPConn).CloseWrite()
		done <- err
	}()
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(client); got <- b }()
	select {
	case err := <-done:
		b := <-got
		if err != nil || n != size || !bytes.Equal(b, want) {
			t.Fatalf("ReadFrom said %d, %v; client got %d of %d bytes, equal %v", n, err, len(b), size, bytes.Equal(b, want))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ReadFrom still waiting 30 s after the file's end: a short send at EOF was taken for a full socket")
	}
}
