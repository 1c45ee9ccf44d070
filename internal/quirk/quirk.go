// Package quirk names the network problems fleetboot detects while machines boot, says what
// the operator should do about each, and reports them in one way: a warning log line, the
// fleetboot_quirks_total{quirk} counter and a "quirk" event in the machine's timeline. The
// detections themselves live where the evidence is (internal/dhcp for DHCP, Tracker here for
// the HTTP boot chain); README's troubleshooting section has one entry per Kind.
package quirk

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Kind is one detected problem.
type Kind string

// Kinds fleetboot detects.
const (
	// SharedServerID: proxy mode, and the site's DHCP server answers with fleetboot's own
	// address as its server identifier (it runs on the same host). UEFI PXE (EDK2) then takes
	// the proxy's address-less ACK for its lease and DECLINEs it.
	SharedServerID Kind = "shared-server-id"
	// BootLoop: a machine keeps starting the boot chain over, each time after the same step.
	BootLoop Kind = "boot-loop"
	// IncompleteFetch: a machine fetched its kernel but never the initrd, or stopped a
	// download mid-transfer.
	IncompleteFetch Kind = "incomplete-fetch"
	// RogueDHCP: another DHCP server answers on fleetboot's segment and competes with it: in
	// full mode any other server, in proxy mode another one offering network boot.
	RogueDHCP Kind = "rogue-dhcp"
)

// Kinds lists every Kind (metric label values, docs).
var Kinds = []Kind{SharedServerID, BootLoop, IncompleteFetch, RogueDHCP}

// Advice is what the operator should do, appended to the log line.
func (k Kind) Advice() string {
	switch k {
	case SharedServerID:
		return "the site DHCP server runs on fleetboot's address, which breaks UEFI PXE with a proxy: run fleetboot with --dhcp off and give the site server the boot options (README: Pointing an existing DHCP server at fleetboot), or let fleetboot be the DHCP server (--dhcp full)"
	case BootLoop:
		return "the machine starts over instead of booting: see the step named and the machine's timeline (a kernel that panics, a disk that does not boot under UEFI, an installer that reboots before its done callback)"
	case IncompleteFetch:
		return "a download did not complete: check the link (MTU, a switch port resetting), the machine's RAM for large initrds, and the firmware's console"
	case RogueDHCP:
		return "machines may boot from whichever server answers first: find the server named (its address, the switch port of its MAC) and stop it or its boot options, or move fleetboot to a segment of its own; with a site DHCP server that must stay, run fleetboot with --dhcp proxy"
	}
	return ""
}

// Report is one detection.
type Report struct {
	Kind Kind
	// MAC is the machine, lower-case colon form; "" when unknown (then there is no event).
	MAC string
	// Detail says what was seen, for the log line and the event.
	Detail string
}

// Reporter turns reports into a log line, a counter and a machine event. Repeats of the same
// kind for the same machine within Quiet are counted but not logged or recorded again: a
// misconfigured LAN would otherwise log every packet.
type Reporter struct {
	Log *slog.Logger
	// Count increments fleetboot_quirks_total{quirk}; nil skips.
	Count func(Kind)
	// Event adds a machine event; nil skips.
	Event func(ctx context.Context, mac, kind, detail string) error
	// Quiet is the repeat suppression window, default one minute.
	Quiet time.Duration
	// Now is the clock, default time.Now.
	Now func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
}

// maxRemembered bounds the suppression table; it is cleared when full.
const maxRemembered = 4096

// Report records q.
func (r *Reporter) Report(ctx context.Context, q Report) {
	if r == nil {
		return
	}
	if r.Count != nil {
		r.Count(q.Kind)
	}
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	quiet := r.Quiet
	if quiet == 0 {
		quiet = time.Minute
	}
	key := string(q.Kind) + " " + q.MAC
	r.mu.Lock()
	if r.last == nil || len(r.last) >= maxRemembered {
		r.last = map[string]time.Time{}
	}
	prev, seen := r.last[key]
	if seen && now.Sub(prev) < quiet {
		r.mu.Unlock()
		return
	}
	r.last[key] = now
	r.mu.Unlock()
	if r.Log != nil {
		r.Log.Warn("network quirk: "+string(q.Kind), "quirk", string(q.Kind), "mac", q.MAC, "detail", q.Detail, "advice", q.Kind.Advice())
	}
	if r.Event != nil && q.MAC != "" {
		if err := r.Event(ctx, q.MAC, "quirk", string(q.Kind)+": "+q.Detail); err != nil && r.Log != nil {
			r.Log.Warn("record quirk event", "mac", q.MAC, "err", err)
		}
	}
}
