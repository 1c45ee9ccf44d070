package distro

import (
	"errors"
	"strings"
	"testing"
)

func TestArchFitsKeepsArm64AndX86Apart(t *testing.T) {
	cases := []struct {
		machine, entry string
		want           bool
	}{
		{"arm64", "arm64", true},
		{"x86_64", "x86_64", true},
		{"i386", "x86_64", true}, // BIOS iPXE is an i386 build on 64-bit machines
		{"x86_64", "i386", true},
		{"arm64", "x86_64", false},
		{"x86_64", "arm64", false},
		{"i386", "arm64", false},
		{"arm64", "aarch64", true}, // distribution spelling, normalised
		{"", "arm64", true},        // machine not identified yet
		{"arm64", "", true},        // image of unknown architecture
		{"riscv64", "x86_64", false},
	}
	for _, c := range cases {
		if got := ArchFits(c.machine, c.entry); got != c.want {
			t.Errorf("ArchFits(%q, %q) = %v, want %v", c.machine, c.entry, got, c.want)
		}
	}
}

func TestForMachinePicksTheEntryOfTheMachinesArchitecture(t *testing.T) {
	both := []Entry{
		{ID: "install", Kernel: "/boot/x86_64/loader/linux", Arch: "x86_64", Firmware: FirmwareBoth},
		{ID: "install", Kernel: "/boot/aarch64/loader/linux", Arch: "arm64", Firmware: FirmwareUEFI},
		{ID: "sanboot", Firmware: FirmwareBoth, Sanboot: true},
	}
	arm := []Entry{{ID: "install", Kernel: "/linux", Arch: "arm64", Firmware: FirmwareUEFI}}
	bios := []Entry{{ID: "memtest-uefi", Kernel: "/a.efi", Arch: "x86_64", Firmware: FirmwareUEFI}}
	cases := []struct {
		name      string
		entries   []Entry
		id, arch  string
		fw        Firmware
		kernel    string
		wrongArch bool
		errWords  string
	}{
		{"x86 machine, combined ISO", both, "install", "x86_64", FirmwareUEFI, "/boot/x86_64/loader/linux", false, ""},
		{"BIOS x86 machine, combined ISO", both, "install", "i386", FirmwareBIOS, "/boot/x86_64/loader/linux", false, ""},
		{"arm64 machine, combined ISO", both, "install", "arm64", FirmwareUEFI, "/boot/aarch64/loader/linux", false, ""},
		{"arm64 machine, no ID", both, "", "arm64", FirmwareUEFI, "/boot/aarch64/loader/linux", false, ""},
		{"unknown machine takes the first", both, "install", "", FirmwareBoth, "/boot/x86_64/loader/linux", false, ""},
		{"arm64 ISO on an x86 machine", arm, "install", "x86_64", FirmwareUEFI, "", true, "built for arm64, this machine is x86_64"},
		{"arm64 ISO on a BIOS machine, no ID", arm, "", "i386", FirmwareBIOS, "", true, "built for arm64, this machine is i386"},
		{"firmware mismatch is not an arch mismatch", bios, "memtest-uefi", "i386", FirmwareBIOS, "", false, "uefi firmware only"},
		{"unknown ID", arm, "rescue", "arm64", FirmwareUEFI, "", false, "no such boot entry: boot entry rescue"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := ForMachine(c.entries, c.id, c.arch, c.fw)
			if c.kernel != "" {
				if err != nil || e.Kernel != c.kernel {
					t.Fatalf("got %+v, %v; want kernel %s", e, err, c.kernel)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %+v, want an error", e)
			}
			if errors.Is(err, ErrWrongArch) != c.wrongArch || !strings.Contains(err.Error(), c.errWords) {
				t.Errorf("error %q (ErrWrongArch: %v), want %q (ErrWrongArch: %v)", err, errors.Is(err, ErrWrongArch), c.errWords, c.wrongArch)
			}
		})
	}
}

// TestCombinedTreeOffersOneInstallPerArchitecture runs the whole recipe over a tree with
// kernels for both architectures and checks each machine gets its own.
func TestCombinedTreeOffersOneInstallPerArchitecture(t *testing.T) {
	for _, l := range layouts(t) {
		if l.name != "custom-sles-15.6-x86_64-aarch64" {
			continue
		}
		entries, err := Recipe(Detect(l.fs), l.fs, testParams)
		if err != nil {
			t.Fatal(err)
		}
		for arch, kernel := range map[string]string{"x86_64": "/boot/x86_64/loader/linux", "arm64": "/boot/aarch64/loader/linux"} {
			e, err := ForMachine(entries, "install", arch, FirmwareUEFI)
			if err != nil || e.Kernel != kernel {
				t.Errorf("%s machine: %+v, %v; want %s", arch, e, err, kernel)
			}
		}
		return
	}
	t.Fatal("layout custom-sles-15.6-x86_64-aarch64 missing")
}
