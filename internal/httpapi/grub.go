package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
)

// GRUBDecider picks the GRUB config of a machine that booted through shim → GRUB
// (internal/boot implements it).
type GRUBDecider interface {
	DecideGRUB(ctx context.Context, r boot.Request, secureBoot bool) (boot.Decision, error)
}

// secureBootFile serves /secureboot/: the signed shim and, beside it where shim looks, GRUB.
// shim also asks for revocations_sku.efi, revocations_sbat.efi and shim_certificate_0.efi
// there; they are optional and get a plain 404, logged at debug level only.
func (a *API) secureBootFile(c echo.Context) error {
	name := ipxe.CleanName(c.Param("file"))
	f, ok := a.cfg.Chain.Get(name)
	if !ok && grub.IsOptional(name) {
		return httpError(http.StatusNotFound, "not served (optional)")
	}
	if !ok {
		return httpError(http.StatusNotFound, "not served: "+c.Param("file"))
	}
	a.log.Info("secure boot binary", "file", name, "ip", remoteIP(c), "method", c.Request().Method)
	c.Response().Header().Set("Content-Type", "application/efi")
	return serveContent(c, name, f.ModTime, `"`+f.SHA256+`"`, f.Reader())
}

// grubFile serves GRUB's files below its prefix /grub/: the module lists and the bootstrap
// grub.cfg (the same for every machine), and below /grub/mac/<mac>/ the machine's own configs:
//
//	sb-on.cfg, sb-off.cfg      its decision, by the Secure Boot state the bootstrap found
//	profile/<name>.cfg         a profile picked from the menu
//	failed/<step>.cfg          GRUB reporting a failed step (recorded in the timeline)
func (a *API) grubFile(c echo.Context) error {
	p, err := wildcardPath(c)
	if err != nil {
		return err
	}
	switch {
	case p == "grub.cfg":
		return serveScript(c, grub.Bootstrap(a.cfg.GRUB))
	case grub.IsModuleList(grub.Prefix + "/" + p):
		return serveScript(c, []byte("\n"))
	}
	rest, ok := strings.CutPrefix(p, "mac/")
	if !ok || a.cfg.GRUBDecider == nil {
		return httpError(http.StatusNotFound, "not found")
	}
	macPart, what, ok := strings.Cut(rest, "/")
	mac := ipxe.NormalizeMAC(macPart)
	if !ok || mac == "" {
		return httpError(http.StatusNotFound, "not found: GRUB did not say its MAC ($net_default_mac)")
	}
	ctx := c.Request().Context()
	req := boot.Request{Identity: ipxe.Identity{MAC: mac, Arch: "x86_64", Platform: "efi"}, Remote: remoteIP(c)}
	var d boot.Decision
	switch {
	case what == "sb-on.cfg" || what == "sb-off.cfg":
		d, err = a.cfg.GRUBDecider.DecideGRUB(ctx, req, what == "sb-on.cfg")
	case strings.HasPrefix(what, "profile/") && strings.HasSuffix(what, ".cfg"):
		name := strings.TrimSuffix(strings.TrimPrefix(what, "profile/"), ".cfg")
		if !inventory.ValidName(name) {
			return httpError(http.StatusBadRequest, "bad profile name")
		}
		req.Profile = name
		d, err = a.cfg.GRUBDecider.DecideGRUB(ctx, req, true)
	case strings.HasPrefix(what, "failed/") && strings.HasSuffix(what, ".cfg"):
		return a.grubFailed(c, mac, strings.TrimSuffix(strings.TrimPrefix(what, "failed/"), ".cfg"))
	default:
		return httpError(http.StatusNotFound, "not found")
	}
	if err != nil {
		return err
	}
	a.m.BootScripts.WithLabelValues(string(d.Kind)).Inc()
	a.log.Info("grub config", "mac", mac, "ip", req.Remote, "file", what, "kind", d.Kind, "target", d.Label)
	return serveScript(c, d.Script)
}

// grubFailed records that a machine's GRUB could not load or boot what it was given — under
// Secure Boot typically a kernel its shim does not trust — and answers a message for the
// console. Only the machine itself may report (its address must be the one fleetboot last saw
// it at), so nobody else can write into its timeline.
func (a *API) grubFailed(c echo.Context, mac, step string) error {
	step = cleanStep(step)
	ctx := c.Request().Context()
	m, err := a.cfg.Inventory.Machine(ctx, mac)
	if err != nil {
		return err
	}
	from, err := a.fromMachine(c, m, "report its boot failure")
	if err != nil {
		return err
	}
	why := "GRUB could not " + map[string]string{
		"linux":          "load the kernel (with Secure Boot on: the kernel is not signed by a key the served shim trusts)",
		"initrd":         "load the initrd",
		"boot":           "boot the loaded kernel",
		"chainload-ipxe": "chainload iPXE",
		"unsupported":    "boot this target (needs iPXE)",
	}[step]
	if why == "GRUB could not " {
		why += step
	}
	if err := a.cfg.Inventory.AddEvent(ctx, mac, "error", "boot failed: "+why); err != nil {
		return err
	}
	a.log.Warn("GRUB reported a failed boot", "mac", mac, "ip", from, "step", step)
	return serveScript(c, grub.Failed(a.cfg.GRUB, mac, fmt.Sprintf("fleetboot: %s; recorded in this machine's timeline", why)))
}

// cleanStep keeps a reported step name short and plain.
func cleanStep(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, s)
}
