package distro

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the current output")

var testParams = Params{
	ISOURL:  "http://10.77.0.1:8080/isos/3f9a",
	ISOSize: 2600 * mib,
}

func TestDetectRecognisesEachFamilyLayout(t *testing.T) {
	for _, l := range layouts(t) {
		t.Run(l.name, func(t *testing.T) {
			r := Detect(l.fs)
			if r.Family != l.family || r.Variant != l.variant || r.Version != l.version || r.Arch != l.arch {
				t.Errorf("got family=%s variant=%q version=%q arch=%q, want %s %q %q %q (evidence %v)",
					r.Family, r.Variant, r.Version, r.Arch, l.family, l.variant, l.version, l.arch, r.Evidence)
			}
			if r.Family != FamilyUnknown && len(r.Evidence) == 0 {
				t.Error("a recognised family names no evidence")
			}
			for _, e := range r.Entries {
				if _, _, ok := l.fs.Stat(e.Kernel); !ok {
					t.Errorf("entry %q has a kernel that is not on the ISO: %s", e.Label, e.Kernel)
				}
			}
		})
	}
}

// TestRecipeGolden pins every family's recipe (interactive and, where the installer takes
// one, unattended) as JSON in testdata/golden. Run with -update after a deliberate change
// and review the diff.
func TestRecipeGolden(t *testing.T) {
	for _, l := range layouts(t) {
		t.Run(l.name, func(t *testing.T) {
			r := Detect(l.fs)
			got := map[string]any{"detect": r}
			for _, c := range []struct {
				key string
				p   Params
			}{
				{"recipe", testParams},
				{"recipe_unattended", withUnattended(testParams)},
				{"recipe_serial_extra", withConsole(testParams)},
			} {
				entries, err := Recipe(r, l.fs, c.p)
				if err != nil {
					got[c.key] = map[string]string{"error": err.Error()}
					continue
				}
				got[c.key] = entries
			}
			b, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			golden := filepath.Join("testdata", "golden", l.name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestRecipeGolden -update)", err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("recipe differs from %s (run with -update if intended):\n%s", golden, b)
			}
		})
	}
}

func withUnattended(p Params) Params {
	p.UnattendedURL = "http://10.77.0.1:8080/api/v1/unattended/52-54-00-12-34-56"
	return p
}

func withConsole(p Params) Params {
	p.Console = "ttyS0,115200n8"
	p.ExtraArgs = "net.ifnames=0 fleetboot.mac=${netX/mac}"
	return p
}

