package distro

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/fleetboot/fleetboot/internal/urls"
)

// Errors Recipe returns (wrapped, with the reason); test with errors.Is.
var (
	// ErrBadParams: Params are unusable (no or malformed ISOURL, arguments iPXE would cut).
	ErrBadParams = errors.New("bad recipe parameters")
	// ErrNotNetbootable: this image cannot install over HTTP by design; the message says
	// what to upload instead.
	ErrNotNetbootable = errors.New("image cannot boot over the network")
	// ErrUnattendedUnsupported: an unattended URL was given for an image whose installer
	// takes none on its command line.
	ErrUnattendedUnsupported = errors.New("unattended install not supported for this image")
	// ErrMissingFile: a file the family's recipe needs is not on the ISO.
	ErrMissingFile = errors.New("file missing on the ISO")
	// ErrCmdlineTooLong: the command line exceeds what the kernel accepts.
	ErrCmdlineTooLong = errors.New("kernel command line too long")
)

// ImageISO is the Initrd.Path that stands for the whole image, served at <ISOURL>/image.iso
// rather than below /files/.
const ImageISO = "image.iso"

// maxCmdline is the x86 and arm64 kernels' COMMAND_LINE_SIZE (2048 bytes, NUL included).
const maxCmdline = 2047

// Firmware says under which firmware iPXE can boot an entry.
type Firmware string

// Firmware values.
const (
	FirmwareBoth Firmware = "both"
	FirmwareBIOS Firmware = "bios"
	FirmwareUEFI Firmware = "uefi"
)

// Params is what a recipe needs besides the ISO: where the ISO is served and the profile.
type Params struct {
	// ISOURL is the ISO's base URL, e.g. http://10.77.0.1:8080/isos/<id>. Its files are at
	// <ISOURL>/files/<path inside ISO> and the image at <ISOURL>/image.iso. Use the server's
	// IP address: some initramfs fetchers (live-boot's busybox wget) cannot resolve names.
	ISOURL string
	// ExtraArgs are appended to every kernel command line (after the recipe's own).
	ExtraArgs string
	// UnattendedURL is the installer's answer file: kickstart (inst.ks), preseed (url=),
	// AutoYaST profile (autoyast=), Alpine overlay (apkovl=), archiso script (script=). For
	// Ubuntu Server it is the NoCloud seed directory (ds=nocloud-net;s=<URL>/): cloud-init
	// fetches <URL>/user-data and <URL>/meta-data, so it must not carry a query. Empty for an
	// interactive install.
	UnattendedURL string
	// Console, e.g. "ttyS0,115200n8", adds console=tty0 console=<Console> so the installer
	// shows on the serial port and the screen.
	Console string
	// AutoInstall says the profile carries a Proxmox VE answer file: only the ISO's
	// automated-installation entries are offered, and the ISO must have been prepared for them.
	AutoInstall bool
	// ISOSize is the image's size in bytes, used for the RAM estimate of recipes that load
	// the whole image; 0 when unknown.
	ISOSize int64
}

// Initrd is one initrd of an entry, in load order.
type Initrd struct {
	// Path is the file inside the ISO ("/"-rooted), or ImageISO for the whole image.
	Path string `json:"path"`
	// As, when set, is the path the file must have inside the initramfs. The script renderer
	// passes it as the argument of iPXE's initrd command (`initrd <url> /proxmox.iso`), and
	// iPXE then wraps the file in a cpio header under that name ("magic initrd", documented
	// on ipxe.org/cmd/initrd).
	As string `json:"as,omitempty"`
}

// Entry is one way to boot an ISO: the files to fetch and the command line, or sanboot.
type Entry struct {
	// ID is stable for an ISO and unique among its entries of one architecture ("install",
	// "install-hwe" …); profiles store it. An ISO carrying kernels for several architectures
	// has one entry per architecture under the same ID (see ForMachine).
	ID    string `json:"id"`
	Label string `json:"label"`
	// Kernel is the file inside the ISO ("/"-rooted); empty for Sanboot.
	Kernel string `json:"kernel,omitempty"`
	// Initrds in load order. The renderer names each on the command line (initrd=<name>)
	// for old iPXE EFI builds; the recipe does not.
	Initrds []Initrd `json:"initrds,omitempty"`
	Cmdline string   `json:"cmdline,omitempty"`
	// Arch is iPXE's ${buildarch} the entry runs on; "" when unknown.
	Arch     string   `json:"arch,omitempty"`
	Firmware Firmware `json:"firmware"`
	// Sanboot boots the whole image with iPXE's sanboot over HTTP; Kernel is empty.
	Sanboot bool `json:"sanboot,omitempty"`
	// Unattended is true when Params.UnattendedURL went into the command line.
	Unattended bool `json:"unattended,omitempty"`
	// RAMBytes estimates what the machine holds in RAM before the installer runs (kernel,
	// initrds and what the initramfs downloads); 0 when unknown.
	RAMBytes int64 `json:"ram_bytes,omitempty"`
	// RAMNote says what is loaded into RAM when that dominates, e.g. the whole ISO.
	RAMNote string `json:"ram_note,omitempty"`
	// Notes are caveats an operator should see next to the entry.
	Notes []string `json:"notes,omitempty"`
	// ISOEntry names the ISO's own boot entry whose arguments the command line starts from
	// ("/boot/grub/grub.cfg: Install"); empty when the ISO has none for this kernel.
	ISOEntry string `json:"iso_entry,omitempty"`
	// ISOArgs says, for each argument of that entry, whether it was kept, rewritten or
	// dropped, and why (see args.go).
	ISOArgs []ArgDecision `json:"iso_args,omitempty"`

	// base, when set by a recipe, is the ISO entry to start from instead of the first one
	// with the same kernel.
	base *ConfigEntry
}

