package dhcp

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestDecideBootFollowsDesignTable checks every row of DESIGN.md's DHCP decision table, both
// the plan and the options that end up on the wire (43, 60, 66, 67, 97, 175, siaddr, file).
func TestDecideBootFollowsDesignTable(t *testing.T) {
	full := bootConfig{ServerIP: serverIP, HTTPBase: testHTTP, HTTPBootFile: "snponly.efi", Arm64File: "ipxe-arm64.efi"}
	proxy := full
	proxy.Proxy = true
	noArm := full
	noArm.Arm64File = ""
	fullEFI := full
	fullEFI.HTTPBootFile = "ipxe.efi"
	// A client whose chain (machine, profile or server default) is auto or shim.
	shim := full
	shim.ShimFile, shim.ShimURLPath, shim.OfferShim = "shimx64.efi", "/secureboot/shimx64.efi", true
	shimProxy := shim
	shimProxy.Proxy = true
	// The same client when the build has no signed chain.
	shimMissing := full
	shimMissing.OfferShim = true
	// The signed chain is there but this client's chain is ipxe.
	shimNotForThis := shim
	shimNotForThis.OfferShim = false

	tests := []struct {
		name   string
		cfg    bootConfig
		mods   []dhcpv4.Modifier
		file   string // "" means no boot options at all
		vc     string // option 60 expected, "" for none
		opt43  bool
		opt175 bool
	}{
		{"ipxe full mode gets the script URL and no-pxedhcp", full, ipxeClient(),
			"http://10.99.0.1:8080/boot.ipxe", "", false, true},
		{"ipxe proxy mode also needs PXEClient to be taken as ProxyDHCP", proxy, ipxeClient(),
			"http://10.99.0.1:8080/boot.ipxe", "PXEClient", false, true},
		{"ipxe efi build", full, join(uefiPXE(), []dhcpv4.Modifier{withOpt(optUserClass, []byte("iPXE"))}),
			"http://10.99.0.1:8080/boot.ipxe", "", false, true},
		{"uefi http x64", full, uefiHTTP(),
			"http://10.99.0.1:8080/ipxe/snponly.efi", "HTTPClient", false, false},
		{"uefi http x64 with ipxe.efi configured", fullEFI, uefiHTTP(),
			"http://10.99.0.1:8080/ipxe/ipxe.efi", "HTTPClient", false, false},
		{"uefi http arm64 with a binary", proxy, []dhcpv4.Modifier{withVC("HTTPClient:Arch:00019:UNDI:003000"), withArch(archEFIARM64HTTP), withGUID()},
			"http://10.99.0.1:8080/ipxe/ipxe-arm64.efi", "HTTPClient", false, false},
		{"uefi http arm64 without a binary", noArm, []dhcpv4.Modifier{withVC("HTTPClient:Arch:00019:UNDI:003000"), withArch(archEFIARM64HTTP)},
			"", "", false, false},
		{"uefi http ia32 unsupported", full, []dhcpv4.Modifier{withVC("HTTPClient:Arch:00015"), withArch(archEFIx86HTTP)},
			"", "", false, false},
		{"uefi pxe x64 (7)", full, uefiPXE(), "snponly.efi", "PXEClient", true, false},
		{"uefi pxe efi-bc (9)", proxy, []dhcpv4.Modifier{withVC("PXEClient:Arch:00009:UNDI:003000"), withArch(archEFIBC)},
			"snponly.efi", "PXEClient", true, false},
		{"uefi pxe arm64 with a binary", full, []dhcpv4.Modifier{withVC("PXEClient:Arch:00011:UNDI:003000"), withArch(archEFIARM64)},
			"ipxe-arm64.efi", "PXEClient", true, false},
		{"uefi pxe arm64 without a binary", noArm, []dhcpv4.Modifier{withVC("PXEClient:Arch:00011:UNDI:003000"), withArch(archEFIARM64)},
			"", "", false, false},
		{"uefi pxe ia32 unsupported", full, []dhcpv4.Modifier{withVC("PXEClient:Arch:00006:UNDI:003000"), withArch(archEFIIA32)},
			"", "", false, false},
		{"bios pxe", proxy, biosPXE(), "undionly.kpxe", "PXEClient", true, false},
		{"bios pxe without option 93", full, []dhcpv4.Modifier{withVC("PXEClient")}, "undionly.kpxe", "PXEClient", true, false},
		{"ipxe posing as bios pxe (user class changed, 175 kept) gets undionly", full,
			join(biosPXE(), []dhcpv4.Modifier{withOpt(optUserClass, []byte("fbtest")), withOpt(optIPXEEncap, ipxeFeats)}),
			"undionly.kpxe", "PXEClient", true, false},
		{"uefi pxe x64 with chain auto/shim gets the signed shim", shim, uefiPXE(), "shimx64.efi", "PXEClient", true, false},
		{"uefi pxe efi-bc with chain auto/shim, proxy mode", shimProxy, []dhcpv4.Modifier{withVC("PXEClient:Arch:00009:UNDI:003000"), withArch(archEFIBC)},
			"shimx64.efi", "PXEClient", true, false},
		{"uefi http x64 with chain auto/shim gets shim's URL", shim, uefiHTTP(),
			"http://10.99.0.1:8080/secureboot/shimx64.efi", "HTTPClient", false, false},
		{"uefi pxe x64 with chain ipxe gets iPXE", shimNotForThis, uefiPXE(), "snponly.efi", "PXEClient", true, false},
		{"uefi http x64 with chain ipxe gets iPXE", shimNotForThis, uefiHTTP(),
			"http://10.99.0.1:8080/ipxe/snponly.efi", "HTTPClient", false, false},
		{"uefi pxe x64 without the signed chain gets iPXE", shimMissing, uefiPXE(), "snponly.efi", "PXEClient", true, false},
		{"ipxe chained from GRUB (Secure Boot off) gets the script, not shim again", shim,
			join(uefiPXE(), []dhcpv4.Modifier{withOpt(optUserClass, []byte("iPXE"))}), "http://10.99.0.1:8080/boot.ipxe", "", false, true},
		{"bios pxe never gets shim", shim, biosPXE(), "undionly.kpxe", "PXEClient", true, false},
		{"uefi pxe arm64 never gets the x64 shim", shim, []dhcpv4.Modifier{withVC("PXEClient:Arch:00011:UNDI:003000"), withArch(archEFIARM64)},
			"ipxe-arm64.efi", "PXEClient", true, false},
		{"plain client gets no boot options", full, plainClient(), "", "", false, false},
		{"plain client in proxy mode", proxy, plainClient(), "", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := msg(t, dhcpv4.MessageTypeDiscover, tt.mods...)
			ci := classifyClient(req)
			plan := decideBoot(ci, tt.cfg)
			if plan.Boot != (tt.file != "") {
				t.Fatalf("Boot = %v (reason %q), want boot file %q", plan.Boot, plan.Reason, tt.file)
			}
			if !plan.Boot && plan.Reason == "" {
				t.Errorf("no boot options and no reason")
			}

			// What the client actually receives.
			wire, err := dhcpv4.FromBytes(buildReply(req, kindProxyOffer, serverIP, plan, leaseOptions{}).ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			opts := wire.Options
			if got := string(opts[optBootfile]); got != tt.file {
				t.Errorf("option 67 = %q, want %q", got, tt.file)
			}
			if wire.BootFileName != tt.file {
				t.Errorf("file field = %q, want %q", wire.BootFileName, tt.file)
			}
			if got := string(opts[optVendorClass]); got != tt.vc {
				t.Errorf("option 60 = %q, want %q", got, tt.vc)
			}
			if got, ok := opts[optVendorSpecific]; ok != tt.opt43 || (ok && !bytes.Equal(got, []byte{6, 1, 8, 0xff})) {
				t.Errorf("option 43 = %x (present %v), want present %v = 06010 8ff", got, ok, tt.opt43)
			}
			if got, ok := opts[optIPXEEncap]; ok != tt.opt175 || (ok && !bytes.Equal(got, []byte{176, 1, 1})) {
				t.Errorf("option 175 = %x (present %v), want present %v = b00101", got, ok, tt.opt175)
			}
			wantNext := net.IPv4zero
			wantTFTP := ""
			if tt.file != "" {
				wantNext, wantTFTP = serverIP, "10.99.0.1"
			}
			if !wire.ServerIPAddr.Equal(wantNext) || string(opts[optTFTPServer]) != wantTFTP {
				t.Errorf("siaddr, option 66 = %v, %q; want %v, %q", wire.ServerIPAddr, opts[optTFTPServer], wantNext, wantTFTP)
			}
			sentGUID := ci.GUID != nil
			if got, ok := opts[optClientGUID]; tt.file != "" && (ok != sentGUID || !bytes.Equal(got, ci.GUID)) {
				t.Errorf("option 97 = %x (present %v), want echo of %x", got, ok, ci.GUID)
			}
			if !wire.YourIPAddr.Equal(net.IPv4zero) {
				t.Errorf("proxy reply yiaddr = %v", wire.YourIPAddr)
			}
			if !net.IP(opts[optServerID]).Equal(serverIP) {
				t.Errorf("option 54 = %v", net.IP(opts[optServerID]))
			}
		})
	}
}