// TestRecipeCommandLines checks the arguments each installer needs to find the ISO over
// HTTP, independently of the golden files.
func TestRecipeCommandLines(t *testing.T) {
	iso := testParams.ISOURL
	cases := []struct {
		layout     string
		unattended bool
		kernel     string
		initrds    []string
		want       []string // words that must be on the first entry's command line
		wantErr    error
	}{
		{"ubuntu-24.04.2-live-server-amd64", false, "/casper/vmlinuz", []string{"/casper/initrd"},
			[]string{"ip=dhcp", "url=" + iso + "/image.iso", "cloud-config-url=/dev/null", "root=/dev/ram0"}, nil},
		{"ubuntu-24.04.2-live-server-amd64", true, "/casper/vmlinuz", []string{"/casper/initrd"},
			[]string{"autoinstall", "ds=nocloud-net;s=http://10.77.0.1:8080/api/v1/unattended/52-54-00-12-34-56/"}, nil},
		{"debian-12-amd64-mini", true, "/linux", []string{"/initrd.gz"},
			[]string{"auto=true", "priority=critical", "url=http://10.77.0.1:8080/api/v1/unattended/52-54-00-12-34-56"}, nil},
		{"debian-12.7.0-amd64-netinst", false, "", nil, nil, ErrNotNetbootable},
		{"ubuntu-18.04.6-server-amd64", true, "/install/netboot/ubuntu-installer/amd64/linux", []string{"/install/netboot/ubuntu-installer/amd64/initrd.gz"},
			[]string{"auto=true", "priority=critical"}, nil},
		{"debian-live-12.7.0-amd64-standard", false, "/live/vmlinuz-6.1.0-25-amd64", []string{"/live/initrd.img-6.1.0-25-amd64"},
			[]string{"boot=live", "components", "fetch=" + iso + "/files/live/filesystem.squashfs"}, nil},
		{"debian-live-12.7.0-amd64-standard", true, "", nil, nil, ErrUnattendedUnsupported},
		{"Fedora-Server-dvd-x86_64-41-1.4", true, "/images/pxeboot/vmlinuz", []string{"/images/pxeboot/initrd.img"},
			[]string{"inst.repo=" + iso + "/files/", "inst.ks=http://10.77.0.1:8080/api/v1/unattended/52-54-00-12-34-56"}, nil},
		{"Rocky-9.4-x86_64-dvd", false, "/images/pxeboot/vmlinuz", []string{"/images/pxeboot/initrd.img"},
			[]string{"inst.repo=" + iso + "/files/"}, nil},
		{"Rocky-9.4-x86_64-boot", false, "/images/pxeboot/vmlinuz", []string{"/images/pxeboot/initrd.img"},
			[]string{"inst.stage2=" + iso + "/files/"}, nil},
		{"Fedora-Workstation-Live-x86_64-41-1.4", false, "/images/pxeboot/vmlinuz", []string{"/images/pxeboot/initrd.img"},
			[]string{"root=live:" + iso + "/files/LiveOS/squashfs.img", "rd.live.image", "rd.neednet=1", "ip=dhcp"}, nil},
		{"Fedora-KDE-Live-kiwi-layout", false, "/boot/x86_64/loader/linux", []string{"/boot/x86_64/loader/initrd"},
			[]string{"root=live:" + iso + "/files/LiveOS/squashfs.img"}, nil},
		{"archlinux-2024.09.01-x86_64", true, "/arch/boot/x86_64/vmlinuz-linux",
			[]string{"/arch/boot/intel-ucode.img", "/arch/boot/amd-ucode.img", "/arch/boot/x86_64/initramfs-linux.img"},
			[]string{"archisobasedir=arch", "archiso_http_srv=" + iso + "/files/", "ip=dhcp", "cms_verify=y",
				"script=http://10.77.0.1:8080/api/v1/unattended/52-54-00-12-34-56"}, nil},
		{"alpine-standard-3.20.3-x86_64", false, "/boot/vmlinuz-lts", []string{"/boot/initramfs-lts"},
			[]string{"ip=dhcp", "modules=loop,squashfs,sd-mod,usb-storage", "alpine_repo=" + iso + "/files/apks", "modloop=" + iso + "/files/boot/modloop-lts"}, nil},
		{"openSUSE-Leap-15.6-DVD-x86_64", true, "/boot/x86_64/loader/linux", []string{"/boot/x86_64/loader/initrd"},
			[]string{"install=" + iso + "/files/", "netsetup=dhcp", "autoyast=http://10.77.0.1:8080/api/v1/unattended/52-54-00-12-34-56"}, nil},
		{"proxmox-ve_8.2-2", false, "/boot/linux26", []string{"/boot/initrd.img", ImageISO},
			[]string{"ramdisk_size=16777216", "splash=silent"}, nil},
		{"proxmox-ve_8.2-2", true, "", nil, nil, ErrUnattendedUnsupported},
		{"mt86plus_7.20_64", false, "/EFI/BOOT/bootx64.efi", nil, nil, nil},
		{"VMware-VMvisor-Installer-8.0U3", false, "", nil, nil, ErrNotNetbootable},
		{"systemrescue-11.02-amd64", false, "/sysresccd/boot/x86_64/vmlinuz",
			[]string{"/sysresccd/boot/intel_ucode.img", "/sysresccd/boot/amd_ucode.img", "/sysresccd/boot/x86_64/sysresccd.img"},
			[]string{"archisobasedir=sysresccd", "iomem=relaxed"}, nil},
	}
	all := map[string]layout{}
	for _, l := range layouts(t) {
		all[l.name] = l
	}
	for _, c := range cases {
		name := c.layout
		if c.unattended {
			name += "/unattended"
		}
		t.Run(name, func(t *testing.T) {
			l, ok := all[c.layout]
			if !ok {
				t.Fatalf("no layout %s", c.layout)
			}
			p := testParams
			if c.unattended {
				p = withUnattended(p)
			}
			entries, err := Recipe(Detect(l.fs), l.fs, p)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			e := entries[0]
			if e.Kernel != c.kernel {
				t.Errorf("kernel %q, want %q", e.Kernel, c.kernel)
			}
			var got []string
			for _, i := range e.Initrds {
				got = append(got, i.Path)
			}
			if strings.Join(got, " ") != strings.Join(c.initrds, " ") {
				t.Errorf("initrds %v, want %v", got, c.initrds)
			}
			words := map[string]bool{}
			for _, w := range strings.Fields(e.Cmdline) {
				words[w] = true
			}
			for _, w := range c.want {
				if !words[w] {
					t.Errorf("cmdline %q lacks %q", e.Cmdline, w)
				}
			}
			if e.Unattended != c.unattended {
				t.Errorf("Unattended = %v, want %v", e.Unattended, c.unattended)
			}
		})
	}
}

