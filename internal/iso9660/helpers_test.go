package iso9660

import (
	"bytes"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fleetboot/fleetboot/internal/iso9660/isotest"
)

// readExtents returns the bytes of an entry, read from the image by its extents.
func readExtents(t testing.TB, img io.ReaderAt, e *Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, x := range e.Extents {
		if _, err := io.Copy(&buf, io.NewSectionReader(img, x.Offset, x.Length)); err != nil {
			t.Fatalf("%s: read extent %+v: %v", e.Path, x, err)
		}
	}
	return buf.Bytes()
}

// checkTree proves that the index describes exactly the source tree: every file's bytes
// (read through the index's extents) equal the source, every directory lists the same
// names, every symlink carries its target. When names were mangled for ISO 9660 the caller
// passes a tree whose names survive.
func checkTree(t *testing.T, ix *Index, img io.ReaderAt, src string, symlinks bool) {
	t.Helper()
	seen := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		isoPath := "/" + filepath.ToSlash(rel)
		if rel == "." {
			isoPath = "/"
		}
		seen++
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if !symlinks {
				return nil
			}
			target, _ := os.Readlink(p)
			e := lookupNoFollow(t, ix, isoPath)
			if e == nil || !e.IsSymlink() || e.Target != target {
				t.Errorf("%s: got %+v, want symlink to %q", isoPath, e, target)
			}
		case d.IsDir():
			e, err := ix.Lookup(isoPath)
			if err != nil || !e.IsDir() {
				t.Errorf("%s: got %+v, %v; want directory", isoPath, e, err)
				return nil
			}
			want, _ := os.ReadDir(p)
			var wantNames []string
			for _, w := range want {
				if w.Type()&fs.ModeSymlink != 0 && !symlinks {
					continue
				}
				wantNames = append(wantNames, w.Name())
			}
			list, err := ix.ReadDir(isoPath)
			if err != nil {
				t.Errorf("ReadDir %s: %v", isoPath, err)
				return nil
			}
			var got []string
			for _, g := range list {
				got = append(got, g.Name())
			}
			slices.Sort(got)
			slices.Sort(wantNames)
			if !slices.Equal(got, wantNames) {
				t.Errorf("ReadDir %s:\n got %q\nwant %q", isoPath, got, wantNames)
			}
		default:
			e, err := ix.Lookup(isoPath)
			if err != nil || !e.IsRegular() {
				t.Errorf("%s: got %+v, %v; want regular file", isoPath, e, err)
				return nil
			}
			want, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got := readExtents(t, img, e)
			if e.Size != int64(len(want)) || sha256.Sum256(got) != sha256.Sum256(want) {
				t.Errorf("%s: index gives %d bytes (size %d) that differ from the source's %d", isoPath, len(got), e.Size, len(want))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Entries) != seen {
		var paths []string
		for _, e := range ix.Entries {
			paths = append(paths, e.Path)
		}
		t.Errorf("index has %d entries, source tree %d: %q", len(ix.Entries), seen, paths)
	}
}

// lookupNoFollow finds an entry by exact path without following a final symlink.
func lookupNoFollow(t testing.TB, ix *Index, p string) *Entry {
	t.Helper()
	list, err := ix.ReadDir(path.Dir(p))
	if err != nil {
		return nil
	}
	for i := range list {
		if list[i].Path == p {
			return &list[i]
		}
	}
	return nil
}

func indexFile(t testing.TB, p string) (*Index, *os.File) {
	t.Helper()
	f, size := isotest.OpenImage(t, p)
	ix, err := BuildIndex(f, size)
	if err != nil {
		t.Fatalf("BuildIndex %s: %v", p, err)
	}
	return ix, f
}
