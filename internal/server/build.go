package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fleetboot/fleetboot/internal/audit"
	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/config"
	"github.com/fleetboot/fleetboot/internal/dhcp"
	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/httpapi"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/metrics"
	"github.com/fleetboot/fleetboot/internal/provision"
	"github.com/fleetboot/fleetboot/internal/quirk"
	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/fleetboot/fleetboot/internal/urls"
)

// Deps is what Build takes besides the configuration: what Run loads or binds first (the
// boot binaries, the tokens, the DHCP sockets) and what a test chooses instead.
type Deps struct {
	Binaries *ipxe.Binaries
	// Chain is the signed shim + GRUB; nil serves none.
	Chain  *grub.Chain
	Tokens auth.Tokens
	// Sockets are the DHCP sockets Run bound. Nil in tests: the DHCP server of a proxy or
	// full configuration is still built (the API lists its leases) but never runs.
	Sockets *dhcp.Sockets
	// AuthLimiter limits failed sign-ins; nil: auth's default limits.
	AuthLimiter *auth.Limiter
	Metrics     *metrics.Metrics // nil: a private registry
	Logger      *slog.Logger     // nil: discard
	// MaxEventStreams, EventHeartbeat and EventWriteTimeout tune the live event stream (0:
	// httpapi's defaults).
	MaxEventStreams   int
	EventHeartbeat    time.Duration
	EventWriteTimeout time.Duration
	// HTTPAddr is the address the HTTP listener is bound to, for the web UI's health page
	// ("": cfg.HTTPAddr).
	HTTPAddr string
}

// App is fleetboot's components, wired together once, for Run and for every test that wants
// the real thing.
type App struct {
	DB        *store.Store
	Assets    *os.Root // <data>/assets
	Inventory *inventory.Inventory
	ISOs      *isostore.Store
	Provision *provision.Service
	Planner   *boot.Planner
	Audit     *audit.Log
	// Leases (the full-mode lease table) and DHCP are nil with --dhcp=off.
	Leases  *dhcp.LeaseDB
	DHCP    *dhcp.Server
	Quirks  *quirk.Reporter
	Metrics *metrics.Metrics
	API     *httpapi.API
}

// Close releases the database and the assets directory (after the lease table's last writes).
func (a *App) Close() error {
	if a.Leases != nil {
		a.Leases.Close()
	}
	a.Assets.Close()
	return a.DB.Close()
}

// scriptConfig and grubConfig are what iPXE scripts and GRUB configs need to know about the
// server, for HTTP (Build) and TFTP (Run) alike.
func scriptConfig(cfg config.Config, res *config.Resolved) ipxe.ScriptConfig {
	return ipxe.ScriptConfig{HTTPBase: res.HTTPBase, MenuTimeout: cfg.MenuTimeout}
}

func grubConfig(cfg config.Config, res *config.Resolved) grub.Config {
	c := grub.Config{HTTPBase: res.HTTPBase, MenuTimeout: cfg.MenuTimeout, IPXEFile: ipxe.UEFISnp}
	if res.ServerIP.IsValid() {
		c.TFTPServer = res.ServerIP.String()
	}
	return c
}