func TestProxmoxLoadsTheWholeImageAsProxmoxISO(t *testing.T) {
	for _, name := range []string{"proxmox-ve_8.2-2", "proxmox-ve_8.2-2-auto"} {
		l := layoutNamed(t, name)
		entries, err := Recipe(Detect(l.fs), l.fs, testParams)
		if err != nil {
			t.Fatal(err)
		}
		auto := false
		for _, e := range entries {
			if len(e.Initrds) != 2 || e.Initrds[1] != (Initrd{Path: ImageISO, As: "/proxmox.iso"}) {
				t.Errorf("%s %s: initrds %+v, want the image as /proxmox.iso second", name, e.ID, e.Initrds)
			}
			if strings.Contains(e.Cmdline, "proxmox-start-auto-installer") {
				auto = true
			}
		}
		// The automated entry is only there on prepared images (auto-installer-mode.toml).
		if want := strings.HasSuffix(name, "-auto"); auto != want {
			t.Errorf("%s: automated entry offered = %v, want %v", name, auto, want)
		}
	}
}

func TestUnknownISOOffersItsEntriesThenSanboot(t *testing.T) {
	l := layoutNamed(t, "systemrescue-11.02-amd64")
	entries, err := Recipe(Detect(l.fs), l.fs, testParams)
	if err != nil {
		t.Fatal(err)
	}
	last := entries[len(entries)-1]
	if !last.Sanboot || last.Kernel != "" {
		t.Errorf("last entry %+v, want sanboot", last)
	}
	for _, e := range entries[:len(entries)-1] {
		if strings.Contains(e.Cmdline, "$") {
			t.Errorf("entry %s keeps a GRUB variable: %q", e.ID, e.Cmdline)
		}
	}
	// Two Linux entries, the chainloaded EFI shell (UEFI only), then sanboot.
	if len(entries) != 4 || entries[2].Kernel != "/EFI/shell.efi" || entries[2].Firmware != FirmwareUEFI {
		t.Errorf("entries %+v", entries)
	}

	l = layoutNamed(t, "FD14-LiveCD")
	entries, err = Recipe(Detect(l.fs), l.fs, testParams)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || !entries[0].Sanboot {
		t.Errorf("entries %+v, want sanboot only", entries)
	}
}

