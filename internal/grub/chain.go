// Package grub owns fleetboot's signed UEFI x64 boot chain: Debian's Microsoft-signed shim and
// Debian-signed network GRUB (embedded at build time by scripts/fetch-secureboot.sh), the
// names and places firmware, shim and GRUB look for their files, and the GRUB configs
// fleetboot renders for machines from the same decision as their iPXE scripts.
//
// Who asks for what (verified under QEMU with OVMF Secure Boot and Microsoft keys):
//   - firmware loads shimx64.efi: over TFTP by the DHCP file name, over UEFI HTTP Boot by URL;
//   - shim 16.1 loads grubx64.efi — over TFTP from the directory of the DHCP boot file name
//     (the TFTP root for a bare "shimx64.efi"), over HTTP from the directory of its own URL —
//     then asks for the optional
//     revocations_sku.efi, revocations_sbat.efi and shim_certificate_0.efi (absent is fine);
//   - trixie's signed GRUB 2.12 (grubnetx64) has $prefix=/grub at the server root: it reads
//     /grub/x86_64-efi/{command,fs,crypto,terminal}.lst and then /grub/grub.cfg, over the
//     transport it was loaded by.
package grub

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/urls"
)

// File names of the chain.
const (
	// ShimFile is the signed shim: the TFTP file name in DHCP offers, and the file under
	// HTTPDir for UEFI HTTP Boot.
	ShimFile = "shimx64.efi"
	// GRUBFile is the name shim loads its second stage under (shim's DEFAULT_LOADER).
	GRUBFile = "grubx64.efi"
	// HTTPDir is where the chain lives over HTTP; shim finds grubx64.efi beside itself there.
	HTTPDir = urls.SecureBootDir
	// Prefix is the signed network GRUB's $prefix (trixie's grubnetx64: /grub at the server
	// root), without slashes; the config and module lists live below it.
	Prefix = "grub"
	// embeddedGRUB is the file name fetch-secureboot.sh stores the network GRUB under.
	embeddedGRUB = "grubnetx64.efi"
)

// ErrMissing is returned by LoadChain when the embedded chain is absent (a build without
// scripts/fetch-secureboot.sh).
var ErrMissing = errors.New("signed shim + GRUB not embedded")

// Chain is the signed shim and GRUB pair fleetboot serves.
type Chain struct {
	Shim    *ipxe.Binary
	GRUB    *ipxe.Binary
	Version string // from the VERSION file: which Debian packages they came from
	Source  string // "embedded" or a directory
}

// LoadChain reads shimx64.efi and grubnetx64.efi (+ VERSION) from fsys. It returns ErrMissing
// (saying how to get them) when either is absent or empty.
func LoadChain(fsys fs.FS, source string) (*Chain, error) {
	loaded := time.Now().UTC().Truncate(time.Second)
	read := func(name, servedAs string) (*ipxe.Binary, error) {
		data, err := fs.ReadFile(fsys, name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read %s from %s: %w", name, source, err)
		}
		if len(data) == 0 {
			return nil, nil
		}
		return ipxe.NewBinary(servedAs, data, loaded), nil
	}
	shim, err := read(ShimFile, ShimFile)
	if err != nil {
		return nil, err
	}
	grub, err := read(embeddedGRUB, GRUBFile)
	if err != nil {
		return nil, err
	}
	if shim == nil || grub == nil {
		return nil, fmt.Errorf("%w in %s: run `scripts/fetch-secureboot.sh` before `go build` "+
			"(it takes them from Debian's shim-signed and grub-efi-amd64-signed packages), or point --secureboot-dir at a directory with %s and %s",
			ErrMissing, source, ShimFile, embeddedGRUB)
	}
	return &Chain{Shim: shim, GRUB: grub, Source: source, Version: ipxe.ReadVersion(fsys)}, nil
}

// LoadChainFrom loads from dir when set, else from the embedded secureboot directory.
func LoadChainFrom(embedded fs.FS, dir string) (*Chain, error) {
	fsys, source, err := ipxe.DirOrEmbedded(embedded, "secureboot", dir, "--secureboot-dir")
	if err != nil {
		return nil, err
	}
	return LoadChain(fsys, source)
}

// Served lists the chain's TFTP names worth a metric label of their own: shim, GRUB and the
// bootstrap config (module lists and optional files fold into "other").
func Served() []string { return []string{ShimFile, GRUBFile, Prefix + "/grub.cfg"} }

// Binaries lists shim and GRUB.
func (c *Chain) Binaries() []*ipxe.Binary {
	if c == nil {
		return nil
	}
	return []*ipxe.Binary{c.Shim, c.GRUB}
}

// Get returns the chain's file served under name (ShimFile or GRUBFile).
func (c *Chain) Get(name string) (*ipxe.Binary, bool) {
	if c == nil {
		return nil, false
	}
	switch name {
	case ShimFile:
		return c.Shim, true
	case GRUBFile:
		return c.GRUB, true
	}
	return nil, false
}

// optionalShimFiles are what shim 16 asks for beside GRUB and boots fine without: SBAT and SKU
// revocation updates and an extra certificate. fleetboot serves none of them.
var optionalShimFiles = []string{"revocations_sku.efi", "revocations_sbat.efi", "shim_certificate_0.efi"}

// IsOptional reports whether name (a TFTP name, or a file below HTTPDir) is one of the files
// shim asks for that may be absent; refusing it is not worth an operator's attention.
func IsOptional(name string) bool {
	for _, o := range optionalShimFiles {
		if name == o {
			return true
		}
	}
	return false
}

// moduleLists are the files GRUB reads below $prefix/x86_64-efi/ before its config, to learn
// which module provides which command, file system, cipher and terminal. The signed network
// GRUB has every module it may use built in, and under Secure Boot it may not load others, so
// they are served as an empty line: GRUB then has nothing to autoload and prints no "file not
// found". (Not zero bytes: over TFTP GRUB learns the size 0 from tsize and closes the transfer
// with an error instead of acknowledging an empty last block.)
var moduleLists = []string{"command.lst", "fs.lst", "crypto.lst", "terminal.lst"}

// StaticFiles are the chain's files that are the same for every machine, keyed by the path
// (without a leading slash) they are asked for over TFTP and HTTP: shim, GRUB, GRUB's module
// lists and its bootstrap grub.cfg.
func (c *Chain) StaticFiles(cfg Config) map[string][]byte {
	files := map[string][]byte{ShimFile: c.Shim.Data, GRUBFile: c.GRUB.Data, Prefix + "/grub.cfg": Bootstrap(cfg)}
	for _, l := range moduleLists {
		files[Prefix+"/x86_64-efi/"+l] = []byte("\n")
	}
	return files
}

// IsModuleList reports whether p (below the server root, no leading slash) is one of the module
// lists GRUB reads below its prefix.
func IsModuleList(p string) bool {
	for _, l := range moduleLists {
		if p == Prefix+"/x86_64-efi/"+l {
			return true
		}
	}
	return false
}
