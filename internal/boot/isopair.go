package boot

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
)

// PairLookup finds an ISO's own signed pair (internal/provision).
type PairLookup interface {
	// ISOPair is the servable x86_64 pair of the ISO named by id or name; ok is false when it
	// carries none.
	ISOPair(ctx context.Context, iso string) (p grub.ISOPair, ok bool, err error)
}

// ShimPath is the shim a UEFI x64 machine on the shim chain is offered, as a path below the
// server root ("isopair/<ISO id>/bootx64.efi"), or "" for fleetboot's own pair. A machine gets
// its ISO's own pair when it is about to install (the decision would hand out its profile's
// installer) and the profile's ISO carries a servable pair; menus, local boots and unknown
// machines get fleetboot's own (Debian's), which boots Debian-signed kernels and iPXE.
//
// httpBoot: the client asked over UEFI HTTP Boot. An ISO's GRUB older than 2.12 does not
// boot that way (secureboot.Pair.OverHTTPBoot), so such a client gets fleetboot's pair and
// the machine's timeline says why.
func (p *Planner) ShimPath(ctx context.Context, mac string, httpBoot bool) (string, error) {
	if p.Pairs == nil {
		return "", nil
	}
	m, err := p.Machines.Machine(ctx, mac)
	if errors.Is(err, inventory.ErrNotFound) {
		return "", nil
	}
	if err != nil || m.Profile == "" {
		return "", err
	}
	prof, err := p.Machines.Profile(ctx, m.Profile)
	if errors.Is(err, inventory.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if decide(m, prof.Mode, p.Unassigned) != ActInstall {
		return "", nil
	}
	pair, ok, err := p.Pairs.ISOPair(ctx, prof.ISO)
	if err != nil || !ok {
		return "", err
	}
	if httpBoot {
		if ok, why := pair.OverHTTPBoot(); !ok {
			// Firmware asks twice per boot (DISCOVER and REQUEST) and again on a retry: the
			// timeline says it once per boot, not once per packet.
			if p.noted.first(mac+" "+pair.ShimPath(), time.Now()) {
				p.event(ctx, mac, "boot", "UEFI HTTP Boot: Debian's shim + GRUB instead of the ISO's own pair: "+why)
			}
			return "", nil
		}
	}
	return pair.ShimPath(), nil
}

// notedOnce remembers which notes were written recently, so that a note about a boot is
// written once per boot although every DHCP packet of that boot comes to the same decision.
// It is bounded: when full it forgets everything, which at worst repeats a note.
type notedOnce struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// notedFor is how long a note counts as written: longer than a boot's DHCP exchanges and
// retries, shorter than a reboot into the next attempt.
const notedFor = 2 * time.Minute

// notedMax bounds the memory: a fleet's power-on burst, not every machine ever seen.
const notedMax = 4096

// first says whether key was not noted within notedFor before now, and notes it.
func (n *notedOnce) first(key string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if at, ok := n.seen[key]; ok && now.Sub(at) < notedFor {
		return false
	}
	if n.seen == nil || len(n.seen) >= notedMax {
		n.seen = make(map[string]time.Time)
	}
	n.seen[key] = now
	return true
}

// ErrForeign is returned by GRUBFile for a failure report that does not come from the machine
// itself.
var ErrForeign = errors.New("only the machine itself may report its boot failure")

// ErrNoGRUBFile is returned by GRUBFile for a path that names no GRUB file.
var ErrNoGRUBFile = errors.New("no such GRUB file")

// GRUBFile answers a GRUB that asks over TFTP for a machine's file below grub/mac/<mac>/ (p is
// the whole path, "grub/mac/52:54:00:12:34:56/sb-on.cfg"): its decision (sb-on.cfg,
// sb-off.cfg), a profile picked from the menu (profile/<name>.cfg), or a failed step it
// reports (failed/<step>.cfg, recorded in the machine's timeline; only from the machine's own
// address, from). The HTTP server answers the same paths (internal/httpapi). Configs rendered
// here load everything over TFTP.
func (p *Planner) GRUBFile(ctx context.Context, path string, from netip.Addr) (Decision, error) {
	rest, ok := strings.CutPrefix(path, grub.Prefix+"/mac/")
	if !ok {
		return Decision{}, ErrNoGRUBFile
	}
	macPart, what, ok := strings.Cut(rest, "/")
	mac := ipxe.NormalizeMAC(macPart)
	if !ok || mac == "" {
		return Decision{}, ErrNoGRUBFile
	}
	req := Request{Identity: ipxe.Identity{MAC: mac, Arch: "x86_64", Platform: "efi"}, Remote: from, ViaTFTP: true}
	switch {
	case what == "sb-on.cfg" || what == "sb-off.cfg":
		return p.DecideGRUB(ctx, req, what == "sb-on.cfg")
	case strings.HasPrefix(what, "profile/") && strings.HasSuffix(what, ".cfg"):
		name := strings.TrimSuffix(strings.TrimPrefix(what, "profile/"), ".cfg")
		if !inventory.ValidName(name) {
			return Decision{}, ErrNoGRUBFile
		}
		req.Profile = name
		return p.DecideGRUB(ctx, req, true)
	case strings.HasPrefix(what, "failed/") && strings.HasSuffix(what, ".cfg"):
		step := grub.CleanStep(strings.TrimSuffix(strings.TrimPrefix(what, "failed/"), ".cfg"))
		m, err := p.Machines.Machine(ctx, mac)
		if err != nil {
			return Decision{}, err
		}
		if m.IP == "" || !from.IsValid() || from.String() != m.IP {
			p.log().Warn("GRUB failure report from a foreign address refused", "mac", mac, "ip", from, "machine_ip", m.IP)
			return Decision{}, ErrForeign
		}
		why := grub.FailureReason(step)
		if err := p.Machines.AddEvent(ctx, mac, "error", "boot failed: "+why); err != nil {
			return Decision{}, err
		}
		p.log().Warn("GRUB reported a failed boot", "mac", mac, "ip", from, "step", step)
		return Decision{Kind: "failed", Script: grub.Failed(p.GRUB.Config, mac, fmt.Sprintf("fleetboot: %s; recorded in this machine's timeline", why))}, nil
	}
	return Decision{}, ErrNoGRUBFile
}