// FileURL is the URL a machine fetches an ISO path (or ImageISO) from, each path element
// escaped.
func FileURL(isoURL, p string) string {
	if p == ImageISO {
		return urls.ISOImageURL(isoURL)
	}
	return urls.ISOFile(isoURL, cleanPath(p))
}

// Recipe returns the boot entries for an ISO Detect recognised as r: kernel, initrds and
// command line per entry, pointing back at the ISO as served at p.ISOURL. It is pure: the
// only reads are fsys lookups to check the files it names exist. Unknown ISOs get the
// entries of their own boot configs (Result.Entries) and, last, a sanboot of the whole
// image.
func Recipe(r Result, fsys ISOFS, p Params) ([]Entry, error) {
	p, err := p.normalized()
	if err != nil {
		return nil, err
	}
	b := &builder{v: newView(fsys), r: r, p: p}
	var entries []Entry
	switch {
	case r.Family == FamilyUbuntu && (r.Variant == VariantNetboot || r.Variant == VariantMedia):
		entries, err = b.debianInstaller()
	case r.Family == FamilyUbuntu:
		entries, err = b.casper()
	case r.Family == FamilyDebian:
		entries, err = b.debianInstaller()
	case r.Family == FamilyDebianLive:
		entries, err = b.debianLive()
	case r.Family == FamilyFedoraLive, r.Variant == VariantLive && isAnaconda(r.Family):
		entries, err = b.dracutLive()
	case isAnaconda(r.Family):
		entries, err = b.anaconda()
	case r.Family == FamilyArch:
		entries, err = b.arch()
	case r.Family == FamilyAlpine:
		entries, err = b.alpine()
	case r.Family == FamilyOpenSUSE, r.Family == FamilySLES:
		entries, err = b.suse()
	case r.Family == FamilyProxmox:
		entries, err = b.proxmox()
	case r.Family == FamilyMemtest:
		entries, err = b.memtest()
	case r.Family == FamilyESXi:
		err = fmt.Errorf("esxi: %w: its installer reads boot.cfg with paths relative to a prefix, which must be rewritten and served next to the ISO (not implemented; see ESXi's PXE documentation)", ErrNotNetbootable)
	default:
		entries, err = b.unknown()
	}
	if err != nil {
		return nil, err
	}
	return b.finish(entries)
}

func isAnaconda(f Family) bool {
	switch f {
	case FamilyFedora, FamilyRHEL, FamilyRocky, FamilyAlma, FamilyCentOSStream:
		return true
	}
	return false
}

// normalized validates p and trims the ISO URL's trailing slash.
func (p Params) normalized() (Params, error) {
	p.ISOURL = strings.TrimRight(strings.TrimSpace(p.ISOURL), "/")
	if err := checkURL(p.ISOURL, true); err != nil {
		return p, fmt.Errorf("iso url %q: %w", p.ISOURL, err)
	}
	if p.UnattendedURL != "" {
		if err := checkURL(p.UnattendedURL, false); err != nil {
			return p, fmt.Errorf("unattended url %q: %w", p.UnattendedURL, err)
		}
	}
	if err := checkArgs(p.ExtraArgs); err != nil {
		return p, fmt.Errorf("extra args: %w", err)
	}
	if p.Console != "" && (strings.ContainsAny(p.Console, " \t=") || checkArgs(p.Console) != nil) {
		return p, fmt.Errorf("console %q: want a device like ttyS0,115200n8: %w", p.Console, ErrBadParams)
	}
	return p, nil
}

// checkURL accepts absolute URLs without whitespace or control characters: every URL ends up
// as one word of a kernel command line and of an iPXE script line.
func checkURL(s string, httpOnly bool) error {
	if s == "" {
		return fmt.Errorf("empty: %w", ErrBadParams)
	}
	for _, c := range s {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("contains whitespace or a control character: %w", ErrBadParams)
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return fmt.Errorf("not an absolute URL: %w", ErrBadParams)
	}
	if httpOnly && u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q, want http or https: %w", u.Scheme, ErrBadParams)
	}
	if httpOnly && (u.RawQuery != "" || u.Fragment != "") {
		return fmt.Errorf("has a query or fragment: %w", ErrBadParams)
	}
	return nil
}

// checkArgs rejects arguments iPXE would not pass through to the kernel. iPXE's command
// parser (src/core/exec.c) splits a script line on whitespace; a word that starts with '#'
// starts a comment, and the words "||", "&&" and ";" end the command, so whatever follows
// them never reaches the kernel. A ';' inside a word (ds=nocloud-net;s=…) is kept: unlike
// GRUB, iPXE needs no escaping there. ${…} is expanded by iPXE on purpose, so a profile can
// pass ${netX/mac} and the like.
func checkArgs(s string) error {
	for _, c := range s {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Errorf("contains a control character: %w", ErrBadParams)
		}
	}
	for _, w := range strings.Fields(s) {
		if strings.HasPrefix(w, "#") || w == "||" || w == "&&" || w == ";" {
			return fmt.Errorf("word %q would end the iPXE kernel line: %w", w, ErrBadParams)
		}
	}
	return nil
}

type builder struct {
	v *view
	r Result
	p Params
}

