// Package httpapi owns fleetboot's HTTP side. For machines, without a token: boot scripts
// (iPXE and GRUB), the iPXE binaries and signed shim/GRUB for UEFI HTTP Boot, assets and ISO
// contents (Range, sendfile), unattended-install files, the done callback and the Proxmox
// answer endpoint. For operators, with a token (read-only or admin): the REST API for ISOs
// (uploads, registration), machines, profiles, rules, leases and timelines, the live event
// stream, health and metrics, with every change audited. Routes and the mapping of errors to
// HTTP statuses live here and nowhere else.
package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/fleetboot/fleetboot/internal/audit"
	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/metrics"
	"github.com/fleetboot/fleetboot/internal/quirk"
	"github.com/fleetboot/fleetboot/internal/urls"
	"github.com/fleetboot/fleetboot/internal/webui"
)

// Decider picks the script for a machine (internal/boot implements it).
type Decider interface {
	Decide(ctx context.Context, r boot.Request) (boot.Decision, error)
}

// Config wires the API to the rest of fleetboot.
type Config struct {
	Scripts  ipxe.ScriptConfig
	Binaries *ipxe.Binaries
	// Chain is the signed shim + GRUB served at /secureboot/; nil serves none.
	Chain *grub.Chain
	// GRUB is what GRUB configs need to know about the server.
	GRUB grub.Config
	// GRUBDecider renders machines' GRUB configs; nil serves only the static GRUB files.
	GRUBDecider GRUBDecider
	// Pairs lists the ISOs' own signed shim + GRUB pairs, served below /isopair/ and at their
	// GRUBs' config paths (needs ISOs); nil serves none.
	Pairs grub.PairSource
	// Assets is the directory served at /assets/ (<data>/assets); nil disables the route.
	Assets  *os.Root
	Decider Decider
	// Inventory holds machines, profiles and rules; nil disables their API.
	Inventory Inventory
	// Provision validates profiles and renders unattended files.
	Provision Provisioner
	// ISOs is the ISO catalog; nil disables the ISO routes.
	ISOs ISOCatalog
	// Detector recognises the distribution of newly published ISOs; nil skips it.
	Detector Detector
	// Leases lists full-mode DHCP leases; nil when fleetboot hands out no addresses.
	Leases Leases
	// Tokens guard every call under /api/v1 (Authorization: Bearer <token>): the read-only
	// token may GET, the admin token may do everything.
	Tokens auth.Tokens
	// Audit records every API call that changes something (and the log says it too); nil:
	// the log only.
	Audit *audit.Log
	// AuthLimiter limits failed sign-ins per source address; nil: auth.Default* limits.
	AuthLimiter *auth.Limiter
	Metrics     *metrics.Metrics // nil: a private registry
	// Quirks receives the network problems the boot chain shows (boot loops, incomplete
	// downloads); nil: a reporter that only logs and counts.
	Quirks *quirk.Reporter
	Logger *slog.Logger // nil: discard
	// MaxUploads bounds the upload requests streaming to disk at once (one-shot uploads and
	// resumable-upload chunks); more get 503 with Retry-After. Zero: no bound.
	MaxUploads int
	// BodyIdleTimeout is how long an API request body may send nothing before the request is
	// cut off (a slow client that stops mid-upload must not hold a slot for ever); each read
	// that makes progress starts it again, so a slow but moving upload is never cut. Zero: none.
	BodyIdleTimeout time.Duration
	// MaxEventStreams bounds the live event streams open at once (0: DefaultMaxEventStreams).
	MaxEventStreams int
	// EventHeartbeat is how often an idle event stream sends a keep-alive comment (0:
	// DefaultEventHeartbeat).
	EventHeartbeat time.Duration
	// EventWriteTimeout drops an event stream subscriber that does not take a batch of events
	// within it (0: DefaultEventWriteTimeout).
	EventWriteTimeout time.Duration
	// Server describes the running server for the web UI's health page.
	Server ServerInfo
}

// API is the HTTP handler.
type API struct {
	cfg Config
	e   *echo.Echo
	log *slog.Logger
	m   *metrics.Metrics
	// chains follows each machine's script and file fetches (internal/quirk).
	chains quirk.Tracker
	// series are the per-request metric series (observe).
	series httpSeries

	inFlight atomic.Int64  // requests being served (downloads, uploads, API calls)
	uploads  chan struct{} // one slot per running upload (Config.MaxUploads); nil: no bound
	streams  streams       // open live event streams

	// ui renders the web UI's pages; sessions are its signed-in browsers, which may also
	// call /api/v1 (with the page's CSRF token for changes).
	ui       *webui.Renderer
	sessions *webui.Sessions
	// limiter counts failed sign-ins per address, for API calls and the UI's sign-in form.
	limiter *auth.Limiter
}

