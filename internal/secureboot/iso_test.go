package secureboot

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/distro"
)

// mapFiles is an in-memory ISO (distro.MapFS) with random access.
type mapFiles struct{ distro.MapFS }

type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

func (m mapFiles) Open(p string) (File, error) {
	b, err := m.ReadFile(p, 1<<30)
	if err != nil {
		return nil, err
	}
	return memFile{bytes.NewReader(b)}, nil
}

const debianGCD = "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed" // grub-efi-amd64-signed: the CD build ISOs carry

func TestISOPairDebianLayout(t *testing.T) {
	fsys := mapFiles{distro.MapFS{
		"efi/boot/bootx64.efi": {Data: debianFile(t, debianShim, "shim-signed")},
		"efi/boot/grubx64.efi": {Data: debianFile(t, debianGCD, "grub-efi-amd64-signed")},
		"efi/boot/mmx64.efi":   {Data: []byte("MokManager")},
		"linux":                {Data: debianFile(t, debianKernel, "debian-installer-12-netboot-amd64")},
	}}
	p, ok := ISOPair(fsys, "x86_64")
	if !ok {
		t.Fatal("no x86_64 pair")
	}
	if p.Shim != "/efi/boot/bootx64.efi" || p.GRUB != "/efi/boot/grubx64.efi" || p.Loader != "grubx64.efi" {
		t.Errorf("pair = %+v", p)
	}
	if !p.GRUBTrusted || p.GRUBProblem != "" {
		t.Errorf("the ISO's shim must trust its GRUB: %+v", p)
	}
	if p.Prefix != "/boot/grub" || strings.Join(p.ConfigPaths, " ") != "/boot/grub/x86_64-efi/grub.cfg /boot/grub/grub.cfg {dir}/grub.cfg" {
		t.Errorf("prefix %q config paths %q", p.Prefix, p.ConfigPaths)
	}
	if len(p.ShimTrusts) != 1 || p.ShimTrusts[0] != "CN=Debian Secure Boot CA" || len(p.ShimSigners) == 0 {
		t.Errorf("shim trusts %q signed by %q", p.ShimTrusts, p.ShimSigners)
	}
	if !strings.Contains(p.ShimSBAT, "\nshim,") || !strings.Contains(p.GRUBSBAT, "\ngrub,") {
		t.Errorf("SBAT: shim %q grub %q", p.ShimSBAT, p.GRUBSBAT)
	}
	if _, ok := ISOPair(fsys, "arm64"); ok {
		t.Error("arm64 pair on an x86_64 ISO")
	}

	r := CheckISO(fsys, []distro.Entry{
		{ID: "install", Kernel: "/linux", Firmware: distro.FirmwareBoth},
		{ID: "bios-only", Kernel: "/linux", Firmware: distro.FirmwareBIOS},
		{ID: "sanboot", Sanboot: true, Firmware: distro.FirmwareBoth},
	}, "x86_64", nil, true)
	if len(r.Pairs) != 1 || len(r.Entries) != 2 {
		t.Fatalf("readiness = %+v", r)
	}
	e, _ := r.Entry("install")
	if !e.Trusted || e.Shim != "iso:/efi/boot/bootx64.efi" || e.By != "CN=Debian Secure Boot CA" || !e.Signature.Signed {
		t.Errorf("install = %+v", e)
	}
	if e, _ := r.Entry("sanboot"); e.Trusted || !strings.Contains(e.Reason, "iPXE") {
		t.Errorf("sanboot = %+v", e)
	}

	// A server that serves its own shim to everyone: that shim's verdict, and the ISO's own
	// beside it.
	debian := map[string]*Shim{"x86_64": debianShimParsed(t)}
	r = CheckISO(fsys, []distro.Entry{{ID: "install", Kernel: "/linux"}}, "x86_64", debian, false)
	if e, _ := r.Entry("install"); !e.Trusted || e.Shim != ShimDebian || e.ISOShim == nil || !e.ISOShim.Trusted {
		t.Errorf("install with fleetboot's shim = %+v (iso shim %+v)", e, e.ISOShim)
	}
	r = CheckISO(fsys, []distro.Entry{{ID: "install", Kernel: "/linux"}}, "x86_64", nil, false)
	if e, _ := r.Entry("install"); e.Trusted || e.Shim != "" || !strings.Contains(e.Reason, "does not serve the ISO's own") || e.ISOShim == nil || !e.ISOShim.Trusted {
		t.Errorf("install without any served shim = %+v", e)
	}
}

