package iso9660

import (
	"bytes"
	"testing"

	"github.com/fleetboot/fleetboot/internal/iso9660/isotest"
)

// FuzzBuildIndex feeds mutated images to the index builder: it must never panic or hang, and
// whatever it accepts must satisfy what serving relies on (extents inside the image, valid
// directory ranges, lookups that find every entry, a persisted form that loads back).
// Run: go test -fuzz FuzzBuildIndex ./internal/isostore/
func FuzzBuildIndex(f *testing.F) {
	for _, args := range [][]string{{"-R", "-J"}, {"--norock", "-J"}, {"--norock", "-iso-level", "1"}} {
		f.Add(isotest.SmallISO(f, args...))
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		ix, err := BuildIndex(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			return
		}
		checkInvariants(t, ix)
	})
}

// FuzzReadIndex checks that a damaged persisted index is refused, never trusted with a panic.
func FuzzReadIndex(f *testing.F) {
	ix, err := BuildIndex(bytes.NewReader(isotest.SmallISO(f, "-R")), 0)
	if err == nil {
		f.Fatal("size 0 accepted")
	}
	img := isotest.SmallISO(f, "-R")
	ix, err = BuildIndex(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ReadIndex(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for i := range got.Entries {
			if _, err := got.Lookup(got.Entries[i].Path); err != nil && !got.Entries[i].IsSymlink() {
				t.Fatalf("loaded index cannot find its own entry %q: %v", got.Entries[i].Path, err)
			}
		}
	})
}
