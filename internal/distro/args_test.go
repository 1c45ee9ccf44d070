package distro

import (
	"strings"
	"testing"
)

// remix returns the named layout with some files replaced, as an ISO remixed by its vendor or
// a site (serial console, a baked-in kickstart) would have them.
func remix(t *testing.T, name string, files MapFS) MapFS {
	t.Helper()
	for _, l := range layouts(t) {
		if l.name != name {
			continue
		}
		fs := MapFS{}
		for k, v := range l.fs {
			fs[k] = v
		}
		for k, v := range files {
			fs[k] = v
		}
		return fs
	}
	t.Fatalf("no layout %s", name)
	return nil
}

// TestRecipeKeepsTheISOsOwnArguments checks, per family, that the recipe starts from the ISO's
// boot entry: arguments only the ISO carries reach the command line, medium-locating ones are
// dropped or rewritten with a reason, and the profile's arguments come last and win.
func TestRecipeKeepsTheISOsOwnArguments(t *testing.T) {
	iso := testParams.ISOURL
	ua := withUnattended(testParams).UnattendedURL
	cases := []struct {
		name   string
		layout string
		files  MapFS
		params Params
		// want is the exact final command line of the first entry.
		want string
		// decisions are "arg action" pairs (and " now" for rewrites) that must be recorded.
		decisions []string
	}{
		{
			name: "debian mini.iso remixed for serial: console and --- quiet kept, vga dropped", layout: "debian-12-amd64-mini",
			files:     MapFS{"/boot/grub/grub.cfg": text("menuentry 'Install' {\n    linux    /linux vga=788 console=ttyS0,115200n8 --- quiet\n    initrd   /initrd.gz\n}\n")},
			params:    testParams,
			want:      "console=ttyS0,115200n8 --- quiet",
			decisions: []string{"vga=788 dropped", "console=ttyS0,115200n8 kept", "--- kept", "quiet kept"},
		},
		{
			name: "debian unattended: the recipe's installer arguments go before ---", layout: "debian-12-amd64-mini",
			files:  MapFS{"/boot/grub/grub.cfg": text("menuentry 'Install' {\n    linux    /linux vga=788 console=ttyS0 --- quiet\n    initrd   /initrd.gz\n}\n")},
			params: withUnattended(testParams),
			want:   "console=ttyS0 auto=true priority=critical url=" + ua + " --- quiet",
		},
		{
			name: "rocky boot.iso with a kickstart on the medium: rewritten to the ISO over HTTP", layout: "Rocky-9.4-x86_64-boot",
			files: MapFS{
				"/EFI/BOOT/grub.cfg": text("menuentry 'Install Rocky Linux 9.4' {\n\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=Rocky-9-4-x86_64-dvd inst.ks=hd:LABEL=Rocky-9-4-x86_64-dvd:/ks/site.cfg fips=1 quiet\n\tinitrdefi /images/pxeboot/initrd.img\n}\n"),
				"/ks/site.cfg":       text("text\n"),
			},
			params: testParams,
			want:   "inst.ks=" + iso + "/files/ks/site.cfg fips=1 quiet ip=dhcp inst.stage2=" + iso + "/files/",
			decisions: []string{"inst.stage2=hd:LABEL=Rocky-9-4-x86_64-dvd rewritten inst.stage2=" + iso + "/files/",
				"inst.ks=hd:LABEL=Rocky-9-4-x86_64-dvd:/ks/site.cfg rewritten inst.ks=" + iso + "/files/ks/site.cfg", "fips=1 kept"},
		},
		{
			name: "rocky with a vendor's inst.ks URL: kept unless the profile has a kickstart", layout: "Rocky-9.4-x86_64-boot",
			files:     MapFS{"/EFI/BOOT/grub.cfg": text("menuentry 'Install' {\n\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=X inst.ks=http://vendor.example/ks.cfg\n\tinitrdefi /images/pxeboot/initrd.img\n}\n")},
			params:    withUnattended(testParams),
			want:      "ip=dhcp inst.stage2=" + iso + "/files/ inst.ks=" + ua,
			decisions: []string{"inst.ks=http://vendor.example/ks.cfg rewritten inst.ks=" + ua},
		},
		{
			name: "profile arguments come last and replace the same key", layout: "Rocky-9.4-x86_64-boot",
			files:     MapFS{"/EFI/BOOT/grub.cfg": text("menuentry 'Install' {\n\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=X console=ttyS0,115200n8 quiet\n\tinitrdefi /images/pxeboot/initrd.img\n}\n")},
			params:    Params{ISOURL: iso, ExtraArgs: "console=ttyS1,9600 ip=eth0:dhcp quiet"},
			want:      "inst.stage2=" + iso + "/files/ console=ttyS1,9600 ip=eth0:dhcp quiet",
			decisions: []string{"console=ttyS0,115200n8 dropped", "quiet kept"},
		},
		{
			name: "arch: label and search arguments dropped, the ISO's tuning kept", layout: "archlinux-2024.09.01-x86_64",
			files:     MapFS{"/loader/entries/01-archiso-x86_64-linux.conf": text("title Arch\nlinux /arch/boot/x86_64/vmlinuz-linux\ninitrd /arch/boot/intel-ucode.img\ninitrd /arch/boot/amd-ucode.img\ninitrd /arch/boot/x86_64/initramfs-linux.img\noptions archisobasedir=arch archisosearchuuid=2024-09-01-17-19-03-00 cow_spacesize=4G\n")},
			params:    testParams,
			want:      "cow_spacesize=4G archisobasedir=arch archiso_http_srv=" + iso + "/files/ ip=dhcp cms_verify=y",
			decisions: []string{"archisosearchuuid=2024-09-01-17-19-03-00 dropped", "cow_spacesize=4G kept"},
		},
		{
			name: "ubuntu: iso-scan dropped, console after --- kept", layout: "ubuntu-24.04.1-desktop-amd64",
			files:     MapFS{"/boot/grub/grub.cfg": text("menuentry \"Try\" {\n\tlinux\t/casper/vmlinuz iso-scan/filename=/ubuntu.iso --- console=ttyS0 quiet splash\n\tinitrd\t/casper/initrd\n}\n")},
			params:    testParams,
			want:      "ip=dhcp url=" + iso + "/image.iso cloud-config-url=/dev/null root=/dev/ram0 --- console=ttyS0 quiet splash",
			decisions: []string{"iso-scan/filename=/ubuntu.iso dropped"},
		},
		{
			name: "fedora live: media check dropped, root rewritten", layout: "Fedora-Workstation-Live-x86_64-41-1.4",
			files: MapFS{
				"/boot/grub2/grub.cfg": text("menuentry 'Test' {\n\tlinux /images/pxeboot/vmlinuz root=live:CDLABEL=Fedora-WS-Live-41-1-4 rd.live.image rd.live.check quiet\n\tinitrd /images/pxeboot/initrd.img\n}\n"),
				"/EFI/BOOT/grub.cfg":   text("menuentry 'Test' {\n\tlinux /images/pxeboot/vmlinuz root=live:CDLABEL=Fedora-WS-Live-41-1-4 rd.live.image rd.live.check quiet\n\tinitrd /images/pxeboot/initrd.img\n}\n"),
			},
			params:    testParams,
			want:      "quiet root=live:" + iso + "/files/LiveOS/squashfs.img rd.live.image rd.neednet=1 ip=dhcp",
			decisions: []string{"rd.live.check dropped", "root=live:CDLABEL=Fedora-WS-Live-41-1-4 rewritten root=live:" + iso + "/files/LiveOS/squashfs.img"},
		},
		{
			name: "opensuse: install=cd:/ rewritten", layout: "openSUSE-Leap-15.6-DVD-x86_64",
			files:     MapFS{"/EFI/BOOT/grub.cfg": text("menuentry 'Installation' {\n\tlinux /boot/x86_64/loader/linux install=cd:/ splash=silent textmode=1\n\tinitrd /boot/x86_64/loader/initrd\n}\n")},
			params:    testParams,
			want:      "splash=silent textmode=1 install=" + iso + "/files/ netsetup=dhcp",
			decisions: []string{"install=cd:/ rewritten install=" + iso + "/files/"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := remix(t, c.layout, c.files)
			entries, err := Recipe(Detect(fs), fs, c.params)
			if err != nil {
				t.Fatal(err)
			}
			e := entries[0]
			if e.Cmdline != c.want {
				t.Errorf("command line\n got %q\nwant %q\n(iso args %+v)", e.Cmdline, c.want, e.ISOArgs)
			}
			if e.ISOEntry == "" {
				t.Error("no ISO entry named")
			}
			var got []string
			for _, d := range e.ISOArgs {
				s := d.Arg + " " + string(d.Action)
				if d.Now != "" {
					s += " " + d.Now
				}
				got = append(got, s)
				if d.Action != ArgKept && d.Why == "" {
					t.Errorf("%s %s without a reason", d.Arg, d.Action)
				}
			}
			for _, w := range c.decisions {
				found := false
				for _, g := range got {
					found = found || g == w
				}
				if !found {
					t.Errorf("decision %q missing from\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}