// A kernel only the ISO's own shim trusts (another vendor's) is not ready while fleetboot
// serves Debian's shim, and the reason says the ISO's shim would take it.
func TestCheckISOVendorKernelNeedsTheISOsShim(t *testing.T) {
	ca := newCert(t, "Vendor CA", nil, true, time.Now().Add(year))
	leaf := newCert(t, "Vendor Kernel Signer", ca, false, time.Now().Add(year))
	fsys := mapFiles{distro.MapFS{
		"EFI/BOOT/BOOTX64.EFI": {Data: shimImage(ca.cert.Raw, nil)},
		"EFI/BOOT/grubx64.efi": {Data: sign(t, buildPE(testSection{".text", []byte("vendor grub")}), leaf, ca)},
		"images/vmlinuz":       {Data: sign(t, buildPE(testSection{".text", []byte("vendor kernel")}), leaf, ca)},
	}}
	entries := []distro.Entry{{ID: "install", Kernel: "/images/vmlinuz"}}
	r := CheckISO(fsys, entries, "x86_64", map[string]*Shim{"x86_64": debianShimParsed(t)}, false)
	e, _ := r.Entry("install")
	if e.Trusted || e.Shim != ShimDebian || !strings.Contains(e.Reason, "the ISO's own shim trusts it") || e.ISOShim == nil || e.ISOShim.By != "CN=Vendor CA" {
		t.Errorf("install = %+v (iso shim %+v)", e, e.ISOShim)
	}
	if len(r.Pairs) != 1 || !r.Pairs[0].GRUBTrusted {
		t.Errorf("pairs = %+v", r.Pairs)
	}
	r = CheckISO(fsys, entries, "x86_64", nil, true)
	if e, _ := r.Entry("install"); !e.Trusted || e.Shim != "iso:/EFI/BOOT/BOOTX64.EFI" || e.ISOShim != nil {
		t.Errorf("served ISO pair: install = %+v", e)
	}
}

