package grub

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/urls"
)

var testCfg = Config{HTTPBase: "http://10.77.0.1:8080", MenuTimeout: 2500 * time.Millisecond, IPXEFile: "snponly.efi"}

func TestDeviceCarriesThePortUnlessItIs80(t *testing.T) {
	for base, want := range map[string]string{
		"http://10.77.0.1:8080": "(http,10.77.0.1:8080)",
		"http://10.77.0.1:80":   "(http,10.77.0.1)",
		"http://10.77.0.1":      "(http,10.77.0.1)",
		"http://boot.lan:81":    "(http,boot.lan:81)",
	} {
		if got := (Config{HTTPBase: base}).Device(); got != want {
			t.Errorf("Device(%s) = %s, want %s", base, got, want)
		}
	}
}

func TestBootstrapChecksSecureBootAndAsksForTheMachinesConfig(t *testing.T) {
	got := string(Bootstrap(testCfg))
	for _, want := range []string{
		`if [ "$lockdown" = "y" -o "$shim_lock" = "y" ]; then`,
		"configfile (http,10.77.0.1:8080)/grub/mac/${net_default_mac}/sb-${fb_sb}.cfg",
		"exit 1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("bootstrap lacks %q:\n%s", want, got)
		}
	}
}

func TestBootQuotesEveryWordAndReportsFailures(t *testing.T) {
	target := ipxe.BootTarget{
		Label:  "ubuntu: it's here",
		Kernel: "http://10.77.0.1:8080/isos/ab/files/casper/vmlinuz",
		Initrds: []ipxe.Initrd{
			{Name: "initrd", URL: "http://10.77.0.1:8080/isos/ab/files/casper/initrd"},
			{Name: "iso", URL: "http://10.77.0.1:8080/isos/ab/image.iso", As: "/proxmox.iso"},
		},
		Cmdline: "ip=dhcp ds=nocloud-net;s=http://10.77.0.1:8080/unattended/x/ $HOME console=ttyS0",
	}
	got := string(Boot(testCfg, "52:54:00:aa:bb:cc", target))
	for _, want := range []string{
		"if linux '(http,10.77.0.1:8080)/isos/ab/files/casper/vmlinuz' 'ip=dhcp' 'ds=nocloud-net;s=http://10.77.0.1:8080/unattended/x/' '$HOME' 'console=ttyS0'; then",
		"initrd '(http,10.77.0.1:8080)/isos/ab/files/casper/initrd' 'newc:proxmox.iso:(http,10.77.0.1:8080)/isos/ab/image.iso'",
		`echo 'fleetboot: booting ubuntu: it'\''s here'`,
		"source (http,10.77.0.1:8080)/grub/mac/52:54:00:aa:bb:cc/failed/${fb_step}.cfg",
		"exit 1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("boot config lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "initrd=") {
		t.Errorf("GRUB hands initrds over itself; no initrd= needed:\n%s", got)
	}
}

func TestSanbootTargetsSayGRUBCannotBootThem(t *testing.T) {
	got := string(Boot(testCfg, "52:54:00:aa:bb:cc", ipxe.BootTarget{Label: "memtest", Sanboot: "http://10.77.0.1:8080/isos/x/image.iso"}))
	if !strings.Contains(got, "sanboot") || !strings.Contains(got, "failed/${fb_step}.cfg") || strings.Contains(got, "linux ") {
		t.Errorf("sanboot target under GRUB:\n%s", got)
	}
}

func TestMenuDefaultsToLocalDiskAfterTheTimeout(t *testing.T) {
	got := string(Menu(testCfg, "52:54:00:aa:bb:cc", "fleetboot", []ipxe.MenuItem{{Name: "deb 12", Label: "Install deb (x)"}}))
	for _, want := range []string{
		"set timeout=3", "set default=local", "menuentry 'Boot from local disk' --id local {\n  exit 1",
		"menuentry 'Install Install deb (x)' {\n  configfile (http,10.77.0.1:8080)/grub/mac/52:54:00:aa:bb:cc/profile/deb%2012.cfg",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("menu lacks %q:\n%s", want, got)
		}
	}
}

func TestChainIPXEChainloadsFleetbootsIPXE(t *testing.T) {
	got := string(ChainIPXE(testCfg, "52:54:00:aa:bb:cc"))
	if !strings.Contains(got, "chainloader (http,10.77.0.1:8080)/ipxe/snponly.efi") || !strings.Contains(got, "boot") {
		t.Errorf("chain config:\n%s", got)
	}
}

func TestLoadChainNeedsShimAndGRUB(t *testing.T) {
	full := fstest.MapFS{
		"shimx64.efi":    {Data: []byte("shim")},
		"grubnetx64.efi": {Data: []byte("grub")},
		"VERSION":        {Data: []byte("debian test\n")},
	}
	c, err := LoadChain(full, "test")
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != "debian test" || string(c.Shim.Data) != "shim" || c.GRUB.Name != GRUBFile {
		t.Errorf("chain = %+v", c)
	}
	files := c.StaticFiles(testCfg)
	for _, name := range []string{"shimx64.efi", "grubx64.efi", "grub/grub.cfg", "grub/x86_64-efi/command.lst", "grub/x86_64-efi/fs.lst"} {
		if _, ok := files[name]; !ok {
			t.Errorf("static files lack %s", name)
		}
	}
	if len(files["grub/x86_64-efi/fs.lst"]) == 0 {
		t.Error("module lists must not be empty (GRUB aborts zero-byte TFTP transfers)")
	}
	for _, missing := range []string{"shimx64.efi", "grubnetx64.efi"} {
		part := fstest.MapFS{}
		for k, v := range full {
			if k != missing {
				part[k] = v
			}
		}
		if _, err := LoadChain(part, "test"); err == nil || !strings.Contains(err.Error(), "fetch-secureboot.sh") {
			t.Errorf("without %s: %v", missing, err)
		}
	}
}

func TestOptionalShimFiles(t *testing.T) {
	for name, want := range map[string]bool{"revocations_sbat.efi": true, "revocations_sku.efi": true,
		"shim_certificate_0.efi": true, "grubx64.efi": false, "mmx64.efi": false} {
		if IsOptional(name) != want {
			t.Errorf("IsOptional(%s) = %v", name, !want)
		}
	}
}

// GRUB's built-in prefix and the HTTP route that serves it are one directory: the configs
// fleetboot renders point below urls.GRUBDir, the signed GRUB looks below Prefix.
func TestPrefixIsTheGRUBRoute(t *testing.T) {
	if "/"+Prefix+"/" != urls.GRUBDir {
		t.Errorf("Prefix %q, urls.GRUBDir %q", Prefix, urls.GRUBDir)
	}
	if got := MachineConfigPath("52:54:00:12:34:56", "on"); got != "/grub/mac/52:54:00:12:34:56/sb-on.cfg" {
		t.Errorf("MachineConfigPath = %q", got)
	}
}