// Build opens the data directory's database and builds every component on it: inventory,
// ISO store, provisioning, boot planner, the DHCP server (unless --dhcp=off) and the HTTP API.
// It starts nothing; Run does. cfg must have passed Validate, which gave res. The data
// directory must exist. On error, whatever Build opened is closed again.
func Build(ctx context.Context, cfg config.Config, res *config.Resolved, d Deps) (app *App, err error) {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := d.Metrics
	if m == nil {
		m = metrics.New()
	}
	app = &App{Metrics: m}
	assetsDir := filepath.Join(cfg.DataDir, "assets")
	if err := os.MkdirAll(assetsDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if app.Assets, err = os.OpenRoot(assetsDir); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if app.DB, err = openDatabase(ctx, cfg); err != nil {
		app.Assets.Close()
		return nil, err
	}
	app.DB.SetLogger(log)
	if cfg.Database != "" {
		// A pooler that drops the startup parameter (PgBouncer) leaves the sessions without it.
		if d, err := app.DB.SessionIdleInTransactionTimeout(ctx); err != nil {
			log.Warn("cannot read the database sessions' idle_in_transaction_session_timeout", "err", err)
		} else if d == 0 {
			log.Warn("the database sessions have no idle_in_transaction_session_timeout: an instance that hangs mid-transaction holds its locks, and the other instances wait, until TCP gives up; " +
				"behind PgBouncer, set it for fleetboot's role (README, Behind PgBouncer)")
		}
	}
	defer func() {
		if err != nil {
			app.Close()
			app = nil
		}
	}()
	inv, err := inventory.Open(ctx, app.DB)
	if err != nil {
		return nil, err
	}
	inv.SetSite(cfg.Site)
	isos, err := isostore.Open(ctx, isostore.Config{DataDir: cfg.DataDir, ImagesDir: cfg.ImagesDir, DB: app.DB, InUse: inv.ISOUsers, RegisterDirs: cfg.RegisterDirs,
		MaxPendingUploads: cfg.MaxPendingUploads, Logger: log})
	if err != nil {
		return nil, err
	}
	if app.Audit, err = audit.Open(ctx, app.DB); err != nil {
		return nil, err
	}
	app.Inventory, app.ISOs = inv, isos
	// One way to report network problems, whichever component sees them.
	quirks := &quirk.Reporter{Log: log, Count: func(k quirk.Kind) { m.Quirks.WithLabelValues(string(k)).Inc() },
		Event: func(ctx context.Context, mac, kind, detail string) error {
			err := inv.AddEvent(ctx, mac, kind, detail)
			if errors.Is(err, inventory.ErrNotFound) {
				return nil // a machine fleetboot has not recorded (yet)
			}
			return err
		}}
	app.Quirks = quirks
	// With the signed chain, machines installing a profile whose ISO carries its own signed
	// shim + GRUB get that pair (boot.Planner.ShimPath), and readiness is judged by it.
	prov := &provision.Service{ISOs: isos, Inv: inv, HTTPBase: res.HTTPBase, Shims: servedShims(d.Chain, log), ServesISOPairs: d.Chain != nil}
	app.Provision = prov

	scripts, grubCfg := scriptConfig(cfg, res), grubConfig(cfg, res)
	planner := &boot.Planner{Scripts: scripts, Machines: inv, Targets: prov, Unassigned: boot.Unassigned(cfg.Unassigned),
		GRUB: boot.GRUBRenderer{Config: grubCfg}, DefaultChain: cfg.BootChain}
	var pairs grub.PairSource
	if d.Chain != nil {
		planner.Pairs, pairs = prov, prov
	}
	if cfg.BootKernel != "" {
		planner.Fallback = &boot.Target{Label: "default target " + cfg.BootKernel, Kernel: cfg.BootKernel, Initrds: res.BootInitrd, Cmdline: cfg.BootCmdline}
		for _, p := range append([]string{cfg.BootKernel}, res.BootInitrd...) {
			if _, err := app.Assets.Stat(p); err != nil {
				log.Warn("default boot target file is missing; machines will fail to load it", "path", filepath.Join(assetsDir, p))
			}
		}
	}
	app.Planner = planner

	// DHCP is built before the API (which lists its leases).
	var leasesView httpapi.Leases
	if cfg.DHCPMode == config.DHCPProxy || cfg.DHCPMode == config.DHCPFull {
		if app.DHCP, app.Leases, err = buildDHCP(ctx, cfg, res, d, app, log); err != nil {
			return nil, err
		}
		if cfg.DHCPMode == config.DHCPFull {
			leasesView = app.DHCP
		}
	}
	app.API = httpapi.New(httpapi.Config{Scripts: scripts, Binaries: d.Binaries, Chain: d.Chain, GRUB: grubCfg, GRUBDecider: planner, Pairs: pairs,
		Assets: app.Assets, Decider: planner, Inventory: inv, Provision: prov, ISOs: isos, Detector: prov, Leases: leasesView,
		Tokens: d.Tokens, Audit: app.Audit, AuthLimiter: d.AuthLimiter, Metrics: m, Quirks: quirks, Logger: log,
		MaxEventStreams: d.MaxEventStreams, EventHeartbeat: d.EventHeartbeat, EventWriteTimeout: d.EventWriteTimeout, Server: serverInfo(cfg, res, d.HTTPAddr),
		MaxUploads: cfg.MaxUploads, BodyIdleTimeout: cfg.BodyIdleTimeout})
	return app, nil
}

// sharedMaxInFlight is dhcp.Config.MaxInFlight with a PostgreSQL lease table.
const sharedMaxInFlight = 64

// buildDHCP builds the DHCP server of a proxy or full configuration over the lease table.
func buildDHCP(ctx context.Context, cfg config.Config, res *config.Resolved, d Deps, app *App, log *slog.Logger) (*dhcp.Server, *dhcp.LeaseDB, error) {
	m, inv, quirks, planner, prov := app.Metrics, app.Inventory, app.Quirks, app.Planner, app.Provision
	dcfg := dhcp.Config{
		Mode:         dhcp.Mode(cfg.DHCPMode),
		Interface:    res.Interface,
		ServerIP:     res.ServerIP.AsSlice(),
		HTTPBase:     res.HTTPBase,
		HTTPBootFile: cfg.HTTPBootFile,
		Arm64File:    d.Binaries.Arm64(),
		Netmask:      res.Netmask,
		DomainName:   cfg.DomainName,
		LeaseTime:    cfg.LeaseTime,
		Logger:       log,
		Sockets:      d.Sockets,
		// Metrics on the packet path; the timeline (a database write) off it.
		OnEvent:        func(e dhcp.Event) { m.DHCPReplies.WithLabelValues(string(e.Kind), string(e.Firmware)).Inc() },
		Timeline:       dhcpTimeline(inv, quirks, log),
		OnTimelineDrop: func(dhcp.Event) { m.TimelineDropped.Inc() },
	}
	if d.Chain != nil {
		dcfg.ShimFile, dcfg.ShimURLPath = grub.ShimFile, urls.SecureBootDir+grub.ShimFile
		dcfg.OfferShim = dhcpOfferShim(ctx, inv, planner, log)
		type shimKey struct {
			mac      string
			httpBoot bool
		}
		// An ISO's pair also depends on the ISO store (an ISO uploaded or replaced under the
		// profile's ISO name): kept 2 s at most, enough for one exchange's packets.
		shims := newLookupCache[shimKey, string](inv.Version, 2*time.Second)
		dcfg.ShimPath = func(mac net.HardwareAddr, httpBoot bool) string {
			k := shimKey{ipxe.NormalizeMAC(mac.String()), httpBoot}
			if known, ok := inv.Known(k.mac); ok && !known {
				return "" // fleetboot's own pair (Planner.ShimPath)
			}
			p, err := shims.get(k, func() (string, error) { return planner.ShimPath(ctx, k.mac, k.httpBoot) })
			if err != nil {
				log.Warn("ISO pair lookup failed; offering fleetboot's own shim", "mac", mac, "err", err)
			}
			return p
		}
	}
	if cfg.DHCPMode == config.DHCPFull {
		// The Proxmox installer's own DHCP client takes its answer URL from option 250.
		dcfg.AnswerURL = dhcpAnswerURL(ctx, inv, prov, log)
		dcfg.PoolStart, dcfg.PoolEnd = res.PoolStart.AsSlice(), res.PoolEnd.AsSlice()
		if res.Router.IsValid() {
			dcfg.Router = res.Router.AsSlice()
		}
		for _, d := range res.DNS {
			dcfg.DNS = append(dcfg.DNS, d.AsSlice())
		}
	}
	var leases *dhcp.LeaseDB
	var err error
	if app.DB.Dialect() == store.Postgres {
		leases, err = dhcp.OpenLeaseDB(ctx, app.DB) // shared by an HA pair
		// Every offer and ACK is a locked PostgreSQL transaction that holds one of the
		// instance's 16 connections: more packets in flight would only queue for them.
		dcfg.MaxInFlight = sharedMaxInFlight
	} else {
		leases, err = dhcp.OpenLeaseFile(ctx, cfg.DataDir, app.DB)
	}
	if err != nil {
		return nil, nil, err
	}
	ds, err := dhcp.New(dcfg, leases)
	if err != nil {
		return nil, nil, fmt.Errorf("dhcp: %w", err)
	}
	return ds, leases, nil
}

// serverInfo is what the web UI's health page says about the listeners and the data directory.
func serverInfo(cfg config.Config, res *config.Resolved, httpAddr string) httpapi.ServerInfo {
	if httpAddr == "" {
		httpAddr = cfg.HTTPAddr
	}
	info := httpapi.ServerInfo{DHCPMode: string(cfg.DHCPMode), DataDir: cfg.DataDir,
		Listeners: []httpapi.Listener{{Name: "HTTP", Addr: httpAddr, Note: "boot paths, API, web UI"}}}
	if cfg.TLSCert != "" {
		info.Listeners[0].Note = "boot paths (the API and the UI are on HTTPS)"
		info.Listeners = append(info.Listeners, httpapi.Listener{Name: "HTTPS", Addr: cfg.APIAddr, Note: "API, web UI, boot paths"})
	}
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		info.DataDir = abs
	}
	info.Listeners = append(info.Listeners, httpapi.Listener{Name: "TFTP", Addr: orOff(res.TFTPAddr), Note: "legacy PXE"})
	dhcpAddr := "off"
	if cfg.DHCPMode != config.DHCPOff {
		dhcpAddr = res.Interface + " ports 67, 4011"
	}
	info.Listeners = append(info.Listeners, httpapi.Listener{Name: "DHCP", Addr: dhcpAddr, Note: "mode " + string(cfg.DHCPMode)})
	return info
}

