package tftp

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"
)

// countingFile is a file not held in memory, as one inside an ISO image is: every Read is a
// system call on the image. It counts them.
type countingFile struct {
	r     *bytes.Reader
	reads *atomic.Int64
}

func (c countingFile) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p)
}

func (c countingFile) Seek(off int64, whence int) (int64, error) { return c.r.Seek(off, whence) }

// TestFilesNotInMemoryAreReadInLargeChunks: pin/tftp asks its reader for one block at a time;
// a file read from an ISO image must not cost one read per 512-byte block. The bytes must
// still arrive exactly, at every block size.
func TestFilesNotInMemoryAreReadInLargeChunks(t *testing.T) {
	data := make([]byte, 1<<20+333)
	for i := range data {
		data[i] = byte(i * 7)
	}
	var reads atomic.Int64
	files := FilesFunc(func(name string) (io.ReadSeeker, int64, bool) {
		if name != "big.img" {
			return nil, 0, false
		}
		return countingFile{bytes.NewReader(data), &reads}, int64(len(data)), true
	})
	ts := startServer(t, nil, func(c *Config) { c.Files = files })
	for _, blksize := range []int{512, 1468} {
		reads.Store(0)
		got, _, err := download(ts.addr, "big.img", blksize, true)
		if err != nil {
			t.Fatalf("blksize %d: %v", blksize, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("blksize %d: got %d bytes, not the file's %d", blksize, len(got), len(data))
		}
		if tr := ts.next(t); tr.Err != nil {
			t.Fatalf("blksize %d: transfer: %v", blksize, tr.Err)
		}
		// 1 MiB in 64 KiB reads is 17, plus the one that finds the end; one per block would
		// be 2049 (512) or 715 (1468).
		if n := reads.Load(); n > int64(len(data)/readBufferSize+2) {
			t.Errorf("blksize %d: %d reads of the file for %d bytes, want at most %d", blksize, n,
				len(data), len(data)/readBufferSize+2)
		}
	}
}
