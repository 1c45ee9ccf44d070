package ipxe

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadBinariesNamesMissingFilesAndTheFix(t *testing.T) {
	_, err := LoadBinaries(fstest.MapFS{"undionly.kpxe": {Data: []byte("x")}}, "embedded")
	if !errors.Is(err, ErrMissing) {
		t.Fatalf("want ErrMissing, got %v", err)
	}
	for _, want := range []string{"snponly.efi", "ipxe.efi", "scripts/fetch-ipxe.sh", "--ipxe-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestLoadBinariesHashesAndPicksArm64(t *testing.T) {
	fsys := fstest.MapFS{
		"undionly.kpxe":  {Data: []byte("bios")},
		"snponly.efi":    {Data: []byte("snp")},
		"ipxe.efi":       {Data: []byte("full")},
		"ipxe-arm64.efi": {Data: []byte("arm")},
		"VERSION":        {Data: []byte("test 1.0\n")},
		"other.bin":      {Data: []byte("not served")},
	}
	b, err := LoadBinaries(fsys, "test")
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != "test 1.0" {
		t.Errorf("version %q", b.Version)
	}
	f, ok := b.Get("undionly.kpxe")
	// sha256("bios")
	if !ok || f.SHA256 != "37be46f4b26de340ff5ea1f9f652b3167b6d3dfc087c3ac2aebc51e423e66912" {
		t.Fatalf("undionly: %v %+v", ok, f)
	}
	if b.Has("other.bin") {
		t.Error("unknown file must not be served")
	}
	if got := b.Arm64(); got != UEFIArm64Full {
		t.Errorf("Arm64() = %q", got)
	}
	fsys["snponly-arm64.efi"] = &fstest.MapFile{Data: []byte("snparm")}
	b, _ = LoadBinaries(fsys, "test")
	if got := b.Arm64(); got != UEFIArm64Snp {
		t.Errorf("Arm64() with snponly-arm64 = %q", got)
	}
	if len(b.List()) != 5 {
		t.Errorf("List() has %d files", len(b.List()))
	}
}
