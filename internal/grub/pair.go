package grub

import (
	"context"
	"path"
	"strings"

	"github.com/fleetboot/fleetboot/internal/secureboot"
)

// ISO pairs: a published ISO's own signed shim + GRUB (secureboot.Pair), served to machines
// installing a profile of that ISO so that the vendor's kernel verifies under the vendor's
// shim. Each pair lives in a directory of its own, the same over TFTP and HTTP:
//
//	isopair/<ISO id>/<shim's name on the ISO, lower case>   the shim: DHCP's boot file (TFTP) or URL (HTTP Boot)
//	isopair/<ISO id>/<Loader>                               its GRUB, where the shim looks for it
//	isopair/<ISO id>/grub.cfg, grub.cfg-01-<mac> …          the bootstrap config, for GRUBs that look beside themselves
//
// and the bootstrap is also served at every absolute path the pair's GRUB reads its config
// from (its embedded $prefix: /debian-installer/amd64/grub/grub.cfg for Debian 12's d-i GRUB,
// /boot/grub/grub.cfg for Debian's and Ubuntu's CD GRUB), with empty module lists below the
// prefix.
//
// Firmware fact (shim's netboot.c, parseDhcp4; verified under OVMF): over TFTP shim asks for
// its second stage in the directory of the DHCP boot file name — a bare "shimx64.efi" makes it
// ask at the TFTP root — and over HTTP Boot in the directory of its own URL. So a per-ISO
// directory needs no knowledge of which client asks.

// PairRoot is the top directory of the ISO pairs (no leading slash).
const PairRoot = "isopair/" // urls.ISOPairDir without its leading slash (pair_test.go)

// ISOPair is one published ISO's pair.
type ISOPair struct {
	// ISO is the ISO's id.
	ISO string
	secureboot.Pair
}

// PairDir is the directory an ISO's pair is served from (no leading slash).
func PairDir(iso string) string { return PairRoot + iso + "/" }

// ShimPath is the path of the pair's shim, no leading slash: the boot file DHCP names.
func (p ISOPair) ShimPath() string { return PairDir(p.ISO) + strings.ToLower(path.Base(p.Shim)) }

// Servable reports whether the pair is worth serving: an x86_64 pair (arm64 machines boot
// iPXE) whose shim trusts its GRUB (otherwise every machine would stop at shim).
func (p ISOPair) Servable() bool {
	return p.Arch == "x86_64" && p.GRUBTrusted && p.Shim != "" && p.Loader != ""
}

// PairSource lists the pairs of the published ISOs (internal/provision).
type PairSource interface {
	ISOPairs(ctx context.Context) ([]ISOPair, error)
}

// PairFile is what a path below the server root resolves to among the pairs.
type PairFile struct {
	// ISO and Path name a file inside an ISO to send (the shim or the GRUB).
	ISO, Path string
	// Config is generated content to send instead (bootstrap config, module list).
	Config []byte
	// Optional is set for the files shim asks for that may be absent: answer "not found"
	// quietly.
	Optional bool
}

// MayBePair reports whether p (no leading slash) could be a pair's file at all: below
// PairRoot, or a config or module list name. Callers check it before listing the ISOs' pairs,
// so stray requests (a scanner's 404s) cost no database read.
func MayBePair(p string) bool {
	base := path.Base(p)
	return strings.HasPrefix(strings.TrimPrefix(p, "/"), PairRoot) || strings.HasPrefix(base, "grub.cfg") ||
		strings.HasSuffix(base, ".cfg") || strings.HasSuffix(base, ".lst")
}

// ResolvePair maps p (a request path without the leading slash) to a pair's file; ok is false
// when p belongs to no servable pair. viaTFTP says the request came over TFTP: the bootstrap
// then hands over over TFTP when one of the GRUBs reading it cannot use fleetboot's HTTP
// server (secureboot.Pair.OverHTTPBoot: GRUB before 2.12), and over HTTP otherwise.
func ResolvePair(pairs []ISOPair, p string, cfg Config, viaTFTP bool) (PairFile, bool) {
	p = strings.TrimPrefix(p, "/")
	if rest, ok := strings.CutPrefix(p, PairRoot); ok {
		iso, name, ok := strings.Cut(rest, "/")
		name = strings.TrimLeft(name, "/") // shim over HTTP asks for "<dir>//grubx64.efi"
		if !ok || name == "" || strings.Contains(name, "/") {
			return PairFile{}, false
		}
		for _, pr := range pairs {
			if pr.ISO != iso || !pr.Servable() {
				continue
			}
			switch lower := strings.ToLower(name); {
			case lower == strings.ToLower(path.Base(pr.Shim)):
				return PairFile{ISO: iso, Path: pr.Shim}, true
			case lower == strings.ToLower(pr.Loader):
				return PairFile{ISO: iso, Path: pr.GRUB}, true
			case IsOptional(name):
				return PairFile{Optional: true}, true
			case matchesConfig(pr.ConfigPaths, "{dir}/"+name):
				return PairFile{Config: Bootstrap(bootstrapConfig(cfg, viaTFTP, []ISOPair{pr}))}, true
			}
			return PairFile{}, false
		}
		return PairFile{}, false
	}
	var readers []ISOPair
	moduleList := false
	for _, pr := range pairs {
		if !pr.Servable() {
			continue
		}
		if matchesConfig(pr.ConfigPaths, "/"+p) {
			readers = append(readers, pr)
		}
		if pr.Prefix != "" && !strings.HasPrefix(pr.Prefix, "(") {
			for _, l := range moduleLists {
				if "/"+p == path.Join(pr.Prefix, "x86_64-efi", l) {
					moduleList = true
				}
			}
		}
	}
	switch {
	case len(readers) > 0:
		return PairFile{Config: Bootstrap(bootstrapConfig(cfg, viaTFTP, readers))}, true
	case moduleList:
		return PairFile{Config: []byte("\n")}, true
	}
	return PairFile{}, false
}

// bootstrapConfig is cfg over TFTP when the request came over TFTP and one of the GRUBs that
// read it cannot fetch from fleetboot's HTTP server.
func bootstrapConfig(cfg Config, viaTFTP bool, readers []ISOPair) Config {
	if !viaTFTP {
		return cfg
	}
	for _, pr := range readers {
		if ok, _ := pr.OverHTTPBoot(); !ok {
			return cfg.OverTFTP()
		}
	}
	return cfg
}

// matchesConfig reports whether p is one of the config paths ("{mac}" standing for any
// 01-<mac with dashes>).
func matchesConfig(paths []string, p string) bool {
	for _, cp := range paths {
		if cp == p {
			return true
		}
		if before, after, ok := strings.Cut(cp, "{mac}"); ok && strings.HasPrefix(p, before) && strings.HasSuffix(p, after) {
			mac := strings.TrimSuffix(strings.TrimPrefix(p, before), after)
			if len(mac) == len("01-52-54-00-12-34-56") && strings.HasPrefix(mac, "01-") {
				return true
			}
		}
	}
	return false
}
