package iso9660

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/iso9660/isotest"
)

func TestBuildIndexRoundTripsEveryVariant(t *testing.T) {
	cases := []struct {
		name      string
		tree      func() isotest.TreeSpec
		args      []string
		names     NameSource
		symlinks  bool
		wantLabel string
	}{
		{"rockridge+joliet", isotest.RichTree, []string{"-R", "-J", "-V", "FLEET_RJ"}, NamesRockRidge, true, "FLEET_RJ"},
		{"rockridge only", isotest.RichTree, []string{"-R", "-V", "FLEET_R"}, NamesRockRidge, true, "FLEET_R"},
		{"rockridge rationalized", isotest.RichTree, []string{"-r", "-J"}, NamesRockRidge, true, "ISOIMAGE"},
		{"rockridge no deep relocation", isotest.RichTree, []string{"-R", "-D"}, NamesRockRidge, true, "ISOIMAGE"},
		// Deep directories moved to rr_moved: found again through RRIP CL, hidden there by RE.
		{"rockridge deep relocation", isotest.RichTree, []string{"-R", "-rr_reloc_dir", "rr_moved"}, NamesRockRidge, true, "ISOIMAGE"},
		{"joliet only", isotest.JolietTree, []string{"--norock", "-J", "-V", "JOLIET"}, NamesJoliet, false, "JOLIET"},
		{"plain level 1", isotest.PlainTree, []string{"--norock", "-iso-level", "1", "-V", "PLAIN1"}, NamesISO9660, false, "PLAIN1"},
		{"plain level 2", isotest.PlainTree, []string{"--norock", "-iso-level", "2"}, NamesISO9660, false, "ISOIMAGE"},
		{"plain level 3", isotest.PlainTree, []string{"--norock", "-iso-level", "3"}, NamesISO9660, false, "ISOIMAGE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // mostly waiting for xorriso
			src := t.TempDir()
			isotest.WriteTree(t, src, c.tree())
			img := isotest.BuildISO(t, src, c.args...)
			ix, f := indexFile(t, img)
			if ix.Names != c.names {
				t.Errorf("names from %q, want %q", ix.Names, c.names)
			}
			if ix.Label != c.wantLabel {
				t.Errorf("label %q, want %q", ix.Label, c.wantLabel)
			}
			checkTree(t, ix, f, src, c.symlinks)
		})
	}
}

func TestBuildIndexResolvesSymlinksInsideTheImageOnly(t *testing.T) {
	src := t.TempDir()
	isotest.WriteTree(t, src, isotest.RichTree())
	ix, _ := indexFile(t, isotest.BuildISO(t, src, "-R"))
	resolved := map[string]string{
		"/links/to-file":    "/casper/vmlinuz",
		"/links/to-dir":     "/casper",
		"/links/chain":      "/casper/vmlinuz",
		"/links/abs-inside": "/casper/initrd",
		"/dists/stable":     "/dists/bookworm",
		"/links/dangling":   "",
		"/links/escape":     "",
		"/links/loop-a":     "",
		"/links/loop-b":     "",
		"/links/self":       "",
	}
	for p, want := range resolved {
		e := lookupNoFollow(t, ix, p)
		if e == nil || !e.IsSymlink() {
			t.Errorf("%s: %+v, want a symlink", p, e)
			continue
		}
		if e.Resolved != want {
			t.Errorf("%s resolves to %q, want %q", p, e.Resolved, want)
		}
	}
	// Lookups follow links in the middle and at the end of a path.
	for p, want := range map[string]string{
		"links/to-dir/initrd":                         "/casper/initrd",
		"/dists/stable/main/binary-amd64/Packages.gz": "/dists/bookworm/main/binary-amd64/Packages.gz",
		"/links/chain":                                "/casper/vmlinuz",
	} {
		e, err := ix.Lookup(p)
		if err != nil || e.Path != want {
			t.Errorf("Lookup(%q) = %+v, %v; want %s", p, e, err, want)
		}
	}
	for _, p := range []string{"/links/escape", "/links/loop-a", "/links/self", "/links/dangling", "/links/to-file/x"} {
		if _, err := ix.Lookup(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) err = %v, want ErrNotFound", p, err)
		}
	}
	broken := 0
	for _, pr := range ix.Problems {
		if strings.HasPrefix(pr.Reason, "broken symlink") {
			broken++
		}
	}
	if broken != 5 {
		t.Errorf("%d broken-symlink problems recorded, want 5: %+v", broken, ix.Problems)
	}
}

func TestLookupRejectsTraversalAndNUL(t *testing.T) {
	src := t.TempDir()
	isotest.WriteTree(t, src, isotest.RichTree())
	ix, _ := indexFile(t, isotest.BuildISO(t, src, "-R"))
	for _, p := range []string{"../etc/passwd", "/casper/../../x", "casper/..", "a\x00b", "/..", strings.Repeat("a/", 3000)} {
		if _, err := ix.Lookup(p); !errors.Is(err, ErrBadPath) {
			t.Errorf("Lookup(%q) err = %v, want ErrBadPath", p, err)
		}
	}
	for p, want := range map[string]string{"": "/", "/": "/", "casper/": "/casper", "//casper//vmlinuz": "/casper/vmlinuz", "./casper/./initrd": "/casper/initrd"} {
		e, err := ix.Lookup(p)
		if err != nil || e.Path != want {
			t.Errorf("Lookup(%q) = %v, %v; want %s", p, e, err, want)
		}
	}
	if _, err := ix.ReadDir("/casper/vmlinuz"); !errors.Is(err, ErrNotDir) {
		t.Errorf("ReadDir of a file: %v, want ErrNotDir", err)
	}
}

func TestPlainISONamesMatchCaseInsensitively(t *testing.T) {
	src := t.TempDir()
	isotest.WriteTree(t, src, isotest.PlainTree())
	ix, _ := indexFile(t, isotest.BuildISO(t, src, "--norock", "-iso-level", "1"))
	e, err := ix.Lookup("/isolinux/vmlinuz")
	if err != nil || e.Path != "/ISOLINUX/VMLINUZ" {
		t.Fatalf("lower-case lookup = %+v, %v", e, err)
	}
	// Rock Ridge names are case-sensitive: no folding there.
	src2 := t.TempDir()
	isotest.WriteTree(t, src2, isotest.RichTree())
	ix2, _ := indexFile(t, isotest.BuildISO(t, src2, "-R"))
	if _, err := ix2.Lookup("/CASPER/VMLINUZ"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Rock Ridge lookup folded case: %v", err)
	}
}

func TestRockRidgeModesAndTimes(t *testing.T) {
	src := t.TempDir()
	isotest.WriteTree(t, src, isotest.RichTree())
	ix, _ := indexFile(t, isotest.BuildISO(t, src, "-R"))
	e, err := ix.Lookup("/casper/vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	if e.Mode != 0o644 {
		t.Errorf("mode %v, want -rw-r--r--", e.Mode)
	}
	if e.ModTime.IsZero() {
		t.Error("no mtime")
	}
	d, _ := ix.Lookup("/casper")
	if d.Mode != fs.ModeDir|0o755 {
		t.Errorf("dir mode %v", d.Mode)
	}
}
