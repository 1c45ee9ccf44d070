package secureboot

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/fleetboot/fleetboot/internal/distro"
)

// File is an open file of an ISO: what Inspect and Parse need.
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// ISOFiles is an ISO's file index (distro.ISOFS: Stat, ReadDir) plus random access to its
// files, which the Authenticode digest of a multi-MiB kernel needs without loading it whole.
type ISOFiles interface {
	distro.ISOFS
	Open(path string) (File, error)
}

// Pair is an ISO's own signed boot pair: its shim and the GRUB that shim loads, for one
// architecture. Served to machines whose profile boots that ISO, it lets the vendor's kernel
// verify under the vendor's own shim (Debian's shim trusts only Debian's key). fleetboot
// serves it from isopair/<ISO id>/ over TFTP and HTTP (internal/grub) to machines installing
// a profile of the ISO.
//
// Where a network-booted GRUB looks for its config (facts read out of the binaries with
// GrubInfo, and from the distributions' GRUB patches; the Debian rows verified in QEMU):
//
//   - Debian and Ubuntu ISOs carry the CD build of GRUB (Debian's gcdx64.efi.signed, renamed
//     grubx64.efi). Its embedded prefix is /boot/grub and its memdisk config reads, in order,
//     $prefix/x86_64-efi/grub.cfg, $prefix/grub.cfg, $cmdpath/grub.cfg — network-booted,
//     $prefix is /boot/grub on the server that served GRUB (the /.disk/info search finds no
//     disk) and $cmdpath the directory GRUB itself came from. Same script in the arm64 build
//     (arm64-efi).
//   - Debian's network build (grubnetx64.efi.signed: d-i netboot, and what fleetboot serves by
//     default) has prefix /grub (trixie 2.12 and bookworm 2.06 packages; d-i bookworm's own
//     grubx64.efi: /debian-installer/amd64/grub) and reads $prefix/x86_64-efi/grub.cfg, then
//     $prefix/grub.cfg.
//   - Fedora, RHEL and their rebuilds (Rocky, Alma, CentOS Stream), and SUSE, patch GRUB to
//     look first in the directory it was loaded from ("fw_path", Fedora's patches "use fw_path
//     prefix when fallback searching for grub config" and "Try mac/guid/etc before grub.cfg on
//     tftp config files"): grub.cfg-01-<mac, lower case, dashes>, then grub.cfg-<IP address
//     in hex, shortened one digit at a time>, then grub.cfg, there; then the same below the
//     embedded $prefix. Red Hat's PXE guide serves grub.cfg next to the ISO's BOOTX64.EFI and
//     grubx64.efi for that reason. (From the patches and vendor guides; not yet booted here.)
//   - SUSE's shim loads "grub.efi", not "grubx64.efi" (its DEFAULT_LOADER); the name shim asks
//     for is Loader.
//
// Upstream GRUB's own per-MAC search (grub_net_search_config_file) runs only when normal mode
// starts without a config file and $prefix is on tftp; the Debian-family builds above start it
// with an explicit memdisk config, so they never search per-MAC names.
type Pair struct {
	// Arch is "x86_64" or "arm64".
	Arch string `json:"arch"`
	// Shim and GRUB are the files on the ISO, as the image stores their paths.
	Shim string `json:"shim"`
	GRUB string `json:"grub"`
	// Loader is the file name the shim asks the server for next: GRUB's base name on the ISO
	// ("grubx64.efi", "grubaa64.efi", SUSE's "grub.efi").
	Loader string `json:"loader"`
	// Prefix is GRUB's embedded $prefix, "" when it could not be read.
	Prefix string `json:"prefix,omitempty"`
	// ConfigPaths are where this GRUB reads its config when network-booted, in the order it
	// tries them, as paths from the server's root. "{dir}" stands for the directory GRUB was
	// served from, "{mac}" for 01-<MAC with dashes>, lower case (grub.cfg-01-52-54-00-12-34-56).
	// Serving the same generated config at each of them is what makes the pair boot.
	ConfigPaths []string `json:"config_paths,omitempty"`
	// ShimSigners name who signed the shim (Microsoft's UEFI CA for a shim that firmware
	// with the Microsoft keys accepts); ShimTrusts names the vendor certificates it carries.
	ShimSigners []string `json:"shim_signers,omitempty"`
	ShimTrusts  []string `json:"shim_trusts,omitempty"`
	// GRUBTrusted says whether the shim trusts the GRUB next to it (it must, or the pair is
	// useless); GRUBProblem says why not.
	GRUBTrusted bool   `json:"grub_trusted"`
	GRUBProblem string `json:"grub_problem,omitempty"`
	// ShimSBAT and GRUBSBAT are their .sbat sections: the component generations shim checks
	// against the machine's SBAT revocation level (a GRUB whose generation is revoked is
	// refused even though its signature is trusted).
	ShimSBAT string `json:"shim_sbat,omitempty"`
	GRUBSBAT string `json:"grub_sbat,omitempty"`
	// HTTPBoot says whether the pair is also served to UEFI HTTP Boot clients (OverHTTPBoot);
	// HTTPBootProblem says why not.
	HTTPBoot        bool   `json:"http_boot"`
	HTTPBootProblem string `json:"http_boot_problem,omitempty"`

	shim *Shim
}

