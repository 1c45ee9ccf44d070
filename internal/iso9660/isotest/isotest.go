// Package isotest builds ISO images for tests with xorriso (skipping the test when it is not
// installed) from described file trees, and checks an iso9660.Index against the tree it was
// built from. Tests of internal/iso9660 and internal/isostore share it.
package isotest

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// NeedXorriso skips a test that builds images when xorriso is not installed (CI installs it).
func NeedXorriso(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("xorriso")
	if err != nil {
		t.Skip("xorriso not installed (apt-get install xorriso)")
	}
	return p
}

// BuildISO runs `xorriso -as mkisofs <args> -o <out> <src>` and returns the image path.
func BuildISO(t testing.TB, src string, args ...string) string {
	t.Helper()
	x := NeedXorriso(t)
	out := filepath.Join(t.TempDir(), "out.iso")
	argv := append([]string{"-as", "mkisofs"}, args...)
	argv = append(argv, "-quiet", "-o", out, src)
	cmd := exec.Command(x, argv...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso %s: %v\n%s", strings.Join(argv, " "), err, b)
	}
	return out
}

// FileContent is the deterministic content of a fixture file: pseudo-random bytes seeded by
// its name, so that a wrong extent shows up as a mismatch.
func FileContent(name string, size int) []byte {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(size)))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TreeSpec lists a fixture tree: files (path → size), directories, symlinks (path → target).
type TreeSpec struct {
	Files    map[string]int
	Dirs     []string
	Symlinks map[string]string
}

func WriteTree(t testing.TB, root string, spec TreeSpec) {
	t.Helper()
	for _, d := range spec.Dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, size := range spec.Files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, FileContent(p, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range spec.Symlinks {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
}

// RichTree is the fixture used for Rock Ridge images: sizes around sector boundaries, an
// empty file, a directory of 300 long names (spanning many sectors), a deep tree (deeper
// than ISO 9660's 8 levels, so xorriso relocates it with RRIP CL/RE), odd names, and
// symlinks inside, dangling, escaping and looping.
func RichTree() TreeSpec {
	s := TreeSpec{Files: map[string]int{}, Symlinks: map[string]string{}}
	for _, size := range []int{0, 1, 2047, 2048, 2049, 4096, 100_000} {
		s.Files[fmt.Sprintf("sizes/file-%d.bin", size)] = size
	}
	s.Files["casper/vmlinuz"] = 70_000
	s.Files["casper/initrd"] = 150_000
	s.Files["README"] = 300
	s.Files["Mixed Case & spaces/Ünïcødé 日本.txt"] = 1234
	s.Files["dots/name.with.many.dots.tar.gz"] = 10
	s.Files["dots/trailingdot."] = 11
	s.Files[".hidden"] = 12
	for i := 0; i < 300; i++ {
		name := fmt.Sprintf("%03d-%s.deb", i, strings.Repeat("long-package-name-", 6))
		s.Files["many/"+name] = i * 7
	}
	deep := "deep"
	for i := 0; i < 12; i++ {
		deep = path.Join(deep, fmt.Sprintf("level%02d", i))
	}
	s.Files[deep+"/bottom.txt"] = 5000
	s.Dirs = append(s.Dirs, "emptydir")
	s.Symlinks["links/to-file"] = "../casper/vmlinuz"
	s.Symlinks["links/to-dir"] = "../casper"
	s.Symlinks["links/chain"] = "to-file"
	s.Symlinks["links/abs-inside"] = "/casper/initrd"
	s.Symlinks["links/dangling"] = "nowhere"
	s.Symlinks["links/escape"] = "../../../etc/passwd"
	s.Symlinks["links/loop-a"] = "loop-b"
	s.Symlinks["links/loop-b"] = "loop-a"
	s.Symlinks["links/self"] = "self"
	s.Symlinks["dists/stable"] = "bookworm"
	s.Files["dists/bookworm/Release"] = 900
	s.Files["dists/bookworm/main/binary-amd64/Packages.gz"] = 3000
	return s
}

// PlainTree has names valid at ISO 9660 level 1 (8.3, upper case), so that they survive
// without Rock Ridge or Joliet.
func PlainTree() TreeSpec {
	return TreeSpec{Files: map[string]int{
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

// JolietTree has names Joliet keeps (≤ 64 UCS-2 characters, Unicode, mixed case) and no
// symlinks (Joliet has none).
func JolietTree() TreeSpec {
	s := TreeSpec{Files: map[string]int{
		"Mixed Case/Ünïcødé 日本.txt":          1234,
		"casper/vmlinuz":                     70_000,
		"casper/initrd.img":                  150_000,
		"a longer directory name/file-1.bin": 2048,
		"README":                             0,
	}}
	for i := 0; i < 150; i++ {
		s.Files[fmt.Sprintf("many/%03d-joliet-name-%s.bin", i, strings.Repeat("x", 30))] = i
	}
	return s
}

func OpenImage(t testing.TB, p string) (*os.File, int64) {
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

func RunCmd(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// SmallTree is a tiny fixture for mutation tests and fuzz seeds.
func SmallTree() TreeSpec {
	return TreeSpec{
		Files: map[string]int{
			"README":                          300,
			"casper/vmlinuz":                  5000,
			"casper/initrd":                   3000,
			"sub/dir/file":                    10,
			"sub/" + strings.Repeat("n", 120): 1, // a long name: its Rock Ridge NM goes to a CE area
		},
		Symlinks: map[string]string{"link": "casper/vmlinuz"},
	}
}

// SmallISO builds SmallTree into an image (without xorriso's 300 KiB of trailing padding)
// and returns its bytes.
func SmallISO(t testing.TB, args ...string) []byte {
	t.Helper()
	src := t.TempDir()
	WriteTree(t, src, SmallTree())
	b, err := os.ReadFile(BuildISO(t, src, append([]string{"-no-pad"}, args...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