// New builds the routes.
func New(cfg Config) *API {
	ui, err := webui.NewRenderer()
	if err != nil {
		panic("webui: embedded templates do not parse: " + err.Error()) // a broken build, caught by every test
	}
	a := &API{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, ui: ui, sessions: &webui.Sessions{}, limiter: cfg.AuthLimiter}
	if cfg.MaxUploads > 0 {
		a.uploads = make(chan struct{}, cfg.MaxUploads)
	}
	if a.limiter == nil {
		a.limiter = auth.NewLimiter(auth.DefaultFailBurst, auth.DefaultFailEvery, auth.DefaultFailAddrs, nil)
	}
	if a.log == nil {
		a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if a.m == nil {
		a.m = metrics.New()
	}
	if a.cfg.Quirks == nil {
		a.cfg.Quirks = &quirk.Reporter{Log: a.log, Count: func(k quirk.Kind) { a.m.Quirks.WithLabelValues(string(k)).Inc() }}
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = a.handleError
	e.Use(a.observe)
	// A bug in a handler must cost one request a 500, never the process or a silent reset.
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		a.log.Error("handler panic", "path", c.Request().URL.Path, "err", err, "stack", string(stack))
		return err
	}}))

	getHead := []string{http.MethodGet, http.MethodHead}
	e.Match(getHead, urls.BootScript, a.bootScript)
	e.Match(getHead, urls.IPXEDir+":file", a.ipxeFile)
	if cfg.Chain != nil {
		e.Match(getHead, urls.SecureBootDir+":file", a.secureBootFile)
		e.Match(getHead, urls.GRUBDir+"*", a.grubFile)
	}
	if cfg.Pairs != nil && cfg.ISOs != nil {
		e.Match(getHead, urls.ISOPairDir+":iso/*", a.isoPairFile)
		// An ISO's GRUB reads its config below its own embedded prefix (/boot/grub/grub.cfg
		// …), paths no route knows in advance: asked for where nothing else matched.
		e.RouteNotFound("/*", a.isoPairConfig)
	}
	e.Match(getHead, urls.AssetsDir+"*", a.asset)
	e.Match(getHead, "/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.Match(getHead, "/metrics", echo.WrapHandler(a.m.Handler()))
	// Who may call what, decided here for every route at once: /api/v1 is the operator's and
	// every call to it — reads too — needs the token, because machines, profiles, rules,
	// events and leases carry password hashes, SSH keys, hostnames and addresses. Everything
	// else is what a booting machine fetches before it could hold any secret (scripts, iPXE,
	// kernels, files inside ISOs, its own unattended file, its done callback), plus /healthz
	// and /metrics (counts only) for monitoring. README's "HTTP endpoints" table says the same.
	api := e.Group("/api/v1", a.bodyIdle, a.guard(), a.audit, auth.RequireMethodScope(a.denied))
	api.GET("/whoami", a.whoami)
	api.GET("/audit", a.listAudit, auth.RequireScope(auth.ScopeAdmin, a.denied))
	api.GET("/leases", a.listLeases)
	if cfg.ISOs != nil {
		a.routesISOs(e, api)
	}
	if cfg.Inventory != nil {
		a.routesInventory(api)
		e.POST(urls.DoneDir+":mac", a.done)
		e.POST(urls.ProgressDir+":mac", a.progress)
		a.routesUI(e)
		if cfg.Provision != nil {
			e.Match(getHead, urls.UnattendedDir+":mac/:file", a.unattended)
			e.POST(urls.ProxmoxAnswer, a.proxmoxAnswer)
		}
	}
	a.e = e
	a.watchMetrics()
	return a
}

// watchMetrics pre-initialises the latency histogram for every route and registers the
// gauges read at scrape time: machines by state, and in full DHCP mode the pool's usage.
func (a *API) watchMetrics() {
	var routes [][2]string
	for _, r := range a.Routes() {
		if r[0] != echo.RouteNotFound {
			routes = append(routes, r)
		}
	}
	a.m.InitRoutes(routes)
	live := metrics.Live{OnError: func(what string, err error) { a.log.Warn("metrics: cannot read "+what, "err", err) }}
	if inv := a.cfg.Inventory; inv != nil {
		for _, s := range inventory.States {
			live.States = append(live.States, string(s))
		}
		live.MachineStates = func(ctx context.Context) (map[string]int, error) {
			byState, err := inv.CountByState(ctx)
			if err != nil {
				return nil, err
			}
			out := make(map[string]int, len(byState))
			for s, n := range byState {
				out[string(s)] = n
			}
			return out, nil
		}
	}
	if l := a.cfg.Leases; l != nil {
		live.Pool = func(ctx context.Context) (int, int, int, error) {
			u, err := l.PoolUsage(ctx)
			return u.Active, u.Free, u.Size, err
		}
	}
	a.m.Watch(live)
}

// Routes returns the method and path pattern of every route (method echo.RouteNotFound for
// a not-found handler), for tests that check each route's access decision.
func (a *API) Routes() [][2]string {
	var routes [][2]string
	for _, r := range a.e.Routes() {
		routes = append(routes, [2]string{r.Method, r.Path})
	}
	return routes
}

// InFlight returns how many requests are being served right now: what a graceful shutdown
// waits for.
func (a *API) InFlight() int { return int(a.inFlight.Load()) }

// ServeHTTP makes API an http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.e.ServeHTTP(w, r) }