// TrustedShim is the parsed shim of the pair (its vendor certificates), for Verify.
func (p *Pair) TrustedShim() *Shim { return p.shim }

// removable-media names per architecture (UEFI spec 3.5.1.1) and the GRUB names their shims
// load.
var pairNames = []struct {
	arch, shim string
	grubs      []string
}{
	{"x86_64", "bootx64.efi", []string{"grubx64.efi", "grub.efi"}},
	{"arm64", "bootaa64.efi", []string{"grubaa64.efi", "grub.efi"}},
}

// maxLoaderBytes bounds what ISOPairs reads of a shim or GRUB (shim ~1 MiB, GRUB ~4 MiB).
const maxLoaderBytes = 32 << 20

// ISOPairs finds the ISO's own shim + GRUB pairs in /EFI/BOOT (names compared without case),
// one per architecture. A BOOT*.EFI that is not a shim (GRUB or systemd-boot booted directly,
// an unsigned loader) makes no pair: without a shim the vendor's kernel cannot be verified.
func ISOPairs(fsys ISOFiles) []Pair {
	dir, ok := findCI(fsys, "/efi/boot")
	if !ok {
		return nil
	}
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil
	}
	byLower := map[string]string{}
	for _, n := range names {
		byLower[strings.ToLower(n)] = n
	}
	var pairs []Pair
	for _, pn := range pairNames {
		shimName, ok := byLower[pn.shim]
		if !ok {
			continue
		}
		for _, g := range pn.grubs {
			grubName, ok := byLower[g]
			if !ok {
				continue
			}
			if p, ok := makePair(fsys, pn.arch, path.Join(dir, shimName), path.Join(dir, grubName)); ok {
				pairs = append(pairs, p)
			}
			break
		}
	}
	return pairs
}

// ISOPair is the ISO's own pair for arch ("x86_64", "arm64"); ok is false when it has none.
func ISOPair(fsys ISOFiles, arch string) (Pair, bool) {
	for _, p := range ISOPairs(fsys) {
		if p.Arch == arch {
			return p, true
		}
	}
	return Pair{}, false
}

func makePair(fsys ISOFiles, arch, shimPath, grubPath string) (Pair, bool) {
	p := Pair{Arch: arch, Shim: shimPath, GRUB: grubPath, Loader: path.Base(grubPath)}
	shimImg, closeShim, err := openImage(fsys, shimPath)
	if err != nil {
		return p, false
	}
	defer closeShim()
	p.shim, err = ParseShim(shimImg)
	if err != nil {
		return p, false
	}
	for _, s := range shimImg.Report().Signers {
		p.ShimSigners = append(p.ShimSigners, s.Subject)
	}
	for _, c := range p.shim.Certs {
		p.ShimTrusts = append(p.ShimTrusts, c.Subject.String())
	}
	p.ShimSBAT = p.shim.SBAT
	grubImg, closeGRUB, err := openImage(fsys, grubPath)
	if err != nil {
		p.GRUBProblem = err.Error()
		return p, true
	}
	defer closeGRUB()
	v := p.shim.Verify(grubImg)
	p.GRUBTrusted, p.GRUBProblem = v.Trusted, v.Reason
	p.GRUBSBAT, _ = sbat(grubImg)
	p.HTTPBoot, p.HTTPBootProblem = p.OverHTTPBoot()
	info, _ := GrubInfo(grubImg)
	p.Prefix = info.Prefix
	p.ConfigPaths = configPaths(info, arch)
	return p, true
}

