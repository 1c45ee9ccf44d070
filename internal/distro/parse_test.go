package distro

import (
	"bytes"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseGrubCfg(t *testing.T) {
	cases := []struct {
		name     string
		cfg      string
		want     []ConfigEntry
		includes []string
	}{
		{
			name: "ubuntu live-server menu with a BIOS-only memtest entry under if/else",
			cfg:  string(config(t, "ubuntu-24.04-live-server.grub.cfg").Data),
			want: []ConfigEntry{
				{Label: "Try or Install Ubuntu Server", Loader: "linux", Kernel: "/casper/vmlinuz", Initrds: []string{"/casper/initrd"}, Args: "---"},
				{Label: "Ubuntu Server with the HWE kernel", Loader: "linux", Kernel: "/casper/hwe-vmlinuz", Initrds: []string{"/casper/hwe-initrd"}, Args: "---"},
				{Label: "Test memory", Loader: "linux16", Kernel: "/boot/memtest86+x64.bin"},
			},
		},
		{
			name: "submenus prefix titles, options before the title are skipped",
			cfg:  string(config(t, "debian-12-netinst.grub.cfg").Data),
			want: []ConfigEntry{
				{Label: "Graphical install", Loader: "linux", Kernel: "/install.amd/vmlinuz", Initrds: []string{"/install.amd/gtk/initrd.gz"}, Args: "vga=788 --- quiet"},
				{Label: "Install", Loader: "linux", Kernel: "/install.amd/vmlinuz", Initrds: []string{"/install.amd/initrd.gz"}, Args: "vga=788 --- quiet"},
				{Label: "Advanced options ... > ... Expert install", Loader: "linux", Kernel: "/install.amd/vmlinuz", Initrds: []string{"/install.amd/initrd.gz"}, Args: "priority=low vga=788 ---"},
				{Label: "Advanced options ... > ... Automated install", Loader: "linux", Kernel: "/install.amd/vmlinuz", Initrds: []string{"/install.amd/initrd.gz"}, Args: "auto=true priority=critical vga=788 --- quiet"},
			},
		},
		{
			name: "GRUB quoting: escaped semicolon, quotes, comments, line continuation",
			cfg: "# menuentry 'commented' { linux /no }\n" +
				"menuentry \"Autoinstall\" {\n" +
				"  linux /casper/vmlinuz autoinstall ds=nocloud\\;s=http://10.0.0.1/seed/ \"quoted arg\" 'single $x' \\\n    quiet # trailing comment\n" +
				"  initrd /casper/initrd\n}\n",
			want: []ConfigEntry{{Label: "Autoinstall", Loader: "linux", Kernel: "/casper/vmlinuz", Initrds: []string{"/casper/initrd"},
				Args: "autoinstall ds=nocloud;s=http://10.0.0.1/seed/ quoted arg single $x quiet"}},
		},
		{
			name: "set variables and device prefixes, kiwi and loopback style",
			cfg: "set kdir=/boot/x86_64/loader\nmenuentry 'Install' --class os --unrestricted {\n" +
				"  linux ($root)${kdir}/linux splash=silent\n  initrd (loop)$kdir/initrd\n}\n",
			want: []ConfigEntry{{Label: "Install", Loader: "linux", Kernel: "/boot/x86_64/loader/linux", Initrds: []string{"/boot/x86_64/loader/initrd"}, Args: "splash=silent"}},
		},
		{
			name: "linuxefi/initrdefi, several initrds on one line, chainloaded EFI app",
			cfg: "menuentry 'A' { linuxefi /images/pxeboot/vmlinuz quiet; initrdefi /a.img /b.img }\n" +
				"if [ $grub_platform = efi ]; then menuentry 'Shell' { chainloader /EFI/shellx64.efi }; fi\n" +
				"menuentry 'Reboot' { reboot }\n",
			want: []ConfigEntry{
				{Label: "A", Loader: "linuxefi", Kernel: "/images/pxeboot/vmlinuz", Initrds: []string{"/a.img", "/b.img"}, Args: "quiet"},
				{Label: "Shell", Loader: "chainloader", Kernel: "/EFI/shellx64.efi"},
			},
		},
		{
			name: "source and configfile are reported as includes",
			cfg:  "source /boot/grub/config.cfg\nconfigfile \"/boot/grub/${grub_platform}.cfg\"\n",
			includes: []string{
				"/boot/grub/config.cfg", "/boot/grub/${grub_platform}.cfg",
			},
		},
		{
			name: "an unterminated entry still yields what it loaded",
			cfg:  "menuentry 'cut' {\n linux /vmlinuz ro\n initrd /initrd.img",
			want: []ConfigEntry{{Label: "cut", Loader: "linux", Kernel: "/vmlinuz", Initrds: []string{"/initrd.img"}, Args: "ro"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := ParseGrubCfg([]byte(c.cfg))
			if !reflect.DeepEqual(g.Entries, c.want) {
				t.Errorf("entries\n got %#v\nwant %#v", g.Entries, c.want)
			}
			if !reflect.DeepEqual(g.Includes, c.includes) {
				t.Errorf("includes %q, want %q", g.Includes, c.includes)
			}
		})
	}
}

func TestParseIsolinuxCfg(t *testing.T) {
	cases := []struct {
		name     string
		cfg      string
		want     []ConfigEntry
		includes []string
	}{
		{
			name: "debian d-i labels with initrd= in APPEND",
			cfg:  string(config(t, "debian-12-netinst.adtxt.cfg").Data),
			want: []ConfigEntry{
				{Label: "Expert install", Loader: "kernel", Kernel: "/install.amd/vmlinuz", Initrds: []string{"/install.amd/initrd.gz"}, Args: "priority=low vga=788 ---"},
				{Label: "Rescue mode", Loader: "kernel", Kernel: "/install.amd/vmlinuz", Initrds: []string{"/install.amd/initrd.gz"}, Args: "vga=788 rescue/enable=true --- quiet"},
				{Label: "Automated install", Loader: "kernel", Kernel: "/install.amd/vmlinuz", Initrds: []string{"/install.amd/initrd.gz"}, Args: "auto=true priority=critical vga=788 --- quiet"},
			},
		},
		{
			name: "alpine: INITRD directive, upper-case keywords",
			cfg:  string(config(t, "alpine-3.20-standard.syslinux.cfg").Data),
			want: []ConfigEntry{{Label: "Linux lts", Loader: "kernel", Kernel: "/boot/vmlinuz-lts", Initrds: []string{"/boot/initramfs-lts"},
				Args: "modules=loop,squashfs,sd-mod,usb-storage quiet console=tty0 console=ttyS0,115200"}},
		},
		{
			name: "openSUSE: relative paths, localboot dropped, label names as titles",
			cfg:  string(config(t, "opensuse-leap-15.6.isolinux.cfg").Data),
			want: []ConfigEntry{
				{Label: "linux", Loader: "kernel", Kernel: "linux", Initrds: []string{"initrd"}, Args: "splash=silent showopts"},
				{Label: "rescue", Loader: "kernel", Kernel: "linux", Initrds: []string{"initrd"}, Args: "splash=silent rescue=1 showopts"},
				{Label: "mediachk", Loader: "kernel", Kernel: "linux", Initrds: []string{"initrd"}, Args: "splash=silent mediacheck=1 showopts"},
				{Label: "firmware", Loader: "kernel", Kernel: "linux", Initrds: []string{"biostest"}, Args: "splash=silent install=exec:/bin/run_biostest showopts"},
				{Label: "memtest", Loader: "kernel", Kernel: "memtest"},
			},
		},
		{
			name: "menus, help text, global APPEND, COM32 and pxelinux :: prefix",
			cfg: "APPEND quiet\nMENU BEGIN tools\n MENU LABEL ^Tools\n LABEL mt\n  MENU LABEL Memtest\n  LINUX ::/boot/memtest.bin\n" +
				"  TEXT HELP\n  LABEL fake\n  KERNEL /not-a-label\n  ENDTEXT\nMENU END\nLABEL menu\n  COM32 vesamenu.c32\n" +
				"LABEL hd\n  LOCALBOOT 0\nLABEL k\n  KERNEL /vmlinuz root=/dev/sda1\n  APPEND ro\nINCLUDE extra.cfg\nCONFIG /other.cfg /\n",
			want: []ConfigEntry{
				{Label: "Tools > Memtest", Loader: "linux", Kernel: "/boot/memtest.bin", Args: "quiet"},
				{Label: "k", Loader: "kernel", Kernel: "/vmlinuz", Args: "root=/dev/sda1 ro"},
			},
			includes: []string{"extra.cfg", "/other.cfg"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := ParseIsolinuxCfg([]byte(c.cfg))
			if !reflect.DeepEqual(s.Entries, c.want) {
				t.Errorf("entries\n got %#v\nwant %#v", s.Entries, c.want)
			}
			if !reflect.DeepEqual(s.Includes, c.includes) {
				t.Errorf("includes %q, want %q", s.Includes, c.includes)
			}
		})
	}
}

func TestParseTreeinfo(t *testing.T) {
	ti := ParseTreeinfo(config(t, "rocky-9.4-dvd.treeinfo").Data)
	for _, c := range [][3]string{
		{"general", "family", "Rocky Linux"},
		{"general", "arch", "x86_64"},
		{"release", "version", "9.4"},
		{"images-x86_64", "kernel", "images/pxeboot/vmlinuz"},
		{"stage2", "mainimage", "images/install.img"},
		{"variant-BaseOS", "repository", "BaseOS"},
		{"general", "warning.0", ""}, // comments are not keys
	} {
		if got := ti.Get(c[0], c[1]); got != c[2] {
			t.Errorf("[%s] %s = %q, want %q", c[0], c[1], got, c[2])
		}
	}
	odd := ParseTreeinfo([]byte("orphan = 1\n[a]\nk = v = w\n[a]\nk2=x\n[broken\nk3 = y\n"))
	if odd.Get("a", "k") != "v = w" || odd.Get("a", "k2") != "x" || odd.Get("a", "k3") != "" || len(odd) != 1 {
		t.Errorf("got %v", odd)
	}
}

func TestParseLoaderEntry(t *testing.T) {
	e := ParseLoaderEntry(config(t, "archiso-2024.09.01.loader-01.conf").Data)
	want := ConfigEntry{Label: "Arch Linux install medium (x86_64, UEFI)", Loader: "linux", Kernel: "/arch/boot/x86_64/vmlinuz-linux",
		Initrds: []string{"/arch/boot/intel-ucode.img", "/arch/boot/amd-ucode.img", "/arch/boot/x86_64/initramfs-linux.img"},
		Args:    "archisobasedir=arch archisolabel=ARCH_202409"}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("got %#v\nwant %#v", e, want)
	}
	efi := ParseLoaderEntry([]byte("title Shell\nefi /shellx64.efi\n"))
	if efi.Kernel != "/shellx64.efi" || efi.Loader != "efi" {
		t.Errorf("got %#v", efi)
	}
}

func TestParseDiskInfo(t *testing.T) {
	cases := []struct{ in, name, version, arch string }{
		{`Ubuntu-Server 24.04.1 LTS "Noble Numbat" - Release amd64 (20240827)`, "Ubuntu-Server", "24.04.1", "x86_64"},
		{`Ubuntu 22.04.4 LTS "Jammy Jellyfish" - Release arm64 (20240220)`, "Ubuntu", "22.04.4", "arm64"},
		{`Debian GNU/Linux 12.7.0 "Bookworm" - Official amd64 NETINST with firmware 20240831-10:38`, "Debian GNU/Linux", "12.7.0", "x86_64"},
		{"Linux Mint 21.3 \"Virginia\" - Release amd64 20240109\x00\x00", "Linux Mint", "21.3", "x86_64"},
		{"", "", "", ""},
		{"\xff\xfe garbage", "garbage", "", ""},
	}
	for _, c := range cases {
		d := parseDiskInfo([]byte(c.in))
		if d.name != c.name || d.version != c.version || d.arch != c.arch {
			t.Errorf("parseDiskInfo(%q) = %q %q %q, want %q %q %q", c.in, d.name, d.version, d.arch, c.name, c.version, c.arch)
		}
	}
}

// TestHostileConfigsStayBounded feeds configs built to blow up a naive parser: megabytes of
// braces, quotes that never close, binary noise, a label per line. Each parse must finish
// quickly with at most maxEntries entries.
func TestHostileConfigsStayBounded(t *testing.T) {
	noise := make([]byte, 256<<10)
	for i := range noise {
		noise[i] = byte(i*7919 + i>>3)
	}
	hostile := map[string][]byte{
		"open braces":     bytes.Repeat([]byte("menuentry x {\n"), 20000),
		"close braces":    bytes.Repeat([]byte("}"), 256<<10),
		"unclosed quote":  append([]byte("menuentry \"x"), bytes.Repeat([]byte("a"), 256<<10)...),
		"variable storm":  bytes.Repeat([]byte("set a=$a$a$a$a\nmenuentry m { linux /$a$a$a$a }\n"), 5000),
		"binary":          noise,
		"entry flood":     bytes.Repeat([]byte("menuentry m { linux /k x }\nLABEL l\nKERNEL /k\n"), 10000),
		"one long line":   bytes.Repeat([]byte("x"), 1<<20),
		"nul bytes":       make([]byte, 256<<10),
		"treeinfo flood":  bytes.Repeat([]byte("[s\x00]\nk=v\n[t]\nkey"), 20000),
		"help never ends": append([]byte("LABEL a\nKERNEL /k\nTEXT HELP\n"), bytes.Repeat([]byte("LABEL b\n"), 20000)...),
		"include loop":    bytes.Repeat([]byte("INCLUDE self.cfg\nsource /self.cfg\n"), 10000),
		"deeply nested":   append(bytes.Repeat([]byte("submenu s {\n"), 5000), []byte("menuentry m { linux /k }")...),
	}
	for name, data := range hostile {
		t.Run(name, func(t *testing.T) {
			start := cpuTime(t)
			g := ParseGrubCfg(data)
			s := ParseIsolinuxCfg(data)
			ti := ParseTreeinfo(data)
			e := ParseLoaderEntry(data)
			if d := cpuTime(t) - start; d > 15*time.Second {
				t.Errorf("parsing used %v of CPU", d)
			}
			if len(g.Entries) > maxEntries || len(s.Entries) > maxEntries || len(g.Includes) > maxIncludes || len(s.Includes) > maxIncludes {
				t.Errorf("%d grub / %d syslinux entries", len(g.Entries), len(s.Entries))
			}
			if len(ti) > maxSections || len(e.Initrds) > maxInitrds {
				t.Errorf("%d sections, %d initrds", len(ti), len(e.Initrds))
			}
			for _, en := range append(g.Entries, s.Entries...) {
				if len([]rune(en.Label)) > maxLabelRunes*maxNesting+3*maxNesting || len(en.Args) > maxArgsLen {
					t.Errorf("label %d runes, args %d bytes", len([]rune(en.Label)), len(en.Args))
				}
			}
			// Detect over an ISO made of the same bytes in every config slot.
			fs := MapFS{}
			for _, c := range configCandidates {
				fs[c.path] = MapFile{Data: data}
			}
			fs["/.treeinfo"] = MapFile{Data: data}
			fs["/.disk/info"] = MapFile{Data: data}
			fs["/self.cfg"] = MapFile{Data: data}
			r := Detect(fs)
			_, _ = Recipe(r, fs, testParams)
			if d := cpuTime(t) - start; d > 30*time.Second {
				t.Errorf("detect used %v of CPU", d)
			}
		})
	}
}

// cpuTime is the CPU time this process has used. The hostile-input bounds are on CPU, not on
// the wall clock: a machine busy with other work (CI, QEMU next door) stretches wall time
// tenfold (23 s seen under load for work that needs under a second of CPU), while a parser that blows up on its
// input burns CPU whatever the load. The subtests run one at a time, so the process's CPU is
// theirs (plus the race detector and GC, which the generous bounds absorb).
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestCleanLabel(t *testing.T) {
	for in, want := range map[string]string{
		"^Graphical install":     "Graphical install",
		"  a\t\tb\x00c  ":        "a b c",
		strings.Repeat("x", 999): strings.Repeat("x", maxLabelRunes),
		"\xff":                   "",
	} {
		if got := cleanLabel(in); got != want {
			t.Errorf("cleanLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
