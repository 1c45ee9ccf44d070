package httpapi

import (
	"context"
	"fmt"
	"log/slog"

	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/metrics"
	"github.com/fleetboot/fleetboot/internal/urls"
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
	a.m.BootScripts.WithLabelValues(string(d.Kind)).Inc()
	if id.MAC != "" {
		for _, q := range a.chains.Script(id.MAC, req.Remote.String(), string(d.Kind), time.Now()) {
			a.cfg.Quirks.Report(c.Request().Context(), q)
		}
	}
	a.log.Info("boot script", "mac", id.MAC, "uuid", id.UUID, "arch", id.Arch, "platform", id.Platform,
		"ip", req.Remote, "kind", d.Kind, "target", d.Label, "product", id.Hardware["product"])
	return serveScript(c, d.Script)
}

// observe logs each request at debug level and counts it per route group. It runs for every
// request, so it does no more than it must: the metric series come from httpSeries (no label
// hashing per request), the debug line is built only when debug logging is on, and the peer
// address is parsed once.
func (a *API) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		a.inFlight.Add(1)
		defer a.inFlight.Add(-1)
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req, res := c.Request(), c.Response()
		route := routeGroup(req.URL.Path)
		status := res.Status
		if status == 0 {
			status = http.StatusOK
		}
		tmpl := c.Path() // the route template, never the raw path (bounded label values)
		if tmpl == "" {
			tmpl = metrics.UnmatchedRoute
		}
		dur := time.Since(start)
		a.series.observe(a.m, route, status, req.Method, tmpl, res.Size, dur)
		var ip netip.Addr
		if (route == "iso" || route == "assets") && req.Method == http.MethodGet && (status == http.StatusOK || status == http.StatusPartialContent) {
			// What the machine fetched, in order, and whether it all arrived (internal/quirk).
			ip = remoteIP(c)
			want, _ := strconv.ParseInt(res.Header().Get("Content-Length"), 10, 64)
			for _, q := range a.chains.Fetched(ip.String(), req.URL.Path, res.Size, want, time.Now()) {
				a.cfg.Quirks.Report(context.WithoutCancel(req.Context()), q)
			}
			if want <= 0 || res.Size >= want {
				a.bootFileStep(context.WithoutCancel(req.Context()), ip, req.URL.Path, res.Size, dur)
			}
		}
		if a.log.Enabled(req.Context(), slog.LevelDebug) {
			if !ip.IsValid() {
				ip = remoteIP(c)
			}
			a.log.Debug("http", "method", req.Method, "path", req.URL.Path, "status", res.Status,
				"bytes", res.Size, "ip", ip, "dur", dur, "range", req.Header.Get("Range"))
		}
		return nil
	}
}

// httpSeries caches the metric series observe updates, by their labels: looking a series up
// by label values hashes them and takes the vector's lock, three times per request.
type httpSeries struct {
	mu   sync.RWMutex
	reqs map[[2]string]prometheus.Counter  // route group, code class
	byts map[string]prometheus.Counter     // route group
	durs map[[2]string]prometheus.Observer // method, route template
}

func (h *httpSeries) observe(m *metrics.Metrics, route string, status int, method, tmpl string, size int64, dur time.Duration) {
	code := metrics.CodeClass(status)
	h.mu.RLock()
	reqs, byts, durs := h.reqs[[2]string{route, code}], h.byts[route], h.durs[[2]string{method, tmpl}]
	h.mu.RUnlock()
	if reqs == nil || byts == nil || durs == nil {
		h.mu.Lock()
		if h.reqs == nil {
			h.reqs, h.byts, h.durs = map[[2]string]prometheus.Counter{}, map[string]prometheus.Counter{}, map[[2]string]prometheus.Observer{}
		}
		if reqs = h.reqs[[2]string{route, code}]; reqs == nil {
			reqs = m.HTTPRequests.WithLabelValues(route, code)
			h.reqs[[2]string{route, code}] = reqs
		}
		if byts = h.byts[route]; byts == nil {
			byts = m.HTTPBytes.WithLabelValues(route)
			h.byts[route] = byts
		}
		// Methods outside the known set share one label (MethodLabel): key by the label, so
		// odd methods cannot grow the map.
		ml := metrics.MethodLabel(method)
		if durs = h.durs[[2]string{ml, tmpl}]; durs == nil {
			durs = m.HTTPDuration.WithLabelValues(ml, tmpl)
			h.durs[[2]string{ml, tmpl}] = durs
		}
		if ml == method {
			h.durs[[2]string{method, tmpl}] = durs
		}
		h.mu.Unlock()
	}
	reqs.Inc()
	byts.Add(float64(size))
	durs.Observe(dur.Seconds())
}

func routeGroup(p string) string {
	switch {
	case p == urls.BootScript:
		return "boot"
	case strings.HasPrefix(p, urls.IPXEDir):
		return "ipxe"
	case strings.HasPrefix(p, urls.SecureBootDir), strings.HasPrefix(p, urls.GRUBDir):
		return "grub"
	case strings.HasPrefix(p, urls.AssetsDir):
		return "assets"
	case strings.HasPrefix(p, urls.ISOsDir):
		return "iso"
	case strings.HasPrefix(p, urls.API+"/"):
		return "api"
	}
	return "other"
}

// remoteIP is the peer address of the connection. Forwarded headers are ignored on purpose:
// machines talk to fleetboot directly, and a header must not let one claim another's address.
func remoteIP(c echo.Context) netip.Addr { return auth.SourceAddr(c.Request()) }

// bootFileStep records a machine's kernel and initrd downloads in its timeline, with bytes and
// duration (the web UI shows them per step): a "download" event, "<path>: <n> bytes in <s> s".
// Only the first quirk.BootFiles files after a script that boots a kernel count, so an
// installer fetching its repository from the ISO writes nothing; the write happens after the
// response was sent.
func (a *API) bootFileStep(ctx context.Context, ip netip.Addr, path string, size int64, dur time.Duration) {
	mac, _, ok := a.chains.BootFile(ip.String())
	if !ok || a.cfg.Inventory == nil {
		return
	}
	detail := fmt.Sprintf("%s: %d bytes in %.3f s", path, size, dur.Seconds())
	if err := a.cfg.Inventory.AddEvent(ctx, mac, EventDownload, detail); err != nil {
		a.log.Warn("record download step", "mac", mac, "path", path, "err", err)
	}
}

// EventDownload is the timeline kind of a kernel or initrd download.
const EventDownload = "download"
