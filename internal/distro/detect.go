// Package distro recognises what an ISO image is and knows how its installer or live system
// boots over HTTP. Detect reads a few signature files through ISOFS (a read-only view of the
// ISO's file index) and names the family, version and architecture, plus the boot entries
// the ISO's own boot loader configs offer. Recipe turns that into kernels, initrds and
// command lines that point back at the ISO's files served at <ISOURL>/files/<path> (and the
// whole image at <ISOURL>/image.iso). Both are pure: no I/O besides the ISOFS reads, bounded
// work, no panics on hostile images.
//
// Where each family's recipe comes from, and what is known not to work, is written next to
// the recipe (recipe.go).
package distro

import (
	"path"
	"strings"
)

// Family is a distribution family: the installers in one family netboot the same way.
type Family string

// Families Detect recognises.
const (
	FamilyUnknown      Family = "unknown"
	FamilyUbuntu       Family = "ubuntu"
	FamilyDebian       Family = "debian"
	FamilyDebianLive   Family = "debian-live"
	FamilyFedora       Family = "fedora"
	FamilyRHEL         Family = "rhel"
	FamilyRocky        Family = "rocky"
	FamilyAlma         Family = "alma"
	FamilyCentOSStream Family = "centos-stream"
	FamilyFedoraLive   Family = "fedora-live"
	FamilyArch         Family = "arch"
	FamilyAlpine       Family = "alpine"
	FamilyOpenSUSE     Family = "opensuse"
	FamilySLES         Family = "sles"
	FamilyProxmox      Family = "proxmox"
	FamilyMemtest      Family = "memtest86+"
	FamilyESXi         Family = "esxi"
)

// Variants Detect reports; which ones a family uses is documented on its detector.
const (
	VariantLiveServer = "live-server" // Ubuntu Server (subiquity)
	VariantDesktop    = "desktop"     // casper desktop live images
	VariantNetboot    = "netboot"     // d-i mini.iso: kernel and initrd that fetch the rest from a mirror
	VariantMedia      = "media"       // d-i netinst/CD/DVD: installer initrd that needs local media
	VariantDVD        = "dvd"         // Anaconda tree with a package repository
	VariantBoot       = "boot"        // Anaconda boot.iso / netinstall: stage2 only
	VariantLive       = "live"        // dracut live image (LiveOS/squashfs.img)
)

// Result is what Detect found.
type Result struct {
	Family Family `json:"family"`
	// Variant narrows the family where the recipe differs (see the Variant constants).
	Variant string `json:"variant,omitempty"`
	// Name is the product as the image names itself: "Ubuntu-Server", "Rocky Linux" …
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	// Arch uses iPXE's ${buildarch} spelling: x86_64, arm64, i386 …
	Arch string `json:"arch,omitempty"`
	// Entries are the boot entries of the ISO's own boot loader configs whose kernel exists
	// on the ISO, paths resolved. Recipe offers them for unknown ISOs.
	Entries []ConfigEntry `json:"entries,omitempty"`
	// Evidence names the files that decided the family, for the UI and for debugging a
	// wrong guess.
	Evidence []string `json:"evidence,omitempty"`
}

// Detect recognises the ISO behind fsys. It never fails: an image it does not recognise is
// FamilyUnknown with whatever boot entries its configs offer. Work is bounded (a few
// thousand ISOFS calls, a few MiB read) whatever the image holds.
func Detect(fsys ISOFS) Result {
	v := newView(fsys)
	r := Result{Family: FamilyUnknown}
	r.Entries = collectEntries(v)
	d := &detection{v: v, r: &r}
	if b := v.read("/.treeinfo"); b != nil {
		d.ti = ParseTreeinfo(b)
	}
	if b := v.read("/.disk/info"); b != nil {
		d.di = parseDiskInfo(b)
		d.hasDI = true
	}
	for _, detect := range []func() bool{
		d.esxi, d.proxmox, d.anaconda, d.casper, d.debianLive, d.arch, d.alpine,
		d.dracutLive, d.suse, d.debianInstaller, d.memtest,
	} {
		if detect() {
			break
		}
	}
	if r.Arch == "" {
		r.Arch = d.guessArch()
	}
	return r
}

