// Package backup copies a fleetboot data directory, while the server runs, into a directory
// or a tar file, and restores such a copy into an empty data directory.
//
// A backup holds a consistent snapshot of the database and of the DHCP lease file (SQLite's
// VACUUM INTO: one transaction's view, taken while DHCP, the API and boots go on writing), the uploaded ISOs the
// snapshot refers to with their indexes, the API token, the assets directory and any other file
// of the data directory, plus manifest.json: every file's size and sha256, and the ISOs that
// were registered by path outside the data directory. Those are not copied (they may live on a
// NAS and be large); a restore checks that each still exists with the recorded size and sha256
// and says which do not. Resumable uploads in progress are left out.
package backup

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/store"
)

// ManifestName is the manifest's name at the top of a backup.
const ManifestName = "manifest.json"

// Format is the manifest format this package writes and reads.
const Format = 1

// dbName is the database file in a data directory and in a backup.
const dbName = "fleetboot.db"

// Manifest describes a backup.
type Manifest struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	// Version is the fleetboot build that made the backup.
	Version string `json:"version,omitempty"`
	// Files are every file of the backup but the manifest, with paths relative to the data
	// directory ("/"-separated).
	Files []File `json:"files"`
	// ExternalISOs were registered by path and are not in the backup.
	ExternalISOs []ExternalISO `json:"external_isos"`
}

// File is one file of a backup.
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ExternalISO is an ISO registered by path: what the restored database expects to find there.
type ExternalISO struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// IsTar reports whether a backup target or source names a tar file rather than a directory.
func IsTar(p string) bool { return strings.HasSuffix(p, ".tar") }

// Create backs up dataDir into to: a directory that does not exist yet (or is empty), or a
// tar file when to ends in ".tar". It may run while a server uses dataDir. Nothing is left at
// to when it fails. imagesDir is the server's --images directory ("": <data>/isos); its images
// go into the backup as isos/<sha256>.iso, so that a restore puts them in <data>/isos.
func Create(ctx context.Context, dataDir, imagesDir, to, version string) (*Manifest, error) {
	if _, err := os.Stat(filepath.Join(dataDir, dbName)); err != nil {
		return nil, fmt.Errorf("%s is not a fleetboot data directory (no %s): %w", dataDir, dbName, err)
	}
	absTo, err := filepath.Abs(to)
	if err != nil {
		return nil, err
	}
	absData, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	if absTo == absData || strings.HasPrefix(absTo, absData+string(filepath.Separator)) {
		return nil, fmt.Errorf("--to %s is inside the data directory %s; back up to somewhere else", to, dataDir)
	}
	var out sink
	if IsTar(absTo) {
		out, err = newTarSink(absTo)
	} else {
		out, err = newDirSink(absTo)
	}
	if err != nil {
		return nil, err
	}
	m, err := create(ctx, absData, imagesDir, absTo, version, out)
	if err != nil {
		out.abort()
		return nil, err
	}
	return m, nil
}

func create(ctx context.Context, dataDir, imagesDir, to, version string, out sink) (*Manifest, error) {
	m := &Manifest{Format: Format, Created: time.Now().UTC(), Version: version, ExternalISOs: []ExternalISO{}}
	add := func(rel, src string) error {
		f, err := out.add(rel, src)
		if err != nil {
			return fmt.Errorf("back up %s: %w", rel, err)
		}
		m.Files = append(m.Files, f)
		return nil
	}

	// The database first: its snapshot decides which ISOs belong to the backup.
	tmp, err := os.MkdirTemp(filepath.Dir(to), ".fleetboot-backup-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	snap := filepath.Join(tmp, dbName)
	if err := store.Snapshot(ctx, dataDir, snap); err != nil {
		return nil, err
	}
	images, err := prepareSnapshot(ctx, snap)
	if err != nil {
		return nil, err
	}
	if err := add(dbName, snap); err != nil {
		return nil, err
	}
	// The full-mode DHCP lease file, snapshotted the same way (it is written to while DHCP
	// runs). It refers to nothing in fleetboot.db, so a snapshot taken a moment apart is as
	// consistent as one taken together.
	if _, err := os.Stat(filepath.Join(dataDir, store.LeasesFile)); err == nil {
		leases := filepath.Join(tmp, store.LeasesFile)
		if err := store.SnapshotFile(ctx, filepath.Join(dataDir, store.LeasesFile), leases); err != nil {
			return nil, err
		}
		if err := add(store.LeasesFile, leases); err != nil {
			return nil, err
		}
	}

	for _, im := range images {
		image, index := isostore.ImageFiles(im)
		if im.SourcePath != "" {
			m.ExternalISOs = append(m.ExternalISOs, ExternalISO{ID: im.ID, Name: im.Name, Path: im.SourcePath, Size: im.Size, SHA256: im.SHA256})
		} else {
			src := filepath.Join(dataDir, image)
			if imagesDir != "" {
				src = filepath.Join(imagesDir, filepath.Base(image))
			}
			if err := add(filepath.ToSlash(image), src); err != nil {
				if errors.Is(err, fs.ErrNotExist) && imagesDir == "" {
					err = fmt.Errorf("%w (if the server runs with --images DIR, give backup the same --images DIR)", err)
				}
				return nil, fmt.Errorf("ISO %s: %w", im.Name, err)
			}
		}
		// The index can be rebuilt from the image, but copying it spares the restored
		// server a re-index.
		if _, err := os.Stat(filepath.Join(dataDir, index)); err == nil {
			if err := add(filepath.ToSlash(index), filepath.Join(dataDir, index)); err != nil {
				return nil, err
			}
		}
	}

	// Everything else: the API token, assets/, files other components keep. Not the live
	// database and its WAL (the snapshot replaces them) and not isos/ (done above, without
	// temporary files and uploads in progress).
	skip := map[string]bool{"isos": true}
	for _, db := range []string{dbName, store.LeasesFile} {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			skip[db+suffix] = true
		}
	}
	err = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, p)
		if rel == "." {
			return nil
		}
		if !strings.Contains(rel, string(filepath.Separator)) && skip[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			return add(filepath.ToSlash(rel), p)
		}
		return nil // directories are implied by their files; symlinks, sockets are not copied
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := out.finish(append(b, '\n')); err != nil {
		return nil, err
	}
	return m, nil
}

