package isostore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/iso9660/isotest"
)

// TestAddPathOnlyBelowRegisterDirs: without --register-dir nothing is registered; with one,
// files below it are, and nothing else is: not a neighbour whose name starts the same, not a
// symlink (to a file or a directory) that leads out, not a path that climbs out. A symlink
// that stays inside is followed and the image recorded under its real path.
func TestAddPathOnlyBelowRegisterDirs(t *testing.T) {
	ctx := context.Background()
	fx := makeFixture(t, isotest.RichTree(), "-R")
	raw, err := os.ReadFile(fx.iso)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	allowed := filepath.Join(base, "isos")
	outside := filepath.Join(base, "isos-private") // shares the allowed directory's prefix
	for _, d := range []string{allowed, outside, filepath.Join(allowed, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	inside := filepath.Join(allowed, "sub", "good.iso")
	secret := filepath.Join(outside, "secret.iso")
	for _, p := range []string{inside, secret} {
		if err := os.WriteFile(p, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"to-secret.iso": secret,                                // a file outside
		"private":       outside,                               // a directory outside
		"rel-out.iso":   "../isos-private/secret.iso",          // relative, climbing out
		"latest.iso":    "sub/good.iso",                        // stays inside
		"loop.iso":      filepath.Join(allowed, "loop.iso"),    // points at itself
		"gone.iso":      filepath.Join(allowed, "missing.iso"), // dangling
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(allowed, name)); err != nil {
			t.Fatal(err)
		}
	}

	off, _ := newStore(t)
	if _, err := off.AddPath(ctx, "x", inside); !errors.Is(err, ErrRegisterOff) || !strings.Contains(err.Error(), "--register-dir") {
		t.Fatalf("without register dirs: %v, want ErrRegisterOff naming --register-dir", err)
	}

	s, _ := newStoreRegisteringFrom(t, allowed)
	for _, p := range []string{
		secret,
		filepath.Join(allowed, "to-secret.iso"),
		filepath.Join(allowed, "private", "secret.iso"),
		filepath.Join(allowed, "rel-out.iso"),
		"/etc/passwd",
	} {
		if _, err := s.AddPath(ctx, "x", p); !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), allowed) {
			t.Errorf("AddPath(%s) = %v, want ErrNotAllowed naming %s", p, err, allowed)
		}
	}
	if _, err := s.AddPath(ctx, "x", allowed+"/sub/../../isos-private/secret.iso"); !errors.Is(err, ErrBadPath) {
		t.Errorf("unclean path: %v, want ErrBadPath", err)
	}
	for _, p := range []string{filepath.Join(allowed, "gone.iso"), filepath.Join(allowed, "loop.iso")} {
		if _, err := s.AddPath(ctx, "x", p); err == nil {
			t.Errorf("AddPath(%s) accepted", p)
		}
	}
	iso, err := s.AddPath(ctx, "latest", filepath.Join(allowed, "latest.iso"))
	if err != nil {
		t.Fatalf("symlink inside: %v", err)
	}
	if iso.SourcePath != inside || iso.SHA256 != fx.sum {
		t.Fatalf("recorded %s (%s), want the real path %s", iso.SourcePath, iso.SHA256, inside)
	}
	if got := s.RegisterDirs(); len(got) != 1 || got[0] != allowed {
		t.Fatalf("RegisterDirs = %v", got)
	}
	// A register directory that is itself a symlink: paths through either name are below it.
	alias := filepath.Join(base, "alias")
	if err := os.Symlink(allowed, alias); err != nil {
		t.Fatal(err)
	}
	s2, _ := newStoreRegisteringFrom(t, alias)
	if _, err := s2.AddPath(ctx, "via-alias", filepath.Join(alias, "sub", "good.iso")); err != nil {
		t.Fatalf("through the aliased register dir: %v", err)
	}
	if _, err := s2.AddPath(ctx, "out", filepath.Join(alias, "to-secret.iso")); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("out through the aliased register dir: %v", err)
	}
	// A register directory that does not exist is an error at Open.
	db := s.db
	if _, err := Open(ctx, Config{DataDir: t.TempDir(), DB: db, RegisterDirs: []string{filepath.Join(base, "nope")}}); err == nil {
		t.Fatal("Open accepted a missing register dir")
	}
}

// TestOpenBelowRefusesASwapAfterTheCheck: the path was checked, then a directory on it is
// swapped for a symlink out of the register directory (what a local attacker would race
// for); the open refuses instead of following it.
func TestOpenBelowRefusesASwapAfterTheCheck(t *testing.T) {
	base := t.TempDir()
	allowed, outside := filepath.Join(base, "isos"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(allowed, "d"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	real := filepath.Join(allowed, "d", "x.iso")
	for _, p := range []string{real, filepath.Join(outside, "x.iso")} {
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := openBelow(allowed, "d/x.iso", real)
	if err != nil {
		t.Fatalf("unswapped: %v", err)
	}
	f.Close()
	// The swap: d becomes a symlink to the outside directory.
	if err := os.Rename(filepath.Join(allowed, "d"), filepath.Join(allowed, "d-old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(allowed, "d")); err != nil {
		t.Fatal(err)
	}
	if f, err := openBelow(allowed, "d/x.iso", real); !errors.Is(err, ErrNotAllowed) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("after the swap: %v, want ErrNotAllowed", err)
	}
	// Or the file itself becomes a symlink to another file inside: O_NOFOLLOW refuses it too.
	os.Remove(filepath.Join(allowed, "d"))
	os.Rename(filepath.Join(allowed, "d-old"), filepath.Join(allowed, "d"))
	os.WriteFile(filepath.Join(allowed, "other.iso"), []byte("other"), 0o644)
	os.Remove(real)
	if err := os.Symlink("../other.iso", real); err != nil {
		t.Fatal(err)
	}
	if f, err := openBelow(allowed, "d/x.iso", real); !errors.Is(err, ErrNotAllowed) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("file swapped for a symlink: %v, want ErrNotAllowed", err)
	}
}