func TestMemtestEntriesPerFirmware(t *testing.T) {
	l := layoutNamed(t, "mt86plus_7.20_64")
	entries, err := Recipe(Detect(l.fs), l.fs, withConsole(testParams))
	if err != nil {
		t.Fatal(err)
	}
	fw := map[Firmware]Entry{}
	for _, e := range entries {
		fw[e.Firmware] = e
	}
	if fw[FirmwareUEFI].Kernel != "/EFI/BOOT/bootx64.efi" || fw[FirmwareBIOS].Kernel != "/EFI/BOOT/bootx64.efi" {
		t.Errorf("entries %+v", entries)
	}
	if c := fw[FirmwareUEFI].Cmdline; !strings.Contains(c, "console=ttyS0,115200n8") || strings.Contains(c, "tty0") {
		t.Errorf("memtest cmdline %q: want its own console= syntax only", c)
	}
}

func TestRecipeRejectsParamsIPXEWouldCut(t *testing.T) {
	l := layoutNamed(t, "Rocky-9.4-x86_64-dvd")
	r := Detect(l.fs)
	bad := []Params{
		{},
		{ISOURL: "ftp://10.0.0.1/isos/x"},
		{ISOURL: "http://10.0.0.1/isos/x?y=1"},
		{ISOURL: "http://10.0.0.1/isos/x y"},
		{ISOURL: "/isos/x"},
		{ISOURL: testParams.ISOURL, ExtraArgs: "quiet #comment"},
		{ISOURL: testParams.ISOURL, ExtraArgs: "quiet || shell"},
		{ISOURL: testParams.ISOURL, ExtraArgs: "a ; b"},
		{ISOURL: testParams.ISOURL, ExtraArgs: "a\nkernel http://evil/x"},
		{ISOURL: testParams.ISOURL, UnattendedURL: "http://10.0.0.1/ks.cfg extra"},
		{ISOURL: testParams.ISOURL, UnattendedURL: "ks.cfg"},
		{ISOURL: testParams.ISOURL, Console: "ttyS0 quiet"},
		{ISOURL: testParams.ISOURL, ExtraArgs: strings.Repeat("x", 3000)},
	}
	for _, p := range bad {
		if _, err := Recipe(r, l.fs, p); err == nil {
			t.Errorf("Recipe accepted %+v", p)
		} else if !errors.Is(err, ErrBadParams) && !errors.Is(err, ErrCmdlineTooLong) {
			t.Errorf("Recipe(%+v) = %v, want ErrBadParams or ErrCmdlineTooLong", p, err)
		}
	}
	// A ';' inside a word and iPXE settings are fine.
	if _, err := Recipe(r, l.fs, Params{ISOURL: testParams.ISOURL + "/", ExtraArgs: "a;b=c x=${netX/mac}"}); err != nil {
		t.Errorf("valid params rejected: %v", err)
	}
}

func TestRecipeFailsWhenTheFamilyFilesAreMissing(t *testing.T) {
	for _, f := range []Family{FamilyUbuntu, FamilyDebianLive, FamilyFedora, FamilyFedoraLive, FamilyArch, FamilyAlpine,
		FamilyOpenSUSE, FamilyProxmox, FamilyMemtest} {
		_, err := Recipe(Result{Family: f}, MapFS{"/README": text("hi")}, testParams)
		if !errors.Is(err, ErrMissingFile) {
			t.Errorf("%s on an empty ISO: err = %v, want ErrMissingFile", f, err)
		}
	}
}

