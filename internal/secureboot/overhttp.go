package secureboot

import (
	"strconv"
	"strings"
)

// GRUBVersion is the upstream GRUB version a GRUB image declares in its SBAT section (the
// "grub" component line: "grub,7,Free Software Foundation,grub,2.12,…"), e.g. "2.12"; "" when
// it declares none.
func GRUBVersion(sbat string) string {
	for _, line := range strings.Split(sbat, "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) >= 5 && f[0] == "grub" {
			return strings.TrimSpace(f[4])
		}
	}
	return ""
}

// minHTTPBootGRUB is the oldest upstream GRUB a pair is served to UEFI HTTP Boot clients with.
const minHTTPBootGRUB = "2.12"

// OverHTTPBoot says whether the pair may be handed to UEFI HTTP Boot clients, and why not.
//
// Firmware fact (QEMU, OVMF Secure Boot, README "firmware facts"): Debian bookworm's signed
// network GRUB 2.06 boots over PXE but, loaded by UEFI HTTP Boot, fetches no config at all and
// stops at its prompt; trixie's GRUB 2.12 fetches its config over HTTP and takes the
// (http,host:port) device fleetboot's configs use (upstream GRUB before 2.12 always connects
// to port 80). So only GRUB 2.12 or newer, by the upstream version in its SBAT, is trusted
// with HTTP Boot; older ones (and GRUBs that declare no version) are served over PXE only and
// HTTP Boot clients get fleetboot's own pair instead.
func (p Pair) OverHTTPBoot() (bool, string) {
	v := GRUBVersion(p.GRUBSBAT)
	if v == "" {
		return false, "its GRUB declares no upstream version in SBAT; served over PXE only"
	}
	if versionLess(v, minHTTPBootGRUB) {
		return false, "its GRUB is " + v + ": GRUB before " + minHTTPBootGRUB + " does not boot over UEFI HTTP Boot with fleetboot's configs (fetches no config, no HTTP port); served over PXE only"
	}
	return true, ""
}

// versionLess compares dotted numeric versions ("2.06" < "2.12"); a non-numeric part compares
// as 0.
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(leadingDigits(as[i]))
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(leadingDigits(bs[i]))
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func leadingDigits(s string) string {
	for i, r := range s {
		if r < '0' || r > '9' {
			return s[:i]
		}
	}
	return s
}
