package dhcp

import (
	"net"

	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/urls"
)

// pxeDiscoveryControl is option 43 carrying PXE_DISCOVERY_CONTROL (sub-option 6) = 0x08, "use
// the boot file in this offer, do not discover boot servers", then END.
//
// Quirk (EDK2 PXE, verified under QEMU/OVMF): without option 43 the firmware treats the offer as
// a ProxyDHCP/BINL offer and sends a REQUEST to port 4011 for boot-server discovery. That fails
// against a server that does not answer 4011 (dnsmasq); fleetboot answers it (respondPXEPort)
// and the boot goes on, but slower (about 20 s more under QEMU TCG in full mode). With option
// 43 the firmware takes the file from the offer directly.
var pxeDiscoveryControl = []byte{0x06, 0x01, 0x08, 0xff}

// ipxeNoProxyWait is option 175 (iPXE encapsulated) holding 176 (no-pxedhcp) = 1.
//
// Quirk (iPXE dhcp.c, dhcp_discovery_rx): after the first offer with an address iPXE keeps
// listening ~3 s for a ProxyDHCP offer unless the offer carries no-pxedhcp or "PXEClient".
var ipxeNoProxyWait = []byte{ipxeNoPXEDHCP, 0x01, 0x01}

// bootConfig is what the decision needs to know about this server.
type bootConfig struct {
	ServerIP     net.IP // siaddr, option 66
	HTTPBase     string // "http://10.77.0.1:8080", no trailing slash
	HTTPBootFile string // x64 UEFI HTTP Boot binary under /ipxe/
	Arm64File    string // arm64 binary (TFTP name and under /ipxe/); "" means no arm64 offers
	Proxy        bool   // replies are ProxyDHCP offers (no address from us)
	// ShimFile is the signed shim's TFTP name, and ShimURLPath its path on the HTTP server
	// ("/secureboot/shimx64.efi"); "" when the signed chain is not available.
	ShimFile    string
	ShimURLPath string
	// OfferShim is this client's chain choice (its machine's, its profile's or the server's
	// boot-chain is auto or shim): UEFI x64 PXE and HTTP Boot clients get shim instead of
	// iPXE. Set per request; ignored without ShimFile.
	OfferShim bool
}

// bootPlan is the boot part of a reply: what a netboot client is told, or why it is told
// nothing. The zero value means "no boot options".
type bootPlan struct {
	Boot     bool   // the reply carries boot options
	Reason   string // why not, when !Boot (for logs and "ignored" events)
	BootFile string // file field and option 67: TFTP name or full URL

	VendorClass     string // option 60 to send ("PXEClient"/"HTTPClient"), "" for none
	DiscoveryCtl    bool   // option 43 = 06 01 08 ff
	IPXENoProxyWait bool   // option 175 with 176 = 1
	NextServer      net.IP // siaddr and option 66
	GUID            []byte // option 97 to echo, nil when the client sent none
}

