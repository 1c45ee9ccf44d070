package secureboot

import "testing"

// SBAT sections of the GRUBs this was verified with (read out of the images).
const (
	sbatBookwormDI = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n" +
		"grub,5,Free Software Foundation,grub,2.06,https://www.gnu.org/software/grub/\n" +
		"grub.debian,5,Debian,grub2,2.06-13+deb12u2,https://tracker.debian.org/pkg/grub2"
	sbatTrixie = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n" +
		"grub,7,Free Software Foundation,grub,2.12,https://www.gnu.org/software/grub/\n" +
		"grub.debian,5,Debian,grub2,2.12-9+deb13u4,https://tracker.debian.org/pkg/grub2"
)

func TestPairOverHTTPBootNeedsGRUB212(t *testing.T) {
	for _, c := range []struct {
		sbat, version string
		ok            bool
	}{
		{sbatBookwormDI, "2.06", false},
		{sbatTrixie, "2.12", true},
		{"grub,8,Free Software Foundation,grub,2.14,x", "2.14", true},
		{"grub,9,Free Software Foundation,grub,3.0~rc1,x", "3.0~rc1", true},
		{"grub,4,Free Software Foundation,grub,2.04,x", "2.04", false},
		{"sbat,1,SBAT Version,sbat,1,x", "", false},
		{"", "", false},
		{"grub,,,,", "", false},
	} {
		if v := GRUBVersion(c.sbat); v != c.version {
			t.Errorf("GRUBVersion(%q) = %q, want %q", c.sbat, v, c.version)
		}
		ok, why := Pair{GRUBSBAT: c.sbat}.OverHTTPBoot()
		if ok != c.ok || ok != (why == "") {
			t.Errorf("OverHTTPBoot(%q) = %v %q, want %v", c.sbat, ok, why, c.ok)
		}
	}
}