// prepareSnapshot drops the snapshot's unfinished uploads (their data is not copied) and lists
// its ISOs.
func prepareSnapshot(ctx context.Context, path string) ([]isostore.Image, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := isostore.ForgetUploads(ctx, db); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return isostore.Images(ctx, db)
}

// sink receives a backup's files.
type sink interface {
	// add copies the file at src into the backup as rel and returns its description.
	add(rel, src string) (File, error)
	// finish writes the manifest and makes the backup visible under its name.
	finish(manifest []byte) error
	// abort removes what was written.
	abort()
}

// dirSink writes a backup as a directory tree.
type dirSink struct {
	root    string
	created bool
}

func newDirSink(root string) (*dirSink, error) {
	entries, err := os.ReadDir(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, err
		}
		return &dirSink{root: root, created: true}, nil
	case err != nil:
		return nil, fmt.Errorf("--to %s: %w", root, err)
	case len(entries) > 0:
		return nil, fmt.Errorf("--to %s is not empty; back up into a new directory (or a .tar file)", root)
	}
	return &dirSink{root: root}, nil
}

// copyFrom opens src and hands its content, size and file info to write.
func copyFrom(src string, write func(r io.Reader, st fs.FileInfo) (File, error)) (File, error) {
	in, err := os.Open(src)
	if err != nil {
		return File{}, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return File{}, err
	}
	// The size is taken now: a file that grows meanwhile is copied as it was.
	return write(io.LimitReader(in, st.Size()), st)
}

func (s *dirSink) add(rel, src string) (File, error) {
	return copyFrom(src, func(r io.Reader, st fs.FileInfo) (File, error) {
		return writeFile(filepath.Join(s.root, filepath.FromSlash(rel)), rel, r, st.Size(), st.Mode().Perm())
	})
}

// writeFile creates dst from r (size bytes), fsyncs it and describes it as rel.
func writeFile(dst, rel string, r io.Reader, size int64, perm fs.FileMode) (File, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return File{}, err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return File{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), r)
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes, expected %d (the file changed while it was copied)", n, size)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return File{}, err
	}
	return File{Path: rel, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func (s *dirSink) finish(manifest []byte) error {
	_, err := writeFile(filepath.Join(s.root, ManifestName), ManifestName, strings.NewReader(string(manifest)), int64(len(manifest)), 0o600)
	return err
}

func (s *dirSink) abort() {
	if s.created {
		os.RemoveAll(s.root)
		return
	}
	entries, _ := os.ReadDir(s.root)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(s.root, e.Name()))
	}
}

// tarSink writes a backup as one tar file, under a temporary name until it is complete.
type tarSink struct {
	path, partial string
	f             *os.File
	tw            *tar.Writer
}

func newTarSink(path string) (*tarSink, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("--to %s already exists; choose a new file name", path)
	}
	partial := path + ".partial"
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--to %s: %w", path, err)
	}
	return &tarSink{path: path, partial: partial, f: f, tw: tar.NewWriter(f)}, nil
}

func (s *tarSink) add(rel, src string) (File, error) {
	return copyFrom(src, func(r io.Reader, st fs.FileInfo) (File, error) {
		return s.write(rel, r, st.Size(), st.Mode().Perm(), st.ModTime())
	})
}

func (s *tarSink) write(rel string, r io.Reader, size int64, perm fs.FileMode, mtime time.Time) (File, error) {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Size: size, Mode: int64(perm), ModTime: mtime, Format: tar.FormatPAX}
	if err := s.tw.WriteHeader(hdr); err != nil {
		return File{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(s.tw, h), r)
	if err != nil {
		return File{}, err
	}
	if n != size {
		return File{}, fmt.Errorf("%d bytes, expected %d (the file changed while it was copied)", n, size)
	}
	return File{Path: rel, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func (s *tarSink) finish(manifest []byte) error {
	// The manifest comes last: only then are the sha256 sums known. A restore reads the whole
	// archive before it trusts anything.
	if _, err := s.write(ManifestName, strings.NewReader(string(manifest)), int64(len(manifest)), 0o600, time.Now()); err != nil {
		return err
	}
	if err := s.tw.Close(); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	if err := s.f.Close(); err != nil {
		return err
	}
	return os.Rename(s.partial, s.path)
}

func (s *tarSink) abort() {
	s.f.Close()
	os.Remove(s.partial)
}
