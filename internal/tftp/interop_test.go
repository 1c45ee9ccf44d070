package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Interop with real TFTP clients. Each test skips only when its client is not installed
// (Debian: apt-get install tftp-hpa curl).

// runClient runs a client binary with a deadline and returns its combined output and error.
// The deadline only stops a client that hangs: a download takes well under a second here, but
// thousands of lock-step round trips against a -race server on a loaded machine take longer.
func runClient(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*liveness)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestInteropTFTPHPAClient(t *testing.T) {
	bin, err := exec.LookPath("tftp")
	if err != nil {
		t.Skip("tftp (tftp-hpa) not installed")
	}
	if out, _ := runClient(t, t.TempDir(), bin, "-V"); !strings.Contains(out, "tftp-hpa") {
		t.Skipf("tftp is not tftp-hpa: %q", out)
	}
	files := testFiles()
	ts := startServer(t, files, nil)
	port := strconv.Itoa(ts.addr.Port)
	dir := t.TempDir()

	// tftp-hpa's client sends no options: 512-byte blocks, no tsize.
	for _, name := range []string{"undionly.kpxe", "snponly.efi", "boundary.bin"} {
		out, err := runClient(t, dir, bin, "127.0.0.1", port, "-m", "binary", "-c", "get", name, name+".out")
		if err != nil || strings.Contains(out, "Error") {
			t.Fatalf("get %s: %v\n%s", name, err, out)
		}
		got, err := os.ReadFile(filepath.Join(dir, name+".out"))
		if err != nil || !bytes.Equal(got, files[name]) {
			t.Fatalf("%s: got %d bytes (%v), want the %d-byte file", name, len(got), err, len(files[name]))
		}
		if tr := ts.next(t); tr.Err != nil || tr.BlockSize != 512 {
			t.Fatalf("%s reported err=%v blksize=%d", name, tr.Err, tr.BlockSize)
		}
	}

	out, _ := runClient(t, dir, bin, "127.0.0.1", port, "-m", "binary", "-c", "get", "../etc/passwd", "passwd.out")
	if !strings.Contains(out, "Error code 1: File not found") {
		t.Fatalf("get ../etc/passwd: %q", out)
	}
	if tr := ts.next(t); !errors.Is(tr.Err, ErrNotFound) {
		t.Fatalf("reported %v", tr.Err)
	}

	if err := os.WriteFile(filepath.Join(dir, "up.bin"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ = runClient(t, dir, bin, "127.0.0.1", port, "-m", "binary", "-c", "put", "up.bin", "undionly.kpxe")
	if !strings.Contains(out, "Error code 2: Access violation") {
		t.Fatalf("put: %q", out)
	}
	if tr := ts.next(t); !errors.Is(tr.Err, ErrAccessViolation) {
		t.Fatalf("reported %v", tr.Err)
	}
}

func TestInteropCurl(t *testing.T) {
	bin, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	if out, _ := runClient(t, t.TempDir(), bin, "-V"); !strings.Contains(out, "tftp") {
		t.Skip("curl built without TFTP")
	}
	files := testFiles()
	ts := startServer(t, files, nil)
	dir := t.TempDir()
	url := func(name string) string { return fmt.Sprintf("tftp://127.0.0.1:%d/%s", ts.addr.Port, name) }

	// curl asks tsize and, with --tftp-blksize, blksize; it needs the OACK right.
	for _, tc := range []struct {
		name    string
		blksize int
	}{
		{"ipxe.efi", 1468},
		{"undionly.kpxe", 512},
		{"boundary.bin", 1468},
		{"autoexec.ipxe", 1468},
		{"snponly.efi", 8192}, // capped to 1468
	} {
		out, err := runClient(t, dir, bin, "-sS", "--max-time", "20", "--tftp-blksize", strconv.Itoa(tc.blksize), "-o", "out", url(tc.name))
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", tc.name, err, out)
		}
		got, err := os.ReadFile(filepath.Join(dir, "out"))
		if err != nil || !bytes.Equal(got, files[tc.name]) {
			t.Fatalf("%s: got %d bytes (%v), want the %d-byte file", tc.name, len(got), err, len(files[tc.name]))
		}
		tr := ts.next(t)
		if tr.Err != nil || tr.BlockSize != min(tc.blksize, 1468) {
			t.Fatalf("%s reported err=%v blksize=%d", tc.name, tr.Err, tr.BlockSize)
		}
	}

	// curl exits 68 for TFTP "file not found" and 69 for "permission problem".
	_, err = runClient(t, dir, bin, "-sS", "--max-time", "20", "-o", "out", url("nope.efi"))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 68 {
		t.Fatalf("curl nope.efi: %v, want exit 68", err)
	}
	ts.next(t)
	if err := os.WriteFile(filepath.Join(dir, "up.bin"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runClient(t, dir, bin, "-sS", "--max-time", "20", "-T", "up.bin", url("up.bin"))
	if !errors.As(err, &ee) || ee.ExitCode() != 69 {
		t.Fatalf("curl upload: %v, want exit 69", err)
	}
	if tr := ts.next(t); !errors.Is(tr.Err, ErrAccessViolation) {
		t.Fatalf("reported %v", tr.Err)
	}
}