func (b *builder) url(p string) string { return FileURL(b.p.ISOURL, p) }

// need returns the stored path of a file the recipe cannot do without.
func (b *builder) need(p string) (string, error) {
	if actual, ok := b.v.file(p); ok {
		return actual, nil
	}
	return "", fmt.Errorf("%s: %s: %w", b.r.Family, p, ErrMissingFile)
}

func (b *builder) noUnattended(why string) error {
	if b.p.UnattendedURL == "" {
		return nil
	}
	return fmt.Errorf("%s: %w: %s", b.r.Family, ErrUnattendedUnsupported, why)
}

func (b *builder) title(action string) string {
	name := b.r.Name
	if b.r.Version != "" && !strings.Contains(name, b.r.Version) {
		name += " " + b.r.Version
	}
	return cleanLabel(action + " " + name)
}

func initrds(paths ...string) []Initrd {
	out := make([]Initrd, 0, len(paths))
	for _, p := range paths {
		out = append(out, Initrd{Path: p})
	}
	return out
}

// finish appends ExtraArgs and the console to every command line, fills defaults, checks the
// kernels exist and the command lines fit.
func (b *builder) finish(entries []Entry) ([]Entry, error) {
	ids := map[string]bool{}
	out := make([]Entry, 0, len(entries))
	for _, e := range entries {
		if e.Arch == "" {
			e.Arch = b.r.Arch
		}
		if e.Firmware == "" {
			e.Firmware = FirmwareBoth
		}
		if e.Arch == "arm64" && e.Firmware == FirmwareBoth {
			// arm64 machines only have UEFI (and iPXE has no arm64 BIOS build).
			e.Firmware = FirmwareUEFI
		}
		if !e.Sanboot {
			if _, ok := b.v.file(e.Kernel); !ok {
				continue
			}
			base := e.base
			if base == nil {
				if c, ok := b.baseEntry(e); ok {
					base = &c
				}
			}
			isoArgs := ""
			if base != nil {
				isoArgs = base.Args
				e.ISOEntry = base.Source + ": " + base.Label
			}
			e.Cmdline, e.ISOArgs = b.mergeArgs(isoArgs, e.Cmdline, joinArgs(b.consoleArgs(), b.p.ExtraArgs))
			room := maxCmdline
			for _, i := range e.Initrds {
				room -= len(" initrd=") + len(path.Base(i.Path)) + 2 // the renderer's initrd=<name>
			}
			if len(e.Cmdline) > room {
				return nil, fmt.Errorf("%s entry %s: %d bytes, at most %d: %w", b.r.Family, e.ID, len(e.Cmdline), room, ErrCmdlineTooLong)
			}
			for _, i := range e.Initrds {
				if i.Path != ImageISO {
					e.RAMBytes += b.v.size(i.Path)
				}
			}
			e.RAMBytes += b.v.size(e.Kernel)
		}
		e.base = nil
		// IDs are unique per architecture: an ISO with x86_64 and arm64 kernels offers the same
		// ID once for each, and ForMachine picks by the machine's architecture.
		for n := 2; ids[e.ID+"\x00"+e.Arch]; n++ {
			e.ID = fmt.Sprintf("%s-%d", strings.TrimRight(e.ID, "-0123456789"), n)
		}
		ids[e.ID+"\x00"+e.Arch] = true
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no entry has its kernel on the ISO: %w", b.r.Family, ErrMissingFile)
	}
	return out, nil
}

func (b *builder) consoleArgs() string {
	if b.p.Console == "" {
		return ""
	}
	if b.r.Family == FamilyMemtest {
		// Memtest86+ knows console=ttyS<n>,<baud> only.
		return "console=" + b.p.Console
	}
	return "console=tty0 console=" + b.p.Console
}

func joinArgs(parts ...string) string {
	var words []string
	for _, p := range parts {
		words = append(words, strings.Fields(p)...)
	}
	return strings.Join(words, " ")
}

// --- Ubuntu live (casper) ---------------------------------------------------------------
//
// Source: Ubuntu Server docs "How to netboot the server installer on amd64" and Ubuntu's
// netboot tarballs: casper fetches the whole ISO named by url= (it must end in .iso) into RAM
// and loop-mounts it; ip=dhcp configures the network in the initramfs. cloud-init reads a
// bare url= on the command line as its own cloud-config URL and would download the whole ISO
// a second time: cloud-config-url=/dev/null stops that (seen in many working setups; the
// symptom is a second full-ISO GET with a Cloud-Init user agent). Autoinstall: the
// `autoinstall` keyword skips subiquity's confirmation and ds=nocloud-net;s=<dir>/ names the
// NoCloud seed (cloud-init appends user-data/meta-data to it, so the trailing slash
// matters). In GRUB the ';' must be escaped (ds=nocloud-net\;s=…); on an iPXE kernel line it
// must not be.

func casperKernel(v *view) (string, bool) {
	for _, k := range []string{"/casper/vmlinuz", "/casper/vmlinuz.efi"} {
		if p, ok := v.file(k); ok {
			return p, true
		}
	}
	return "", false
}

func casperInitrd(v *view, prefix string) (string, bool) {
	for _, n := range []string{"initrd", "initrd.lz", "initrd.gz", "initrd.img"} {
		if p, ok := v.file("/casper/" + prefix + n); ok {
			return p, true
		}
	}
	return "", false
}