// decideBoot implements the DHCP decision table of DESIGN.md: which boot file (if any) a client
// gets and which options must accompany it. Rows are checked in table order; the first
// match wins, so iPXE (which also calls itself PXEClient when chained from undionly.kpxe) is
// recognised before PXE.
func decideBoot(ci clientInfo, cfg bootConfig) bootPlan {
	var p bootPlan
	switch {
	case ci.IPXE:
		p.BootFile = urls.Base(cfg.HTTPBase).BootScript()
		p.IPXENoProxyWait = true
		if cfg.Proxy {
			// Quirk (iPXE dhcp.c; verified with QEMU's iPXE NIC ROM beside dnsmasq): an offer
			// without an address is taken as a ProxyDHCP offer only when it carries vendor class
			// "PXEClient"; without it iPXE ignores our proxy offer and never fetches boot.ipxe.
			p.VendorClass = vendorPXEClient
		}
	case ci.HTTP:
		var file string
		switch {
		case ci.HasArch && ci.Arch == archEFIx64HTTP && cfg.OfferShim && cfg.ShimURLPath != "":
			// Secure Boot firmware refuses unsigned iPXE; shim finds GRUB beside itself.
			p.VendorClass = vendorHTTPClient
			p.BootFile = cfg.HTTPBase + cfg.ShimURLPath
			return finishBoot(p, ci, cfg)
		case ci.HasArch && ci.Arch == archEFIx64HTTP:
			file = cfg.HTTPBootFile
		case ci.HasArch && ci.Arch == archEFIARM64HTTP:
			if cfg.Arm64File == "" {
				return noBoot("uefi-http arm64: no arm64 iPXE binary configured")
			}
			file = cfg.Arm64File
		default:
			return noBoot("uefi-http: unsupported client arch " + archOrAbsent(ci))
		}
		// Quirk (EDK2 HttpBootDxe): the offer is only considered an HTTP boot offer when it
		// echoes vendor class "HTTPClient"; the file must be a full URI.
		p.VendorClass = vendorHTTPClient
		p.BootFile = urls.Base(cfg.HTTPBase).IPXE(file)
	case ci.PXE:
		switch {
		case !ci.HasArch || ci.Arch == archBIOS:
			// Legacy PXE ROMs older than RFC 4578 send no option 93; they are all x86 BIOS.
			p.BootFile = ipxe.BIOSUndi
		case (ci.Arch == archEFIx64 || ci.Arch == archEFIBC) && cfg.OfferShim && cfg.ShimFile != "":
			// shim then asks for grubx64.efi beside its boot file (the TFTP root for
			// fleetboot's own), GRUB for its config below its prefix.
			p.BootFile = cfg.ShimFile
		case ci.Arch == archEFIx64 || ci.Arch == archEFIBC:
			p.BootFile = ipxe.UEFISnp
		case ci.Arch == archEFIARM64:
			if cfg.Arm64File == "" {
				return noBoot("uefi-pxe arm64: no arm64 iPXE binary configured")
			}
			p.BootFile = cfg.Arm64File
		default:
			return noBoot("pxe: unsupported client arch " + archOrAbsent(ci))
		}
		p.VendorClass = vendorPXEClient
		p.DiscoveryCtl = true
	default:
		return noBoot("not a network boot client")
	}
	return finishBoot(p, ci, cfg)
}

// finishBoot adds what every boot offer carries.
func finishBoot(p bootPlan, ci clientInfo, cfg bootConfig) bootPlan {
	p.Boot = true
	p.NextServer = cfg.ServerIP
	if ci.GUID != nil {
		// PXE spec: a server answering a client that sent option 97 must echo it; some
		// firmware (older Intel/Broadcom PXE ROMs) discards offers that lack it.
		p.GUID = ci.GUID
	}
	return p
}

// bootConfigFor is cfg with this client's chain choice filled in: only UEFI x64 PXE and HTTP
// Boot clients are asked about (the rest never get shim), so the lookup costs nothing for
// iPXE, BIOS and arm64 requests.
func (s *Server) bootConfigFor(ci clientInfo, cfg bootConfig) bootConfig {
	if cfg.ShimFile == "" || s.cfg.OfferShim == nil || ci.IPXE || !ci.HasArch {
		return cfg
	}
	switch {
	case ci.HTTP && ci.Arch == archEFIx64HTTP, ci.PXE && (ci.Arch == archEFIx64 || ci.Arch == archEFIBC):
		cfg.OfferShim = s.cfg.OfferShim(ci.MAC)
		if cfg.OfferShim && s.cfg.ShimPath != nil {
			// shim fetches GRUB from the directory its boot file names (shim's netboot.c
			// parseDhcp4; over HTTP Boot, its URL's directory): a per-ISO directory serves
			// that ISO's own pair.
			if p := s.cfg.ShimPath(ci.MAC, ci.HTTP); p != "" {
				cfg.ShimFile, cfg.ShimURLPath = p, "/"+p
			}
		}
	}
	return cfg
}

func noBoot(reason string) bootPlan { return bootPlan{Reason: reason} }

func archOrAbsent(ci clientInfo) string {
	if !ci.HasArch {
		return "(no option 93)"
	}
	return ci.archName()
}