type detection struct {
	v     *view
	r     *Result
	ti    Treeinfo
	di    diskInfo
	hasDI bool
}

func (d *detection) evidence(paths ...string) {
	d.r.Evidence = append(d.r.Evidence, paths...)
}

// fromDiskInfo fills name, version and arch from .disk/info when present.
func (d *detection) fromDiskInfo() {
	if !d.hasDI {
		return
	}
	d.r.Name, d.r.Version, d.r.Arch = d.di.name, d.di.version, d.di.arch
	d.evidence("/.disk/info")
}

// esxi: VMware ESXi installer media, recognised by boot.cfg naming the b.b00 kernel (or
// mboot) and modules.
func (d *detection) esxi() bool {
	for _, p := range []string{"/boot.cfg", "/efi/boot/boot.cfg"} {
		b := d.v.read(p)
		if b == nil {
			continue
		}
		cfg := parseKeyValues(b, '=')
		k := strings.ToLower(cfg["kernel"])
		if cfg["modules"] == "" || !(strings.Contains(k, "b.b00") || strings.Contains(k, "mboot")) {
			continue
		}
		d.r.Family = FamilyESXi
		d.r.Name = "VMware ESXi"
		d.r.Version = cfg["build"]
		d.r.Arch = "x86_64"
		actual, _ := d.v.file(p)
		d.evidence(actual)
		return true
	}
	return false
}

// proxmox: Proxmox VE (and Backup Server / Mail Gateway, same installer): /boot/linux26 and
// /boot/initrd.img plus the installer's own files. .cd-info names the product and release.
func (d *detection) proxmox() bool {
	k, ok1 := d.v.file("/boot/linux26")
	i, ok2 := d.v.file("/boot/initrd.img")
	if !ok1 || !ok2 {
		return false
	}
	marker := ""
	for _, p := range []string{"/.cd-info", "/pve-installer.squashfs", "/proxmox"} {
		if a, _, _, ok := d.v.stat(p); ok {
			marker = a
			break
		}
	}
	if marker == "" {
		return false
	}
	d.r.Family = FamilyProxmox
	d.r.Name = "Proxmox VE"
	d.r.Arch = "x86_64"
	if b := d.v.read("/.cd-info"); b != nil {
		info := parseKeyValues(b, '=')
		if n := info["productlong"]; n != "" {
			d.r.Name = n
		}
		d.r.Version = info["release"]
		if ir := info["isorelease"]; ir != "" && d.r.Version != "" {
			d.r.Version += "-" + ir
		}
	}
	d.evidence(k, i, marker)
	return true
}

// anaconda: Fedora, RHEL, Rocky, Alma, CentOS Stream and other Anaconda trees, recognised by
// .treeinfo. Variant dvd when the tree carries a package repository, boot when it carries
// only the installer (stage2), live when it is a dracut live image without stage2.
func (d *detection) anaconda() bool {
	if d.ti == nil || (d.ti["general"] == nil && d.ti["release"] == nil) {
		return false
	}
	family := firstNonEmpty(d.ti.Get("release", "name"), d.ti.Get("general", "family"))
	version := firstNonEmpty(d.ti.Get("release", "version"), d.ti.Get("general", "version"))
	if family == "" {
		return false
	}
	d.r.Family = anacondaFamily(family)
	d.r.Name = family
	d.r.Version = version
	d.r.Arch = normArch(firstNonEmpty(d.ti.Get("general", "arch"), d.ti.Get("tree", "arch")))
	d.evidence("/.treeinfo")
	switch {
	case d.ti.Get("stage2", "mainimage") == "" && d.hasFile("/LiveOS/squashfs.img") && !d.hasFile("/images/install.img"):
		d.r.Variant = VariantLive
		if d.r.Family == FamilyFedora {
			d.r.Family = FamilyFedoraLive
		}
	case anacondaRepo(d.v, d.ti) != "":
		d.r.Variant = VariantDVD
	default:
		d.r.Variant = VariantBoot
	}
	return true
}

