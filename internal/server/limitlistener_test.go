package server

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// countingFile counts the bytes that go through Read; embedding keeps *os.File's
// SyscallConn, so bytes net/http sends with sendfile(2) never pass through it.
type countingFile struct {
	*os.File
	read *atomic.Int64
}

func (c countingFile) Read(p []byte) (int, error) {
	n, err := c.File.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// TestLimitListenerKeepsSendfile serves a file through http.Server on the limited listener:
// all but the first 512 bytes (net/http copies those itself before switching to ReadFrom)
// must bypass Read, i.e. go out by sendfile. With x/net's netutil.LimitListener, whose
// connections hide the *net.TCPConn, every byte went through Read.
func TestLimitListenerKeepsSendfile(t *testing.T) {
	want := make([]byte, 1<<20)
	rand.Read(want)
	name := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(name, want, 0o644); err != nil {
		t.Fatal(err)
	}
	var read atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(name)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "blob", time.Time{}, countingFile{f, &read})
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(newLimitListener(ln, 16, 0)) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})

	for _, rng := range []string{"", "bytes=1000-900000"} {
		read.Store(0)
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/blob", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		exp := want
		if rng != "" {
			exp = want[1000:900001]
		}
		if !bytes.Equal(body, exp) {
			t.Fatalf("Range %q: %d %d bytes, not the file's", rng, resp.StatusCode, len(body))
		}
		if n := read.Load(); n > 512 {
			t.Fatalf("Range %q: %d of %d bytes went through Read: the connection lost sendfile", rng, n, len(exp))
		}
	}
}

// TestLimitListenerBoundsConnections: with a limit of 2, a third client is not accepted until
// one of the first two closes, and Close unblocks a waiting Accept.
func TestLimitListenerBoundsConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2, 0)
	defer l.Close()
	accepted := make(chan net.Conn, 3)
	acceptErr := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				acceptErr <- err
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	first := <-accepted
	<-accepted
	if _, ok := first.(io.ReaderFrom); !ok {
		t.Fatalf("accepted %T has no ReadFrom", first)
	}
	if _, ok := first.(interface{ CloseWrite() error }); !ok {
		t.Fatalf("accepted %T has no CloseWrite", first)
	}
	// The third connection sits in the accept queue: Accept must not return it while two are
	// open. (A bounded wait only for the negative; the positive below waits as long as needed.)
	select {
	case c := <-accepted:
		t.Fatalf("a third connection (%v) was accepted while two were open", c.RemoteAddr())
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	first.Close() // a second Close must not free a second slot
	third := <-accepted
	third.Close()
	// The accepting goroutine now waits in the inner Accept; the listener's Close ends it.
	l.Close()
	if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

// idlePair is tcpPair with the server end cutting off writes after writeIdle without progress.
func idlePair(t *testing.T, writeIdle time.Duration) (server *limitedTCPConn, client net.Conn) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 4, writeIdle)
	defer l.Close()
	client, err = net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); client.Close() })
	return c.(*limitedTCPConn), client
}

// bigFile is a file of n bytes (written, so in the page cache), open for reading.
func bigFile(t *testing.T, n int) *os.File {
	name := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(name, make([]byte, n), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// plainReader hides every interface but Read: net copies it (the fallback path).
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// waitErr waits (boundedly) for a write that must end in a deadline error.
func waitErr(t *testing.T, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: %v, want a deadline error", what, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still writing to a client that reads nothing 30 s on", what)
	}
}

// TestWriteIdleCutsOffAClientThatStopsReading: a client whose window stays shut (it reads
// nothing) is cut off after writeIdle without progress — on sendfile's own path, on net's
// fallback path and for plain writes. Without the deadline each would wait for ever (TCP
// keeps probing the zero window and never gives up).
func TestWriteIdleCutsOffAClientThatStopsReading(t *testing.T) {
	const size = 64 << 20 // far more than loopback's socket buffers take
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, c *limitedTCPConn) error
	}{
		{"sendfile", func(t *testing.T, c *limitedTCPConn) error {
			_, err := c.ReadFrom(&io.LimitedReader{R: bigFile(t, size), N: size})
			return err
		}},
		{"fallback", func(_ *testing.T, c *limitedTCPConn) error {
			_, err := c.ReadFrom(plainReader{bytes.NewReader(make([]byte, size))})
			return err
		}},
		{"write", func(_ *testing.T, c *limitedTCPConn) error {
			_, err := c.Write(make([]byte, size))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			server, _ := idlePair(t, 300*time.Millisecond)
			done := make(chan error, 1)
			body := func(c *limitedTCPConn) error { return tc.write(t, c) }
			go func() { done <- body(server) }()
			waitErr(t, tc.name, done)
		})
	}
}

