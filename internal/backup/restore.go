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
	"path"
	"path/filepath"
	"strings"

	"github.com/fleetboot/fleetboot/internal/datadir"
	"github.com/fleetboot/fleetboot/internal/isostore"
)

// ExternalStatus is what a restore found of an ISO registered by path.
type ExternalStatus struct {
	ExternalISO
	// OK is true when the file exists with the recorded size (and sha256, when checked).
	OK bool
	// Problem says what is wrong when not OK: missing, other size, other content.
	Problem string
}

// Report says what a restore did.
type Report struct {
	Manifest *Manifest
	Files    int
	Bytes    int64
	External []ExternalStatus
}

// Missing counts the external ISOs that are not usable.
func (r *Report) Missing() int {
	n := 0
	for _, e := range r.External {
		if !e.OK {
			n++
		}
	}
	return n
}

// RestoreOptions tune a restore.
type RestoreOptions struct {
	// SkipExternalHash checks external ISOs by size only, not by reading them for their
	// sha256 (which takes as long as reading every such image).
	SkipExternalHash bool
}

// Restore restores the backup from (a directory or a .tar file) into dataDir, which must not
// exist or be empty. Every file is checked against the manifest's sha256 before dataDir
// appears; a failed restore leaves nothing. ISOs registered by path are checked where they
// were: the report says which are missing or changed (the profiles using them show as broken).
func Restore(ctx context.Context, from, dataDir string, opt RestoreOptions) (*Report, error) {
	absData, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, err
	}
	// A server on the directory holds its lock (internal/datadir); so does this restore while
	// it swaps the directory in, so a server cannot start on it meanwhile.
	if lock, err := datadir.Acquire(absData); err == nil {
		defer lock.Close()
	} else if errors.Is(err, datadir.ErrLocked) {
		return nil, err
	}
	if entries, err := os.ReadDir(absData); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("--data %s is not empty; restore into a new directory (move the old one away first)", dataDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("--data %s: %w", dataDir, err)
	}
	if err := os.MkdirAll(filepath.Dir(absData), 0o755); err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(filepath.Dir(absData), "."+filepath.Base(absData)+".restoring-")
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(staging)
		}
	}()

	var got map[string]File
	var m *Manifest
	if IsTar(from) {
		got, m, err = extractTar(from, staging)
	} else {
		got, m, err = copyDir(from, staging)
	}
	if err != nil {
		return nil, err
	}
	if m.Format != Format {
		return nil, fmt.Errorf("backup format %d; this fleetboot reads format %d", m.Format, Format)
	}
	rep := &Report{Manifest: m}
	for _, want := range m.Files {
		f, ok := got[want.Path]
		switch {
		case !ok:
			return nil, fmt.Errorf("backup is incomplete: %s is missing", want.Path)
		case f.Size != want.Size || f.SHA256 != want.SHA256:
			return nil, fmt.Errorf("backup is damaged: %s has %d bytes, sha256 %s; the manifest says %d bytes, sha256 %s",
				want.Path, f.Size, f.SHA256, want.Size, want.SHA256)
		}
		delete(got, want.Path)
		rep.Files++
		rep.Bytes += f.Size
	}
	for p := range got {
		return nil, fmt.Errorf("backup holds %s, which its manifest does not list", p)
	}

	if err := checkExternal(ctx, filepath.Join(staging, dbName), m.ExternalISOs, opt, rep); err != nil {
		return nil, err
	}
	if err := os.Chmod(staging, 0o755); err != nil {
		return nil, err
	}
	os.Remove(absData) // an empty directory the operator made
	if err := os.Rename(staging, absData); err != nil {
		return nil, err
	}
	done = true
	return rep, nil
}