// anacondaFamily maps .treeinfo's family/release name to a Family. Other Anaconda-based
// distributions (Oracle Linux, openEuler, CentOS Linux …) boot like RHEL and are reported as
// rhel with their own Name.
func anacondaFamily(name string) Family {
	l := strings.ToLower(name)
	switch {
	case strings.HasPrefix(l, "fedora"):
		return FamilyFedora
	case strings.HasPrefix(l, "rocky"):
		return FamilyRocky
	case strings.HasPrefix(l, "almalinux"), strings.HasPrefix(l, "alma linux"):
		return FamilyAlma
	case strings.HasPrefix(l, "centos stream"):
		return FamilyCentOSStream
	default:
		return FamilyRHEL
	}
}

// anacondaRepo returns the path of a package repository's repomd.xml on the tree, "" when
// the tree has none (boot.iso). The variants .treeinfo lists are checked first.
func anacondaRepo(v *view, ti Treeinfo) string {
	var dirs []string
	for sec, kv := range ti {
		if strings.HasPrefix(sec, "variant-") && kv["repository"] != "" {
			dirs = append(dirs, kv["repository"])
		}
	}
	if r := ti.Get("general", "repository"); r != "" {
		dirs = append(dirs, r)
	}
	dirs = append(dirs, ".", "BaseOS", "Minimal")
	for _, dir := range dirs {
		if p, ok := v.file(path.Join("/", dir, "repodata/repomd.xml")); ok {
			return p
		}
	}
	return ""
}

// casper: Ubuntu live images (Server's subiquity and the desktops) and casper-based
// derivatives, recognised by a kernel in /casper. Variant live-server when the image names
// itself a server, desktop otherwise.
func (d *detection) casper() bool {
	if _, ok := casperKernel(d.v); !ok {
		return false
	}
	d.r.Family = FamilyUbuntu
	d.r.Name = "Ubuntu"
	d.fromDiskInfo()
	d.r.Variant = VariantDesktop
	if strings.Contains(strings.ToLower(d.r.Name), "server") {
		d.r.Variant = VariantLiveServer
	}
	dir, _ := d.v.dir("/casper")
	d.evidence(dir)
	return true
}

// debianLive: Debian live images and other live-build images (Kali …): a squashfs and a
// kernel in /live.
func (d *detection) debianLive() bool {
	if _, ok := d.v.file("/live/filesystem.squashfs"); !ok {
		return false
	}
	if _, _, ok := liveBootFiles(d.v); !ok {
		return false
	}
	d.r.Family = FamilyDebianLive
	d.r.Name = "Debian GNU/Linux Live"
	d.fromDiskInfo()
	sq, _ := d.v.file("/live/filesystem.squashfs")
	d.evidence(sq)
	return true
}

// arch: Arch Linux (archiso): <installdir>/boot/<arch>/vmlinuz-linux next to
// <installdir>/<arch>/airootfs.sfs. The install directory is "arch" on Arch's own media;
// derivatives rename it.
func (d *detection) arch() bool {
	a, ok := findArchiso(d.v)
	if !ok {
		return false
	}
	d.r.Family = FamilyArch
	d.r.Name = "Arch Linux"
	d.r.Arch = normArch(a.arch)
	if b := d.v.read(path.Join(a.dir, "version")); b != nil {
		d.r.Version = strings.TrimSpace(firstLine(b))
	}
	d.evidence(a.kernel, a.rootfs)
	return true
}

// alpine: Alpine Linux, recognised by .alpine-release or an apks/ repository next to
// boot/vmlinuz-<flavor>. Variant is the image profile from .alpine-release (standard,
// extended, virt …).
func (d *detection) alpine() bool {
	rel, hasRel := d.v.file("/.alpine-release")
	apks, hasApks := d.v.dir("/apks")
	if !hasRel && !hasApks {
		return false
	}
	if _, ok := alpineFlavor(d.v); !ok {
		return false
	}
	d.r.Family = FamilyAlpine
	d.r.Name = "Alpine Linux"
	if hasRel {
		d.evidence(rel)
		// "alpine-standard-3.20.3 240906": profile and version in the first word.
		w := firstWord(firstLine(d.v.read(rel)))
		if rest, ok := strings.CutPrefix(w, "alpine-"); ok {
			if i := strings.LastIndexByte(rest, '-'); i > 0 {
				d.r.Variant, d.r.Version = rest[:i], rest[i+1:]
			}
		}
	}
	if hasApks {
		d.evidence(apks)
		// apks/<arch>/APKINDEX.tar.gz: the directory name is Alpine's architecture.
		for _, n := range d.v.list(apks) {
			if _, ok := d.v.file(path.Join(apks, n, "APKINDEX.tar.gz")); ok {
				d.r.Arch = normArch(n)
				break
			}
		}
	}
	return true
}

