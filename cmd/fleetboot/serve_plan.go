package main

import (
	"fmt"
	"net"
	"strings"

	"github.com/fleetboot/fleetboot/internal/config"
)

// servePlan says what `fleetboot serve` with cfg answers, on which interface and address,
// without starting anything: `serve --dry-run` prints it, and scripts/run.sh shows it before
// the first start on a LAN. One "key: value" line each, so a script can pick a line out.
func servePlan(cfg config.Config, r *config.Resolved) string {
	var b strings.Builder
	line := func(key, format string, a ...any) {
		fmt.Fprintf(&b, "%-10s %s\n", key+":", fmt.Sprintf(format, a...))
	}
	how := "--interface"
	if cfg.Interface == "" {
		how = "the default route's; --interface to choose another"
	}
	line("interface", "%s (%s)", firstNonEmpty(r.Interface, "none"), how)
	addr := "none"
	if r.ServerIP.IsValid() {
		addr = r.ServerIP.String()
		if ones, bits := r.Netmask.Size(); bits == 32 {
			addr = fmt.Sprintf("%s/%d", r.ServerIP, ones)
		}
	}
	line("address", "%s (machines reach fleetboot here; --advertise-ip to override)", addr)
	if n := lanOf(r); n != "" {
		line("lan", "%s", n)
	} else {
		line("lan", "unknown")
	}
	switch cfg.DHCPMode {
	case config.DHCPProxy:
		line("dhcp", "proxy: answers PXE, UEFI HTTP Boot and iPXE clients on that LAN (UDP 67, 4011) with boot options; hands out no addresses")
	case config.DHCPFull:
		line("dhcp", "full: the DHCP server of that LAN (UDP 67, 4011), addresses %s-%s to every DHCP client there, not only PXE ones", r.PoolStart, r.PoolEnd)
	default:
		line("dhcp", "off: answers no DHCP; machines come only when your DHCP server points them at %s/boot.ipxe", r.HTTPBase)
	}
	if r.TFTPAddr == "" {
		line("tftp", "off")
	} else {
		line("tftp", "%s (UDP; the iPXE binaries for PXE firmware)", r.TFTPAddr)
	}
	line("http", "%s (TCP: boot scripts, files, API), boot script %s/boot.ipxe", cfg.HTTPAddr, r.HTTPBase)
	unassigned := fmt.Sprintf("the boot menu, local disk after %s (--unassigned, --menu-timeout)", cfg.MenuTimeout)
	if cfg.Unassigned == "local" {
		unassigned = "the local disk (--unassigned local)"
	}
	if cfg.BootKernel != "" {
		unassigned = "--boot-kernel " + cfg.BootKernel
	}
	line("unknown", "machines with nothing assigned get %s", unassigned)
	line("data", "%s", cfg.DataDir)
	if cfg.ImagesDir != "" {
		line("images", "%s (ISO images; every instance sharing the database mounts it)", cfg.ImagesDir)
	}
	return b.String()
}

// lanOf is the network (10.0.0.0/24) of the advertised address, "" when unknown.
func lanOf(r *config.Resolved) string {
	if !r.ServerIP.IsValid() {
		return ""
	}
	ones, bits := r.Netmask.Size()
	if bits != 32 {
		return ""
	}
	ip := net.IP(r.ServerIP.AsSlice()).Mask(r.Netmask)
	return fmt.Sprintf("%s/%d", ip, ones)
}