// openDatabase opens the backend the configuration names: the PostgreSQL database of
// --database, shared with other instances, or by default the SQLite file in --data.
func openDatabase(ctx context.Context, cfg config.Config) (*store.Store, error) {
	if cfg.Database != "" {
		return store.OpenPostgres(ctx, cfg.Database)
	}
	return store.Open(ctx, cfg.DataDir)
}

// dhcpAnswerURL is full-mode DHCP's option 250 lookup (Config.AnswerURL), with its answers
// kept while the inventory is unchanged (lookupCache).
func dhcpAnswerURL(ctx context.Context, inv *inventory.Inventory, prov *provision.Service, log *slog.Logger) func(net.HardwareAddr) string {
	answers := newLookupCache[string, string](inv.Version, 0)
	// Most sites have no answer-file profile at all: then no MAC needs a lookup.
	anyAnswers := newLookupCache[struct{}, bool](inv.Version, 0)
	return func(mac net.HardwareAddr) string {
		if _, ok := inv.Version(); ok {
			some, err := anyAnswers.get(struct{}{}, func() (bool, error) {
				ps, err := inv.Profiles(ctx)
				return slices.ContainsFunc(ps, func(p *inventory.Profile) bool { return p.Kind == provision.KindAnswer }), err
			})
			if err == nil && !some {
				return ""
			}
		}
		m := ipxe.NormalizeMAC(mac.String())
		if known, ok := inv.Known(m); ok && !known {
			return "" // no machine, no profile (Service.AnswerURL)
		}
		u, err := answers.get(m, func() (string, error) { return prov.AnswerURL(ctx, m) })
		if err != nil {
			log.Warn("answer URL lookup failed; option 250 left out", "mac", mac, "err", err)
		}
		return u
	}
}

// dhcpOfferShim is DHCP's boot chain question (Config.OfferShim): does the machine get shim
// rather than iPXE. Unknown machines are answered without a query (inventory.Known), the
// others from a lookupCache.
func dhcpOfferShim(ctx context.Context, inv *inventory.Inventory, planner *boot.Planner, log *slog.Logger) func(net.HardwareAddr) bool {
	chains := newLookupCache[string, string](inv.Version, 0)
	return func(mac net.HardwareAddr) bool {
		m := ipxe.NormalizeMAC(mac.String())
		if known, ok := inv.Known(m); ok && !known {
			return planner.UnknownChain() != boot.ChainIPXE
		}
		c, err := chains.get(m, func() (string, error) { return planner.Chain(ctx, m) })
		if err != nil {
			log.Warn("boot chain lookup failed; offering iPXE", "mac", mac, "err", err)
			return false
		}
		return c != boot.ChainIPXE
	}
}