// dracutLive: a dracut live image without .treeinfo (LiveOS/squashfs.img). Only Fedora's is
// recognised, by the name in its boot configs; others stay unknown and get their config
// entries.
func (d *detection) dracutLive() bool {
	sq, ok := d.v.file("/LiveOS/squashfs.img")
	if !ok {
		return false
	}
	label := ""
	for _, e := range d.r.Entries {
		if l := cdLabel(e.Args); l != "" && strings.Contains(strings.ToLower(l), "fedora") {
			label = l
			break
		}
	}
	if label == "" {
		return false
	}
	d.r.Family = FamilyFedoraLive
	d.r.Variant = VariantLive
	d.r.Name = label
	d.r.Version = fedoraLabelVersion(label)
	d.evidence(sq)
	return true
}

// cdLabel returns the volume label a dracut root=live:CDLABEL=… (or LABEL=) argument names.
func cdLabel(args string) string {
	for _, w := range strings.Fields(args) {
		for _, pfx := range []string{"root=live:CDLABEL=", "root=live:LABEL=", "inst.stage2=hd:LABEL="} {
			if l, ok := strings.CutPrefix(w, pfx); ok {
				return strings.ReplaceAll(l, `\x20`, " ")
			}
		}
	}
	return ""
}

// fedoraLabelVersion finds the release number in a label like "Fedora-WS-Live-41-1-4".
func fedoraLabelVersion(label string) string {
	for _, part := range strings.Split(label, "-") {
		if len(part) >= 2 && len(part) <= 3 && strings.Trim(part, "0123456789") == "" {
			return part
		}
	}
	return ""
}

// suse: openSUSE and SLES media installed by linuxrc/YaST: boot/<arch>/loader/{linux,initrd}
// plus media.1/ (or the old content file). SLES when the product files say SUSE Linux
// Enterprise.
func (d *detection) suse() bool {
	var loader, arch string
	for _, a := range []string{"x86_64", "aarch64", "ppc64le", "s390x", "i386"} {
		if p, ok := d.v.file("/boot/" + a + "/loader/linux"); ok {
			if _, ok := d.v.file("/boot/" + a + "/loader/initrd"); ok {
				loader, arch = p, a
				break
			}
		}
	}
	if loader == "" {
		return false
	}
	products := d.v.read("/media.1/products")
	media := d.v.read("/media.1/media")
	content := d.v.read("/content")
	if products == nil && media == nil && content == nil {
		return false
	}
	d.r.Family = FamilyOpenSUSE
	d.r.Name = "openSUSE"
	d.r.Arch = normArch(arch)
	d.evidence(loader)
	text := strings.ToLower(string(products) + "\n" + string(media) + "\n" + string(content))
	if products != nil {
		d.evidence("/media.1/products")
		if name, version, ok := suseProduct(products); ok {
			d.r.Name, d.r.Version = name, version
		}
	} else if content != nil {
		d.evidence("/content")
		kv := parseKeyValues(content, ' ')
		d.r.Name = firstNonEmpty(kv["label"], kv["product"], d.r.Name)
		d.r.Version = kv["version"]
	}
	if strings.Contains(text, "sles") || strings.Contains(text, "sle-") || strings.Contains(text, "suse linux enterprise") {
		d.r.Family = FamilySLES
	} else if !strings.Contains(strings.ToLower(d.r.Name), "suse") {
		d.r.Name = "openSUSE " + d.r.Name // Leap's product is called "Leap"
	}
	return true
}