func (b *builder) casper() ([]Entry, error) {
	kernel, ok := casperKernel(b.v)
	if !ok {
		return nil, fmt.Errorf("ubuntu: /casper/vmlinuz: %w", ErrMissingFile)
	}
	initrd, ok := casperInitrd(b.v, "")
	if !ok {
		return nil, fmt.Errorf("ubuntu: /casper/initrd: %w", ErrMissingFile)
	}
	args := []string{"ip=dhcp", "url=" + b.p.ISOURL + "/" + ImageISO, "cloud-config-url=/dev/null", "root=/dev/ram0"}
	unattended := false
	if b.p.UnattendedURL != "" {
		if b.r.Variant != VariantLiveServer || !strings.Contains(strings.ToLower(b.r.Name), "ubuntu") {
			// Ubuntu Server's subiquity reads autoinstall from a NoCloud seed; whether the
			// desktop images' live session does the same from the command line is not
			// verified, and casper derivatives (Mint …) have no autoinstall at all.
			return nil, b.noUnattended("autoinstall from a NoCloud URL is supported for Ubuntu Server (live-server) images only")
		}
		seed := b.p.UnattendedURL
		if !strings.HasSuffix(seed, "/") {
			seed += "/"
		}
		args = append(args, "autoinstall", "ds=nocloud-net;s="+seed)
		unattended = true
	}
	ram := "casper downloads the whole ISO into RAM: give the machine the ISO's size plus about 1.5 GiB"
	mk := func(id, label, k, i string) Entry {
		e := Entry{ID: id, Label: label, Kernel: k, Initrds: initrds(i), Cmdline: strings.Join(args, " "),
			Unattended: unattended, RAMNote: ram}
		e.RAMBytes = b.p.ISOSize
		return e
	}
	action := "Install"
	if b.r.Variant == VariantDesktop {
		action = "Try or install"
	}
	entries := []Entry{mk("install", b.title(action), kernel, initrd)}
	if hk, ok := b.v.file("/casper/hwe-vmlinuz"); ok {
		if hi, ok := casperInitrd(b.v, "hwe-"); ok {
			entries = append(entries, mk("install-hwe", b.title(action)+" (HWE kernel)", hk, hi))
		}
	}
	return entries, nil
}

// --- debian-installer -------------------------------------------------------------------
//
// Source: debian-installer. The kernel and initrd of mini.iso (/linux, /initrd.gz) are the
// netboot ones: they bring up the network and fetch the installer's components and every
// package from a Debian mirror, so the machine needs that mirror (or the internet). The
// initrd on netinst/CD/DVD images is built for local media (cdrom-detect looks for the image
// on a drive) and cannot fetch the ISO over HTTP. Unattended: auto=true priority=critical
// url=<preseed> (Debian installation guide, appendix B.2).

func (b *builder) debianInstaller() ([]Entry, error) {
	if b.r.Variant == VariantMedia {
		// Some d-i images (Ubuntu 18.04 server) carry the netboot kernel and initrd too.
		// One entry per architecture directory (<installer>/<debian arch>/).
		var entries []Entry
		if dir, ok := b.v.dir("/install/netboot"); ok {
			for _, inst := range b.v.list(dir) {
				for _, arch := range b.v.list(path.Join(dir, inst)) {
					k, ok1 := b.v.file(path.Join(dir, inst, arch, "linux"))
					i, ok2 := b.v.file(path.Join(dir, inst, arch, "initrd.gz"))
					if ok1 && ok2 {
						e := b.netbootInstaller(k, i)
						e.Arch = debianArch(arch)
						entries = append(entries, e)
					}
				}
			}
		}
		if len(entries) > 0 {
			return entries, nil
		}
	}
	if b.r.Variant != VariantNetboot {
		return nil, fmt.Errorf("%s %s: %w: the installer initrd on netinst/CD/DVD images looks for the image on a local drive; upload the distribution's netboot mini.iso instead (debian: dists/<release>/main/installer-<arch>/current/images/netboot/mini.iso)", b.r.Family, b.r.Variant, ErrNotNetbootable)
	}
	kernel, err := b.need("/linux")
	if err != nil {
		return nil, err
	}
	initrd, err := b.need("/initrd.gz")
	if err != nil {
		return nil, err
	}
	return []Entry{b.netbootInstaller(kernel, initrd)}, nil
}

func (b *builder) netbootInstaller(kernel, initrd string) Entry {
	e := Entry{ID: "install", Label: b.title("Install"), Kernel: kernel, Initrds: initrds(initrd),
		Notes: []string{"the installer fetches its components and all packages from the mirror chosen during the install: the machine needs that mirror or the internet"}}
	if b.p.UnattendedURL != "" {
		e.Cmdline = "auto=true priority=critical url=" + b.p.UnattendedURL
		e.Unattended = true
	}
	return e
}

// --- Debian live (live-boot) ------------------------------------------------------------
//
// Source: live-boot(7): fetch=<URL> downloads the squashfs into RAM and boots it; networking
// is configured by DHCP when no ip= is given; busybox wget in the initramfs cannot resolve
// host names, so the URL must use an IP address.

// liveBootFiles finds the kernel and initrd of a live-build image: live/vmlinuz and
// live/initrd.img, or the versioned live/vmlinuz-<ver> with its live/initrd.img-<ver>.
func liveBootFiles(v *view) (kernel, initrd string, ok bool) {
	if k, ok := v.file("/live/vmlinuz"); ok {
		if i, ok := v.file("/live/initrd.img"); ok {
			return k, i, true
		}
	}
	for _, k := range v.glob("/live", "vmlinuz-*") {
		ver := strings.TrimPrefix(strings.ToLower(path.Base(k)), "vmlinuz-")
		if i, ok := v.file(path.Join(path.Dir(k), "initrd.img-"+ver)); ok {
			return k, i, true
		}
	}
	return "", "", false
}

