package isostore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetboot/fleetboot/internal/iso9660"
)

// ImageStore keeps the bytes of uploaded images, each under its SHA-256 (64 lower-case hex
// digits), which is also its key. The Store is its only consumer: it stages, hashes and indexes
// an upload in its own temporary directory, hands the finished file to Put, and reads published
// images back through Open. DirImages (a directory, local or mounted by every instance) is the
// default; an S3-compatible bucket can implement it too (docs/design-storage.md). Images
// registered by path never go through it: they are served in place.
//
// The store does not trust what Open returns: before it serves an image whose Version it has
// not seen, it hashes the bytes and compares them with the catalog's SHA-256 (verify.go).
type ImageStore interface {
	// Open opens the image for ranged reads and describes what it opened (size, version), as
	// of the open: a backend that can tell reports the opened object's own identity, not that
	// of whatever the key names a moment later. A missing image is an error matching
	// fs.ErrNotExist. A backend that holds local files returns the *os.File itself, which
	// iso9660.File hands to sendfile(2); any other reader is read with ReadAt.
	Open(ctx context.Context, sum string) (iso9660.ReaderAt, ImageInfo, error)
	// Stat describes the image without opening it (listings, health, boot-time checks); a
	// missing image matches fs.ErrNotExist.
	Stat(ctx context.Context, sum string) (ImageInfo, error)
	// Where names the place of the image for people: a path, a bucket URL. Errors quote it.
	Where(sum string) string
	// Put publishes a complete image: staged is a local file, already fsync'd, whose
	// content hashes to sum. Put moves or copies it; once Put returns, Open(sum) works and
	// survives a crash, and no reader ever sees a partial image. The caller removes staged if
	// it is still there.
	Put(ctx context.Context, sum, staged string) error
	// Delete removes an image; a missing image is not an error. Readers already open keep
	// working where the backend allows it (local files do).
	Delete(ctx context.Context, sum string) error
	// List returns the sums of all stored images, for the start-up sweep that removes
	// images no catalog row refers to.
	List(ctx context.Context) ([]string, error)
}

// ImageInfo describes a stored image.
type ImageInfo struct {
	Size int64
	// Version changes whenever the bytes may have changed; the store verifies an image's
	// SHA-256 once per version. DirImages: inode, size, modification and change times (a
	// rewrite in place, a copy over it, a rename onto it all change it; nothing a user can do
	// to the file keeps it). An S3 store: the object's ETag or version id.
	Version string
	// ModTime is when the bytes were last written (zero: unknown).
	ModTime time.Time
}

// DirImages is the default ImageStore: <dir>/<sha256>.iso files. The directory may be local
// (the default, <data>/isos) or one that several instances mount (--images: NFS, CephFS);
// images are published by an atomic rename inside it, so another instance sees either no file
// or the whole image.
type DirImages struct{ Dir string }

var _ ImageStore = DirImages{}

func (d DirImages) path(sum string) string { return filepath.Join(d.Dir, sum+".iso") }

// stagingDir is where Put copies an image that cannot be renamed into place (staged on
// another file system) before renaming it.
func (d DirImages) stagingDir() string { return filepath.Join(d.Dir, ".staging") }

// Where is the path of the image.
func (d DirImages) Where(sum string) string { return d.path(sum) }

// fileInfo is the ImageInfo of a local file.
func fileInfo(st fs.FileInfo) ImageInfo {
	var buf [96]byte
	return ImageInfo{Size: st.Size(), ModTime: st.ModTime(), Version: string(appendFileVersion(buf[:0], st))}
}

// appendFileVersion appends the Version of a local file to buf: inode, size, modification and
// change times. Not the device: an NFS mount's device number changes from one mount to the
// next. It allocates nothing, for the serving path (openPooled) that checks it per request.
func appendFileVersion(buf []byte, st fs.FileInfo) []byte {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		buf = append(buf, "size="...)
		buf = strconv.AppendInt(buf, st.Size(), 10)
		buf = append(buf, " mtime="...)
		return strconv.AppendInt(buf, st.ModTime().UnixNano(), 10)
	}
	buf = append(buf, "ino="...)
	buf = strconv.AppendUint(buf, sys.Ino, 10)
	buf = append(buf, " size="...)
	buf = strconv.AppendInt(buf, sys.Size, 10)
	buf = append(buf, " mtime="...)
	buf = appendTimespec(buf, sys.Mtim)
	buf = append(buf, " ctime="...)
	return appendTimespec(buf, sys.Ctim)
}