// suseProduct picks the product from media.1/products, whose lines are "<repo path> <product>
// <version>-<release>" (e.g. "/ Leap 15.6-0"); on SLE media the modules are listed too and
// are skipped.
func suseProduct(b []byte) (name, version string, ok bool) {
	for i, line := range strings.Split(string(b), "\n") {
		if i > 256 {
			break
		}
		f := strings.Fields(line)
		if len(f) < 3 || strings.HasPrefix(strings.ToLower(f[1]), "sle-module") || strings.HasPrefix(f[0], "/Module-") {
			continue
		}
		v := f[2]
		if j := strings.LastIndexByte(v, '-'); j > 0 {
			v = v[:j]
		}
		return f[1], v, true
	}
	return "", "", false
}

// debianInstaller: debian-installer media. Variant netboot for mini.iso (kernel /linux and
// /initrd.gz at the root, which fetch everything else from a mirror; the architecture comes
// from .disk/info or, on arm64's mini.iso, GRUB's boot/grub/arm64-efi); variant media for
// netinst/CD/DVD images (/install.<arch>/), whose installer initrd looks for the image on a
// local drive. Ubuntu's old mini.iso and d-i server images are reported as ubuntu.
func (d *detection) debianInstaller() bool {
	name := d.di.name
	if lin, ok := d.v.file("/linux"); ok {
		if ird, ok := d.v.file("/initrd.gz"); ok {
			fam, n := FamilyDebian, "Debian GNU/Linux"
			if d.mentions("ubuntu") && !d.mentions("debian") {
				fam, n = FamilyUbuntu, "Ubuntu"
			}
			// Debian's arm64 mini.iso has no syslinux menu and no .disk/info, and its GRUB menu
			// never says "Debian": d-i's own boot parameter rescue/enable=true is what tells.
			if !d.mentions("debian") && !d.mentions("ubuntu") && !d.hasDI && !d.mentions("rescue/enable=true") {
				return false
			}
			d.r.Family, d.r.Variant, d.r.Name = fam, VariantNetboot, n
			d.fromDiskInfo()
			d.evidence(lin, ird)
			return true
		}
	}
	if !d.hasDI {
		return false
	}
	for _, dir := range []string{"/install.amd", "/install.a64", "/install.386", "/install.ppc", "/install.s390x", "/install.riscv64", "/install"} {
		if p, ok := d.v.dir(dir); ok {
			switch l := strings.ToLower(name); {
			case strings.HasPrefix(l, "debian"):
				d.r.Family = FamilyDebian
			case strings.Contains(l, "ubuntu"):
				d.r.Family = FamilyUbuntu
			default:
				return false
			}
			d.r.Variant = VariantMedia
			d.fromDiskInfo()
			d.evidence(p)
			return true
		}
	}
	return false
}

// mentions reports whether a boot config the detection read names s (case-insensitively).
func (d *detection) mentions(s string) bool {
	for _, e := range d.r.Entries {
		if strings.Contains(strings.ToLower(e.Label), s) {
			return true
		}
	}
	for _, b := range d.v.reads {
		if containsFold(b, s) {
			return true
		}
	}
	return strings.Contains(strings.ToLower(d.di.raw), s)
}

// memtest: Memtest86+ media: an EFI loader in /EFI/BOOT and memtest binaries or the
// official image's floppy image, and nothing an operating system installer would carry.
func (d *detection) memtest() bool {
	efi := memtestEFI(d.v)
	bins := memtestBIOS(d.v)
	floppy, hasFloppy := d.v.file("/boot/floppy.img")
	named := false
	for _, p := range append(append([]string{}, efi...), bins...) {
		if strings.Contains(strings.ToLower(p), "memtest") {
			named = true
		}
	}
	if len(efi) == 0 {
		return false
	}
	// An OS image may carry a memtest binary too; it is memtest media only when memtest is
	// all its configs boot.
	for _, e := range d.r.Entries {
		if !strings.Contains(strings.ToLower(e.Kernel), "memtest") && !strings.Contains(strings.ToLower(e.Label), "memtest") {
			return false
		}
	}
	if !named && !(hasFloppy && len(d.v.list("/")) <= 4) {
		return false
	}
	d.r.Family = FamilyMemtest
	d.r.Name = "Memtest86+"
	d.evidence(efi...)
	if hasFloppy {
		d.evidence(floppy)
	}
	return true
}