func (b *builder) debianLive() ([]Entry, error) {
	if err := b.noUnattended("live images have no installer answer file on the command line"); err != nil {
		return nil, err
	}
	kernel, initrd, ok := liveBootFiles(b.v)
	if !ok {
		return nil, fmt.Errorf("debian-live: /live/vmlinuz: %w", ErrMissingFile)
	}
	sq, err := b.need("/live/filesystem.squashfs")
	if err != nil {
		return nil, err
	}
	return []Entry{{
		ID: "live", Label: b.title("Live"), Kernel: kernel, Initrds: initrds(initrd),
		Cmdline:  "boot=live components fetch=" + b.url(sq),
		RAMBytes: b.v.size(sq), RAMNote: "live-boot copies the squashfs into RAM",
	}}, nil
}

// --- Anaconda (Fedora, RHEL, Rocky, Alma, CentOS Stream) ---------------------------------
//
// Source: Anaconda boot options (inst.repo, inst.stage2, inst.ks) and the RHEL installation
// guide's PXE examples. The kernel and initrd are images/pxeboot/{vmlinuz,initrd.img}, named
// by .treeinfo's [images-<arch>]. A DVD tree is a repository: inst.repo=<tree>/ installs
// from the ISO itself. boot.iso/netinstall carries only the installer (stage2):
// inst.stage2=<tree>/ loads it, and the packages come from the distribution's mirrors unless
// the kickstart names a repository. dracut brings up the network for the HTTP URL; ip=dhcp
// makes it explicit.

func (b *builder) anaconda() ([]Entry, error) {
	ti := Treeinfo{}
	if data := b.v.read("/.treeinfo"); data != nil {
		ti = ParseTreeinfo(data)
	}
	// One entry per architecture the tree has boot images for ([images-<arch>]); a tree
	// normally carries one, the loop keeps a combined tree bootable on both.
	type pair struct{ kernel, initrd, arch string }
	var pairs []pair
	arch := firstNonEmpty(ti.Get("general", "arch"), ti.Get("tree", "arch"))
	seen := map[string]bool{}
	for _, a := range []string{arch, "x86_64", "aarch64"} {
		sec := "images-" + a
		k, i := ti.Get(sec, "kernel"), ti.Get(sec, "initrd")
		if a == "" || k == "" || i == "" || seen[normArch(a)] {
			continue
		}
		kp, ok1 := b.v.file(k)
		ip, ok2 := b.v.file(i)
		if ok1 && ok2 {
			seen[normArch(a)] = true
			pairs = append(pairs, pair{kp, ip, normArch(a)})
		}
	}
	if len(pairs) == 0 {
		kernel, err := b.need("/images/pxeboot/vmlinuz")
		if err != nil {
			return nil, err
		}
		initrd, err := b.need("/images/pxeboot/initrd.img")
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, pair{kernel, initrd, ""})
	}
	args := []string{"ip=dhcp"}
	var notes []string
	if anacondaRepo(b.v, ti) != "" {
		args = append(args, "inst.repo="+urls.ISOFiles(b.p.ISOURL))
	} else {
		args = append(args, "inst.stage2="+urls.ISOFiles(b.p.ISOURL))
		notes = append(notes, "boot/netinstall image: packages come from the distribution's mirrors (or a repository the kickstart names)")
	}
	unattended := false
	if b.p.UnattendedURL != "" {
		args = append(args, "inst.ks="+b.p.UnattendedURL)
		unattended = true
	}
	var entries []Entry
	for _, p := range pairs {
		entries = append(entries, Entry{ID: "install", Label: b.title("Install"), Kernel: p.kernel, Initrds: initrds(p.initrd),
			Arch: p.arch, Notes: notes, Unattended: unattended, Cmdline: strings.Join(args, " ")})
	}
	return entries, nil
}

// --- dracut live (Fedora Live and other LiveOS images) ----------------------------------
//
// Source: dracut.cmdline(7), dmsquash-live/livenet: root=live:<URL> downloads the image into
// RAM (a squashfs, or an .iso it loop-mounts) once the network is up; rd.neednet=1 ip=dhcp
// bring the network up in the initramfs. The kernel and initrd are found where the image
// keeps them: images/pxeboot/ (lorax-built), boot/<arch>/loader/ (kiwi-built, Fedora 42+),
// isolinux/, or the entry of the image's own config that boots root=live:.

