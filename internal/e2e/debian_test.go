package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// diLanguagePrompt is what the real Debian installer prints on its serial console when it is
// up: the first question of the text frontend.
const diLanguagePrompt = "Select a language"

// diNetbootDir is where Debian's debian-installer-12-netboot-<arch> package keeps the text
// installer's netboot files (kernel, initrd, and the signed shim + network GRUB pair).
func diNetbootDir(arch string) string {
	return fmt.Sprintf("/usr/lib/debian-installer/images/12/%s/text/debian-installer/%s", arch, arch)
}

// diEFINames are the names of the signed pair in the netboot package and the removable-media
// names a mini.iso carries them under, per architecture.
var diEFINames = map[string]struct{ shim, grub, bootName, grubName string }{
	"amd64": {"bootnetx64.efi", "grubx64.efi", "bootx64.efi", "grubx64.efi"},
	"arm64": {"bootnetaa64.efi", "grubaa64.efi", "bootaa64.efi", "grubaa64.efi"},
}

// debianInstallerISO builds an ISO in the layout of Debian 12's netboot mini.iso out of the real
// installer of Debian's debian-installer-12-netboot-<arch> package (arch "amd64" or "arm64") and
// returns its path (in t's temporary directory): the Debian-signed kernel /linux and
// /initrd.gz at the root, the signed shim and GRUB as EFI/boot/boot<x64|aa64>.efi +
// grub<x64|aa64>.efi, GRUB's menu in /boot/grub/grub.cfg (the package's, with the netboot
// paths turned into the mini.iso ones) and, on amd64, the isolinux menu files. bootArgs, when
// given, are added to every kernel line of those boot configs, as a site's remix of the ISO
// (e.g. for serial-only servers) would have them. The test is skipped (or failed when the
// suite is demanded) if the package is not installed.
func debianInstallerISO(t *testing.T, arch string, bootArgs ...string) string {
	t.Helper()
	names, ok := diEFINames[arch]
	if !ok {
		t.Fatalf("debianInstallerISO: no Debian installer layout for arch %q (amd64, arm64)", arch)
	}
	src := diNetbootDir(arch)
	if _, err := os.Stat(filepath.Join(src, "linux")); err != nil {
		msg := fmt.Sprintf("real Debian installer missing (apt-get install debian-installer-12-netboot-%s): %v", arch, err)
		if e2eDemanded() && !e2eDisabled() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	tree := filepath.Join(t.TempDir(), "debian-12-"+arch+"-mini")
	copies := map[string]string{
		"linux":                      "linux",
		"initrd.gz":                  "initrd.gz",
		"EFI/boot/" + names.bootName: names.shim,
		"EFI/boot/" + names.grubName: names.grub,
		"boot/grub/font.pf2":         "grub/font.pf2",
	}
	for dst, from := range copies {
		if err := copyFile(filepath.Join(src, from), filepath.Join(tree, dst)); err != nil {
			if os.IsNotExist(err) && dst == "boot/grub/font.pf2" {
				continue // cosmetic; not every build ships it
			}
			t.Fatalf("debianInstallerISO: %v", err)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(src, "grub", "grub.cfg"))
	if err != nil {
		t.Fatalf("debianInstallerISO: %v", err)
	}
	// The netboot tree keeps the installer below debian-installer/<arch>/; mini.iso has it at
	// the root.
	grubCfg := strings.ReplaceAll(string(cfg), "/debian-installer/"+arch+"/", "/")
	extra := ""
	if len(bootArgs) > 0 {
		extra = " " + strings.Join(bootArgs, " ")
		grubCfg = strings.ReplaceAll(grubCfg, " /linux ", " /linux"+extra+" ")
	}
	files := map[string]string{"boot/grub/grub.cfg": grubCfg}
	if arch == "amd64" {
		files["isolinux.cfg"] = "path \ninclude menu.cfg\ndefault vesamenu.c32\nprompt 0\ntimeout 0\n"
		files["menu.cfg"] = "menu hshift 4\nmenu width 70\nmenu title Debian GNU/Linux installer menu (BIOS mode)\ninclude txt.cfg\n"
		files["txt.cfg"] = "default install\nlabel install\n\tmenu label ^Install\n\tmenu default\n\tkernel linux\n\tappend vga=788" + extra + " initrd=initrd.gz --- quiet\n"
	}
	for p, body := range files {
		dst := filepath.Join(tree, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := tree + ".iso"
	cmd := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", "ISOIMAGE", "-o", iso, tree)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("debianInstallerISO: xorriso: %v\n%s", err, out)
	}
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	return iso
}

// runOut runs a command and returns its combined output.
func runOut(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// copyFile copies src to dst, creating dst's directory.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// TestDebianInstallerISOHasTheMiniISOLayout checks the fixture against what fleetboot must find
// in it: detection as Debian netboot with the real kernel and initrd as the recipe, for every
// architecture whose installer package is installed.
func TestDebianInstallerISOHasTheMiniISOLayout(t *testing.T) {
	if _, err := exec.LookPath("xorriso"); err != nil {
		t.Skip("xorriso missing (apt-get install xorriso)")
	}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(diNetbootDir(arch), "linux")); err != nil {
				t.Skipf("debian-installer-12-netboot-%s not installed", arch)
			}
			iso := debianInstallerISO(t, arch)
			out, err := exec.Command("xorriso", "-indev", iso, "-find", "/", "-type", "f").CombinedOutput()
			if err != nil {
				t.Fatalf("xorriso -find: %v\n%s", err, out)
			}
			names := diEFINames[arch]
			for _, want := range []string{"'/linux'", "'/initrd.gz'", "'/boot/grub/grub.cfg'",
				"'/EFI/boot/" + names.bootName + "'", "'/EFI/boot/" + names.grubName + "'"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("ISO lacks %s:\n%s", want, out)
				}
			}
			cfg := filepath.Join(t.TempDir(), "grub.cfg")
			if out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/boot/grub/grub.cfg", cfg).CombinedOutput(); err != nil {
				t.Fatalf("xorriso -extract: %v\n%s", err, out)
			}
			b, _ := os.ReadFile(cfg)
			if !strings.Contains(string(b), " /linux ") || !strings.Contains(string(b), " /initrd.gz") || strings.Contains(string(b), "debian-installer/") {
				t.Errorf("grub.cfg does not boot the mini.iso paths:\n%s", b)
			}
		})
	}
}