// guessArch infers the architecture from the EFI loader names when nothing else said.
func (d *detection) guessArch() string {
	for _, c := range []struct{ file, arch string }{
		{"/EFI/BOOT/BOOTX64.EFI", "x86_64"},
		{"/EFI/BOOT/BOOTAA64.EFI", "arm64"},
		{"/EFI/BOOT/BOOTIA32.EFI", "i386"},
		{"/EFI/BOOT/BOOTRISCV64.EFI", "riscv64"},
		{"/EFI/BOOT/BOOTLOONGARCH64.EFI", "loongarch64"},
		// GRUB's module directories: Debian's mini.iso for arm64 keeps its EFI loaders inside
		// an El Torito image (boot/grub/efi.img), so the ISO's own tree shows only these.
		{"/boot/grub/arm64-efi", "arm64"},
		{"/boot/grub/x86_64-efi", "x86_64"},
	} {
		if _, _, _, ok := d.v.stat(c.file); ok {
			return c.arch
		}
	}
	return ""
}

func (d *detection) hasFile(p string) bool {
	_, ok := d.v.file(p)
	return ok
}

// configCandidates are the boot loader configs Detect reads entries from, in order. GRUB's
// loopback.cfg is left out on purpose: it exists to boot the ISO as a file from another
// disk and its arguments (iso-scan/filename=…) mean nothing over the network.
var configCandidates = []struct{ path, kind string }{
	{"/boot/grub/grub.cfg", "grub"},
	{"/boot/grub2/grub.cfg", "grub"},
	{"/EFI/BOOT/grub.cfg", "grub"},
	{"/isolinux/isolinux.cfg", "syslinux"},
	{"/isolinux.cfg", "syslinux"},
	{"/boot/isolinux/isolinux.cfg", "syslinux"},
	{"/syslinux/syslinux.cfg", "syslinux"},
	{"/syslinux.cfg", "syslinux"},
	{"/boot/syslinux/syslinux.cfg", "syslinux"},
	{"/boot/x86_64/loader/isolinux.cfg", "syslinux"},
}

const maxConfigFiles = 48

// Bounds of the search for boot configs outside the usual places.
const (
	maxScanDepth = 4
	maxScanDirs  = 200
)

// scanSkip are directories that hold packages or boot loader modules, never menus: listing
// them would spend the budget on thousands of names.
var scanSkip = map[string]bool{
	"pool": true, "dists": true, "packages": true, "repodata": true, "apks": true, "firmware": true,
	"baseos": true, "appstream": true, "x86_64-efi": true, "i386-pc": true, "arm64-efi": true,
	"i386-efi": true, "fonts": true, "locale": true, "themes": true, "theme": true, "proxmox": true,
	"liveos": true, "casper": true, "live": true, "images": true, ".disk": true,
}

// discoverConfigs looks a few directories deep for boot configs in places the candidate list
// does not name (netboot trees copied onto an ISO, vendor layouts).
func discoverConfigs(v *view) [][2]string {
	var out [][2]string
	type dir struct {
		path  string
		depth int
	}
	queue := []dir{{"/", 0}}
	for n := 0; len(queue) > 0 && n < maxScanDirs; n++ {
		d := queue[0]
		queue = queue[1:]
		for _, name := range v.list(d.path) {
			p := path.Join(d.path, name)
			l := strings.ToLower(name)
			switch {
			case l == "grub.cfg":
				out = append(out, [2]string{p, "grub"})
				continue
			case l == "isolinux.cfg" || l == "syslinux.cfg":
				out = append(out, [2]string{p, "syslinux"})
				continue
			case l == "default" && strings.EqualFold(path.Base(d.path), "pxelinux.cfg"):
				out = append(out, [2]string{p, "syslinux"})
				continue
			}
			if d.depth+1 >= maxScanDepth || scanSkip[l] || strings.Contains(l, ".") && l != "pxelinux.cfg" {
				continue // names with an extension are files in practice; skip the stat
			}
			if _, ok := v.dir(p); ok {
				queue = append(queue, dir{p, d.depth + 1})
			}
		}
	}
	return out
}

