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
	go func() { done <- srv.Serve(newLimitListener(ln, 16)) }()
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
	l := newLimitListener(inner, 2)
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
