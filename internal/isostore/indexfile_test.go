package isostore

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

func TestPersistedIndexRoundTripsAndLoadsFast(t *testing.T) {
	ix := syntheticIndex(1000, 100) // 101,001 entries
	ix.Problems = []Problem{{Path: "/x", Reason: "why"}}
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	// CPU time, not wall time: on a machine busy with other work the wall clock stretched a
	// load of well under a second of CPU to 9 s; a load that does too much work burns CPU
	// whatever the load. (No subtest runs beside it: the process's CPU is this load's, plus the
	// race detector and GC.)
	start := processCPU()
	back, err := ReadIndex(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	cpu := processCPU() - start
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries: %d bytes on disk, loaded with %v of CPU", len(back.Entries), buf.Len(), cpu)
	if cpu > 5*time.Second { // ~50 ms without -race on this machine
		t.Errorf("loading %d entries used %v of CPU", len(back.Entries), cpu)
	}
	if !reflect.DeepEqual(back.Entries, ix.Entries) || !reflect.DeepEqual(back.Problems, ix.Problems) ||
		back.Label != ix.Label || back.Names != ix.Names || back.ImageSize != ix.ImageSize {
		t.Fatal("loaded index differs from the written one")
	}
	e, err := back.Lookup("/pool-main-package-00999/package-00099_1.2.3-4_amd64.deb")
	if err != nil || e.Extents[0].Offset != int64(999*100+99)<<20 {
		t.Fatalf("lookup in loaded index: %+v, %v", e, err)
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
	ix.WriteTo(&buf)
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		if _, err := ReadIndex(bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
			b.Fatal(err)
		}
	}
}