// collectEntries reads the ISO's boot loader configs (following source/configfile and
// INCLUDE/CONFIG, bounded), resolves every entry's paths on the ISO and keeps the entries
// whose kernel exists, without duplicates.
func collectEntries(v *view) []ConfigEntry {
	type job struct{ path, kind, rootDir string }
	var queue []job
	for _, c := range configCandidates {
		if p, ok := v.file(c.path); ok {
			queue = append(queue, job{p, c.kind, path.Dir(p)})
		}
	}
	for _, p := range v.glob("/loader/entries", "*.conf") {
		queue = append(queue, job{p, "loader", "/"})
	}
	for _, c := range discoverConfigs(v) {
		queue = append(queue, job{c[0], c[1], path.Dir(c[0])})
	}
	seenFile := map[string]bool{}
	seenEntry := map[string]bool{}
	var out []ConfigEntry
	for files := 0; len(queue) > 0 && files < maxConfigFiles; files++ {
		j := queue[0]
		queue = queue[1:]
		if seenFile[j.path] {
			continue
		}
		seenFile[j.path] = true
		data := v.read(j.path)
		if data == nil {
			continue
		}
		dir := path.Dir(j.path)
		var entries []ConfigEntry
		var includes []string
		switch j.kind {
		case "grub":
			g := ParseGrubCfg(data)
			entries, includes = g.Entries, g.Includes
		case "syslinux":
			s := ParseIsolinuxCfg(data)
			entries, includes = s.Entries, s.Includes
		case "loader":
			if e := ParseLoaderEntry(data); e.Kernel != "" {
				entries = []ConfigEntry{e}
			}
		}
		bases := []string{dir, j.rootDir, "/"}
		for _, inc := range includes {
			if p, ok := resolveRef(v, inc, bases); ok {
				queue = append(queue, job{p, j.kind, j.rootDir})
			}
		}
		for _, e := range entries {
			e.Source = j.path
			k, ok := resolveRef(v, e.Kernel, bases)
			if !ok {
				continue
			}
			e.Kernel = k
			var initrds []string
			missing := false
			for _, i := range e.Initrds {
				p, ok := resolveRef(v, i, bases)
				if !ok {
					missing = true
					break
				}
				initrds = append(initrds, p)
			}
			if missing {
				continue
			}
			e.Initrds = initrds
			key := e.Kernel + "\x00" + strings.Join(e.Initrds, ",") + "\x00" + e.Args
			if seenEntry[key] || len(out) >= maxEntries {
				continue
			}
			seenEntry[key] = true
			out = append(out, e)
		}
	}
	return out
}

// resolveRef finds a file a config names: absolute paths from the ISO root, relative ones
// against each base directory in turn (syslinux resolves them against its working
// directory, the config's own directory on ISOs; netboot trees copied onto ISOs write them
// relative to the root). Paths with unexpanded variables do not resolve.
func resolveRef(v *view, ref string, bases []string) (string, bool) {
	ref = strings.TrimSpace(ref)
	if ref == "" || strings.ContainsAny(ref, "$%\x00") || len(ref) > 1024 {
		return "", false
	}
	if strings.HasPrefix(ref, "/") {
		return v.file(ref)
	}
	for _, b := range bases {
		if p, ok := v.file(path.Join(b, ref)); ok {
			return p, true
		}
	}
	return "", false
}

// parseKeyValues reads key<sep>value lines (boot.cfg, .cd-info, SUSE's content file); keys
// lower case, quotes around values removed.
func parseKeyValues(b []byte, sep byte) map[string]string {
	out := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		if i > 10000 || len(out) >= maxKeys {
			break
		}
		line = strings.TrimSpace(line)
		k, val, ok := strings.Cut(line, string(sep))
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), `'"`)
		if k != "" && len(val) <= maxValueLen {
			if _, dup := out[k]; !dup {
				out[k] = val
			}
		}
	}
	return out
}

func firstLine(b []byte) string {
	l, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(strings.TrimRight(l, "\r"))
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func containsFold(b []byte, s string) bool {
	return strings.Contains(strings.ToLower(string(b)), s)
}
