package iso9660

import (
	"io/fs"
	"testing"
	"time"
)

func TestISONameStripsVersionAndTrailingDot(t *testing.T) {
	cases := []struct {
		ident  string
		joliet bool
		dir    bool
		want   string
	}{
		{"README.TXT;1", false, false, "README.TXT"},
		{"NOEXT.;1", false, false, "NOEXT"},
		{"NOEXT.", false, false, "NOEXT"},
		{"FILE;12", false, false, "FILE"},
		{"A;B", false, false, "A;B"}, // not a version
		{"DIR.X", false, true, "DIR.X"},
		{".", false, false, "."}, // nothing left after trimming: keep as recorded
		{"\x00f\x00i\x00l\x00e\x00.\x00t\x00x\x00t\x00;\x001", true, false, "file.txt"},
		{"\x00\xfc\x65\xe5\x67\x2c", true, false, "ü日本"},
		{"\xd8\x3d\xde\x00", true, false, "😀"}, // a surrogate pair (UTF-16 Joliet)
	}
	for _, c := range cases {
		if got := isoName([]byte(c.ident), c.joliet, c.dir); got != c.want {
			t.Errorf("isoName(%q, joliet=%v, dir=%v) = %q, want %q", c.ident, c.joliet, c.dir, got, c.want)
		}
	}
}

// slEntry builds an RRIP SL entry payload: flags, then (flags, len, content) components.
func slEntry(flags byte, comps ...any) suspEntry {
	d := []byte{flags}
	for i := 0; i < len(comps); i += 2 {
		f, s := comps[i].(int), comps[i+1].(string)
		d = append(d, byte(f), byte(len(s)))
		d = append(d, s...)
	}
	return suspEntry{sig: "SL", data: d}
}

func TestRockRidgeSymlinkComponents(t *testing.T) {
	cases := []struct {
		name    string
		entries []suspEntry
		want    string
		bad     bool
	}{
		{"relative", []suspEntry{slEntry(0, 0, "a", 0, "b")}, "a/b", false},
		{"absolute", []suspEntry{slEntry(0, 0x08, "", 0, "etc", 0, "passwd")}, "/etc/passwd", false},
		{"parent and current", []suspEntry{slEntry(0, 0x04, "", 0x02, "", 0, "x")}, ".././x", false},
		{"component continued", []suspEntry{slEntry(0, 0x01, "long", 0, "name")}, "longname", false},
		{"continued across SL entries", []suspEntry{slEntry(1, 0, "dir", 0x01, "na"), slEntry(0, 0, "me", 0, "f")}, "dir/name/f", false},
		{"host-specific", []suspEntry{slEntry(0, 0x20, "", 0, "x")}, "", true},
		{"truncated component", []suspEntry{{sig: "SL", data: []byte{0, 0, 9, 'a'}}}, "", true},
	}
	for _, c := range cases {
		ri := newRRInfo()
		for _, e := range c.entries {
			ri.addEntry(e)
		}
		if !ri.symlinkSet || ri.slBad != c.bad || (!c.bad && string(ri.symlink) != c.want) {
			t.Errorf("%s: target %q bad=%v, want %q bad=%v", c.name, ri.symlink, ri.slBad, c.want, c.bad)
		}
	}
}

func TestRockRidgeNamesAndModes(t *testing.T) {
	ri := newRRInfo()
	ri.addEntry(suspEntry{sig: "NM", data: []byte("\x01first-")})
	ri.addEntry(suspEntry{sig: "NM", data: []byte("\x00second")})
	ri.addEntry(suspEntry{sig: "PX", data: []byte{0xed, 0x81, 0, 0, 0, 0, 0x81, 0xed}}) // 0100755
	if string(ri.name) != "first-second" || ri.mode != 0o100755 {
		t.Fatalf("name %q mode %o", ri.name, ri.mode)
	}
	dot := newRRInfo()
	dot.addEntry(suspEntry{sig: "NM", data: []byte{0x02}})
	if !dot.nameDot {
		t.Fatal("NM CURRENT not recognised")
	}
	for m, want := range map[uint32]fs.FileMode{
		0o100644: 0o644, 0o040755: fs.ModeDir | 0o755, 0o120777: fs.ModeSymlink | 0o777,
		0o104755: fs.ModeSetuid | 0o755, 0o000444: 0o444,
	} {
		if got, ok := posixMode(m); !ok || got != want {
			t.Errorf("posixMode(%o) = %v, %v; want %v", m, got, ok, want)
		}
	}
	for _, m := range []uint32{0o020644, 0o060644, 0o010644, 0o140644} {
		if _, ok := posixMode(m); ok {
			t.Errorf("posixMode(%o) accepted a special file", m)
		}
	}
}

func TestTimestamps(t *testing.T) {
	short := []byte{124, 5, 1, 12, 30, 15, 8} // 2024-05-01 12:30:15 at UTC+2
	if got, want := recordingTime(short), time.Date(2024, 5, 1, 10, 30, 15, 0, time.UTC); !got.Equal(want) {
		t.Errorf("recordingTime = %v, want %v", got, want)
	}
	if got := recordingTime([]byte{0, 0, 0, 0, 0, 0, 0}); !got.IsZero() {
		t.Errorf("zero date = %v, want zero time", got)
	}
	long := []byte("2024050112301550\x00")
	if got, want := longTime(long), time.Date(2024, 5, 1, 12, 30, 15, 500_000_000, time.UTC); !got.Equal(want) {
		t.Errorf("longTime = %v, want %v", got, want)
	}
	if got := longTime([]byte("0000000000000000\x00")); !got.IsZero() {
		t.Errorf("unset long date = %v", got)
	}
	// TF with CREATION and MODIFY, short form: the second stamp is the modification time.
	tf := append([]byte{0x03}, append([]byte{100, 1, 1, 0, 0, 0, 0}, short...)...)
	if got := parseTF(tf); !got.Equal(recordingTime(short)) {
		t.Errorf("parseTF = %v", got)
	}
	if got := parseTF([]byte{0x02, 1, 2}); !got.IsZero() {
		t.Errorf("truncated TF = %v", got)
	}
}

func TestSplitSUSPStopsAtTerminatorsAndBadLengths(t *testing.T) {
	area := []byte("PX\x05\x01\x00ST\x04\x01NM\x06\x01\x00x")
	entries, ce := splitSUSP(area)
	if len(entries) != 1 || entries[0].sig != "PX" || ce != nil {
		t.Fatalf("entries %+v ce %v", entries, ce)
	}
	entries, _ = splitSUSP([]byte("NM\xff\x01\x00abc"))
	if len(entries) != 0 {
		t.Fatalf("an entry longer than its area was accepted: %+v", entries)
	}
	entries, _ = splitSUSP([]byte("NM\x02\x01"))
	if len(entries) != 0 {
		t.Fatalf("an entry shorter than its header was accepted: %+v", entries)
	}
}
