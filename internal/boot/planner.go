package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/fleetboot/fleetboot/internal/distro"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
)

// Action is what an identified machine is told to do.
type Action int

// Actions.
const (
	ActInstall Action = iota // boot the assigned profile's installer
	ActLocal                 // boot from the local disk
	ActMenu                  // show the menu of profiles, local disk by default
)

// Unassigned is the policy for machines with nothing to install (--unassigned).
type Unassigned string

// Unassigned policies: what machines with nothing to install get.
const (
	UnassignedMenu  Unassigned = "menu"
	UnassignedLocal Unassigned = "local"
)

// decide is the boot policy as a pure function of the machine's state and its profile's mode
// ("" when it has no profile). Installing machines that boot from the network again get the
// installer again: the done callback did not come, so the install did not finish (an
// installer that reboots mid-way calls back first). A profile in mode always boots whatever
// the state.
func decide(m *inventory.Machine, mode string, unassigned Unassigned) Action {
	switch {
	case m.Profile != "" && mode == inventory.ModeAlways:
		return ActInstall
	case m.Profile != "" && (m.State == inventory.InstallPending || m.State == inventory.Installing):
		return ActInstall
	case m.State == inventory.Installed:
		return ActLocal
	case unassigned == UnassignedLocal:
		return ActLocal
	}
	return ActMenu
}

// Machines is what the planner needs of the inventory.
type Machines interface {
	Machine(ctx context.Context, mac string) (*inventory.Machine, error)
	See(ctx context.Context, s inventory.Sighting) (*inventory.Machine, bool, error)
	Profile(ctx context.Context, name string) (*inventory.Profile, error)
	Profiles(ctx context.Context) ([]*inventory.Profile, error)
	Transition(ctx context.Context, mac string, from []inventory.State, to inventory.State, why string) (*inventory.Machine, error)
	AddEvent(ctx context.Context, mac, kind, detail string) error
}

// Targets resolves a profile into a boot target for one machine (internal/provision).
type Targets interface {
	Target(ctx context.Context, p *inventory.Profile, m *inventory.Machine) (ipxe.BootTarget, error)
	// Problem says why p cannot boot any machine ("" when nothing stops it): such a profile
	// is left out of the menu and not handed out.
	Problem(ctx context.Context, p *inventory.Profile) string
}

// Planner decides scripts from the inventory: install once, then local boot.
type Planner struct {
	Scripts    ipxe.ScriptConfig
	Machines   Machines
	Targets    Targets
	Unassigned Unassigned // UnassignedMenu (default) or UnassignedLocal
	// Fallback, when set, is booted by machines that would get the menu (the --boot-kernel
	// default target); nil keeps the menu.
	Fallback *Target
	// Log receives a warning for each profile that cannot boot when a machine asks for it;
	// nil discards.
	Log *slog.Logger
	// GRUB renders decisions for machines that boot through shim → GRUB.
	GRUB GRUBRenderer
	// DefaultChain is the server's --boot-chain (ChainAuto when empty).
	DefaultChain string
	// Pairs, when set, finds the ISOs' own signed shim + GRUB pairs: a machine installing a
	// profile whose ISO carries one is handed that pair (ShimPath); nil serves fleetboot's
	// own pair to everyone.
	Pairs PairLookup

	noted notedOnce // ShimPath's fallback note, once per machine and boot
}

// event adds a step to the machine's timeline. The boot script is worth more than its
// timeline line: a failed write is logged, and the machine still boots.
func (p *Planner) event(ctx context.Context, mac, kind, detail string) {
	if err := p.Machines.AddEvent(ctx, mac, kind, detail); err != nil {
		p.log().Warn("cannot record a boot step in the machine's timeline", "mac", mac, "kind", kind, "detail", detail, "err", err)
	}
}

// renderer picks the language of r's loader.
func (p *Planner) renderer(r Request) Renderer {
	if r.Loader == LoaderGRUB {
		if r.ViaTFTP {
			return GRUBRenderer{Config: p.GRUB.Config.OverTFTP()}
		}
		return p.GRUB
	}
	return IPXERenderer{Scripts: p.Scripts}
}

