package grub

import (
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/secureboot"
	"github.com/fleetboot/fleetboot/internal/urls"
)

// testPairs: Debian 12's d-i pair (GRUB 2.06, prefix /debian-installer/amd64/grub), a Debian
// CD pair with GRUB 2.12, a Fedora-style pair that looks beside itself, and one whose shim does
// not trust its GRUB (never served).
var testPairs = []ISOPair{
	{ISO: "aaaa", Pair: secureboot.Pair{Arch: "x86_64", Shim: "/EFI/boot/bootx64.efi", GRUB: "/EFI/boot/grubx64.efi", Loader: "grubx64.efi", GRUBTrusted: true,
		Prefix:      "/debian-installer/amd64/grub",
		ConfigPaths: []string{"/debian-installer/amd64/grub/x86_64-efi/grub.cfg", "/debian-installer/amd64/grub/grub.cfg"},
		GRUBSBAT:    "grub,5,Free Software Foundation,grub,2.06,x"}},
	{ISO: "bbbb", Pair: secureboot.Pair{Arch: "x86_64", Shim: "/EFI/BOOT/BOOTX64.EFI", GRUB: "/EFI/BOOT/GRUBX64.EFI", Loader: "grubx64.efi", GRUBTrusted: true,
		Prefix:      "/boot/grub",
		ConfigPaths: []string{"/boot/grub/x86_64-efi/grub.cfg", "/boot/grub/grub.cfg", "{dir}/grub.cfg"},
		GRUBSBAT:    "grub,7,Free Software Foundation,grub,2.12,x"}},
	{ISO: "cccc", Pair: secureboot.Pair{Arch: "x86_64", Shim: "/EFI/BOOT/BOOTX64.EFI", GRUB: "/EFI/BOOT/grubx64.efi", Loader: "grubx64.efi", GRUBTrusted: true,
		Prefix:      "/EFI/BOOT",
		ConfigPaths: []string{"{dir}/grub.cfg-{mac}", "{dir}/grub.cfg", "/EFI/BOOT/grub.cfg-{mac}", "/EFI/BOOT/grub.cfg"},
		GRUBSBAT:    "grub,3,Free Software Foundation,grub,2.06,x"}},
	{ISO: "dddd", Pair: secureboot.Pair{Arch: "x86_64", Shim: "/EFI/BOOT/BOOTX64.EFI", GRUB: "/EFI/BOOT/grubx64.efi", Loader: "grubx64.efi",
		Prefix: "/untrusted/grub", ConfigPaths: []string{"/untrusted/grub/grub.cfg"}}},
	{ISO: "eeee", Pair: secureboot.Pair{Arch: "arm64", Shim: "/EFI/BOOT/BOOTAA64.EFI", GRUB: "/EFI/BOOT/grubaa64.efi", Loader: "grubaa64.efi", GRUBTrusted: true,
		Prefix: "/arm/grub", ConfigPaths: []string{"/arm/grub/grub.cfg"}}},
}

func TestShimPathIsInThePairsOwnDirectory(t *testing.T) {
	if got := testPairs[1].ShimPath(); got != "isopair/bbbb/bootx64.efi" {
		t.Errorf("ShimPath = %q", got)
	}
}

