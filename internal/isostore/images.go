package isostore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetboot/fleetboot/internal/iso9660"
)

// ImageStore keeps the bytes of uploaded images, each under its SHA-256 (64 lower-case hex
// digits). The Store is its only consumer: it stages, hashes and indexes an upload in its
// own temporary directory, hands the finished file to Put, and reads published images back
// through Open. DirImages (a local directory) is the default; an S3-compatible bucket can
// implement it too (docs/design-storage.md). Images registered by path never go through it:
// they are served in place.
type ImageStore interface {
	// Open opens the image for ranged reads. size is what the catalog recorded for it: a
	// stored image of another size fails with ErrChanged, a missing one with an error
	// matching fs.ErrNotExist. A backend that holds local files returns the *os.File itself,
	// which iso9660.File hands to sendfile(2); any other reader is read with ReadAt.
	Open(ctx context.Context, sum string, size int64) (iso9660.ReaderAt, error)
	// Put publishes a complete image: staged is a local file, already fsync'd, whose
	// content hashes to sum. Put moves or copies it; once Put returns, Open(sum) works and
	// survives a crash. The caller removes staged if it is still there.
	Put(ctx context.Context, sum, staged string) error
	// Delete removes an image; a missing image is not an error. Readers already open keep
	// working where the backend allows it (local files do).
	Delete(ctx context.Context, sum string) error
	// List returns the sums of all stored images, for the start-up sweep that removes
	// images no catalog row refers to.
	List(ctx context.Context) ([]string, error)
}

// DirImages is the default ImageStore: <dir>/<sha256>.iso files, published by rename (so
// staged files must be on the same file system, as <data>/isos/tmp is).
type DirImages struct{ Dir string }

var _ ImageStore = DirImages{}

func (d DirImages) path(sum string) string { return filepath.Join(d.Dir, sum+".iso") }

// Open opens <dir>/<sum>.iso and checks its size.
func (d DirImages) Open(_ context.Context, sum string, size int64) (iso9660.ReaderAt, error) {
	f, err := os.Open(d.path(sum))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size() != size {
		f.Close()
		return nil, fmt.Errorf("%s: %d bytes, catalog says %d: %w", d.path(sum), st.Size(), size, ErrChanged)
	}
	return f, nil
}

// Put renames staged to <dir>/<sum>.iso and syncs the directory.
func (d DirImages) Put(_ context.Context, sum, staged string) error {
	if err := os.Rename(staged, d.path(sum)); err != nil {
		return err
	}
	if err := syncDir(d.Dir); err != nil {
		os.Remove(d.path(sum))
		return err
	}
	return nil
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