func appendTimespec(buf []byte, ts syscall.Timespec) []byte {
	buf = strconv.AppendInt(buf, ts.Sec, 10)
	buf = append(buf, '.')
	ns := strconv.AppendInt(make([]byte, 0, 9), ts.Nsec, 10)
	for range 9 - len(ns) {
		buf = append(buf, '0')
	}
	return append(buf, ns...)
}

// Open opens <dir>/<sum>.iso.
func (d DirImages) Open(_ context.Context, sum string) (iso9660.ReaderAt, ImageInfo, error) {
	f, err := os.Open(d.path(sum))
	if err != nil {
		return nil, ImageInfo{}, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ImageInfo{}, err
	}
	return f, fileInfo(st), nil
}

// Stat describes <dir>/<sum>.iso.
func (d DirImages) Stat(_ context.Context, sum string) (ImageInfo, error) {
	st, err := os.Stat(d.path(sum))
	if err != nil {
		return ImageInfo{}, err
	}
	return fileInfo(st), nil
}

// Put renames staged to <dir>/<sum>.iso and syncs the directory. A staged file on another
// file system (the data directory is local, the image directory a network mount) is first
// copied to <dir>/.staging and fsync'd, then renamed: the rename within the image directory is
// what makes the image appear whole to every instance at once.
func (d DirImages) Put(ctx context.Context, sum, staged string) error {
	// The modification time is the publish time: the start-up sweep of a shared directory
	// leaves young images alone (another instance may be about to commit their row).
	now := time.Now()
	if err := os.Chtimes(staged, now, now); err != nil {
		return err
	}
	err := os.Rename(staged, d.path(sum))
	if errors.Is(err, syscall.EXDEV) {
		err = d.copyIn(ctx, sum, staged)
	}
	if err != nil {
		return err
	}
	if err := syncDir(d.Dir); err != nil {
		os.Remove(d.path(sum))
		return err
	}
	return nil
}

// copyIn copies staged into the image directory under a temporary name, then renames it.
func (d DirImages) copyIn(ctx context.Context, sum, staged string) error {
	if err := os.MkdirAll(d.stagingDir(), 0o750); err != nil {
		return err
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(d.stagingDir(), sum+"."+hex.EncodeToString(rnd[:])+".part")
	in, err := os.Open(staged)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // a no-op once renamed
	// The bytes written are hashed on their way: the image is published (and counted as
	// verified, without a hash at its first open) only when they are the bytes whose sum
	// names it.
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), ContextReader{Ctx: ctx, R: in})
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy to %s: %w", d.Dir, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("copy to %s: the bytes copied from %s have sha256 %s, not %s: not published", d.Dir, staged, got, sum)
	}
	return os.Rename(tmp, d.path(sum))
}

// ContextReader stops a long read when Ctx ends (a client gone during a copy, Ctrl-C during a
// restore): each Read first checks it.
type ContextReader struct {
	Ctx context.Context
	R   io.Reader
}

func (c ContextReader) Read(p []byte) (int, error) {
	if err := c.Ctx.Err(); err != nil {
		return 0, err
	}
	return c.R.Read(p)
}

// Delete removes <dir>/<sum>.iso.
func (d DirImages) Delete(_ context.Context, sum string) error {
	if err := os.Remove(d.path(sum)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// List returns the sums of the <sha256>.iso files in the directory.
func (d DirImages) List(_ context.Context) ([]string, error) {
	entries, err := os.ReadDir(d.Dir)
	if err != nil {
		return nil, err
	}
	var sums []string
	for _, e := range entries {
		if sum, ok := strings.CutSuffix(e.Name(), ".iso"); ok && isHex(sum, 64) && e.Type().IsRegular() {
			sums = append(sums, sum)
		}
	}
	return sums, nil
}

// sweepStaging removes copies an interrupted Put left in <dir>/.staging, once they are older
// than grace (a copy of another instance may be under way).
func (d DirImages) sweepStaging(grace time.Duration) {
	entries, err := os.ReadDir(d.stagingDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > grace {
			os.Remove(filepath.Join(d.stagingDir(), e.Name()))
		}
	}
}
