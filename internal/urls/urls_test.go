package urls

import "testing"

// The URLs machines get: these exact strings are in DHCP replies, scripts and command lines
// already in the field, so a change here is a change of fleetboot's interface.
func TestURLsHandedToMachines(t *testing.T) {
	b := Base("http://10.77.0.1:8080")
	iso := b.ISO("0123456789abcdef")
	for _, c := range []struct{ got, want string }{
		{b.BootScript(), "http://10.77.0.1:8080/boot.ipxe"},
		{b.IPXE("snponly.efi"), "http://10.77.0.1:8080/ipxe/snponly.efi"},
		{b.SecureBoot("shimx64.efi"), "http://10.77.0.1:8080/secureboot/shimx64.efi"},
		{b.Asset("/dir/a b#c"), "http://10.77.0.1:8080/assets/dir/a%20b%23c"},
		{iso, "http://10.77.0.1:8080/isos/0123456789abcdef"},
		{ISOFile(iso, "/casper/vmlinuz?x"), "http://10.77.0.1:8080/isos/0123456789abcdef/files/casper/vmlinuz%3Fx"},
		{ISOFiles(iso + "/"), "http://10.77.0.1:8080/isos/0123456789abcdef/files/"},
		{ISOImageURL(iso), "http://10.77.0.1:8080/isos/0123456789abcdef/image.iso"},
		{b.Unattended("52:54:00:12:34:56"), "http://10.77.0.1:8080/unattended/52-54-00-12-34-56"},
		{b.Done("52:54:00:12:34:56"), "http://10.77.0.1:8080/boot/done/52-54-00-12-34-56"},
		{b.Progress("52:54:00:12:34:56"), "http://10.77.0.1:8080/boot/progress/52-54-00-12-34-56"},
		{b.ProxmoxAnswer(), "http://10.77.0.1:8080/proxmox/answer"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}
