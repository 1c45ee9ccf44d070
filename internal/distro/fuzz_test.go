package distro

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// The parsers read configs from uploaded ISOs: untrusted input. The fuzz targets check they
// never panic and keep their output within the documented bounds.

func seedConfigs(f *testing.F) {
	for _, l := range layouts(f) {
		for _, file := range l.fs {
			if len(file.Data) > 0 {
				f.Add(file.Data)
			}
		}
	}
	f.Add([]byte("menuentry 'a' { linux /k a\\;b \"c d\" 'e' ${x} ; initrd /i }\n}}}{{{"))
	f.Add([]byte("LABEL a\nMENU BEGIN\nKERNEL ::/k\nAPPEND initrd=a,b,,c x\nTEXT HELP\n"))
	f.Add([]byte("[general]\nfamily = Fedora\n[images-x86_64]\nkernel=images/pxeboot/vmlinuz\n"))
}

func checkEntries(t *testing.T, entries []ConfigEntry) {
	if len(entries) > maxEntries {
		t.Fatalf("%d entries", len(entries))
	}
	for _, e := range entries {
		if e.Kernel == "" {
			t.Fatalf("entry without kernel: %#v", e)
		}
		if len(e.Args) > maxArgsLen || len(e.Initrds) > 2*maxInitrds {
			t.Fatalf("args %d bytes, %d initrds", len(e.Args), len(e.Initrds))
		}
		if !utf8.ValidString(e.Label) || strings.ContainsAny(e.Label, "\n\r\x00") {
			t.Fatalf("label %q", e.Label)
		}
	}
}

func FuzzGrubCfg(f *testing.F) {
	seedConfigs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		g := ParseGrubCfg(data)
		checkEntries(t, g.Entries)
		if len(g.Includes) > maxIncludes {
			t.Fatalf("%d includes", len(g.Includes))
		}
	})
}

func FuzzIsolinuxCfg(f *testing.F) {
	seedConfigs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := ParseIsolinuxCfg(data)
		checkEntries(t, s.Entries)
		if len(s.Includes) > maxIncludes {
			t.Fatalf("%d includes", len(s.Includes))
		}
		e := ParseLoaderEntry(data)
		if len(e.Initrds) > maxInitrds {
			t.Fatalf("%d initrds", len(e.Initrds))
		}
	})
}

func FuzzTreeinfo(f *testing.F) {
	seedConfigs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ti := ParseTreeinfo(data)
		if len(ti) > maxSections {
			t.Fatalf("%d sections", len(ti))
		}
		for _, kv := range ti {
			if len(kv) > maxKeys {
				t.Fatalf("%d keys", len(kv))
			}
			for _, v := range kv {
				if len(v) > maxValueLen {
					t.Fatalf("value %d bytes", len(v))
				}
			}
		}
		_ = parseDiskInfo(data)
	})
}

// FuzzDetect puts the fuzzed bytes into every file Detect reads on a Rocky-like layout and
// checks detection and the recipe never panic and the recipe's output is usable.
func FuzzDetect(f *testing.F) {
	seedConfigs(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := MapFS{
			"/images/pxeboot/vmlinuz":    sized(10 * mib),
			"/images/pxeboot/initrd.img": sized(50 * mib),
			"/casper/vmlinuz":            sized(10 * mib),
			"/casper/initrd":             sized(50 * mib),
			"/LiveOS/squashfs.img":       sized(100 * mib),
			"/boot/linux26":              sized(10 * mib),
			"/boot/initrd.img":           sized(50 * mib),
		}
		for _, p := range []string{"/.treeinfo", "/.disk/info", "/.cd-info", "/boot.cfg", "/media.1/products",
			"/.alpine-release", "/boot/grub/grub.cfg", "/isolinux/isolinux.cfg", "/loader/entries/a.conf"} {
			fs[p] = MapFile{Data: data}
		}
		r := Detect(fs)
		checkEntries(t, r.Entries)
		entries, err := Recipe(r, fs, testParams)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Sanboot {
				continue
			}
			if _, _, ok := fs.Stat(e.Kernel); !ok {
				t.Fatalf("recipe kernel %q not on the ISO", e.Kernel)
			}
			if strings.ContainsAny(e.Cmdline, "\n\r\x00") || len(e.Cmdline) > maxCmdline {
				t.Fatalf("cmdline %q", e.Cmdline)
			}
		}
	})
}