func TestGrubInfoOfDebianBuilds(t *testing.T) {
	for _, c := range []struct{ path, prefix string }{
		{debianGCD, "/boot/grub"},
		{debianGRUB, "/grub"},
		{"/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "/EFI/debian"},
	} {
		g, ok := GrubInfo(parseBytes(t, debianFile(t, c.path, "grub-efi-amd64-signed")))
		if !ok || g.Prefix != c.prefix || g.Config != "normal (memdisk)/grub.cfg" {
			t.Errorf("%s: %+v %v, want prefix %s", c.path, g, ok, c.prefix)
		}
	}
	if _, ok := GrubInfo(parseBytes(t, debianFile(t, debianShim, "shim-signed"))); ok {
		t.Error("shim reported as GRUB")
	}
}

func TestCheckISOWithoutPairUsesDebianShim(t *testing.T) {
	debian := map[string]*Shim{"x86_64": debianShimParsed(t)}
	ca := newCert(t, "Custom Kernel CA", nil, true, time.Now().Add(year))
	unsigned := buildPE(testSection{".text", []byte("kernel")})
	fsys := mapFiles{distro.MapFS{
		// BOOTX64.EFI that is GRUB itself, not a shim: no pair.
		"EFI/BOOT/BOOTX64.EFI": {Data: debianFile(t, debianGCD, "grub-efi-amd64-signed")},
		"EFI/BOOT/grubx64.efi": {Data: debianFile(t, debianGCD, "grub-efi-amd64-signed")},
		"debian/linux":         {Data: debianFile(t, debianKernel, "debian-installer-12-netboot-amd64")},
		"unsigned/vmlinuz":     {Data: unsigned},
		"custom/vmlinuz":       {Data: sign(t, unsigned, ca)},
		"bzimage/vmlinuz":      {Data: []byte("not a PE at all")},
	}}
	r := CheckISO(fsys, []distro.Entry{
		{ID: "debian", Kernel: "/debian/linux"},
		{ID: "debian-expert", Kernel: "/debian/linux"}, // same kernel: checked once, reported twice
		{ID: "unsigned", Kernel: "/unsigned/vmlinuz"},
		{ID: "custom", Kernel: "/custom/vmlinuz"},
		{ID: "bzimage", Kernel: "/bzimage/vmlinuz"},
		{ID: "arm", Kernel: "/debian/linux", Arch: "arm64"},
	}, "x86_64", debian, false)
	if len(r.Pairs) != 0 {
		t.Errorf("pairs = %+v, want none (BOOTX64.EFI is not a shim)", r.Pairs)
	}
	want := map[string]struct {
		trusted bool
		shim    string
		reason  string
	}{
		"debian":        {true, ShimDebian, ""},
		"debian-expert": {true, ShimDebian, ""},
		"unsigned":      {false, ShimDebian, "not signed"},
		"custom":        {false, ShimDebian, "Debian's shim trusts only Debian's key and enrolled MOKs"},
		"bzimage":       {false, ShimDebian, "not an EFI"},
		"arm":           {false, "", "no signed shim for arm64"},
	}
	for id, w := range want {
		e, ok := r.Entry(id)
		if !ok || e.Trusted != w.trusted || e.Shim != w.shim || !strings.Contains(e.Reason, w.reason) {
			t.Errorf("%s = %+v, want trusted=%v shim=%q reason ~%q", id, e, w.trusted, w.shim, w.reason)
		}
	}
}

// The d-i netboot layout carries both architectures' pairs (bootnetx64.efi/bootnetaa64.efi
// renamed to the removable-media names here). Their GRUB prefixes are the d-i directories, the
// fact DESIGN.md records from the wire for bookworm's network GRUB.
func TestISOPairsDebianInstallerBothArchitectures(t *testing.T) {
	const amd, arm = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/", "/usr/lib/debian-installer/images/12/arm64/text/debian-installer/arm64/"
	fsys := mapFiles{distro.MapFS{
		"EFI/BOOT/BOOTX64.EFI":  {Data: debianFile(t, amd+"bootnetx64.efi", "debian-installer-12-netboot-amd64")},
		"EFI/BOOT/grubx64.efi":  {Data: debianFile(t, amd+"grubx64.efi", "debian-installer-12-netboot-amd64")},
		"EFI/BOOT/BOOTAA64.EFI": {Data: debianFile(t, arm+"bootnetaa64.efi", "debian-installer-12-netboot-arm64")},
		"EFI/BOOT/grubaa64.efi": {Data: debianFile(t, arm+"grubaa64.efi", "debian-installer-12-netboot-arm64")},
		"linux":                 {Data: debianFile(t, arm+"linux", "debian-installer-12-netboot-arm64")},
	}}
	pairs := ISOPairs(fsys)
	if len(pairs) != 2 {
		t.Fatalf("pairs = %+v", pairs)
	}
	for i, want := range []struct{ arch, loader, cfg string }{
		{"x86_64", "grubx64.efi", "/debian-installer/amd64/grub/x86_64-efi/grub.cfg /debian-installer/amd64/grub/grub.cfg"},
		{"arm64", "grubaa64.efi", "/debian-installer/arm64/grub/arm64-efi/grub.cfg /debian-installer/arm64/grub/grub.cfg"},
	} {
		p := pairs[i]
		if p.Arch != want.arch || p.Loader != want.loader || strings.Join(p.ConfigPaths, " ") != want.cfg || !p.GRUBTrusted {
			t.Errorf("pair %d = %+v", i, p)
		}
	}
	r := CheckISO(fsys, []distro.Entry{{ID: "install", Kernel: "/linux"}}, "arm64", nil, true)
	if e, _ := r.Entry("install"); !e.Trusted || e.Shim != "iso:/EFI/BOOT/BOOTAA64.EFI" || e.Arch != "arm64" {
		t.Errorf("arm64 install = %+v", e)
	}
}

// grubMods builds a GRUB "mods" section: the module-info header, then a prefix and a config
// object, as grub-mkimage lays them out.
func grubMods(prefix, config string) []byte {
	obj := func(typ uint32, data string) []byte {
		b := make([]byte, 8, 8+len(data)+8)
		b = append(b, data...)
		b = append(b, make([]byte, 8-len(data)%8)...) // NUL-terminated, padded
		binary.LittleEndian.PutUint32(b, typ)
		binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
		return b
	}
	body := append(obj(grubObjConfig, config), obj(grubObjPrefix, prefix)...)
	h := make([]byte, 24)
	binary.LittleEndian.PutUint32(h, grubModMagic)
	binary.LittleEndian.PutUint64(h[8:], 24)
	binary.LittleEndian.PutUint64(h[16:], uint64(24+len(body)))
	return append(h, body...)
}

func TestGrubInfoAndConfigPathsOfBuiltImages(t *testing.T) {
	for _, c := range []struct {
		prefix, config, arch, want string
	}{
		{"/boot/grub", "normal (memdisk)/grub.cfg", "x86_64", "/boot/grub/x86_64-efi/grub.cfg /boot/grub/grub.cfg {dir}/grub.cfg"},
		{"/grub", "normal (memdisk)/grub.cfg", "arm64", "/grub/arm64-efi/grub.cfg /grub/grub.cfg"},
		{"/EFI/BOOT", "", "x86_64", "{dir}/grub.cfg-{mac} {dir}/grub.cfg /EFI/BOOT/grub.cfg-{mac} /EFI/BOOT/grub.cfg"},
		{"(hd0,gpt1)/EFI/fedora", "", "x86_64", "{dir}/grub.cfg-{mac} {dir}/grub.cfg /EFI/fedora/grub.cfg-{mac} /EFI/fedora/grub.cfg"},
	} {
		g, ok := GrubInfo(parseBytes(t, buildPE(testSection{".text", []byte("x")}, testSection{"mods", grubMods(c.prefix, c.config)})))
		if !ok || g.Prefix != c.prefix || g.Config != c.config {
			t.Errorf("GrubInfo = %+v %v, want prefix %q config %q", g, ok, c.prefix, c.config)
		}
		if got := strings.Join(configPaths(g, c.arch), " "); got != c.want {
			t.Errorf("configPaths(%+v) = %s, want %s", g, got, c.want)
		}
	}
	if _, ok := GrubInfo(parseBytes(t, buildPE(testSection{"mods", []byte("not grub's module header at all")}))); ok {
		t.Error("GrubInfo accepted a mods section without GRUB's magic")
	}
}