// configPaths applies the search orders written on Pair to what GRUB's image says.
func configPaths(info GRUB, arch string) []string {
	platform := "x86_64-efi"
	if arch == "arm64" {
		platform = "arm64-efi"
	}
	prefix := info.Prefix
	if i := strings.IndexByte(prefix, ')'); strings.HasPrefix(prefix, "(") && i > 0 {
		prefix = prefix[i+1:] // "(memdisk)/…" or "($root)/…": the path part
	}
	if prefix == "" {
		prefix = "/EFI/BOOT"
	}
	if strings.Contains(info.Config, "(memdisk)/grub.cfg") {
		// Debian-family builds: the memdisk script.
		out := []string{path.Join(prefix, platform, "grub.cfg"), path.Join(prefix, "grub.cfg")}
		if prefix == "/boot/grub" {
			out = append(out, "{dir}/grub.cfg") // the CD build's $cmdpath fallback
		}
		return out
	}
	// Fedora/RHEL/SUSE builds: fw_path first, per-MAC before the generic name.
	return []string{"{dir}/grub.cfg-{mac}", "{dir}/grub.cfg", path.Join(prefix, "grub.cfg-{mac}"), path.Join(prefix, "grub.cfg")}
}

func openImage(fsys ISOFiles, p string) (*Image, func(), error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, nil, err
	}
	if f.Size() > maxLoaderBytes {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %d bytes, too big for a boot loader", p, f.Size())
	}
	im, err := Parse(f, f.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	return im, func() { f.Close() }, nil
}

// findCI resolves p on fsys comparing each element without case (ISO 9660 names are upper
// case, Rock Ridge and Joliet names keep theirs). Directory listings are bounded.
func findCI(fsys distro.ISOFS, p string) (string, bool) {
	if _, _, ok := fsys.Stat(p); ok {
		return p, true
	}
	cur := "/"
	for _, el := range strings.Split(strings.Trim(p, "/"), "/") {
		names, err := fsys.ReadDir(cur)
		if err != nil {
			return "", false
		}
		if len(names) > 4096 {
			names = names[:4096]
		}
		sort.Strings(names)
		found := ""
		for _, n := range names {
			if strings.EqualFold(n, el) {
				found = n
				break
			}
		}
		if found == "" {
			return "", false
		}
		cur = path.Join(cur, found)
	}
	return cur, true
}

// GRUB is what a GRUB EFI image says about itself: the objects grub-mkimage appended in its
// "mods" section.
type GRUB struct {
	// Prefix is the embedded $prefix (-p of grub-mkimage): "/boot/grub", "/grub",
	// "/EFI/fedora" …
	Prefix string `json:"prefix,omitempty"`
	// Config is the embedded early config (-c), e.g. Debian's "normal (memdisk)/grub.cfg".
	Config string `json:"config,omitempty"`
}

// grub-mkimage's module area (include/grub/kernel.h): grub_module_info64 {magic "mimg",
// padding, offset, size}, then objects {type, size (header included)}.
const (
	grubModMagic   = 0x676d696d // "mimg"
	grubObjConfig  = 2
	grubObjPrefix  = 3
	maxGrubObjects = 4096
)

// GrubInfo reads a GRUB EFI image's embedded prefix and early config. ok is false for images
// that are not GRUB (no "mods" section with GRUB's magic).
func GrubInfo(im *Image) (GRUB, bool) {
	var mods *Section
	for i := range im.Sections {
		if im.Sections[i].Name == "mods" {
			mods = &im.Sections[i]
		}
	}
	if mods == nil || mods.Size < 24 {
		return GRUB{}, false
	}
	var hdr [24]byte
	if _, err := im.r.ReadAt(hdr[:], int64(mods.Offset)); err != nil || binary.LittleEndian.Uint32(hdr[:]) != grubModMagic {
		return GRUB{}, false
	}
	start := int64(binary.LittleEndian.Uint64(hdr[8:]))
	size := int64(binary.LittleEndian.Uint64(hdr[16:]))
	if start < 24 || size > int64(mods.Size) || start > size {
		return GRUB{}, false
	}
	var g GRUB
	base := int64(mods.Offset)
	for off, n := start, 0; off+8 <= size && n < maxGrubObjects; n++ {
		var oh [8]byte
		if _, err := im.r.ReadAt(oh[:], base+off); err != nil {
			break
		}
		typ := binary.LittleEndian.Uint32(oh[:])
		osize := int64(binary.LittleEndian.Uint32(oh[4:]))
		if osize < 8 || off+osize > size {
			break
		}
		if (typ == grubObjConfig || typ == grubObjPrefix) && osize <= 8+4096 {
			b := make([]byte, osize-8)
			if _, err := im.r.ReadAt(b, base+off+8); err == nil {
				if i := bytes.IndexByte(b, 0); i >= 0 {
					b = b[:i]
				}
				if typ == grubObjConfig {
					g.Config = strings.TrimSpace(string(b))
				} else {
					g.Prefix = string(b)
				}
			}
		}
		off += osize
	}
	return g, true
}
