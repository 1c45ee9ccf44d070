// Package server is fleetboot's composition root. Build wires the components (database,
// inventory, ISO store, provisioning, boot planner, DHCP server, HTTP API) once, for Run and
// for tests alike; Run validates the configuration, binds the listeners, builds, and serves
// DHCP, TFTP and HTTP under one errgroup so that any failing service stops the others and a
// signal stops them all. This is the only place that knows every component.
package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	embedded "github.com/fleetboot/fleetboot/embed"
	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/config"
	"github.com/fleetboot/fleetboot/internal/datadir"
	"github.com/fleetboot/fleetboot/internal/dhcp"
	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/metrics"
	"github.com/fleetboot/fleetboot/internal/secureboot"
	"github.com/fleetboot/fleetboot/internal/tftp"
	"github.com/fleetboot/fleetboot/internal/urls"
)

// Run serves until ctx is cancelled or a service fails. It binds every listener (HTTP, TFTP,
// DHCP) before it touches the data directory, so a start that fails on a bad flag or a port in
// use leaves nothing behind; a start that fails later removes what it created. "fleetboot
// serving" is logged once everything listens. When ctx ends, running transfers get
// cfg.DrainTimeout to finish and Run returns nil.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	res, err := cfg.Validate()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	bins, err := ipxe.LoadBinariesFrom(embedded.IPXE, cfg.IPXEDir)
	if err != nil {
		return err
	}
	logBinaries(log, bins)
	chain, err := grub.LoadChainFrom(embedded.SecureBoot, cfg.SecureBootDir)
	switch {
	case errors.Is(err, grub.ErrMissing) && cfg.BootChain != boot.ChainShim:
		// Optional: without it fleetboot is what it was before Secure Boot support.
		log.Warn("Secure Boot chain not available: every machine gets iPXE, machines with Secure Boot on cannot boot", "err", err)
		chain = nil
	case err != nil:
		return fmt.Errorf("--boot-chain=%s: %w", cfg.BootChain, err)
	default:
		for _, b := range chain.Binaries() {
			log.Info("Secure Boot binary", "file", b.Name, "bytes", len(b.Data), "sha256", b.SHA256, "source", chain.Source, "version", chain.Version)
		}
	}
	m := metrics.New()
	scripts, grubCfg := scriptConfig(cfg, res), grubConfig(cfg, res)

	// Listeners first.
	ln, err := listenTCP("--http", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	var apiLn net.Listener
	var certs *certReloader
	if cfg.TLSCert != "" {
		if certs, err = newCertReloader(cfg.TLSCert, cfg.TLSKey, log); err != nil {
			return err
		}
		if apiLn, err = listenTCP("--api-addr", cfg.APIAddr); err != nil {
			return err
		}
		defer apiLn.Close()
	}
	var ts *tftp.Server
	// The ISOs' own signed pairs and what their GRUBs fetch over TFTP need the store and the
	// planner, built below; nothing is served before Run.
	tftpBoot := &bootFiles{ctx: ctx, static: tftpFiles(bins, ipxe.Autoexec(scripts), chain, grubCfg), grub: grubCfg, log: log}
	if res.TFTPAddr != "" {
		ts, err = tftp.New(tftp.Config{Addr: res.TFTPAddr, Files: tftpBoot, Optional: func(name string) bool { return grub.IsOptional(path.Base(name)) },
			Logger: log, DrainTimeout: cfg.DrainTimeout, MaxTransfers: cfg.TFTPMaxTransfers,
			OnTransfer: func(t tftp.Transfer) {
				file := metrics.TFTPFileLabel(t.File)
				result := "ok"
				switch {
				case t.Probe:
					result = "probe"
				case t.Err != nil:
					result = "error"
				}
				m.TFTPTransfers.WithLabelValues(file, result).Inc()
				m.TFTPBytes.WithLabelValues(file).Add(float64(t.Bytes))
			}})
		if err != nil {
			return fmt.Errorf("tftp: %w", err)
		}
		if err := ts.Listen(); err != nil {
			return tftpListenError(res.TFTPAddr, err)
		}
		defer ts.Close()
	}
	var socks *dhcp.Sockets
	if cfg.DHCPMode != config.DHCPOff {
		if socks, err = dhcp.Listen(res.Interface); err != nil {
			return err
		}
		defer socks.Close()
	}

	// Then the data directory.
	undo, err := makeDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	// One process per data directory, before anything in it is read or cleaned up. A refused
	// start undoes nothing: the directory and everything in it belong to the holder.
	lock, err := datadir.Acquire(cfg.DataDir)
	if err != nil {
		if !errors.Is(err, datadir.ErrLocked) {
			undo()
		}
		return err
	}
	defer lock.Close()
	serving := false
	defer func() {
		if !serving {
			undo()
		}
	}()
	tokens, created, err := auth.Load(cfg.DataDir, cfg.Token, cfg.ReadOnlyToken)
	if err != nil {
		return err
	}
	logTokens(log, cfg, created)
	app, err := Build(ctx, cfg, res, Deps{Binaries: bins, Chain: chain, Tokens: tokens, Sockets: socks, Metrics: m, Logger: log,
		HTTPAddr: ln.Addr().String()})
	if err != nil {
		return err
	}
	defer app.Close()
	api, isos, ds := app.API, app.ISOs, app.DHCP
	tftpBoot.isos, tftpBoot.planner = isos, app.Planner
	if chain != nil {
		tftpBoot.pairs = app.Provision
	}

	g, ctx := errgroup.WithContext(ctx)

	// HTTP. No ReadTimeout/WriteTimeout: uploads and ISO streams last as long as they last;
	// header and idle timeouts keep slow or idle clients from pinning connections.
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{Handler: h, ReadHeaderTimeout: 15 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	}
	// With TLS the plain listener keeps only what booting machines fetch; the API and the UI
	// are on the HTTPS listener (which serves the boot paths too).
	var plain http.Handler = api
	if apiLn != nil {
		plain = api.PlainHTTP(res.APIPort)
	}
	hs := newServer(plain)
	servers := []*http.Server{hs}
	// Every connection is a goroutine: at most HTTPMaxConns per listener, the rest wait in
	// the kernel's accept queue (a client that never sends its headers is dropped after
	// ReadHeaderTimeout, an idle keep-alive after IdleTimeout, so slots come free).
	g.Go(func() error {
		if err := hs.Serve(newLimitListener(ln, cfg.HTTPMaxConns, cfg.HTTPWriteIdleTimeout)); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	if apiLn != nil {
		hss := newServer(api)
		hss.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
		servers = append(servers, hss)
		g.Go(func() error {
			if err := hss.ServeTLS(newLimitListener(apiLn, cfg.HTTPMaxConns, cfg.HTTPWriteIdleTimeout), "", ""); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("https: %w", err)
			}
			return nil
		})
	}
	// Graceful stop: no new requests or TFTP transfers; running ones get the drain timeout
	// (the TFTP server applies the same timeout to its own transfers), then are cut off.
	g.Go(func() error {
		<-ctx.Done()
		api.StopStreams() // live event streams never end by themselves
		httpN, tftpN := api.InFlight(), 0
		if ts != nil {
			tftpN = ts.Active()
		}
		log.Info(fmt.Sprintf("shutting down, draining %d transfers", httpN+tftpN), "http", httpN, "tftp", tftpN,
			"drain_timeout", cfg.DrainTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
		defer cancel()
		var wg sync.WaitGroup
		for _, hs := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := hs.Shutdown(sctx); err != nil {
					log.Warn("drain timeout reached, cutting off the remaining HTTP transfers", "http", api.InFlight(),
						"drain_timeout", cfg.DrainTimeout)
					hs.Close()
				}
			}()
		}
		wg.Wait()
		return nil
	})

	// Abandoned resumable uploads expire after a day; checked hourly.
	g.Go(func() error {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			if n, err := isos.ExpireUploads(ctx, cfg.UploadExpiry); err != nil {
				log.Warn("expire uploads", "err", err)
			} else if n > 0 {
				log.Info("expired abandoned uploads", "count", n)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})

	// Images this instance has not verified yet (after an upgrade, or uploaded through
	// another instance into the shared --images directory) are hashed in the background, one
	// at a time, so that the first machines to boot do not wait for it; repeated to catch new
	// ones and to report images that went missing or bad.
	g.Go(func() error {
		t := time.NewTicker(verifyEvery)
		defer t.Stop()
		reported := map[string]string{} // logged once per problem, again when it changes
		for {
			bad, err := isos.VerifyAll(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("verify images", "err", err)
			}
			for id, why := range bad {
				if reported[id] != why.Error() {
					log.Warn("this instance cannot serve an ISO", "iso", id, "err", why)
					reported[id] = why.Error()
				}
			}
			for id := range reported {
				if bad[id] == nil && err == nil {
					log.Info("ISO image problem gone (served again, or the ISO deleted)", "iso", id)
					delete(reported, id)
				}
			}
			if n, err := isos.CountImageStates(ctx); err == nil {
				for _, s := range isostore.ImageStates {
					app.Metrics.ISOImages.WithLabelValues(string(s)).Set(float64(n[s]))
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})

	if ts != nil {
		g.Go(func() error { return ts.Run(ctx) })
	}
	if ds != nil && socks != nil {
		g.Go(func() error { return ds.Run(ctx) })
	}

	serving = true
	apiURL := "http://" + ln.Addr().String() + "/api/v1"
	if apiLn != nil {
		apiURL = "https://" + apiLn.Addr().String() + "/api/v1"
	}
	log.Info("fleetboot serving", "http", ln.Addr().String(), "api", apiURL, "boot_url", urls.Base(res.HTTPBase).BootScript(),
		"dhcp", cfg.DHCPMode, "interface", res.Interface, "server_ip", res.ServerIP.String(),
		"tftp", orOff(res.TFTPAddr), "data", cfg.DataDir, "database", app.DB.Path(), "site", cfg.Site)
	err = g.Wait()
	if err != nil {
		return err
	}
	log.Info("fleetboot stopped")
	return nil
}

// logTokens says where the API tokens are. The tokens themselves never go to the log (logs are
// shipped, kept and read by more people than the data directory); where they are goes there on
// every start, so an operator who missed the first one still finds them.
func logTokens(log *slog.Logger, cfg config.Config, created auth.Created) {
	for _, t := range []struct {
		scope    auth.Scope
		file     string
		override bool
		flag     string
		created  bool
	}{
		{auth.ScopeAdmin, auth.TokenFile, cfg.Token != "", "--token / FLEETBOOT_TOKEN", created.Admin},
		{auth.ScopeRead, auth.ReadOnlyTokenFile, cfg.ReadOnlyToken != "", "--readonly-token / FLEETBOOT_READONLY_TOKEN", created.ReadOnly},
	} {
		file, _ := filepath.Abs(filepath.Join(cfg.DataDir, t.file))
		switch {
		case t.override:
			log.Info("API token given by "+t.flag, "scope", t.scope.String())
		case t.created:
			log.Info("generated an API token: the CLI reads the admin one from there, API clients send it as Authorization: Bearer", "scope", t.scope.String(), "token_file", file)
		default:
			log.Info("API token: the CLI reads the admin one from there, API clients send it as Authorization: Bearer", "scope", t.scope.String(), "token_file", file)
		}
	}
}

// listenTCP binds an HTTP(S) address given by flag; a busy or privileged port says which flag
// to change.
func listenTCP(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		return ln, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%s %s: address already in use (another fleetboot or web server?): "+
			"stop it, or choose another port with %s (e.g. %s :%d): %w", flag, addr, flag, flag, suggestPort(addr), err)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("%s %s: permission denied: ports below 1024 need root or "+
			"CAP_NET_BIND_SERVICE; or choose another port with %s: %w", flag, addr, flag, err)
	}
	return nil, fmt.Errorf("%s %s: %w", flag, addr, err)
}

// suggestPort is the port after addr's, for the message of a busy port.
func suggestPort(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n + 1
}

// tftpListenError says which flag to change when the TFTP port cannot be bound.
func tftpListenError(addr string, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("--tftp %s: address already in use (another TFTP server: tftpd-hpa, dnsmasq?): "+
			"stop it, choose another address with --tftp, or use --tftp off when no machine boots "+
			"legacy PXE: %w", addr, err)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("--tftp %s: permission denied: port 69 needs root or CAP_NET_BIND_SERVICE; "+
			"or use --tftp off: %w", addr, err)
	}
	return fmt.Errorf("--tftp %s: %w", addr, err)
}

// makeDataDir creates the data directory and returns undo, which removes what this start
// created: the directory (and any parents it had to create) when it did not exist, otherwise
// the entries that were not in it before. A start that fails must not leave a half-made data
// directory that a second, corrected start would then take for an existing installation.
func makeDataDir(dir string) (undo func(), err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("--data %s: %w", dir, err)
	}
	top := "" // the highest directory this start creates
	for p := abs; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("--data %s: %w", dir, err)
		}
		top = p
		if filepath.Dir(p) == p {
			break
		}
	}
	before := map[string]bool{}
	if top == "" {
		entries, err := os.ReadDir(abs)
		if err != nil {
			return nil, fmt.Errorf("--data %s: %w", dir, err)
		}
		for _, e := range entries {
			before[e.Name()] = true
		}
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("--data %s: %w", dir, err)
	}
	return func() {
		if top != "" {
			os.RemoveAll(top)
			return
		}
		entries, _ := os.ReadDir(abs)
		for _, e := range entries {
			if !before[e.Name()] {
				os.RemoveAll(filepath.Join(abs, e.Name()))
			}
		}
	}, nil
}