func TestDecideBootDoesNotEchoAbsentGUID(t *testing.T) {
	ci := classifyClient(msg(t, dhcpv4.MessageTypeDiscover, withVC(biosVC), withArch(archBIOS)))
	plan := decideBoot(ci, bootConfig{ServerIP: serverIP, HTTPBase: testHTTP, HTTPBootFile: "snponly.efi"})
	if !plan.Boot || plan.GUID != nil {
		t.Fatalf("plan = %+v, want boot without GUID", plan)
	}
	r := buildReply(msg(t, dhcpv4.MessageTypeDiscover), kindProxyOffer, serverIP, plan, leaseOptions{})
	if _, ok := r.Options[optClientGUID]; ok {
		t.Errorf("option 97 sent although the client sent none")
	}
}

// TestBootConfigForAsksTheChainOnlyForUEFIx64 checks that the per-machine chain lookup (a
// database read) runs for UEFI x64 PXE and HTTP Boot clients only, with their MAC, and that
// its answer decides between shim and iPXE.
func TestBootConfigForAsksTheChainOnlyForUEFIx64(t *testing.T) {
	var asked []string
	answer := true
	s := &Server{cfg: Config{OfferShim: func(mac net.HardwareAddr) bool {
		asked = append(asked, mac.String())
		return answer
	}}}
	base := bootConfig{ServerIP: serverIP, HTTPBase: testHTTP, HTTPBootFile: "snponly.efi", ShimFile: "shimx64.efi", ShimURLPath: "/secureboot/shimx64.efi"}
	for _, tc := range []struct {
		name string
		mods []dhcpv4.Modifier
		ask  bool
	}{
		{"uefi pxe x64", uefiPXE(), true},
		{"uefi http x64", uefiHTTP(), true},
		{"bios pxe", biosPXE(), false},
		{"ipxe", ipxeClient(), false},
		{"arm64 pxe", []dhcpv4.Modifier{withVC("PXEClient:Arch:00011:UNDI:003000"), withArch(archEFIARM64)}, false},
	} {
		asked = nil
		ci := classifyClient(msg(t, dhcpv4.MessageTypeDiscover, tc.mods...))
		cfg := s.bootConfigFor(ci, base)
		if got := len(asked) == 1; got != tc.ask {
			t.Errorf("%s: chain asked %v times, want asked=%v", tc.name, asked, tc.ask)
		}
		if tc.ask && (asked[0] != ci.MAC.String() || !cfg.OfferShim) {
			t.Errorf("%s: asked for %v, OfferShim %v", tc.name, asked, cfg.OfferShim)
		}
	}
	answer = false
	ci := classifyClient(msg(t, dhcpv4.MessageTypeDiscover, uefiPXE()...))
	if plan := decideBoot(ci, s.bootConfigFor(ci, base)); plan.BootFile != "snponly.efi" {
		t.Errorf("machine with chain ipxe offered %q", plan.BootFile)
	}
	noChain := base
	noChain.ShimFile = ""
	asked = nil
	if s.bootConfigFor(ci, noChain); len(asked) != 0 {
		t.Errorf("chain asked although the signed chain is not served")
	}
}

