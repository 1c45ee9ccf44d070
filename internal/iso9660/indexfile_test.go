package iso9660

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"time"
)

// syntheticIndex builds an index of dirs×files entries laid out as BuildIndex lays them
// (breadth first, each directory's children contiguous), with Debian-pool-like paths.
func syntheticIndex(dirs, files int) *Index {
	ix := &Index{Label: "SYNTH", VolumeSize: 1 << 40, ImageSize: 1 << 40, Names: NamesRockRidge}
	mt := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	ix.Entries = append(ix.Entries, Entry{Path: "/", Mode: fs.ModeDir | 0o555, first: 1, count: int32(dirs)})
	for d := 0; d < dirs; d++ {
		ix.Entries = append(ix.Entries, Entry{Path: fmt.Sprintf("/pool-main-package-%05d", d), Mode: fs.ModeDir | 0o755, ModTime: mt,
			first: int32(1 + dirs + d*files), count: int32(files)})
	}
	for d := 0; d < dirs; d++ {
		for f := 0; f < files; f++ {
			off := int64(d*files+f) * 1 << 20
			ix.Entries = append(ix.Entries, Entry{
				Path: fmt.Sprintf("/pool-main-package-%05d/package-%05d_1.2.3-4_amd64.deb", d, f),
				Mode: 0o644, Size: 12345, ModTime: mt, Extents: []Extent{{Offset: off, Length: 12345}},
			})
		}
	}
	if err := ix.link(); err != nil {
		panic(err)
	}
	ix.resolveSymlinks()
	return ix
}

func TestPersistedIndexRoundTrips(t *testing.T) {
	// 20,201 entries: counts, prefix lengths and offsets need multi-byte varints (the load
	// speed of a 100k-entry index is BenchmarkReadIndex100k's business, not a test's).
	ix := syntheticIndex(200, 100)
	ix.Problems = []Problem{{Path: "/x", Reason: "why"}}
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadIndex(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries: %d bytes on disk", len(back.Entries), buf.Len())
	if !reflect.DeepEqual(back.Entries, ix.Entries) || !reflect.DeepEqual(back.Problems, ix.Problems) ||
		back.Label != ix.Label || back.Names != ix.Names || back.ImageSize != ix.ImageSize {
		t.Fatal("loaded index differs from the written one")
	}
	e, err := back.Lookup("/pool-main-package-00199/package-00099_1.2.3-4_amd64.deb")
	if err != nil || e.Extents[0].Offset != int64(199*100+99)<<20 {
		t.Fatalf("lookup in loaded index: %+v, %v", e, err)
	}
}

// Loading must stay linear in the number of entries: a constant number of allocations per
// entry (the path, its suffix bytes, the extent slice) and nothing per entry that grows with
// the index. Allocation counts are deterministic, unlike wall-clock time on a loaded machine;
// the speed itself is measured by BenchmarkReadIndex100k.
func TestReadIndexAllocatesConstantPerEntry(t *testing.T) {
	allocs := func(dirs int) (entries int, perEntry float64) {
		ix := syntheticIndex(dirs, 10)
		var buf bytes.Buffer
		if _, err := ix.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		var err error
		a := testing.AllocsPerRun(2, func() {
			_, err = ReadIndex(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		})
		if err != nil {
			t.Fatal(err)
		}
		return len(ix.Entries), a / float64(len(ix.Entries))
	}
	// 4 per file entry today (3.84 on average here, directories need fewer); 4.5 leaves room
	// for a harmless change but not for a second copy of every path or a per-entry map.
	const maxPerEntry = 4.5
	smallN, small := allocs(100)
	bigN, big := allocs(2000)
	t.Logf("%d entries: %.2f allocs/entry; %d entries: %.2f allocs/entry", smallN, small, bigN, big)
	if small > maxPerEntry || big > maxPerEntry {
		t.Errorf("ReadIndex allocates %.2f (%d entries) and %.2f (%d entries) times per entry, want ≤ %.1f",
			small, smallN, big, bigN, maxPerEntry)
	}
	// 20× the entries must not cost more allocations per entry: a cost that grows with the
	// index (say a per-entry lookup that copies what was loaded so far) would show up here.
	if big > small*1.05 {
		t.Errorf("allocations per entry grow with the index: %.2f at %d entries, %.2f at %d", small, smallN, big, bigN)
	}
}

func TestPersistedIndexDetectsDamage(t *testing.T) {
	ix := syntheticIndex(50, 20)
	ix.Problems = []Problem{{Path: "/x", Reason: "why"}}
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	// Any damage is detected: every truncation, and a flipped bit anywhere.
	b := buf.Bytes()
	for _, n := range []int{0, 5, 17, len(b) / 2, len(b) - 5, len(b) - 1} {
		if _, err := ReadIndex(bytes.NewReader(b[:n]), int64(n)); !errors.Is(err, errCorruptIndex) {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
	for _, at := range []int{20, len(b) / 3, len(b) - 2} {
		bad := bytes.Clone(b)
		bad[at] ^= 0x10
		if _, err := ReadIndex(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, errCorruptIndex) {
			t.Errorf("bit flipped at %d: %v", at, err)
		}
	}
}

func BenchmarkReadIndex100k(b *testing.B) {
	ix := syntheticIndex(1000, 100)
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if _, err := ReadIndex(bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
			b.Fatal(err)
		}
	}
}