// checkExternal checks every ISO registered by path and, for those that still hold the
// recorded content, records the file's current modification time in the restored database
// (a copy of the file has a new one, and the store refuses files whose time changed).
func checkExternal(ctx context.Context, dbPath string, isos []ExternalISO, opt RestoreOptions, rep *Report) error {
	if len(isos) == 0 {
		return nil
	}
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	for _, x := range isos {
		st := ExternalStatus{ExternalISO: x}
		fi, err := os.Stat(x.Path)
		switch {
		case err != nil:
			st.Problem = "missing: " + err.Error()
		case !fi.Mode().IsRegular():
			st.Problem = "not a regular file"
		case fi.Size() != x.Size:
			st.Problem = fmt.Sprintf("has %d bytes, %d were registered", fi.Size(), x.Size)
		case !opt.SkipExternalHash:
			sum, err := fileSHA256(ctx, x.Path)
			if err != nil {
				st.Problem = "unreadable: " + err.Error()
			} else if sum != x.SHA256 {
				st.Problem = "other content: sha256 " + sum + ", " + x.SHA256 + " was registered"
			}
		}
		if st.Problem == "" {
			st.OK = true
			if err := isostore.RecordSourceFile(ctx, db, x.ID, fi.ModTime().UnixNano()); err != nil {
				return err
			}
		}
		rep.External = append(rep.External, st)
	}
	return nil
}

func fileSHA256(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, isostore.ContextReader{Ctx: ctx, R: f}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cleanRel accepts a backup's relative "/"-separated path and returns it for the local file
// system; paths leaving the directory are refused.
func cleanRel(name string) (string, error) {
	c := path.Clean(name)
	if c != name || c == "." || c == ".." || strings.HasPrefix(c, "../") || strings.HasPrefix(c, "/") || strings.Contains(c, "\x00") {
		return "", fmt.Errorf("backup holds a file with a bad path %q", name)
	}
	return filepath.FromSlash(c), nil
}

// extractTar writes every file of the archive below dst and returns what it wrote and the
// manifest.
func extractTar(from, dst string) (map[string]File, *Manifest, error) {
	f, err := os.Open(from)
	if err != nil {
		return nil, nil, fmt.Errorf("--from %s: %w", from, err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	got := map[string]File{}
	var manifest []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", from, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, nil, fmt.Errorf("backup holds %s, which is not a regular file", hdr.Name)
		}
		if hdr.Name == ManifestName {
			if manifest, err = io.ReadAll(io.LimitReader(tr, 64<<20)); err != nil {
				return nil, nil, err
			}
			continue
		}
		rel, err := cleanRel(hdr.Name)
		if err != nil {
			return nil, nil, err
		}
		file, err := writeFile(filepath.Join(dst, rel), hdr.Name, tr, hdr.Size, fs.FileMode(hdr.Mode).Perm()|0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("restore %s: %w", hdr.Name, err)
		}
		got[hdr.Name] = file
	}
	m, err := parseManifest(manifest)
	return got, m, err
}

// copyDir copies the files the manifest of the backup directory from lists into dst.
func copyDir(from, dst string) (map[string]File, *Manifest, error) {
	b, err := os.ReadFile(filepath.Join(from, ManifestName))
	if err != nil {
		return nil, nil, fmt.Errorf("--from %s is not a fleetboot backup: %w", from, err)
	}
	m, err := parseManifest(b)
	if err != nil {
		return nil, nil, err
	}
	got := map[string]File{}
	for _, want := range m.Files {
		rel, err := cleanRel(want.Path)
		if err != nil {
			return nil, nil, err
		}
		src := filepath.Join(from, rel)
		in, err := os.Open(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue // reported as missing
		}
		if err != nil {
			return nil, nil, err
		}
		st, err := in.Stat()
		if err != nil {
			in.Close()
			return nil, nil, err
		}
		file, err := writeFile(filepath.Join(dst, rel), want.Path, io.LimitReader(in, st.Size()), st.Size(), st.Mode().Perm()|0o600)
		in.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("restore %s: %w", want.Path, err)
		}
		got[want.Path] = file
	}
	return got, m, nil
}

func parseManifest(b []byte) (*Manifest, error) {
	if b == nil {
		return nil, fmt.Errorf("backup has no %s: it is incomplete or not a fleetboot backup", ManifestName)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	return &m, nil
}