// tftpFiles serves the iPXE binaries and the generated autoexec.ipxe and, with the signed
// chain, shim, GRUB (at the root, where shim asks for it over TFTP) and GRUB's files below its
// prefix; nothing else.
func tftpFiles(bins *ipxe.Binaries, autoexec []byte, chain *grub.Chain, grubCfg grub.Config) tftp.Files {
	files := map[string][]byte{ipxe.AutoexecScript: autoexec}
	for _, b := range bins.List() {
		files[b.Name] = b.Data
	}
	if chain != nil {
		for name, data := range chain.StaticFiles(grubCfg) {
			files[name] = data
		}
	}
	return tftp.StaticFiles(files)
}

// servedShims reads what fleetboot's own shim trusts, for the Secure Boot readiness of ISOs
// without a signed pair of their own. It also checks that the GRUB served with it verifies
// under it: if not, every machine with Secure Boot on would stop at shim, which the log says at
// once. A chain that does not parse leaves readiness without a shim (entries say so).
func servedShims(chain *grub.Chain, log *slog.Logger) map[string]*secureboot.Shim {
	if chain == nil {
		return nil
	}
	im, err := secureboot.Parse(bytes.NewReader(chain.Shim.Data), int64(len(chain.Shim.Data)))
	if err == nil {
		var shim *secureboot.Shim
		if shim, err = secureboot.ParseShim(im); err == nil {
			gim, gerr := secureboot.Parse(bytes.NewReader(chain.GRUB.Data), int64(len(chain.GRUB.Data)))
			if gerr != nil {
				log.Warn("the served GRUB is not an EFI image: machines with Secure Boot on cannot boot through it", "err", gerr)
			} else if v := shim.Verify(gim); !v.Trusted {
				log.Warn("the served shim does not trust the served GRUB: machines with Secure Boot on stop at shim", "reason", v.Reason)
			} else {
				log.Info("Secure Boot chain verified: the served shim trusts the served GRUB", "trusted_by", v.By)
			}
			return map[string]*secureboot.Shim{im.Arch(): shim}
		}
	}
	log.Warn("cannot read the served shim's certificates: Secure Boot readiness reports no shim for ISOs without their own", "err", err)
	return nil
}

func logBinaries(log *slog.Logger, bins *ipxe.Binaries) {
	for _, b := range bins.List() {
		log.Info("iPXE binary", "file", b.Name, "bytes", len(b.Data), "sha256", b.SHA256, "source", bins.Source, "version", bins.Version)
	}
}

func orNone(ip net.IP) string {
	if ip == nil || ip.IsUnspecified() {
		return "(no address)"
	}
	return ip.String()
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

// verifyEvery is how often Run checks the catalog's images: new ones (uploaded through another
// instance) are hashed before a machine needs them, lost ones are logged. A pass over images
// already verified is a catalog query and a stat per image.
const verifyEvery = time.Minute
