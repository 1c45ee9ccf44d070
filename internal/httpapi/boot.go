package httpapi

import (
	"context"

	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/metrics"
)

// bootScript answers GET /boot.ipxe. Without ?mac= it is the DHCP filename every iPXE fetches
// first, and the answer asks the machine to say who it is; with it, the decider picks.
func (a *API) bootScript(c echo.Context) error {
	id := ipxe.ParseIdentityQuery(c.Request().URL.RawQuery)
	req := boot.Request{Identity: id, Remote: remoteIP(c)}
	if p := c.QueryParam("profile"); p != "" {
		if !inventory.ValidName(p) {
			return httpError(http.StatusBadRequest, "bad profile name")
		}
		req.Profile = p
	}
	d, err := a.cfg.Decider.Decide(c.Request().Context(), req)
	if err != nil {
		return err
	}
	a.m.BootScripts.WithLabelValues(d.Kind).Inc()
	if id.MAC != "" {
		for _, q := range a.chains.Script(id.MAC, req.Remote.String(), d.Kind, time.Now()) {
			a.cfg.Quirks.Report(c.Request().Context(), q)
		}
	}
	a.log.Info("boot script", "mac", id.MAC, "uuid", id.UUID, "arch", id.Arch, "platform", id.Platform,
		"ip", req.Remote, "kind", d.Kind, "target", d.Label, "product", id.Hardware["product"])
	return serveScript(c, d.Script)
}

// observe logs each request at debug level and counts it per route group.
func (a *API) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		a.inFlight.Add(1)
		defer a.inFlight.Add(-1)
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		res := c.Response()
		route := routeGroup(c.Request().URL.Path)
		status := res.Status
		if status == 0 {
			status = http.StatusOK
		}
		a.m.HTTPRequests.WithLabelValues(route, metrics.CodeClass(status)).Inc()
		tmpl := c.Path() // the route template, never the raw path (bounded label values)
		if tmpl == "" {
			tmpl = metrics.UnmatchedRoute
		}
		a.m.HTTPDuration.WithLabelValues(metrics.MethodLabel(c.Request().Method), tmpl).Observe(time.Since(start).Seconds())
		if (route == "iso" || route == "assets") && c.Request().Method == http.MethodGet && (status == http.StatusOK || status == http.StatusPartialContent) {
			// What the machine fetched, in order, and whether it all arrived (internal/quirk).
			want, _ := strconv.ParseInt(res.Header().Get("Content-Length"), 10, 64)
			for _, q := range a.chains.Fetched(remoteIP(c).String(), c.Request().URL.Path, res.Size, want, time.Now()) {
				a.cfg.Quirks.Report(context.WithoutCancel(c.Request().Context()), q)
			}
		}
		a.m.HTTPBytes.WithLabelValues(route).Add(float64(res.Size))
		a.log.Debug("http", "method", c.Request().Method, "path", c.Request().URL.Path, "status", res.Status,
			"bytes", res.Size, "ip", remoteIP(c), "dur", time.Since(start), "range", c.Request().Header.Get("Range"))
		return nil
	}
}

func routeGroup(p string) string {
	switch {
	case p == "/boot.ipxe":
		return "boot"
	case strings.HasPrefix(p, "/ipxe/"):
		return "ipxe"
	case strings.HasPrefix(p, "/secureboot/"), strings.HasPrefix(p, "/grub/"):
		return "grub"
	case strings.HasPrefix(p, "/assets/"):
		return "assets"
	case strings.HasPrefix(p, "/isos/"):
		return "iso"
	case strings.HasPrefix(p, "/api/"):
		return "api"
	}
	return "other"
}

// remoteIP is the peer address of the connection. Forwarded headers are ignored on purpose:
// machines talk to fleetboot directly, and a header must not let one claim another's address.
func remoteIP(c echo.Context) netip.Addr { return auth.SourceAddr(c.Request()) }
