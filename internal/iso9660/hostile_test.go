package iso9660

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/iso9660/isotest"
)

func putBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b[0:4], v)
	binary.BigEndian.PutUint32(b[4:8], v)
}

// rootRecordOff is the byte offset of the root directory record inside the PVD.
const rootRecordOff = 16*sectorSize + 156

// findRecord returns the offset in img of the directory record named ident (raw ISO 9660
// identifier, version suffix included or not) inside the directory whose record is at recOff.
func findRecord(t testing.TB, img []byte, recOff int, ident string) int {
	t.Helper()
	dir, err := parseDirRecord(img[recOff:])
	if err != nil {
		t.Fatal(err)
	}
	start := int(dir.extent) * sectorSize
	for s := start; s < start+int(dir.length); s += sectorSize {
		for pos := s; pos < s+sectorSize && img[pos] != 0; pos += int(img[pos]) {
			r, err := parseDirRecord(img[pos:])
			if err != nil {
				t.Fatal(err)
			}
			id := string(r.ident)
			if id == ident || strings.TrimSuffix(id, ";1") == ident || strings.TrimSuffix(id, ".;1") == ident {
				return pos
			}
		}
	}
	t.Fatalf("record %q not found", ident)
	return 0
}

func TestBuildIndexHostileImages(t *testing.T) {
	base := isotest.SmallISO(t, "-R")
	size := len(base)
	root, _ := parseDirRecord(base[rootRecordOff:])
	casper := findRecord(t, base, rootRecordOff, "CASPER")
	readme := findRecord(t, base, rootRecordOff, "README")
	sub := findRecord(t, base, rootRecordOff, "SUB")
	subdir := findRecord(t, base, sub, "DIR")
	subRec, _ := parseDirRecord(base[sub:])

	type result int
	const (
		bad     result = iota // error wrapping ErrBadISO
		udf                   // error wrapping ErrUDFOnly
		problem               // indexed, with a Problem whose reason contains want
		anyOK                 // anything but a panic or a hang
	)
	cases := []struct {
		name   string
		mutate func(b []byte) []byte
		want   result
		reason string
	}{
		{"empty", func(b []byte) []byte { return nil }, bad, ""},
		{"cut at 100", func(b []byte) []byte { return b[:100] }, bad, ""},
		{"cut at system area", func(b []byte) []byte { return b[:16*sectorSize] }, bad, ""},
		{"cut inside PVD", func(b []byte) []byte { return b[:16*sectorSize+700] }, bad, ""},
		{"cut after PVD", func(b []byte) []byte { return b[:17*sectorSize] }, bad, ""},
		{"cut at half", func(b []byte) []byte { return b[:size/2] }, bad, ""},
		{"cut last sector", func(b []byte) []byte { return b[:size-sectorSize] }, bad, ""},
		{"cut last byte", func(b []byte) []byte { return b[:size-1] }, bad, ""},
		{"zeroed PVD", func(b []byte) []byte { clear(b[16*sectorSize : 17*sectorSize]); return b }, bad, ""},
		{"zeroed descriptors", func(b []byte) []byte { clear(b[16*sectorSize : 20*sectorSize]); return b }, bad, ""},
		{"block size 512", func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[16*sectorSize+128:], 512)
			return b
		}, bad, ""},
		{"volume larger than file", func(b []byte) []byte { putBoth32(b[16*sectorSize+80:], 0xFFFFFFFF); return b }, bad, ""},
		{"root extent past end", func(b []byte) []byte { putBoth32(b[rootRecordOff+2:], 0x7FFFFFFF); return b }, bad, ""},
		{"root length 4 GiB", func(b []byte) []byte { putBoth32(b[rootRecordOff+10:], 0xFFFFFFFF); return b }, bad, ""},
		{"root record length 0", func(b []byte) []byte { b[rootRecordOff] = 0; return b }, bad, ""},
		{"subdirectory points at root (loop)", func(b []byte) []byte {
			putBoth32(b[casper+2:], uint32(root.extent))
			return b
		}, problem, "directory loop"},
		{"subdirectory points at its parent (loop)", func(b []byte) []byte {
			putBoth32(b[subdir+2:], uint32(subRec.extent))
			return b
		}, problem, "directory loop"},
		{"directory length past end", func(b []byte) []byte { putBoth32(b[casper+10:], 0x7FFFF800); return b }, problem, "outside the image"},
		{"file extent past end", func(b []byte) []byte { putBoth32(b[readme+2:], 0x00FFFFFF); return b }, problem, "past end"},
		{"file length 4 GiB", func(b []byte) []byte { putBoth32(b[readme+10:], 0xFFFFFFFF); return b }, problem, "past end"},
		{"record length crosses sector", func(b []byte) []byte { b[readme] = 255; return b }, anyOK, ""},
		{"record length too short", func(b []byte) []byte { b[readme] = 20; return b }, anyOK, ""},
		{"identifier longer than record", func(b []byte) []byte { b[readme+32] = 250; return b }, problem, "bad directory record"},
		{"multi-extent without final part", func(b []byte) []byte { b[readme+25] |= flagMultiExtent; return b }, problem, "multi-extent"},
		{"interleaved file", func(b []byte) []byte { b[readme+26] = 1; return b }, problem, "interleaved"},
		{"continuation area loops", func(b []byte) []byte {
			// Point every CE entry of the image at its own continuation area, so following
			// them would go round forever.
			for i := 0; i+28 <= len(b); i++ {
				if b[i] == 'C' && b[i+1] == 'E' && b[i+2] == 28 && b[i+3] == 1 {
					blk := binary.LittleEndian.Uint32(b[i+4:])
					off := binary.LittleEndian.Uint32(b[i+12:])
					area := int(blk)*sectorSize + int(off)
					copy(b[area:area+28], b[i:i+28])
				}
			}
			return b
		}, anyOK, ""},
		{"garbage Rock Ridge entries", func(b []byte) []byte {
			for i := 0; i+4 <= len(b); i++ {
				switch string(b[i : i+2]) {
				case "NM", "SL", "PX", "TF":
					if b[i+3] == 1 {
						b[i+2] = 0xFF // entry length past the area
					}
				}
			}
			return b
		}, anyOK, ""},
		{"UDF only (synthetic)", func(b []byte) []byte {
			out := make([]byte, 64*sectorSize)
			for i, id := range []string{"BEA01", "NSR02", "TEA01"} {
				copy(out[(16+i)*sectorSize+1:], id)
			}
			return out
		}, udf, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := c.mutate(bytes.Clone(base))
			ix, err := BuildIndex(bytes.NewReader(img), int64(len(img)))
			switch c.want {
			case bad:
				if !errors.Is(err, ErrBadISO) {
					t.Fatalf("err = %v, want ErrBadISO", err)
				}
			case udf:
				if !errors.Is(err, ErrBadISO) || !errors.Is(err, ErrUDFOnly) {
					t.Fatalf("err = %v, want ErrUDFOnly inside ErrBadISO", err)
				}
			case problem:
				if err != nil {
					t.Fatalf("err = %v, want an index with a problem", err)
				}
				found := false
				for _, p := range ix.Problems {
					found = found || strings.Contains(p.Reason, c.reason)
				}
				if !found {
					t.Fatalf("problems %+v, want one about %q", ix.Problems, c.reason)
				}
				checkInvariants(t, ix)
			case anyOK:
				if err == nil {
					checkInvariants(t, ix)
				} else if !errors.Is(err, ErrBadISO) {
					t.Fatalf("err = %v, want nil or ErrBadISO", err)
				}
			}
		})
	}
}

