package tftp

import (
	"bytes"
	"io"
	"net/netip"
	"sync"
	"testing"
)

// perClientFiles serves "whoami" as the asking client's address and counts closed readers.
type perClientFiles struct {
	mu     sync.Mutex
	closed int
}

type closingReader struct {
	*bytes.Reader
	f *perClientFiles
}

func (c closingReader) Close() error {
	c.f.mu.Lock()
	c.f.closed++
	c.f.mu.Unlock()
	return nil
}

func (f *perClientFiles) Open(string) (io.ReadSeeker, int64, bool) { return nil, 0, false }

func (f *perClientFiles) OpenFor(name string, client netip.Addr) (io.ReadSeeker, int64, bool) {
	if name != "whoami" {
		return nil, 0, false
	}
	b := []byte(client.String())
	return closingReader{bytes.NewReader(b), f}, int64(len(b)), true
}

// TestClientFilesKnowWhoAsksAndAreClosed: Files implementing ClientFiles are asked with the
// client's address (per-machine files, failure reports only the machine may make), and a
// reader that is a Closer is closed once its transfer ends (files inside ISOs hold the image
// open).
func TestClientFilesKnowWhoAsksAndAreClosed(t *testing.T) {
	f := &perClientFiles{}
	ts := startServer(t, nil, func(c *Config) { c.Files = f })
	got, _, err := download(ts.addr, "whoami", 512, true)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "127.0.0.1" {
		t.Errorf("OpenFor saw client %q, want 127.0.0.1", got)
	}
	if tr := ts.next(t); tr.Err != nil {
		t.Fatalf("transfer: %v", tr.Err)
	}
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed != 1 {
		t.Errorf("reader closed %d times, want 1", closed)
	}
}