// TestShimPathPointsTheClientAtAnISOsOwnPair: a machine the chain lookup gives shim gets the
// shim of its ISO's pair when ShimPath names one — as the TFTP file name over PXE and below
// the HTTP base over HTTP Boot, where shim then finds GRUB beside itself — and fleetboot's own
// shim when it names none; ShimPath is told which kind of client asks.
func TestShimPathPointsTheClientAtAnISOsOwnPair(t *testing.T) {
	var httpAsked []bool
	path := "isopair/0123456789abcdef/bootx64.efi"
	s := &Server{cfg: Config{
		OfferShim: func(net.HardwareAddr) bool { return true },
		ShimPath: func(_ net.HardwareAddr, httpBoot bool) string {
			httpAsked = append(httpAsked, httpBoot)
			return path
		}}}
	base := bootConfig{ServerIP: serverIP, HTTPBase: testHTTP, HTTPBootFile: "snponly.efi", ShimFile: "shimx64.efi", ShimURLPath: "/secureboot/shimx64.efi"}
	pxe := classifyClient(msg(t, dhcpv4.MessageTypeDiscover, uefiPXE()...))
	if plan := decideBoot(pxe, s.bootConfigFor(pxe, base)); plan.BootFile != path {
		t.Errorf("PXE boot file %q, want %q", plan.BootFile, path)
	}
	http := classifyClient(msg(t, dhcpv4.MessageTypeDiscover, uefiHTTP()...))
	if plan := decideBoot(http, s.bootConfigFor(http, base)); plan.BootFile != testHTTP+"/"+path {
		t.Errorf("HTTP Boot URL %q, want %q", plan.BootFile, testHTTP+"/"+path)
	}
	if len(httpAsked) != 2 || httpAsked[0] || !httpAsked[1] {
		t.Errorf("ShimPath asked with httpBoot %v, want [false true]", httpAsked)
	}
	path = ""
	if plan := decideBoot(pxe, s.bootConfigFor(pxe, base)); plan.BootFile != "shimx64.efi" {
		t.Errorf("without an ISO pair: %q", plan.BootFile)
	}
	bios := classifyClient(msg(t, dhcpv4.MessageTypeDiscover, biosPXE()...))
	httpAsked = nil
	if s.bootConfigFor(bios, base); len(httpAsked) != 0 {
		t.Errorf("ShimPath asked for a BIOS client")
	}
}
