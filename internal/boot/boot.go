// Package boot decides what a machine that asks for its boot script gets: the installer of its
// profile, its local disk, the menu or the --boot-kernel target, rendered for the loader that
// asks (iPXE, or GRUB after shim on Secure Boot machines), and which loader chain (iPXE or
// shim → GRUB) a machine is offered. The policy itself is a pure function (decide); the
// Planner around it records the machine (a sighting), moves install-pending to installing when
// it hands out the installer, and writes each step to the machine's timeline.
package boot

import (
	"net/netip"

	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/urls"
)

// Kind is the kind of script a machine got, as logs and metrics labels name it.
type Kind string

// Script kinds; Kinds lists them (internal/metrics pre-initialises its labels from it).
const (
	KindChain    Kind = "chain"    // the machine did not say who it is yet: ask it to
	KindTarget   Kind = "target"   // boot a kernel
	KindMenu     Kind = "menu"     // nothing assigned: menu, local disk by default
	KindLocal    Kind = "local"    // boot from local disk at once
	KindAutoexec Kind = "autoexec" // autoexec.ipxe, which iPXE fetches before it asks for a script
)

// Kinds are all script kinds.
var Kinds = []Kind{KindChain, KindTarget, KindMenu, KindLocal, KindAutoexec}

// Request is a machine asking for its script.
type Request struct {
	ipxe.Identity
	// Remote is the address the HTTP request came from.
	Remote netip.Addr
	// Profile is a profile the machine's user picked from the menu ("" for none).
	Profile string
	// Loader is who asks: LoaderIPXE ("" too) or LoaderGRUB; the decision is rendered in its
	// language.
	Loader string
	// ViaTFTP: a GRUB that asked over TFTP (an ISO's GRUB older than 2.12, loaded by PXE) gets
	// configs that load everything over TFTP (grub.Config.OverTFTP).
	ViaTFTP bool
}

// Decision is the script to send and why.
type Decision struct {
	Kind   Kind
	Label  string
	Script []byte
}

// Target is a boot target configured by paths below the assets directory.
type Target struct {
	Label   string
	Kernel  string   // path below <data>/assets
	Initrds []string // paths below <data>/assets
	Cmdline string
}

// AssetTarget turns asset paths into the absolute URLs iPXE fetches.
func AssetTarget(base string, t Target) ipxe.BootTarget {
	taken := map[string]bool{}
	bt := ipxe.BootTarget{Label: t.Label, Kernel: AssetURL(base, t.Kernel), Cmdline: t.Cmdline}
	if bt.Label == "" {
		bt.Label = t.Kernel
	}
	for i, p := range t.Initrds {
		bt.Initrds = append(bt.Initrds, ipxe.Initrd{Name: ipxe.InitrdName(p, i, taken), URL: AssetURL(base, p)})
	}
	return bt
}

// AssetURL is the URL of a file below <data>/assets, each path segment escaped.
func AssetURL(base, p string) string {
	return urls.Base(base).Asset(p)
}