// checkInvariants asserts what serving relies on for any index BuildIndex accepts.
func checkInvariants(t testing.TB, ix *Index) {
	t.Helper()
	if len(ix.Entries) == 0 || ix.Entries[0].Path != "/" || !ix.Entries[0].IsDir() {
		t.Fatalf("no root entry")
	}
	for i := range ix.Entries {
		e := &ix.Entries[i]
		var sum int64
		for _, x := range e.Extents {
			if x.Offset < 0 || x.Length <= 0 || x.Offset+x.Length > ix.ImageSize {
				t.Fatalf("%s: extent %+v outside image of %d bytes", e.Path, x, ix.ImageSize)
			}
			sum += x.Length
		}
		if sum != e.Size {
			t.Fatalf("%s: extents sum to %d, size %d", e.Path, sum, e.Size)
		}
		if int(e.first)+int(e.count) > len(ix.Entries) {
			t.Fatalf("%s: children out of range", e.Path)
		}
		if e.IsSymlink() && e.Resolved != "" {
			if _, err := ix.Lookup(e.Resolved); err != nil {
				t.Fatalf("%s resolves to %s, which does not look up: %v", e.Path, e.Resolved, err)
			}
		}
		if !e.IsSymlink() {
			got, err := ix.Lookup(e.Path)
			if err != nil || got.Path != e.Path {
				t.Fatalf("Lookup(%q) = %v, %v", e.Path, got, err)
			}
		}
	}
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadIndex(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatalf("persisted index does not load: %v", err)
	}
	if len(back.Entries) != len(ix.Entries) {
		t.Fatalf("persisted index has %d entries, want %d", len(back.Entries), len(ix.Entries))
	}
}