func TestResolvePair(t *testing.T) {
	const tftpDev, httpDev = "(tftp,10.77.0.1)/grub/mac/", "(http,10.77.0.1:8080)/grub/mac/"
	cfg := testCfg
	cfg.TFTPServer = "10.77.0.1"
	for _, c := range []struct {
		path    string
		viaTFTP bool
		iso     string // ISO file expected
		file    string
		config  string // part of the generated config expected; "" for none
	}{
		{path: "isopair/aaaa/bootx64.efi", iso: "aaaa", file: "/EFI/boot/bootx64.efi"},
		{path: "isopair/aaaa/grubx64.efi", viaTFTP: true, iso: "aaaa", file: "/EFI/boot/grubx64.efi"},
		{path: "isopair/aaaa//grubx64.efi", iso: "aaaa", file: "/EFI/boot/grubx64.efi"}, // shim over HTTP
		{path: "/isopair/bbbb/BOOTX64.EFI", iso: "bbbb", file: "/EFI/BOOT/BOOTX64.EFI"},
		// The GRUB 2.06 of the d-i pair gets a bootstrap that stays on TFTP; over HTTP (which
		// it never uses) and for the 2.12 CD pair, the HTTP one.
		{path: "debian-installer/amd64/grub/grub.cfg", viaTFTP: true, config: tftpDev},
		{path: "debian-installer/amd64/grub/x86_64-efi/grub.cfg", viaTFTP: true, config: tftpDev},
		{path: "debian-installer/amd64/grub/grub.cfg", config: httpDev},
		{path: "boot/grub/grub.cfg", viaTFTP: true, config: httpDev},
		{path: "isopair/bbbb/grub.cfg", viaTFTP: true, config: httpDev},
		{path: "isopair/cccc/grub.cfg-01-52-54-00-12-34-56", viaTFTP: true, config: tftpDev},
		{path: "EFI/BOOT/grub.cfg-01-52-54-00-12-34-56", viaTFTP: true, config: tftpDev},
		{path: "isopair/cccc/grub.cfg", viaTFTP: true, config: tftpDev},
		{path: "debian-installer/amd64/grub/x86_64-efi/command.lst", viaTFTP: true, config: "\n"},
	} {
		pf, ok := ResolvePair(testPairs, c.path, cfg, c.viaTFTP)
		switch {
		case !ok:
			t.Errorf("%s (tftp %v): not resolved", c.path, c.viaTFTP)
		case pf.ISO != c.iso || pf.Path != c.file:
			t.Errorf("%s: ISO file %s:%s, want %s:%s", c.path, pf.ISO, pf.Path, c.iso, c.file)
		case c.config == "" && pf.Config != nil, c.config != "" && !strings.Contains(string(pf.Config), c.config):
			t.Errorf("%s (tftp %v): config %q, want one with %q", c.path, c.viaTFTP, pf.Config, c.config)
		}
	}
	if pf, ok := ResolvePair(testPairs, "isopair/aaaa/revocations_sbat.efi", cfg, true); !ok || !pf.Optional {
		t.Errorf("optional shim file: %+v %v", pf, ok)
	}
	for _, p := range []string{
		"isopair/aaaa/mmx64.efi", "isopair/aaaa/sub/grubx64.efi", "isopair/aaaa", "isopair/zzzz/bootx64.efi",
		"isopair/aaaa/grub.cfg",    // the d-i GRUB does not look beside itself
		"isopair/dddd/bootx64.efi", // its shim does not trust its GRUB
		"untrusted/grub/grub.cfg",
		"isopair/eeee/bootaa64.efi", "arm/grub/grub.cfg", // arm64 machines boot iPXE
		"EFI/BOOT/grub.cfg-01-52-54-00-12-34", "EFI/BOOT/grub.cfg-0a4d0001", "boot/grub/other.cfg", "grub/grub.cfg",
	} {
		if pf, ok := ResolvePair(testPairs, p, cfg, true); ok {
			t.Errorf("%s resolved to %+v", p, pf)
		}
	}
}

func TestOverTFTPLoadsEverythingFromTheTFTPServer(t *testing.T) {
	cfg := testCfg
	cfg.TFTPServer = "10.77.0.1"
	tc := cfg.OverTFTP()
	if !tc.ViaTFTP() || cfg.ViaTFTP() {
		t.Fatal("OverTFTP changed its receiver or did nothing")
	}
	boot := string(Boot(tc, "52:54:00:12:34:56", ipxe.BootTarget{Label: "d-i", Kernel: testCfg.HTTPBase + "/isos/abcd/files/install%2Eamd/vmlinuz",
		Initrds: []ipxe.Initrd{{URL: testCfg.HTTPBase + "/isos/abcd/files/initrd.gz"}}, Cmdline: "auto=true url=http://10.77.0.1:8080/unattended/x"}))
	for _, want := range []string{
		"linux '(tftp,10.77.0.1)/isos/abcd/files/install.amd/vmlinuz' 'auto=true' 'url=http://10.77.0.1:8080/unattended/x'",
		"initrd '(tftp,10.77.0.1)/isos/abcd/files/initrd.gz'",
		"source (tftp,10.77.0.1)/grub/mac/52:54:00:12:34:56/failed/${fb_step}.cfg",
	} {
		if !strings.Contains(boot, want) {
			t.Errorf("boot config over TFTP lacks %q:\n%s", want, boot)
		}
	}
	if got := string(ChainIPXE(tc, "52:54:00:12:34:56")); !strings.Contains(got, "chainloader (tftp,10.77.0.1)/snponly.efi") {
		t.Errorf("iPXE over TFTP is at the TFTP root:\n%s", got)
	}
	if got := string(ChainIPXE(cfg, "52:54:00:12:34:56")); !strings.Contains(got, "chainloader (http,10.77.0.1:8080)/ipxe/snponly.efi") {
		t.Errorf("iPXE over HTTP:\n%s", got)
	}
	if got := (Config{}).OverTFTP().Device(); got != "(tftp)" {
		t.Errorf("without a server address: %s", got)
	}
}

func TestMayBePairSkipsStrayPaths(t *testing.T) {
	for p, want := range map[string]bool{
		"isopair/aaaa/bootx64.efi": true, "/isopair/aaaa//grubx64.efi": true,
		"boot/grub/grub.cfg": true, "EFI/BOOT/grub.cfg-01-52-54-00-12-34-56": true,
		"debian-installer/amd64/grub/x86_64-efi/command.lst": true,
		"wp-login.php": false, "favicon.ico": false, "EFI/BOOT/BOOTX64.EFI": false,
	} {
		if got := MayBePair(p); got != want {
			t.Errorf("MayBePair(%s) = %v", p, got)
		}
	}
}

func TestPairRootIsTheURLLayouts(t *testing.T) {
	if "/"+PairRoot != urls.ISOPairDir {
		t.Errorf("PairRoot %q, urls.ISOPairDir %q", PairRoot, urls.ISOPairDir)
	}
}
