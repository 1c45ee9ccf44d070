package boot

import (
	"context"
	"errors"

	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
)

// Boot chains: what a UEFI x64 machine is offered first (README "Secure Boot").
const (
	// ChainAuto offers Debian's signed shim → GRUB; GRUB finds out whether Secure Boot is on
	// and, when it is off, hands over to iPXE so everything else boots as without shim.
	ChainAuto = "auto"
	// ChainShim boots through shim → GRUB whatever the Secure Boot state.
	ChainShim = "shim"
	// ChainIPXE offers iPXE only (Secure Boot machines then cannot boot).
	ChainIPXE = "ipxe"
)

// ChainLabel is the machine label and the profile var that override the server's default
// chain for one machine or for every machine installing a profile.
const ChainLabel = "boot-chain"

// ValidChain reports whether s names a chain.
func ValidChain(s string) bool { return s == ChainAuto || s == ChainShim || s == ChainIPXE }

// ResolveChain picks a machine's chain: its own label first, then its profile's var, then the
// server's default. Values that name no chain are ignored (the operator sees them in the
// machine's labels; the machine still boots).
func ResolveChain(serverDefault, profile, machine string) string {
	for _, c := range []string{machine, profile, serverDefault} {
		if ValidChain(c) {
			return c
		}
	}
	return ChainAuto
}

// Loaders: who asks for a decision, and so which language it is rendered in.
const (
	LoaderIPXE = "ipxe"
	LoaderGRUB = "grub"
)

// Renderer writes a decision in one boot loader's language.
type Renderer interface {
	Chain() []byte
	Boot(mac string, t ipxe.BootTarget) []byte
	Menu(mac, title string, items []ipxe.MenuItem) []byte
	Local(mac string) []byte
}

// IPXERenderer renders iPXE scripts.
type IPXERenderer struct{ Scripts ipxe.ScriptConfig }

// Chain implements Renderer.
func (r IPXERenderer) Chain() []byte { return ipxe.Chain(r.Scripts) }

// Boot implements Renderer.
func (r IPXERenderer) Boot(_ string, t ipxe.BootTarget) []byte { return ipxe.Boot(r.Scripts, t) }

// Menu implements Renderer.
func (r IPXERenderer) Menu(_ string, title string, items []ipxe.MenuItem) []byte {
	return ipxe.Menu(r.Scripts, title, items)
}

// Local implements Renderer.
func (r IPXERenderer) Local(string) []byte { return ipxe.LocalBoot(r.Scripts) }

// GRUBRenderer renders GRUB configs.
type GRUBRenderer struct{ Config grub.Config }

// Chain implements Renderer: GRUB always says who it is, so this is only reached without a
// MAC; the bootstrap asks again.
func (r GRUBRenderer) Chain() []byte { return grub.Bootstrap(r.Config) }

// Boot implements Renderer.
func (r GRUBRenderer) Boot(mac string, t ipxe.BootTarget) []byte { return grub.Boot(r.Config, mac, t) }

// Menu implements Renderer.
func (r GRUBRenderer) Menu(mac, title string, items []ipxe.MenuItem) []byte {
	return grub.Menu(r.Config, mac, title, items)
}

// Local implements Renderer.
func (r GRUBRenderer) Local(mac string) []byte { return grub.LocalBoot(r.Config, mac) }

var (
	_ Renderer = IPXERenderer{}
	_ Renderer = GRUBRenderer{}
)

// Chain is the chain mac boots through: its machine label, its profile's var, the server's
// default. Unknown machines get the default.
func (p *Planner) Chain(ctx context.Context, mac string) (string, error) {
	def := p.DefaultChain
	m, err := p.Machines.Machine(ctx, mac)
	if errors.Is(err, inventory.ErrNotFound) {
		return p.UnknownChain(), nil
	}
	if err != nil {
		return "", err
	}
	prof := ""
	if m.Profile != "" {
		if pr, err := p.Machines.Profile(ctx, m.Profile); err == nil {
			prof = pr.Vars[ChainLabel]
		}
	}
	return ResolveChain(def, prof, m.Labels[ChainLabel]), nil
}

// UnknownChain is Chain for a machine the inventory does not know: the server's default.
func (p *Planner) UnknownChain() string { return ResolveChain(p.DefaultChain, "", "") }

// DecideGRUB answers GRUB's request for mac's config with Secure Boot on or off (what the
// bootstrap config found). With Secure Boot off and chain auto, GRUB is handed over to iPXE
// and nothing is decided here: iPXE asks for its script next. Otherwise the machine's decision
// is rendered as GRUB config.
func (p *Planner) DecideGRUB(ctx context.Context, r Request, secureBoot bool) (Decision, error) {
	r.Loader = LoaderGRUB
	if r.MAC != "" && r.Profile == "" {
		chain, err := p.Chain(ctx, r.MAC)
		if err != nil {
			return Decision{}, err
		}
		if !secureBoot && chain == ChainAuto && r.ViaTFTP {
			// Firmware fact (OVMF, Debian 12's d-i GRUB 2.06): an ISO's GRUB older than 2.12
			// that chainloads iPXE from (tftp) hands it no network device ("No more network
			// devices"). Such a GRUB only runs for machines installing its ISO, which it boots
			// itself, Secure Boot or not.
			p.event(ctx, r.MAC, "boot", "GRUB: Secure Boot off; the ISO's own GRUB boots the installer itself (GRUB before 2.12 cannot hand over to iPXE)")
		} else if !secureBoot && chain == ChainAuto {
			p.event(ctx, r.MAC, "boot", "GRUB: Secure Boot off, handing over to iPXE (boot-chain auto)")
			cfg := p.GRUB.Config
			if r.ViaTFTP {
				cfg = cfg.OverTFTP()
			}
			return Decision{Kind: KindChain, Label: "iPXE", Script: grub.ChainIPXE(cfg, r.MAC)}, nil
		}
		if secureBoot {
			p.event(ctx, r.MAC, "boot", "GRUB: Secure Boot on (signed shim → GRUB)")
		}
	}
	return p.Decide(ctx, r)
}
