package distro

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// debianNetbootTree is where Debian's debian-installer-12-netboot-amd64 package installs the
// netboot tree (the same files mini.iso and netboot.tar.gz carry); the e2e setup installs it.
const debianNetbootTree = "/usr/lib/debian-installer/images/12/amd64/text"

// dirFS loads a real directory tree into a MapFS: small files with their bytes, the rest with
// their size only.
func dirFS(t *testing.T, root string) MapFS {
	t.Helper()
	m := MapFS{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := cleanPath(filepath.ToSlash(strings.TrimPrefix(p, root)))
		if d.IsDir() {
			return nil
		}
		info, err := os.Stat(p) // follows symlinks, as an ISO index resolving Rock Ridge links would
		if err != nil || info.IsDir() {
			return nil
		}
		if info.Size() < 64*kib {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = MapFile{Data: b}
		} else {
			m[rel] = MapFile{Size: info.Size()}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRealDebianNetbootTreeOffersItsInstaller runs Detect over Debian's real netboot tree
// (its pxelinux and GRUB configs name the kernel relative to the tree's root). It skips when
// the package is not installed.
func TestRealDebianNetbootTreeOffersItsInstaller(t *testing.T) {
	if _, err := os.Stat(debianNetbootTree); err != nil {
		t.Skipf("debian-installer-12-netboot-amd64 not installed: %v", err)
	}
	fsys := dirFS(t, debianNetbootTree)
	r := Detect(fsys)
	if len(r.Entries) < 4 {
		t.Fatalf("%d entries: %+v", len(r.Entries), r.Entries)
	}
	for _, e := range r.Entries {
		if e.Kernel != "/debian-installer/amd64/linux" || len(e.Initrds) != 1 || e.Initrds[0] != "/debian-installer/amd64/initrd.gz" {
			t.Errorf("entry %q boots %s %v", e.Label, e.Kernel, e.Initrds)
		}
	}
	// pxelinux's menus name the same kernel relative to the tree's root; GRUB's entries come
	// first and the duplicates are dropped, so check the syslinux side directly.
	txt := ParseIsolinuxCfg(fsys["/debian-installer/amd64/boot-screens/txt.cfg"].Data)
	if len(txt.Entries) == 0 {
		t.Fatal("no entries in the real txt.cfg")
	}
	v := newView(fsys)
	for _, e := range txt.Entries {
		if p, ok := resolveRef(v, e.Kernel, []string{"/debian-installer/amd64/boot-screens", "/"}); !ok || p != "/debian-installer/amd64/linux" {
			t.Errorf("txt.cfg entry %q: kernel %q resolves to %q", e.Label, e.Kernel, p)
		}
	}
	entries, err := Recipe(r, fsys, testParams)
	if err != nil {
		t.Fatal(err)
	}
	if !entries[len(entries)-1].Sanboot || entries[0].Kernel != "/debian-installer/amd64/linux" {
		t.Errorf("recipe %+v", entries)
	}
}
