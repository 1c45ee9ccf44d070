package tftp

import (
	"io"
	"strings"
	"testing"
)

func TestRequestNameAcceptsOnlyExactNames(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"undionly.kpxe", "undionly.kpxe"},
		{"/undionly.kpxe", "undionly.kpxe"},
		{"autoexec.ipxe", "autoexec.ipxe"},
		{"..hidden", "..hidden"}, // a name, not a path step
		{"//undionly.kpxe", ""},
		{"../etc/passwd", ""},
		// Paths are names of files below the root (GRUB reads grub/grub.cfg); Files serves exact
		// names only, so asking for one that is not served gets "File not found".
		{"/etc/passwd", "etc/passwd"},
		{"grub/grub.cfg", "grub/grub.cfg"},
		{"/grub/x86_64-efi/fs.lst", "grub/x86_64-efi/fs.lst"},
		{"grub//grub.cfg", ""},
		{"grub/./grub.cfg", ""},
		{"grub/..", ""},
		{"a/../undionly.kpxe", ""},
		{"./undionly.kpxe", ""},
		{"undionly.kpxe/", ""},
		{"\\undionly.kpxe", ""},
		{"efi\\boot.efi", ""},
		{"undionly.kpxe\x00x", ""},
		{"undionly.kpxe\r\n", ""},
		{"undionly\x7f", ""},
		{"", ""},
		{"/", ""},
		{".", ""},
		{"/.", ""},
		{"..", ""},
		{"/..", ""},
		{strings.Repeat("a", 255), strings.Repeat("a", 255)},
		{strings.Repeat("a", 256), ""},
	} {
		if got := requestName(tc.raw); got != tc.want {
			t.Errorf("requestName(%q) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func FuzzRequestName(f *testing.F) {
	for _, s := range []string{"undionly.kpxe", "/snponly.efi", "../x", "a/b", "\\x", "x\x00y", "", "/", "..", "/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := requestName(raw)
		if got == "" {
			return
		}
		// Whatever is accepted is the request minus at most one leading slash, and has no
		// step that could leave the root or mean another name.
		if got != raw && "/"+got != raw {
			t.Fatalf("requestName(%q) = %q rewrote the name", raw, got)
		}
		if strings.ContainsAny(got, "\\\x00") {
			t.Fatalf("requestName(%q) = %q accepted a separator or NUL", raw, got)
		}
		for _, part := range strings.Split(got, "/") {
			if part == "" || part == "." || part == ".." {
				t.Fatalf("requestName(%q) = %q accepted a path step %q", raw, got, part)
			}
		}
	})
}

func TestStaticFilesServesOnlyItsNamesWithFreshReaders(t *testing.T) {
	src := map[string][]byte{"a.efi": []byte("hello")}
	files := StaticFiles(src)
	src["b.efi"] = []byte("added later") // the map is copied
	if _, _, ok := files.Open("b.efi"); ok {
		t.Fatal("StaticFiles saw a name added after the call")
	}
	for _, name := range []string{"A.efi", "/a.efi", "a.efi ", ""} {
		if _, _, ok := files.Open(name); ok {
			t.Fatalf("Open(%q) found a file", name)
		}
	}
	r1, n, ok := files.Open("a.efi")
	if !ok || n != 5 {
		t.Fatalf("Open = %v %d", ok, n)
	}
	r2, _, _ := files.Open("a.efi")
	b1, _ := io.ReadAll(r1)
	b2, _ := io.ReadAll(r2)
	if string(b1) != "hello" || string(b2) != "hello" {
		t.Fatalf("readers share state: %q %q", b1, b2)
	}
}