func (b *builder) dracutLive() ([]Entry, error) {
	if err := b.noUnattended("live images do not run a kickstart from the command line"); err != nil {
		return nil, err
	}
	sq, err := b.need("/LiveOS/squashfs.img")
	if err != nil {
		return nil, err
	}
	kernel, initrd := "", ""
	for _, c := range [][2]string{
		{"/images/pxeboot/vmlinuz", "/images/pxeboot/initrd.img"},
		{"/boot/x86_64/loader/linux", "/boot/x86_64/loader/initrd"},
		{"/boot/aarch64/loader/linux", "/boot/aarch64/loader/initrd"},
		{"/isolinux/vmlinuz", "/isolinux/initrd.img"},
	} {
		k, ok1 := b.v.file(c[0])
		i, ok2 := b.v.file(c[1])
		if ok1 && ok2 {
			kernel, initrd = k, i
			break
		}
	}
	if kernel == "" {
		for _, e := range b.r.Entries {
			if strings.Contains(e.Args, "root=live:") && len(e.Initrds) > 0 {
				kernel, initrd = e.Kernel, e.Initrds[0]
				break
			}
		}
	}
	if kernel == "" {
		return nil, fmt.Errorf("%s: no kernel next to LiveOS/squashfs.img: %w", b.r.Family, ErrMissingFile)
	}
	return []Entry{{
		ID: "live", Label: b.title("Start"), Kernel: kernel, Initrds: initrds(initrd),
		Cmdline:  "root=live:" + b.url(sq) + " rd.live.image rd.neednet=1 ip=dhcp",
		RAMBytes: b.v.size(sq), RAMNote: "dracut downloads LiveOS/squashfs.img into RAM",
	}}, nil
}

// --- Arch Linux (archiso) ---------------------------------------------------------------
//
// Source: archiso's releng profile (syslinux/archiso_pxe-linux.cfg, HTTP entry) and the
// archiso_pxe_http hook: archisobasedir=<installdir> archiso_http_srv=<URL>/ fetches
// <URL><installdir>/<arch>/airootfs.sfs into RAM (the trailing slash matters); the PXE hooks
// run only when ip= is set, which pxelinux's SYSAPPEND 3 does there and ip=dhcp does here.
// Verification of the download: cms_verify=y when the image carries airootfs.sfs.cms.sig
// (current releases), else checksum=y when it carries airootfs.sha512. Unattended: the
// releng image runs the script named by script=<URL> (.automated_script.sh).

type archiso struct{ dir, arch, kernel, initrd, rootfs string }

func findArchiso(v *view) (archiso, bool) {
	for _, d := range v.list("/") {
		dir, ok := v.dir("/" + d)
		if !ok {
			continue
		}
		boot, ok := v.dir(path.Join(dir, "boot"))
		if !ok {
			continue
		}
		for _, a := range v.list(boot) {
			k, ok1 := v.file(path.Join(boot, a, "vmlinuz-linux"))
			i, ok2 := v.file(path.Join(boot, a, "initramfs-linux.img"))
			if !ok1 || !ok2 {
				continue
			}
			for _, fs := range []string{"airootfs.sfs", "airootfs.erofs"} {
				if r, ok := v.file(path.Join(dir, a, fs)); ok {
					return archiso{dir: dir, arch: a, kernel: k, initrd: i, rootfs: r}, true
				}
			}
		}
	}
	return archiso{}, false
}

func (b *builder) arch() ([]Entry, error) {
	a, ok := findArchiso(b.v)
	if !ok {
		return nil, fmt.Errorf("arch: <installdir>/boot/<arch>/vmlinuz-linux with airootfs: %w", ErrMissingFile)
	}
	var ird []string
	// Microcode first, uncompressed, as the image's own loader entries load it.
	for _, u := range []string{"intel-ucode.img", "amd-ucode.img"} {
		if p, ok := b.v.file(path.Join(a.dir, "boot", u)); ok {
			ird = append(ird, p)
		}
	}
	ird = append(ird, a.initrd)
	args := []string{"archisobasedir=" + strings.TrimPrefix(a.dir, "/"), "archiso_http_srv=" + urls.ISOFiles(b.p.ISOURL), "ip=dhcp"}
	if _, ok := b.v.file(a.rootfs + ".cms.sig"); ok {
		args = append(args, "cms_verify=y")
	} else if _, ok := b.v.file(path.Join(path.Dir(a.rootfs), "airootfs.sha512")); ok {
		args = append(args, "checksum=y")
	}
	e := Entry{ID: "live", Label: b.title("Boot"), Kernel: a.kernel, Initrds: initrds(ird...),
		RAMBytes: b.v.size(a.rootfs), RAMNote: "archiso copies airootfs into RAM"}
	if b.p.UnattendedURL != "" {
		args = append(args, "script="+b.p.UnattendedURL)
		e.Unattended = true
	}
	e.Cmdline = strings.Join(args, " ")
	return []Entry{e}, nil
}

// --- Alpine -----------------------------------------------------------------------------
//
// Source: Alpine's netboot setup (as netboot.xyz boots it): ip=dhcp alpine_repo=<repo>
// modloop=<URL> modules=loop,squashfs, with the ISO's own apks/ as the repository (its
// layout is <repo>/<arch>/APKINDEX.tar.gz) and boot/modloop-<flavor> as the module loop.
// Unattended: apkovl=<URL of an overlay .apkovl.tar.gz>. Caveat, from aports'
// scripts/mkimg.base.sh: the ISO's initramfs is built with the features "ata base bootchart
// cdrom dhcp ext4 mmc nvme raid scsi squashfs usb virtio", so it carries virtio_net but not
// the other Ethernet drivers ("network" feature); real NICs need Alpine's netboot initramfs.

// alpineFlavor returns the kernel flavor the ISO carries (lts, virt, edge …), preferring lts.
func alpineFlavor(v *view) (string, bool) {
	var flavors []string
	for _, k := range v.glob("/boot", "vmlinuz-*") {
		f := strings.TrimPrefix(path.Base(k), path.Base(k)[:len("vmlinuz-")])
		if _, ok := v.file("/boot/initramfs-" + f); ok {
			flavors = append(flavors, f)
		}
	}
	sort.SliceStable(flavors, func(i, j int) bool { return flavors[i] == "lts" && flavors[j] != "lts" })
	if len(flavors) == 0 {
		return "", false
	}
	return flavors[0], true
}