func TestUDFBridgeStubIsUDFOnly(t *testing.T) {
	// Windows images carry a token ISO 9660 tree with one README.TXT next to the real UDF
	// file system. Build such a tree and append UDF's recognition sequence after the ISO
	// 9660 descriptor set terminator.
	img := withUDFRecognition(t, isotest.TreeSpec{Files: map[string]int{"README.TXT": 100}})
	_, err := BuildIndex(bytes.NewReader(img), int64(len(img)))
	if !errors.Is(err, ErrUDFOnly) {
		t.Fatalf("err = %v, want ErrUDFOnly", err)
	}
}

func TestUDFBridgeWithRealISOTreeIsAccepted(t *testing.T) {
	img := withUDFRecognition(t, isotest.TreeSpec{Files: map[string]int{"README.TXT": 100, "VMLINUZ": 10}})
	ix, err := BuildIndex(bytes.NewReader(img), int64(len(img)))
	if err != nil || ix.FileCount() != 2 {
		t.Fatalf("BuildIndex = %v, %v; want the two ISO 9660 files", ix, err)
	}
}

// withUDFRecognition builds a plain ISO 9660 image of spec and adds UDF's volume
// recognition sequence (BEA01, NSR02, TEA01) after the descriptor set terminator.
func withUDFRecognition(t *testing.T, spec isotest.TreeSpec) []byte {
	t.Helper()
	src := t.TempDir()
	isotest.WriteTree(t, src, spec)
	p := isotest.BuildISO(t, src, "--norock", "-no-pad")
	img, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := BuildIndex(bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("the plain image itself must index: %v", err)
	}
	// xorriso puts the root directory and the path tables right after the terminator, where
	// the recognition sequence must go: move the root directory to the first free sector.
	if img[17*sectorSize] != 255 {
		t.Fatal("expected the terminator at sector 17")
	}
	root, _ := parseDirRecord(img[rootRecordOff:])
	free := -1
	for s := 21; s < len(img)/sectorSize; s++ {
		if bytes.Equal(img[s*sectorSize:(s+1)*sectorSize], make([]byte, sectorSize)) {
			free = s
			break
		}
	}
	if free < 0 || root.length != sectorSize {
		t.Fatalf("layout: free sector %d, root length %d", free, root.length)
	}
	copy(img[free*sectorSize:], img[root.extent*sectorSize:(root.extent+1)*sectorSize])
	putBoth32(img[rootRecordOff+2:], uint32(free))
	if _, err := BuildIndex(bytes.NewReader(img), int64(len(img))); err != nil {
		t.Fatalf("the moved image must still index: %v", err)
	}
	for i, id := range []string{"BEA01", "NSR02", "TEA01"} {
		sec := img[(18+i)*sectorSize : (19+i)*sectorSize]
		clear(sec)
		copy(sec[1:], id)
	}
	return img
}

func TestUDFImageFromMkudffsIsRejected(t *testing.T) {
	mk, err := exec.LookPath("mkudffs")
	if err != nil {
		t.Skip("mkudffs not installed (apt-get install udftools)")
	}
	p := filepath.Join(t.TempDir(), "udf.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 4<<20); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(mk, "--media-type=dvd", "--blocksize=2048", "--label=WIN11", p).CombinedOutput(); err != nil {
		t.Fatalf("mkudffs: %v\n%s", err, b)
	}
	f, size := isotest.OpenImage(t, p)
	_, err = BuildIndex(f, size)
	if !errors.Is(err, ErrUDFOnly) || !errors.Is(err, ErrBadISO) {
		t.Fatalf("err = %v, want ErrUDFOnly inside ErrBadISO", err)
	}
	if !strings.Contains(err.Error(), "UDF-only image (e.g. Windows installer) is not supported") {
		t.Fatalf("message %q", err)
	}
}
