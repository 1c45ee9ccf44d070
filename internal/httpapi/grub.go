package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"path"
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
	step = grub.CleanStep(step)
	ctx := c.Request().Context()
	m, err := a.cfg.Inventory.Machine(ctx, mac)
	if err != nil {
		return err
	}
	from, err := a.fromMachine(c, m, "report its boot failure")
	if err != nil {
		return err
	}
	why := grub.FailureReason(step)
	if err := a.cfg.Inventory.AddEvent(ctx, mac, "error", "boot failed: "+why); err != nil {
		return err
	}
	a.log.Warn("GRUB reported a failed boot", "mac", mac, "ip", from, "step", step)
	return serveScript(c, grub.Failed(a.cfg.GRUB, mac, fmt.Sprintf("fleetboot: %s; recorded in this machine's timeline", why)))
}

// isoPairFile serves /isopair/<ISO id>/: an ISO's own signed shim and, beside it where the
// shim looks, its GRUB (both read out of the ISO), and the bootstrap config for GRUBs that
// look beside themselves. Firmware gets the shim's URL from DHCP for machines installing a
// profile of that ISO (boot.Planner.ShimPath).
func (a *API) isoPairFile(c echo.Context) error {
	return a.servePair(c, true)
}

// isoPairConfig serves the bootstrap config at the config paths of the ISOs' GRUBs, for paths
// no other route matched; anything else is the usual 404.
func (a *API) isoPairConfig(c echo.Context) error {
	return a.servePair(c, false)
}

func (a *API) servePair(c echo.Context, inPairDir bool) error {
	p := strings.TrimPrefix(path.Clean("/"+c.Request().URL.Path), "/")
	if inPairDir {
		// Keep shim's "<dir>//grubx64.efi" intact for ResolvePair, which expects it.
		p = strings.TrimPrefix(c.Request().URL.Path, "/")
	}
	if !grub.MayBePair(p) {
		return echo.ErrNotFound
	}
	ctx := c.Request().Context()
	pairs, err := a.cfg.Pairs.ISOPairs(ctx)
	if err != nil {
		return err
	}
	pf, ok := grub.ResolvePair(pairs, p, a.cfg.GRUB, false)
	switch {
	case !ok || pf.Optional:
		return echo.ErrNotFound
	case pf.Config != nil:
		a.log.Info("grub config", "file", p, "ip", remoteIP(c), "kind", "iso-pair-bootstrap")
		return serveScript(c, pf.Config)
	}
	f, err := a.cfg.ISOs.OpenFile(ctx, pf.ISO, pf.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	a.log.Info("secure boot binary from the ISO", "file", p, "iso", pf.ISO, "path", pf.Path, "ip", remoteIP(c), "method", c.Request().Method)
	c.Response().Header().Set("Content-Type", "application/efi")
	return serveContent(c, f.Name(), f.ModTime(), f.ETag(), f)
}