func TestFileURLEscapesPathElements(t *testing.T) {
	cases := map[string]string{
		"/casper/vmlinuz":      "http://s/isos/1/files/casper/vmlinuz",
		"EFI/BOOT/BOOTX64.EFI": "http://s/isos/1/files/EFI/BOOT/BOOTX64.EFI",
		"/a b/c#d?.img":        "http://s/isos/1/files/a%20b/c%23d%3F.img",
		"/../../etc/passwd":    "http://s/isos/1/files/etc/passwd",
		ImageISO:               "http://s/isos/1/image.iso",
	}
	for in, want := range cases {
		if got := FileURL("http://s/isos/1/", in); got != want {
			t.Errorf("FileURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDetectLooksUpNamesWithoutCase(t *testing.T) {
	// Plain ISO 9660 names (no Rock Ridge) come upper case.
	fs := MapFS{
		"/CASPER/VMLINUZ": kernel(),
		"/CASPER/INITRD":  initramfs(60),
		"/.DISK/INFO":     text(`Ubuntu-Server 22.04.4 LTS "Jammy Jellyfish" - Release amd64 (20240220)`),
	}
	r := Detect(fs)
	if r.Family != FamilyUbuntu || r.Version != "22.04.4" {
		t.Fatalf("got %+v", r)
	}
	entries, err := Recipe(r, fs, testParams)
	if err != nil {
		t.Fatal(err)
	}
	if entries[0].Kernel != "/CASPER/VMLINUZ" || entries[0].Initrds[0].Path != "/CASPER/INITRD" {
		t.Errorf("entry %+v: want the stored spelling", entries[0])
	}
}

func TestDetectWorkIsBounded(t *testing.T) {
	// A config that includes itself and a thousand others, on an ISO with a huge directory.
	fs := MapFS{"/isolinux/isolinux.cfg": text("INCLUDE isolinux.cfg\n" + strings.Repeat("INCLUDE other.cfg\nLABEL x\n KERNEL /k\n", 1000))}
	for i := 0; i < 5000; i++ {
		fs["/big/"+strings.Repeat("x", i%50)+string(rune('a'+i%26))+"-"+itoa(i)] = MapFile{}
	}
	counting := &countingFS{ISOFS: fs}
	Detect(counting)
	if counting.calls > maxOps+10 {
		t.Errorf("%d ISOFS calls, budget %d", counting.calls, maxOps)
	}
}

type countingFS struct {
	ISOFS
	calls int
}

func (c *countingFS) Stat(p string) (int64, bool, bool) {
	c.calls++
	return c.ISOFS.Stat(p)
}

func (c *countingFS) ReadFile(p string, max int64) ([]byte, error) {
	c.calls++
	return c.ISOFS.ReadFile(p, max)
}

func (c *countingFS) ReadDir(p string) ([]string, error) {
	c.calls++
	return c.ISOFS.ReadDir(p)
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func layoutNamed(t *testing.T, name string) layout {
	t.Helper()
	for _, l := range layouts(t) {
		if l.name == name {
			return l
		}
	}
	t.Fatalf("no layout %s", name)
	return layout{}
}

// A Proxmox profile with an answer file boots only the automated entry of a prepared ISO; a
// stock ISO is refused with how to prepare it (the installer reads no answer URL from the
// command line, so nothing else would use the answer).
func TestProxmoxAutoInstallNeedsAPreparedISO(t *testing.T) {
	p := testParams
	p.AutoInstall = true
	auto := layoutNamed(t, "proxmox-ve_8.2-2-auto")
	entries, err := Recipe(Detect(auto.fs), auto.fs, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].ID != "install-auto" || !strings.Contains(entries[0].Cmdline, "proxmox-start-auto-installer") {
		t.Fatalf("entries %+v, want the automated entry only", entries)
	}
	stock := layoutNamed(t, "proxmox-ve_8.2-2")
	if _, err := Recipe(Detect(stock.fs), stock.fs, p); !errors.Is(err, ErrUnattendedUnsupported) || !strings.Contains(err.Error(), "prepare-iso --fetch-from http") {
		t.Fatalf("stock ISO with an answer file: %v", err)
	}
	// Without an answer file both images offer their interactive entries as before.
	if entries, err := Recipe(Detect(stock.fs), stock.fs, testParams); err != nil || len(entries) < 2 {
		t.Fatalf("interactive: %v %+v", err, entries)
	}
}