// Decide implements Decider. A machine picking a profile from the menu (?profile=NAME) boots
// it once without changing its state.
func (p *Planner) Decide(ctx context.Context, r Request) (Decision, error) {
	rd := p.renderer(r)
	if r.MAC == "" {
		return Decision{Kind: KindChain, Script: rd.Chain()}, nil
	}
	ip := r.IP
	if ip == "" && r.Remote.IsValid() {
		ip = r.Remote.String()
	}
	m, _, err := p.Machines.See(ctx, inventory.Sighting{MAC: r.MAC, UUID: r.UUID, Arch: r.Arch, Platform: r.Platform, IP: ip,
		Hardware: r.Hardware})
	if err != nil {
		return Decision{}, fmt.Errorf("record machine %s: %w", r.MAC, err)
	}
	if r.Profile != "" {
		prof, err := p.Machines.Profile(ctx, r.Profile)
		if err != nil {
			return p.menu(ctx, rd, m, "fleetboot: no profile "+r.Profile)
		}
		p.event(ctx, m.MAC, "boot", "profile "+prof.Name+" chosen from the menu")
		d, _, err := p.install(ctx, rd, prof, m)
		return d, err
	}
	var prof *inventory.Profile
	mode := ""
	if m.Profile != "" {
		if prof, err = p.Machines.Profile(ctx, m.Profile); err != nil {
			return Decision{}, fmt.Errorf("machine %s: %w", m.MAC, err)
		}
		mode = prof.Mode
	}
	switch decide(m, mode, p.Unassigned) {
	case ActInstall:
		d, ok, err := p.install(ctx, rd, prof, m)
		if err != nil || !ok {
			return d, err
		}
		switch {
		case prof.Mode == inventory.ModeAlways:
			// Booted every time; the state is the operator's and stays as it is.
		case prof.Mode == inventory.ModeBootOnce:
			// Nothing will call back: booting it once is the whole job.
			if _, err := p.Machines.Transition(ctx, m.MAC, []inventory.State{inventory.InstallPending, inventory.Installing},
				inventory.Installed, "boot-once profile "+prof.Name+" handed out; next network boot: local disk"); err != nil && !errors.Is(err, inventory.ErrConflict) {
				return Decision{}, err
			}
		case m.State == inventory.InstallPending:
			if _, err := p.Machines.Transition(ctx, m.MAC, []inventory.State{inventory.InstallPending}, inventory.Installing,
				"installer "+prof.Name+" handed out"); err != nil && !errors.Is(err, inventory.ErrConflict) {
				return Decision{}, err
			}
		default:
			p.event(ctx, m.MAC, "boot", "installer "+prof.Name+" handed out again (no done callback yet)")
		}
		return d, nil
	case ActLocal:
		p.event(ctx, m.MAC, "boot", "local disk")
		return Decision{Kind: KindLocal, Script: rd.Local(m.MAC)}, nil
	}
	if p.Fallback != nil {
		t := AssetTarget(p.Scripts.HTTPBase, *p.Fallback)
		p.event(ctx, m.MAC, "boot", "default target "+t.Label)
		return Decision{Kind: KindTarget, Label: t.Label, Script: rd.Boot(m.MAC, t)}, nil
	}
	return p.menu(ctx, rd, m, "fleetboot")
}

// install renders the profile's installer for m; ok is false when the profile cannot boot and
// the menu was rendered instead.
func (p *Planner) install(ctx context.Context, rd Renderer, prof *inventory.Profile, m *inventory.Machine) (Decision, bool, error) {
	if problem := p.Targets.Problem(ctx, prof); problem != "" {
		p.event(ctx, m.MAC, "error", fmt.Sprintf("profile %s cannot boot: %s; menu instead", prof.Name, problem))
		p.log().Warn("profile cannot boot; machine gets the menu", "mac", m.MAC, "profile", prof.Name, "why", problem)
		d, err := p.menu(ctx, rd, m, fmt.Sprintf("fleetboot: profile %s cannot boot: %s", prof.Name, problem))
		return d, false, err
	}
	t, err := p.Targets.Target(ctx, prof, m)
	if err != nil {
		// Tell the operator on the console and in the timeline; the machine falls back to the
		// menu rather than looping on a broken profile, and its state stays as it was.
		p.event(ctx, m.MAC, "error", fmt.Sprintf("profile %s: %v", prof.Name, err))
		p.log().Warn("profile cannot boot; machine gets the menu", "mac", m.MAC, "profile", prof.Name, "err", err)
		d, err := p.menu(ctx, rd, m, fmt.Sprintf("fleetboot: profile %s cannot boot: %v", prof.Name, err))
		return d, false, err
	}
	p.event(ctx, m.MAC, "boot", "installer "+t.Label)
	return Decision{Kind: KindTarget, Label: t.Label, Script: rd.Boot(m.MAC, t)}, true, nil
}

func (p *Planner) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// menu lists the profiles m can boot. Profiles whose ISO has no kernel for m's architecture
// (an arm64 ISO for an x86 machine, or the other way round) are left out, and the title says
// how many: in a mixed fleet each machine sees only what it can run. Profiles that cannot boot
// at all (their ISO was deleted: the API lists them as broken) are left out too. Profiles that
// fail for another reason stay listed; choosing one shows why it cannot boot.
// menuLabel names a profile in the menu by its name and its ISO's name (not the ISO's id,
// which means nothing on a console); a target that did not resolve falls back to the id.
func menuLabel(pr *inventory.Profile, t ipxe.BootTarget) string {
	iso := t.ISOName
	if iso == "" {
		iso = pr.ISO
	}
	return "Install " + pr.Name + " (" + iso + ")"
}

func (p *Planner) menu(ctx context.Context, rd Renderer, m *inventory.Machine, title string) (Decision, error) {
	profs, err := p.Machines.Profiles(ctx)
	if err != nil {
		return Decision{}, err
	}
	var items []ipxe.MenuItem
	hidden := 0
	for _, pr := range profs {
		if p.Targets.Problem(ctx, pr) != "" {
			continue
		}
		t, err := p.Targets.Target(ctx, pr, m)
		if errors.Is(err, distro.ErrWrongArch) {
			hidden++
			continue
		}
		items = append(items, ipxe.MenuItem{Name: pr.Name, Label: menuLabel(pr, t)})
	}
	if hidden > 0 {
		title += fmt.Sprintf(" (%d profile(s) for other architectures hidden)", hidden)
	}
	return Decision{Kind: KindMenu, Script: rd.Menu(m.MAC, title, items)}, nil
}
