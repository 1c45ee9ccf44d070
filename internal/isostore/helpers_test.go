package isostore

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// needXorriso skips a test that builds images when xorriso is not installed (CI installs it).
func needXorriso(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("xorriso")
	if err != nil {
		t.Skip("xorriso not installed (apt-get install xorriso)")
	}
	return p
}

// buildISO runs `xorriso -as mkisofs <args> -o <out> <src>` and returns the image path.
func buildISO(t testing.TB, src string, args ...string) string {
	t.Helper()
	x := needXorriso(t)
	out := filepath.Join(t.TempDir(), "out.iso")
	argv := append([]string{"-as", "mkisofs"}, args...)
	argv = append(argv, "-quiet", "-o", out, src)
	cmd := exec.Command(x, argv...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso %s: %v\n%s", strings.Join(argv, " "), err, b)
	}
	return out
}

// fileContent is the deterministic content of a fixture file: pseudo-random bytes seeded by
// its name, so that a wrong extent shows up as a mismatch.
func fileContent(name string, size int) []byte {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(size)))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// treeSpec lists a fixture tree: files (path → size), directories, symlinks (path → target).
type treeSpec struct {
	files    map[string]int
	dirs     []string
	symlinks map[string]string
}

func writeTree(t testing.TB, root string, spec treeSpec) {
	t.Helper()
	for _, d := range spec.dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, size := range spec.files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, fileContent(p, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range spec.symlinks {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
}

// richTree is the fixture used for Rock Ridge images: sizes around sector boundaries, an
// empty file, a directory of 300 long names (spanning many sectors), a deep tree (deeper
// than ISO 9660's 8 levels, so xorriso relocates it with RRIP CL/RE), odd names, and
// symlinks inside, dangling, escaping and looping.
func richTree() treeSpec {
	s := treeSpec{files: map[string]int{}, symlinks: map[string]string{}}
	for _, size := range []int{0, 1, 2047, 2048, 2049, 4096, 100_000} {
		s.files[fmt.Sprintf("sizes/file-%d.bin", size)] = size
	}
	s.files["casper/vmlinuz"] = 70_000
	s.files["casper/initrd"] = 150_000
	s.files["README"] = 300
	s.files["Mixed Case & spaces/Ünïcødé 日本.txt"] = 1234
	s.files["dots/name.with.many.dots.tar.gz"] = 10
	s.files["dots/trailingdot."] = 11
	s.files[".hidden"] = 12
	for i := 0; i < 300; i++ {
		name := fmt.Sprintf("%03d-%s.deb", i, strings.Repeat("long-package-name-", 6))
		s.files["many/"+name] = i * 7
	}
	deep := "deep"
	for i := 0; i < 12; i++ {
		deep = path.Join(deep, fmt.Sprintf("level%02d", i))
	}
	s.files[deep+"/bottom.txt"] = 5000
	s.dirs = append(s.dirs, "emptydir")
	s.symlinks["links/to-file"] = "../casper/vmlinuz"
	s.symlinks["links/to-dir"] = "../casper"
	s.symlinks["links/chain"] = "to-file"
	s.symlinks["links/abs-inside"] = "/casper/initrd"
	s.symlinks["links/dangling"] = "nowhere"
	s.symlinks["links/escape"] = "../../../etc/passwd"
	s.symlinks["links/loop-a"] = "loop-b"
	s.symlinks["links/loop-b"] = "loop-a"
	s.symlinks["links/self"] = "self"
	s.symlinks["dists/stable"] = "bookworm"
	s.files["dists/bookworm/Release"] = 900
	s.files["dists/bookworm/main/binary-amd64/Packages.gz"] = 3000
	return s
}

// plainTree has names valid at ISO 9660 level 1 (8.3, upper case), so that they survive
// without Rock Ridge or Joliet.
func plainTree() treeSpec {
	return treeSpec{files: map[string]int{
		"README.TXT":          100,
		"NOEXT":               10,
		"ISOLINUX/VMLINUZ":    40_000,
		"ISOLINUX/INITRD.GZ":  90_000,
		"BOOT/GRUB/GRUB.CFG":  500,
		"BOOT/EMPTY.BIN":      0,
		"DATA/A/B/C/D/E.BIN":  2049,
		"DATA/BIG.BIN":        300_000,
		"DATA/SECTOR.BIN":     2048,
		"DATA/SECTOR2.BIN":    4096,
		"DATA/X_Y.Z":          1,
		"DATA/UNDER_SC.ORE":   33,
		"DATA/A/B/FILE01.DAT": 77,
	}}
}

// jolietTree has names Joliet keeps (≤ 64 UCS-2 characters, Unicode, mixed case) and no
// symlinks (Joliet has none).
func jolietTree() treeSpec {
	s := treeSpec{files: map[string]int{
		"Mixed Case/Ünïcødé 日本.txt":          1234,
		"casper/vmlinuz":                     70_000,
		"casper/initrd.img":                  150_000,
		"a longer directory name/file-1.bin": 2048,
		"README":                             0,
	}}
	for i := 0; i < 150; i++ {
		s.files[fmt.Sprintf("many/%03d-joliet-name-%s.bin", i, strings.Repeat("x", 30))] = i
	}
	return s
}

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

func openImage(t testing.TB, p string) (*os.File, int64) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, st.Size()
}

func indexFile(t testing.TB, p string) (*Index, *os.File) {
	t.Helper()
	f, size := openImage(t, p)
	ix, err := BuildIndex(f, size)
	if err != nil {
		t.Fatalf("BuildIndex %s: %v", p, err)
	}
	return ix, f
}

func runCmd(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}
