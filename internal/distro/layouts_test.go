package distro

import (
	"os"
	"path/filepath"
	"testing"
)

// The layouts below mirror the file names each distribution ships on its ISO, with real boot
// config excerpts from the repository's top-level testdata/boot-configs (shared with the
// httpapi and client tests). Large payloads (squashfs, kernels) have a size and no bytes:
// detection and recipes only stat them.

const (
	kib = 1 << 10
	mib = 1 << 20
)

func sized(n int64) MapFile     { return MapFile{Size: n} }
func text(s string) MapFile     { return MapFile{Data: []byte(s)} }
func kernel() MapFile           { return sized(14 * mib) }
func initramfs(n int64) MapFile { return sized(n * mib) }

func config(t testing.TB, name string) MapFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "boot-configs", name))
	if err != nil {
		t.Fatal(err)
	}
	return MapFile{Data: b}
}

// layout is one ISO of a table test: its files and what Detect must say about it.
type layout struct {
	name    string
	fs      MapFS
	family  Family
	variant string
	version string
	arch    string
}

func layouts(t testing.TB) []layout {
	return []layout{
		{
			name: "ubuntu-24.04.2-live-server-amd64", family: FamilyUbuntu, variant: VariantLiveServer, version: "24.04.2", arch: "x86_64",
			fs: MapFS{
				"/.disk/info":                            text(`Ubuntu-Server 24.04.2 LTS "Noble Numbat" - Release amd64 (20250215)`),
				"/.disk/casper-uuid-generic":             text("5f1a0000-0000-4000-8000-000000000000\n"),
				"/boot/grub/grub.cfg":                    config(t, "ubuntu-24.04-live-server.grub.cfg"),
				"/boot/grub/loopback.cfg":                text("menuentry \"Try or Install Ubuntu Server\" {\n\tlinux\t/casper/vmlinuz iso-scan/filename=${iso_path} ---\n\tinitrd\t/casper/initrd\n}\n"),
				"/boot/memtest86+x64.bin":                sized(150 * kib),
				"/boot/memtest86+x64.efi":                sized(150 * kib),
				"/casper/vmlinuz":                        kernel(),
				"/casper/initrd":                         initramfs(70),
				"/casper/hwe-vmlinuz":                    kernel(),
				"/casper/hwe-initrd":                     initramfs(72),
				"/casper/ubuntu-server-minimal.squashfs": sized(1100 * mib),
				"/casper/install-sources.yaml":           text("- default: true\n  id: ubuntu-server\n"),
				"/EFI/boot/bootx64.efi":                  sized(950 * kib),
				"/EFI/boot/grubx64.efi":                  sized(2 * mib),
				"/pool/main/":                            {},
				"/dists/noble/Release":                   text("Origin: Ubuntu\n"),
			},
		},
		{
			name: "ubuntu-24.04.1-desktop-amd64", family: FamilyUbuntu, variant: VariantDesktop, version: "24.04.1", arch: "x86_64",
			fs: MapFS{
				"/.disk/info":              text(`Ubuntu 24.04.1 LTS "Noble Numbat" - Release amd64 (20240827)`),
				"/boot/grub/grub.cfg":      text("menuentry \"Try or Install Ubuntu\" {\n\tset gfxpayload=keep\n\tlinux\t/casper/vmlinuz  --- quiet splash\n\tinitrd\t/casper/initrd\n}\n"),
				"/casper/vmlinuz":          kernel(),
				"/casper/initrd":           initramfs(60),
				"/casper/minimal.squashfs": sized(2500 * mib),
				"/EFI/boot/bootx64.efi":    sized(950 * kib),
			},
		},
		{
			name: "debian-12.7.0-amd64-netinst", family: FamilyDebian, variant: VariantMedia, version: "12.7.0", arch: "x86_64",
			fs: MapFS{
				"/.disk/info":                text(`Debian GNU/Linux 12.7.0 "Bookworm" - Official amd64 NETINST with firmware 20240831-10:38`),
				"/.disk/base_installable":    {},
				"/isolinux/isolinux.cfg":     config(t, "debian-12-netinst.isolinux.cfg"),
				"/isolinux/menu.cfg":         config(t, "debian-12-netinst.menu.cfg"),
				"/isolinux/gtk.cfg":          config(t, "debian-12-netinst.gtk.cfg"),
				"/isolinux/txt.cfg":          config(t, "debian-12-netinst.txt.cfg"),
				"/isolinux/adtxt.cfg":        config(t, "debian-12-netinst.adtxt.cfg"),
				"/isolinux/isolinux.bin":     sized(38 * kib),
				"/isolinux/vesamenu.c32":     sized(27 * kib),
				"/boot/grub/grub.cfg":        config(t, "debian-12-netinst.grub.cfg"),
				"/install.amd/vmlinuz":       sized(8 * mib),
				"/install.amd/initrd.gz":     initramfs(19),
				"/install.amd/gtk/vmlinuz":   sized(8 * mib),
				"/install.amd/gtk/initrd.gz": initramfs(36),
				"/pool/main/l/linux/linux-image-6.1.0-25-amd64_6.1.106-3_amd64.deb": sized(68 * mib),
				"/dists/bookworm/Release": text("Origin: Debian\n"),
				"/EFI/boot/bootx64.efi":   sized(950 * kib),
			},
		},
		{
			name: "debian-12-amd64-mini", family: FamilyDebian, variant: VariantNetboot, arch: "x86_64",
			fs: MapFS{
				"/linux":                sized(8 * mib),
				"/initrd.gz":            initramfs(40),
				"/isolinux.cfg":         text("path \ninclude menu.cfg\ndefault vesamenu.c32\nprompt 0\ntimeout 0\n"),
				"/menu.cfg":             config(t, "debian-12-mini.menu.cfg"),
				"/txt.cfg":              config(t, "debian-12-mini.txt.cfg"),
				"/isolinux.bin":         sized(38 * kib),
				"/boot/grub/grub.cfg":   config(t, "debian-12-mini.grub.cfg"),
				"/boot/grub/font.pf2":   sized(30 * kib),
				"/EFI/boot/bootx64.efi": sized(950 * kib),
				"/EFI/boot/grubx64.efi": sized(2 * mib),
			},
		},
		{
			// Debian's arm64 mini.iso: GRUB only (its EFI loaders sit inside boot/grub/efi.img),
			// no .disk/info, and a menu that never says "Debian" (the GRUB config is the
			// netboot package's, as d-i builds mini.iso, with the kernel at the root).
			name: "debian-12-arm64-mini", family: FamilyDebian, variant: VariantNetboot, arch: "arm64",
			fs: MapFS{
				"/linux":                         sized(32 * mib),
				"/initrd.gz":                     initramfs(38),
				"/boot/grub/grub.cfg":            config(t, "debian-12-arm64-mini.grub.cfg"),
				"/boot/grub/font.pf2":            sized(30 * kib),
				"/boot/grub/efi.img":             sized(4 * mib),
				"/boot/grub/arm64-efi/linux.mod": sized(40 * kib),
			},
		},
		{
			name: "ubuntu-24.04.2-live-server-arm64", family: FamilyUbuntu, variant: VariantLiveServer, version: "24.04.2", arch: "arm64",
			fs: MapFS{
				"/.disk/info":                    text(`Ubuntu-Server 24.04.2 LTS "Noble Numbat" - Release arm64 (20250215)`),
				"/boot/grub/grub.cfg":            text("menuentry \"Try or Install Ubuntu Server\" {\n\tset gfxpayload=keep\n\tlinux\t/casper/vmlinuz  ---\n\tinitrd\t/casper/initrd\n}\n"),
				"/casper/vmlinuz":                kernel(),
				"/casper/initrd":                 initramfs(70),
				"/casper/install-sources.yaml":   text("- default: true\n  id: ubuntu-server\n"),
				"/casper/ubuntu-server.squashfs": sized(900 * mib),
				"/EFI/boot/bootaa64.efi":         sized(950 * kib),
				"/EFI/boot/grubaa64.efi":         sized(2 * mib),
			},
		},
		{
			// d-i server image that also carries the netboot kernel and initrd.
			name: "ubuntu-18.04.6-server-amd64", family: FamilyUbuntu, variant: VariantMedia, version: "18.04.6", arch: "x86_64",
			fs: MapFS{
				"/.disk/info":        text(`Ubuntu-Server 18.04.6 LTS "Bionic Beaver" - Release amd64 (20210915.4)`),
				"/install/vmlinuz":   sized(8 * mib),
				"/install/initrd.gz": initramfs(25),
				"/install/netboot/ubuntu-installer/amd64/linux":     sized(8 * mib),
				"/install/netboot/ubuntu-installer/amd64/initrd.gz": initramfs(44),
				"/isolinux/txt.cfg":      text("default install\nlabel install\n  menu label ^Install Ubuntu Server\n  kernel /install/vmlinuz\n  append  file=/cdrom/preseed/ubuntu-server.seed vga=788 initrd=/install/initrd.gz quiet ---\n"),
				"/isolinux/isolinux.cfg": text("include menu.cfg\ndefault vesamenu.c32\n"),
				"/isolinux/menu.cfg":     text("include txt.cfg\n"),
			},
		},
		{
			name: "debian-live-12.7.0-amd64-standard", family: FamilyDebianLive, version: "12.7.0", arch: "x86_64",
			fs: MapFS{
				"/.disk/info":                     text(`Debian GNU/Linux 12.7.0 "Bookworm" - Official Snapshot amd64 LIVE/INSTALL Binary 20240831-11:21`),
				"/boot/grub/grub.cfg":             config(t, "debian-live-12.7.grub.cfg"),
				"/boot/grub/config.cfg":           config(t, "debian-live-12.7.config.cfg"),
				"/live/vmlinuz-6.1.0-25-amd64":    kernel(),
				"/live/initrd.img-6.1.0-25-amd64": initramfs(50),
				"/live/filesystem.squashfs":       sized(980 * mib),
				"/live/filesystem.packages":       text("adduser\t3.134\n"),
				"/install/vmlinuz":                sized(8 * mib),
				"/install/gtk/initrd.gz":          initramfs(36),
				"/install/initrd.gz":              initramfs(19),
				"/EFI/boot/bootx64.efi":           sized(950 * kib),
			},
		},
		{
			name: "Fedora-Server-dvd-x86_64-41-1.4", family: FamilyFedora, variant: VariantDVD, version: "41", arch: "x86_64",
			fs: MapFS{
				"/.treeinfo":                              config(t, "fedora-41-server-dvd.treeinfo"),
				"/.discinfo":                              text("1729013212.512\n41\nx86_64\n"),
				"/EFI/BOOT/grub.cfg":                      config(t, "fedora-41-server-dvd.grub.cfg"),
				"/EFI/BOOT/BOOTX64.EFI":                   sized(950 * kib),
				"/boot/grub2/grub.cfg":                    config(t, "fedora-41-server-dvd.grub.cfg"),
				"/images/pxeboot/vmlinuz":                 sized(16 * mib),
				"/images/pxeboot/initrd.img":              initramfs(110),
				"/images/install.img":                     sized(800 * mib),
				"/images/efiboot.img":                     sized(10 * mib),
				"/repodata/repomd.xml":                    text("<repomd/>"),
				"/Packages/a/acl-2.3.2-2.fc41.x86_64.rpm": sized(70 * kib),
			},
		},
		{
			name: "Rocky-9.4-x86_64-dvd", family: FamilyRocky, variant: VariantDVD, version: "9.4", arch: "x86_64",
			fs: MapFS{
				"/.treeinfo":                     config(t, "rocky-9.4-dvd.treeinfo"),
				"/EFI/BOOT/grub.cfg":             config(t, "rocky-9.4-dvd.grub.cfg"),
				"/EFI/BOOT/BOOTX64.EFI":          sized(950 * kib),
				"/isolinux/vmlinuz":              sized(13 * mib),
				"/isolinux/initrd.img":           initramfs(100),
				"/images/pxeboot/vmlinuz":        sized(13 * mib),
				"/images/pxeboot/initrd.img":     initramfs(100),
				"/images/install.img":            sized(850 * mib),
				"/BaseOS/repodata/repomd.xml":    text("<repomd/>"),
				"/AppStream/repodata/repomd.xml": text("<repomd/>"),
			},
		},
		{
			// boot.iso: the same .treeinfo variants, but no repository on the image.
			name: "Rocky-9.4-x86_64-boot", family: FamilyRocky, variant: VariantBoot, version: "9.4", arch: "x86_64",
			fs: MapFS{
				"/.treeinfo":                 config(t, "rocky-9.4-dvd.treeinfo"),
				"/EFI/BOOT/grub.cfg":         config(t, "rocky-9.4-dvd.grub.cfg"),
				"/images/pxeboot/vmlinuz":    sized(13 * mib),
				"/images/pxeboot/initrd.img": initramfs(100),
				"/images/install.img":        sized(850 * mib),
			},
		},
		{
			name: "AlmaLinux-9.4-aarch64-dvd", family: FamilyAlma, variant: VariantDVD, version: "9.4", arch: "arm64",
			fs: MapFS{
				"/.treeinfo": text("[general]\narch = aarch64\nfamily = AlmaLinux\nname = AlmaLinux 9.4\nversion = 9.4\n\n" +
					"[images-aarch64]\ninitrd = images/pxeboot/initrd.img\nkernel = images/pxeboot/vmlinuz\n\n" +
					"[release]\nname = AlmaLinux\nshort = AlmaLinux\nversion = 9.4\n\n[stage2]\nmainimage = images/install.img\n\n" +
					"[variant-BaseOS]\nrepository = BaseOS\n"),
				"/images/pxeboot/vmlinuz":     sized(30 * mib),
				"/images/pxeboot/initrd.img":  initramfs(90),
				"/images/install.img":         sized(800 * mib),
				"/BaseOS/repodata/repomd.xml": text("<repomd/>"),
				"/EFI/BOOT/BOOTAA64.EFI":      sized(900 * kib),
			},
		},
		{
			name: "Fedora-Server-netinst-aarch64-41-1.4", family: FamilyFedora, variant: VariantBoot, version: "41", arch: "arm64",
			fs: MapFS{
				"/.treeinfo": text("[general]\narch = aarch64\nfamily = Fedora\nname = Fedora 41\nversion = 41\n\n" +
					"[images-aarch64]\ninitrd = images/pxeboot/initrd.img\nkernel = images/pxeboot/vmlinuz\n\n" +
					"[release]\nname = Fedora\nshort = Fedora\nversion = 41\n\n[stage2]\nmainimage = images/install.img\n"),
				"/images/pxeboot/vmlinuz":    sized(16 * mib),
				"/images/pxeboot/initrd.img": initramfs(110),
				"/images/install.img":        sized(700 * mib),
				"/EFI/BOOT/BOOTAA64.EFI":     sized(900 * kib),
			},
		},
		{
			// An operator's combined tree with kernels for both architectures: one entry per
			// architecture under the same ID.
			name: "custom-sles-15.6-x86_64-aarch64", family: FamilySLES, version: "15.6", arch: "x86_64",
			fs: MapFS{
				"/media.1/media":              text("SUSE - SLE-15-SP6-Full-x86_64-GM-Media1\nSLE-15-SP6-Full-x86_64-GM-Media1\n1\n"),
				"/media.1/products":           text("/Product-SLES SLES 15.6-0\n"),
				"/boot/x86_64/loader/linux":   sized(11 * mib),
				"/boot/x86_64/loader/initrd":  initramfs(95),
				"/boot/aarch64/loader/linux":  sized(30 * mib),
				"/boot/aarch64/loader/initrd": initramfs(90),
			},
		},
		{
			name: "CentOS-Stream-9-x86_64-boot", family: FamilyCentOSStream, variant: VariantBoot, version: "9", arch: "x86_64",
			fs: MapFS{
				"/.treeinfo": text("[general]\narch = x86_64\nfamily = CentOS Stream\nname = CentOS Stream 9\nversion = 9\n\n" +
					"[images-x86_64]\ninitrd = images/pxeboot/initrd.img\nkernel = images/pxeboot/vmlinuz\n\n" +
					"[release]\nname = CentOS Stream\nshort = CentOS-Stream\nversion = 9\n\n[stage2]\nmainimage = images/install.img\n"),
				"/images/pxeboot/vmlinuz":    sized(13 * mib),
				"/images/pxeboot/initrd.img": initramfs(100),
				"/images/install.img":        sized(850 * mib),
			},
		},
		{
			name: "Fedora-Workstation-Live-x86_64-41-1.4", family: FamilyFedoraLive, variant: VariantLive, version: "41", arch: "x86_64",
			fs: MapFS{
				"/boot/grub2/grub.cfg":       config(t, "fedora-41-workstation-live.grub.cfg"),
				"/EFI/BOOT/grub.cfg":         config(t, "fedora-41-workstation-live.grub.cfg"),
				"/EFI/BOOT/BOOTX64.EFI":      sized(950 * kib),
				"/images/pxeboot/vmlinuz":    sized(16 * mib),
				"/images/pxeboot/initrd.img": initramfs(130),
				"/LiveOS/squashfs.img":       sized(2200 * mib),
			},
		},
		{
			// A kiwi-built live image (the layout Fedora's live media moved to): kernel and
			// initrd under boot/x86_64/loader/, no .treeinfo, no media.1/.
			name: "Fedora-KDE-Live-kiwi-layout", family: FamilyFedoraLive, variant: VariantLive, version: "42", arch: "x86_64",
			fs: MapFS{
				"/EFI/BOOT/grub.cfg": text("set timeout=10\nmenuentry \"Start Fedora-KDE-Desktop-Live-42\" --class os --unrestricted {\n" +
					"    set gfxpayload=keep\n    echo Loading kernel...\n    linux ($root)/boot/x86_64/loader/linux root=live:CDLABEL=Fedora-KDE-Live-42 rd.live.image\n" +
					"    echo Loading initrd...\n    initrd ($root)/boot/x86_64/loader/initrd\n}\n"),
				"/EFI/BOOT/BOOTX64.EFI":      sized(950 * kib),
				"/boot/x86_64/loader/linux":  sized(16 * mib),
				"/boot/x86_64/loader/initrd": initramfs(120),
				"/LiveOS/squashfs.img":       sized(2600 * mib),
			},
		},
		{
			name: "archlinux-2024.09.01-x86_64", family: FamilyArch, version: "2024.09.01", arch: "x86_64",
			fs: MapFS{
				"/arch/version":                                text("2024.09.01\n"),
				"/arch/boot/x86_64/vmlinuz-linux":              sized(13 * mib),
				"/arch/boot/x86_64/initramfs-linux.img":        initramfs(110),
				"/arch/boot/intel-ucode.img":                   sized(8 * mib),
				"/arch/boot/amd-ucode.img":                     sized(80 * kib),
				"/arch/x86_64/airootfs.sfs":                    sized(830 * mib),
				"/arch/x86_64/airootfs.sha512":                 text("0123  airootfs.sfs\n"),
				"/arch/x86_64/airootfs.sfs.cms.sig":            sized(2 * kib),
				"/arch/pkglist.x86_64.txt":                     text("base 3-2\n"),
				"/boot/grub/grub.cfg":                          config(t, "archiso-2024.09.01.grub.cfg"),
				"/boot/memtest86+/memtest.efi":                 sized(150 * kib),
				"/boot/memtest86+/memtest":                     sized(150 * kib),
				"/loader/entries/01-archiso-x86_64-linux.conf": config(t, "archiso-2024.09.01.loader-01.conf"),
				"/loader/loader.conf":                          text("timeout 15\ndefault 01-archiso-x86_64-linux.conf\n"),
				"/EFI/BOOT/BOOTx64.EFI":                        sized(120 * kib),
				"/shellx64.efi":                                sized(1 * mib),
			},
		},
		{
			name: "alpine-standard-3.20.3-x86_64", family: FamilyAlpine, variant: "standard", version: "3.20.3", arch: "x86_64",
			fs: MapFS{
				"/.alpine-release":                       text("alpine-standard-3.20.3 240906\n"),
				"/apks/.boot_repository":                 {},
				"/apks/x86_64/APKINDEX.tar.gz":           sized(30 * kib),
				"/apks/x86_64/alpine-base-3.20.3-r0.apk": sized(2 * kib),
				"/boot/vmlinuz-lts":                      sized(12 * mib),
				"/boot/initramfs-lts":                    initramfs(12),
				"/boot/modloop-lts":                      sized(110 * mib),
				"/boot/config-lts":                       text("CONFIG_X86_64=y\n"),
				"/boot/System.map-lts":                   sized(6 * mib),
				"/boot/syslinux/syslinux.cfg":            config(t, "alpine-3.20-standard.syslinux.cfg"),
				"/boot/grub/grub.cfg":                    config(t, "alpine-3.20-standard.grub.cfg"),
				"/efi/boot/bootx64.efi":                  sized(700 * kib),
			},
		},
		{
			name: "openSUSE-Leap-15.6-DVD-x86_64", family: FamilyOpenSUSE, version: "15.6", arch: "x86_64",
			fs: MapFS{
				"/media.1/media":                   text("openSUSE - openSUSE-Leap-15.6-DVD-x86_64-Build710.3-Media\nopenSUSE-Leap-15.6-DVD-x86_64-Build710.3\n1\n"),
				"/media.1/products":                text("/ Leap 15.6-0\n"),
				"/boot/x86_64/loader/linux":        sized(11 * mib),
				"/boot/x86_64/loader/initrd":       initramfs(90),
				"/boot/x86_64/loader/isolinux.cfg": config(t, "opensuse-leap-15.6.isolinux.cfg"),
				"/boot/x86_64/loader/memtest":      sized(180 * kib),
				"/boot/x86_64/root":                sized(250 * mib),
				"/EFI/BOOT/grub.cfg":               config(t, "opensuse-leap-15.6.efi.grub.cfg"),
				"/EFI/BOOT/bootx64.efi":            sized(1 * mib),
				"/repodata/repomd.xml":             text("<repomd/>"),
			},
		},
		{
			name: "SLE-15-SP6-Full-x86_64", family: FamilySLES, version: "15.6", arch: "x86_64",
			fs: MapFS{
				"/media.1/media":             text("SUSE - SLE-15-SP6-Full-x86_64-GM-Media1\nSLE-15-SP6-Full-x86_64-GM-Media1\n1\n"),
				"/media.1/products":          text("/Module-Basesystem sle-module-basesystem 15.6-0\n/Product-SLES SLES 15.6-0\n"),
				"/boot/x86_64/loader/linux":  sized(11 * mib),
				"/boot/x86_64/loader/initrd": initramfs(95),
				"/EFI/BOOT/bootx64.efi":      sized(1 * mib),
			},
		},
		{
			name: "proxmox-ve_8.2-2", family: FamilyProxmox, version: "8.2-2", arch: "x86_64",
			fs: MapFS{
				"/.cd-info":               config(t, "proxmox-ve-8.2.cd-info"),
				"/boot/linux26":           sized(14 * mib),
				"/boot/initrd.img":        initramfs(60),
				"/boot/grub/grub.cfg":     config(t, "proxmox-ve-8.2.grub.cfg"),
				"/pve-base.squashfs":      sized(900 * mib),
				"/pve-installer.squashfs": sized(120 * mib),
				"/proxmox/packages/pve-manager_8.2.2_all.deb": sized(1 * mib),
				"/EFI/BOOT/BOOTX64.EFI":                       sized(950 * kib),
			},
		},
		{
			// The same image after proxmox-auto-install-assistant prepare-iso.
			name: "proxmox-ve_8.2-2-auto", family: FamilyProxmox, version: "8.2-2", arch: "x86_64",
			fs: MapFS{
				"/.cd-info":                 config(t, "proxmox-ve-8.2.cd-info"),
				"/auto-installer-mode.toml": text("mode = \"http\"\n\n[http]\nurl = \"http://10.77.0.1:8080/answers/pve.toml\"\n"),
				"/boot/linux26":             sized(14 * mib),
				"/boot/initrd.img":          initramfs(60),
				"/boot/grub/grub.cfg":       config(t, "proxmox-ve-8.2.grub.cfg"),
				"/pve-installer.squashfs":   sized(120 * mib),
			},
		},
		{
			name: "mt86plus_7.20_64", family: FamilyMemtest, arch: "x86_64",
			fs: MapFS{
				"/boot/floppy.img":      sized(1440 * kib),
				"/EFI/BOOT/bootx64.efi": sized(150 * kib),
			},
		},
		{
			name: "VMware-VMvisor-Installer-8.0U3", family: FamilyESXi, version: "8.0.3-0.0.24022510", arch: "x86_64",
			fs: MapFS{
				"/boot.cfg":             config(t, "esxi-8.0u3.boot.cfg"),
				"/efi/boot/boot.cfg":    config(t, "esxi-8.0u3.boot.cfg"),
				"/efi/boot/bootx64.efi": sized(200 * kib),
				"/b.b00":                sized(4 * mib),
				"/mboot.c32":            sized(80 * kib),
				"/isolinux.cfg":         text("DEFAULT menu.c32\nLABEL install\n  KERNEL mboot.c32\n  APPEND -c boot.cfg\n"),
			},
		},
		{
			// Not recognised (archiso-based, but renamed kernel): offered its own entries.
			name: "systemrescue-11.02-amd64", family: FamilyUnknown, arch: "x86_64",
			fs: MapFS{
				"/boot/grub/grub.cfg":                  config(t, "systemrescue-11.02.grub.cfg"),
				"/sysresccd/boot/x86_64/vmlinuz":       sized(13 * mib),
				"/sysresccd/boot/x86_64/sysresccd.img": initramfs(90),
				"/sysresccd/boot/intel_ucode.img":      sized(8 * mib),
				"/sysresccd/boot/amd_ucode.img":        sized(80 * kib),
				"/sysresccd/x86_64/airootfs.sfs":       sized(800 * mib),
				"/EFI/boot/bootx64.efi":                sized(900 * kib),
				"/EFI/shell.efi":                       sized(1 * mib),
			},
		},
		{
			// Nothing bootable as a kernel: sanboot only.
			name: "FD14-LiveCD", family: FamilyUnknown,
			fs: MapFS{
				"/isolinux/isolinux.cfg": text("DEFAULT live\nLABEL live\n  COM32 /isolinux/menu.c32\nLABEL hd\n  LOCALBOOT 0x80\n"),
				"/isolinux/isolinux.bin": sized(40 * kib),
				"/FREEDOS.IMG":           sized(1440 * kib),
			},
		},
	}
}