// TestWriteIdleSparesASlowReader: a client that keeps reading, slowly, gets the whole body
// although the download takes several times writeIdle (the deadline is on progress, not on
// the transfer).
func TestWriteIdleSparesASlowReader(t *testing.T) {
	const size = 24 << 20
	const idle = 2 * time.Second
	for _, tc := range []struct {
		name string
		body func(t *testing.T) io.Reader
	}{
		{"sendfile", func(t *testing.T) io.Reader { return &io.LimitedReader{R: bigFile(t, size), N: size} }},
		{"fallback", func(*testing.T) io.Reader { return plainReader{bytes.NewReader(make([]byte, size))} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			server, client := idlePair(t, idle)
			body := tc.body(t)
			done := make(chan error, 1)
			go func() {
				_, err := server.ReadFrom(body)
				server.CloseWrite()
				done <- err
			}()
			start := time.Now()
			var got int64
			buf := make([]byte, 512<<10)
			for {
				n, err := io.ReadFull(client, buf)
				got += int64(n)
				if err != nil {
					break
				}
				time.Sleep(100 * time.Millisecond) // 5 MiB/s: 24 MiB take ~5 s
			}
			if err := <-done; err != nil || got != size {
				t.Fatalf("slow reader got %d of %d bytes in %v: %v", got, size, time.Since(start), err)
			}
			if el := time.Since(start); el < idle {
				t.Logf("the download took %v, less than the idle timeout: the test proves less than it should", el)
			}
		})
	}
}

// TestHandlerDeadlineWinsOverWriteIdle: a deadline the handler sets (the event stream's
// per-write timeout) is not pushed away by the idle deadline; once cleared, the idle deadline
// applies again.
func TestHandlerDeadlineWinsOverWriteIdle(t *testing.T) {
	server, _ := idlePair(t, time.Hour)
	server.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	done := make(chan error, 1)
	go func() { _, err := server.Write(make([]byte, 64<<20)); done <- err }()
	waitErr(t, "handler's deadline", done)

	server2, _ := idlePair(t, 300*time.Millisecond)
	server2.SetWriteDeadline(time.Now().Add(time.Hour))
	server2.SetWriteDeadline(time.Time{})
	go func() { _, err := server2.Write(make([]byte, 64<<20)); done <- err }()
	waitErr(t, "idle deadline after the handler's was cleared", done)
}

// TestStalledDownloadFreesItsConnectionSlot: through http.Server on a listener of one
// connection, a client that requests a big file and reads nothing is cut off, so the next
// client is served; without the idle deadline it would wait in the accept queue for ever.
func TestStalledDownloadFreesItsConnectionSlot(t *testing.T) {
	f := bigFile(t, 64<<20)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			io.WriteString(w, "ok")
			return
		}
		http.ServeContent(w, r, "big", time.Time{}, io.NewSectionReader(f, 0, 64<<20))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(newLimitListener(ln, 1, 300*time.Millisecond))
	t.Cleanup(func() { srv.Close() })

	stalled, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := io.WriteString(stalled, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The stalled client holds the only slot once its response has started.
	if _, err := stalled.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	res, err := client.Get("http://" + ln.Addr().String() + "/small")
	if err != nil {
		t.Fatalf("second client not served while the first stalls: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("second client got %q", b)
	}
}

// TestWriteIdleDeadlineMovesSeldom: progress moves the write deadline (a timer operation) at
// most once per idleSlack, not on every write or sendfile chunk; a deadline the handler set
// and cleared makes the next progress set the idle deadline again at once.
func TestWriteIdleDeadlineMovesSeldom(t *testing.T) {
	// idleSlack is 22.5 min here: all writes below fall inside one slack.
	server, client := idlePair(t, 24*time.Hour)
	go io.Copy(io.Discard, client)
	for i := 0; i < 1000; i++ {
		if _, err := server.Write([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
	}
	if n := server.moves.Load(); n != 1 {
		t.Fatalf("1000 writes moved the deadline %d times, want 1", n)
	}
	server.SetWriteDeadline(time.Now().Add(time.Hour))
	server.SetWriteDeadline(time.Time{})
	if _, err := server.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n := server.moves.Load(); n != 2 {
		t.Fatalf("after the handler cleared its deadline: %d moves, want 2 (the idle deadline set again)", n)
	}
	if _, err := server.ReadFrom(&io.LimitedReader{R: bigFile(t, 32<<20), N: 32 << 20}); err != nil {
		t.Fatal(err)
	}
	if n := server.moves.Load(); n != 2 {
		t.Fatalf("a 32 MiB sendfile body moved the deadline %d more times, want 0", n-2)
	}
}