func (b *builder) alpine() ([]Entry, error) {
	flavor, ok := alpineFlavor(b.v)
	if !ok {
		return nil, fmt.Errorf("alpine: /boot/vmlinuz-<flavor>: %w", ErrMissingFile)
	}
	kernel, _ := b.v.file("/boot/vmlinuz-" + flavor)
	initrd, _ := b.v.file("/boot/initramfs-" + flavor)
	modloop, err := b.need("/boot/modloop-" + flavor)
	if err != nil {
		return nil, err
	}
	apks, ok := b.v.dir("/apks")
	if !ok {
		return nil, fmt.Errorf("alpine: /apks: %w", ErrMissingFile)
	}
	args := []string{"ip=dhcp", "modules=loop,squashfs", "alpine_repo=" + b.url(apks), "modloop=" + b.url(modloop)}
	e := Entry{ID: "live", Label: b.title("Boot"), Kernel: kernel, Initrds: initrds(initrd),
		RAMBytes: b.v.size(modloop),
		Notes:    []string{"the ISO's initramfs has virtio network drivers only; physical NICs need Alpine's netboot initramfs"}}
	if b.p.UnattendedURL != "" {
		args = append(args, "apkovl="+b.p.UnattendedURL)
		e.Unattended = true
	}
	e.Cmdline = strings.Join(args, " ")
	return []Entry{e}, nil
}

// --- openSUSE / SLES (linuxrc) ----------------------------------------------------------
//
// Source: linuxrc's documented options (install=, netsetup=dhcp, autoyast=) and
// netboot.xyz's openSUSE menu: boot/<arch>/loader/{linux,initrd}, install=<tree>/ where the
// tree is the DVD (linuxrc loads the installation system from it and YaST installs from its
// repository). SLES "Online" media need registration or a repository besides the ISO.

func (b *builder) suse() ([]Entry, error) {
	args := []string{"install=" + urls.ISOFiles(b.p.ISOURL), "netsetup=dhcp"}
	unattended := false
	if b.p.UnattendedURL != "" {
		args = append(args, "autoyast="+b.p.UnattendedURL)
		unattended = true
	}
	// One entry per architecture directory (a DVD normally has one).
	var entries []Entry
	for _, a := range []string{"x86_64", "aarch64", "ppc64le", "s390x", "i386"} {
		k, ok1 := b.v.file("/boot/" + a + "/loader/linux")
		i, ok2 := b.v.file("/boot/" + a + "/loader/initrd")
		if ok1 && ok2 {
			entries = append(entries, Entry{ID: "install", Label: b.title("Install"), Kernel: k, Initrds: initrds(i),
				Arch: normArch(a), Unattended: unattended, Cmdline: strings.Join(args, " ")})
		}
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: /boot/<arch>/loader/linux: %w", b.r.Family, ErrMissingFile)
	}
	return entries, nil
}

// --- Proxmox VE -------------------------------------------------------------------------
//
// Source: Proxmox's installer looks for the ISO as /proxmox.iso inside its initramfs when it
// was not booted from a drive (the community pve-iso-2-pxe method appends the ISO to the
// initrd as a cpio member for that reason). Here iPXE builds that cpio member itself: the
// second initrd is the whole image with As "/proxmox.iso". The command lines are the ISO's
// own GRUB entries for /boot/linux26 (Graphical, Terminal UI, Debug …), whose stock form is
// "ro ramdisk_size=16777216 rw quiet splash=silent". The automated-installer entry
// (proxmox-start-auto-installer) is offered only when the image was prepared with
// proxmox-auto-install-assistant (auto-installer-mode.toml at its root, which says where the
// answer file comes from); a stock image takes no answer URL on its command line.

func (b *builder) proxmox() ([]Entry, error) {
	kernel, err := b.need("/boot/linux26")
	if err != nil {
		return nil, err
	}
	initrd, err := b.need("/boot/initrd.img")
	if err != nil {
		return nil, err
	}
	_, prepared := b.v.file("/auto-installer-mode.toml")
	if b.p.UnattendedURL != "" {
		return nil, b.noUnattended("prepare the ISO with proxmox-auto-install-assistant prepare-iso --fetch-from http (the answer URL then comes from the image, DHCP option 250 or DNS) and boot its automated entry")
	}
	if b.p.AutoInstall && !prepared {
		return nil, fmt.Errorf("%s: %w: the ISO was not prepared for automated installation; run proxmox-auto-install-assistant prepare-iso --fetch-from http on it (with --url http://SERVER:8080/proxmox/answer unless fleetboot's full-mode DHCP hands out the URL) and register the prepared image",
			b.r.Family, ErrUnattendedUnsupported)
	}
	ird := []Initrd{{Path: initrd}, {Path: ImageISO, As: "/proxmox.iso"}}
	ram := "the whole ISO is loaded as an initrd: give the machine the ISO's size plus about 2 GiB"
	var entries []Entry
	seen := map[string]bool{}
	for i := range b.r.Entries {
		c := &b.r.Entries[i]
		if c.Kernel != kernel || seen[c.Args] {
			continue
		}
		auto := strings.Contains(c.Args, "proxmox-start-auto-installer")
		if auto && !prepared || b.p.AutoInstall && !auto {
			// A machine with an answer file boots only the automated entry: the installer
			// reads no answer URL from the command line, so nothing else would use it.
			continue
		}
		seen[c.Args] = true
		id := "install"
		switch l := strings.ToLower(c.Label); {
		case auto:
			id = "install-auto"
		case strings.Contains(l, "terminal"):
			id = "install-tui"
		case strings.Contains(l, "serial"):
			id = "install-serial"
		case strings.Contains(l, "debug"):
			id = "install-debug"
		case strings.Contains(l, "rescue"):
			id = "rescue"
		}
		entries = append(entries, Entry{ID: id, Label: c.Label, Kernel: kernel, Initrds: ird,
			RAMBytes: b.p.ISOSize, RAMNote: ram, base: c})
	}
	if len(entries) == 0 && b.p.AutoInstall {
		return nil, fmt.Errorf("%s: %w: the prepared ISO has no boot entry with proxmox-start-auto-installer", b.r.Family, ErrMissingFile)
	}
	if len(entries) == 0 {
		entries = append(entries, Entry{ID: "install", Label: b.title("Install"), Kernel: kernel, Initrds: ird,
			Cmdline: "ro ramdisk_size=16777216 rw quiet splash=silent", RAMBytes: b.p.ISOSize, RAMNote: ram})
	}
	return entries, nil
}

// --- Memtest86+ -------------------------------------------------------------------------
//
// Source: memtest86plus README and build64/x86/Makefile: since v7 one binary (mt86plus) is
// both the EFI application (the ISO's /EFI/BOOT/bootx64.efi) and a Linux-boot-protocol
// image a boot loader loads "as if it were a Linux kernel with no initial RAM disk" (16-bit
// protocol under BIOS, as iPXE's bzImage loader uses). v6 images ship separate
// memtest.bin/memtest.efi and their EFI binary lacks the 16-bit entry: the BIOS entry uses a
// .bin when the ISO has one, else the EFI binary, which only v7+ boots under BIOS.

func memtestEFI(v *view) []string {
	var out []string
	for _, n := range []string{"BOOTX64.EFI", "BOOTIA32.EFI", "memtest", "memtest.efi"} {
		if p, ok := v.file("/EFI/BOOT/" + n); ok {
			out = append(out, p)
			break
		}
	}
	return out
}

func memtestBIOS(v *view) []string {
	var out []string
	for _, dir := range []string{"/boot", "/"} {
		for _, pat := range []string{"memtest*.bin", "memtest", "mt86plus*"} {
			out = append(out, v.glob(dir, pat)...)
		}
	}
	return out
}

func (b *builder) memtest() ([]Entry, error) {
	if err := b.noUnattended("memtest86+ has no installer"); err != nil {
		return nil, err
	}
	efi := memtestEFI(b.v)
	if len(efi) == 0 {
		return nil, fmt.Errorf("memtest86+: /EFI/BOOT/BOOTX64.EFI: %w", ErrMissingFile)
	}
	entries := []Entry{{ID: "memtest-uefi", Label: "Memtest86+ (UEFI)", Kernel: efi[0], Firmware: FirmwareUEFI}}
	bios := Entry{ID: "memtest-bios", Label: "Memtest86+ (BIOS)", Firmware: FirmwareBIOS}
	if bins := memtestBIOS(b.v); len(bins) > 0 {
		bios.Kernel = bins[0]
	} else {
		bios.Kernel = efi[0]
		bios.Notes = []string{"boots under BIOS only with Memtest86+ v7 or later (one binary for both firmware types)"}
	}
	return append(entries, bios), nil
}

// --- unknown ISOs -----------------------------------------------------------------------
//
// The ISO's own boot entries, then sanboot of the whole image. Entries' arguments go through
// the same filter as every recipe's (args.go): GRUB variables and arguments that name the boot
// medium (root=live:CDLABEL=…, inst.stage2=hd:…) are dropped, the rest kept; an installer
// that still looks for its CD fails once the kernel is up, which the note says. sanboot hands the image to the firmware as a disk over HTTP: it
// boots loaders that read everything into RAM early (memtest, small rescue images), but an
// OS that later looks for its CD with its own drivers does not find it.

func (b *builder) unknown() ([]Entry, error) {
	if err := b.noUnattended("the image was not recognised, so its installer's answer-file option is unknown"); err != nil {
		return nil, err
	}
	var entries []Entry
	for i := range b.r.Entries {
		c := &b.r.Entries[i]
		e := Entry{ID: fmt.Sprintf("entry-%d", i+1), Label: c.Label, Kernel: c.Kernel,
			Initrds: initrds(c.Initrds...), base: c,
			Notes: []string{"from " + c.Source + "; its arguments may expect the ISO as a local drive"}}
		if e.Label == "" {
			e.Label = path.Base(c.Kernel)
		}
		switch {
		case strings.HasSuffix(strings.ToLower(c.Kernel), ".efi"), c.Loader == "efi", c.Loader == "chainloader":
			e.Firmware = FirmwareUEFI
		case c.Loader == "linux16" && strings.Contains(strings.ToLower(c.Kernel), "memtest"):
			e.Firmware = FirmwareBIOS
		}
		entries = append(entries, e)
	}
	entries = append(entries, Entry{ID: "sanboot", Label: "Boot the whole image (sanboot)", Sanboot: true,
		Firmware: FirmwareBoth, RAMNote: "the firmware reads the image over HTTP as a disk",
		Notes: []string{"works only for payloads that load everything into RAM before their own drivers take over; installers that look for their CD later fail"}})
	return entries, nil
}
