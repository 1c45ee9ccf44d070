// Package config owns fleetboot's server configuration: one documented struct (Config),
// defaults in one place (Default), the serve flags and their FLEETBOOT_* environment variables
// (RegisterFlags, ApplyEnv, EnvName), and validation with messages that name the flag to fix
// (Validate), which also resolves what the flags leave open (interface, advertised address,
// HTTP base URL, pool and netmask) into Resolved.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/dhcp"
	"github.com/fleetboot/fleetboot/internal/ipxe"
)

// DHCP modes: the values of --dhcp, defined by internal/dhcp.
const (
	DHCPProxy = string(dhcp.ModeProxy)
	DHCPFull  = string(dhcp.ModeFull)
	DHCPOff   = string(dhcp.ModeOff)
)

// Config is everything `fleetboot serve` needs.
type Config struct {
	// DataDir holds the database, uploaded ISOs, assets and the API token.
	DataDir string
	// Database is where the catalog, profiles, rules, machines, timelines, leases and upload
	// sessions live: empty for the SQLite file in DataDir (the default), or a PostgreSQL URL
	// (postgres://user:password@host:5432/dbname?sslmode=require) that several fleetboot
	// instances share (README: several instances).
	Database string
	// ImagesDir is where uploaded ISO images are stored and served from. Empty: <data>/isos.
	// Instances sharing one Database give it the same directory, mounted on each of them (NFS,
	// CephFS: README "Several instances"), so that every instance serves every ISO of the
	// shared catalog; each image's SHA-256 is checked before an instance first serves it.
	ImagesDir string
	// Site names this instance (its segment, rack or room) on every timeline event it writes,
	// so that a machine's timeline shows which instance served each step. Empty: none.
	Site string
	// Interface is the network interface DHCP and TFTP serve on. Empty: the interface of the
	// default route.
	Interface string
	// AdvertiseIP is the IPv4 address machines use to reach fleetboot (siaddr, DHCP server id,
	// the host in every boot URL). Empty: the first IPv4 address of Interface.
	AdvertiseIP string
	// HTTPAddr is the HTTP listen address (boot scripts, files, API).
	HTTPAddr string
	// TLSCert and TLSKey are PEM files (certificate chain, private key) that turn on HTTPS for
	// the API and the UI on APIAddr. The boot paths stay plain HTTP on HTTPAddr (firmware and
	// iPXE fetch them without TLS), and HTTPAddr then no longer serves the API: a token never
	// crosses the network in clear. The files are re-read when they change (certificate renewal
	// needs no restart).
	TLSCert string
	TLSKey  string
	// APIAddr is the HTTPS listen address for the API and the UI when TLSCert is set.
	APIAddr string
	// TFTPAddr is the TFTP listen address, or "off". Empty host: the advertised IP.
	TFTPAddr string
	// DHCPMode is proxy (answer only PXE/HTTP Boot/iPXE clients, hand out no addresses: a site
	// DHCP server keeps doing that), full (authoritative DHCP server for --pool) or off (the site
	// DHCP server points machines at fleetboot itself).
	DHCPMode string
	// Pool is the full-mode address range, "START-END".
	Pool string
	// Netmask for full mode. Empty: the interface's own mask.
	Netmask string
	// Router (default gateway) handed out in full mode. Optional.
	Router string
	// DNS servers handed out in full mode, comma-separated. Optional.
	DNS []string
	// DomainName handed out in full mode. Optional.
	DomainName string
	// LeaseTime for full-mode leases.
	LeaseTime time.Duration
	// IPXEDir, when set, is a directory holding the iPXE binaries to serve instead of the
	// embedded ones.
	IPXEDir string
	// HTTPBootFile is the iPXE binary UEFI HTTP Boot x64 clients get: snponly.efi (uses the
	// firmware's network driver; works on most hardware) or ipxe.efi (iPXE's own drivers).
	HTTPBootFile string
	// BootChain is what UEFI x64 machines are offered first, unless their machine label or
	// profile var boot-chain says otherwise: auto (Debian's signed shim → GRUB; GRUB hands
	// over to iPXE when Secure Boot is off, so a rack with mixed Secure Boot states installs
	// without hand work), shim (shim → GRUB even with Secure Boot off) or ipxe (iPXE only, as
	// before; Secure Boot machines cannot boot). auto and shim need the signed chain
	// (scripts/fetch-secureboot.sh); without it auto serves iPXE and says so, shim refuses to
	// start.
	BootChain string
	// SecureBootDir, when set, is a directory holding shimx64.efi and grubnetx64.efi to serve
	// instead of the embedded ones.
	SecureBootDir string
	// BootKernel, BootInitrd and BootCmdline name the default boot target: paths relative to
	// <data>/assets (served at /assets/). Empty kernel: machines get the boot menu.
	BootKernel  string
	BootInitrd  []string
	BootCmdline string
	// MenuTimeout is how long the boot menu waits before booting from the local disk.
	MenuTimeout time.Duration
	// Unassigned is what machines with nothing to install boot: menu (profiles, local disk
	// by default) or local (the local disk at once).
	Unassigned string
	// Token is the admin API bearer token (every call). Empty: the one in <data>/api-token,
	// generated on first start.
	Token string
	// ReadOnlyToken is the read-only API bearer token (GET calls only: what an operator views).
	// Empty: the one in <data>/api-token.readonly, generated on first start.
	ReadOnlyToken string
	// RegisterDirs are the directories ISOs may be registered from in place
	// (POST /api/v1/isos/register, fleetboot iso add): files below them, symlinks resolved.
	// None: registering by path is refused.
	RegisterDirs []string
	// MaxUploads bounds the uploads streaming to disk at once (one-shot uploads and chunks of
	// resumable ones); more get 503 with Retry-After.
	MaxUploads int
	// MaxPendingUploads bounds the unfinished resumable uploads (each holds a partial file);
	// creating one more gets 429.
	MaxPendingUploads int
	// HTTPMaxConns bounds the open HTTP connections per listener (each costs a goroutine);
	// beyond it new connections wait in the kernel's accept queue.
	HTTPMaxConns int
	// BodyIdleTimeout cuts off an API request whose body sends nothing for this long (an
	// upload that stalls); a slow but moving body is never cut.
	BodyIdleTimeout time.Duration
	// HTTPWriteIdleTimeout cuts off an HTTP response (a download) that makes no progress for
	// this long: a client that stopped reading. A slow but moving download is never cut.
	HTTPWriteIdleTimeout time.Duration
	// TFTPMaxTransfers bounds the TFTP transfers running at once; more get a TFTP error and
	// retry.
	TFTPMaxTransfers int
	// UploadExpiry is how long an unfinished resumable upload is kept after its last chunk.
	UploadExpiry time.Duration
	// DrainTimeout is how long a stopping server (SIGTERM, Ctrl-C) lets running HTTP and TFTP
	// transfers finish before it cuts them off. New requests are refused at once.
	DrainTimeout time.Duration
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  string
	LogFormat string
}

// Default returns the configuration used when nothing is set: proxyDHCP on the default-route
// interface, HTTP on :8080, TFTP on :69, data in ./data.
func Default() Config {
	return Config{
		DataDir:      "./data",
		HTTPAddr:     ":8080",
		APIAddr:      ":8443",
		TFTPAddr:     ":69",
		DHCPMode:     DHCPProxy,
		LeaseTime:    dhcp.DefaultLeaseTime,
		HTTPBootFile: dhcp.DefaultHTTPBootFile,
		BootChain:    boot.ChainAuto,
		MenuTimeout:  10 * time.Second,
		Unassigned:   string(boot.UnassignedMenu),
		UploadExpiry: 24 * time.Hour,
		// A handful of concurrent uploads saturate a disk; 100 unfinished resumable ones is far
		// more than operators start by hand and bounds what a stuck script can leave behind.
		MaxUploads:        4,
		MaxPendingUploads: 100,
		// 4096 connections (goroutines, a few KiB each) serve a fleet powering on at once.
		HTTPMaxConns:    4096,
		BodyIdleTimeout: time.Minute,
		// Far longer than any pause of a live client (TCP retransmits, a firmware busy
		// decompressing), short enough that stuck clients free their connections.
		HTTPWriteIdleTimeout: 2 * time.Minute,
		TFTPMaxTransfers:     512,
		DrainTimeout:         30 * time.Second,
		LogLevel:             "info",
		LogFormat:            "text",
	}
}

var siteRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Resolved holds what Validate derived from Config: addresses parsed and the interface found.
type Resolved struct {
	Interface  string
	ServerIP   netip.Addr
	Netmask    net.IPMask
	HTTPPort   int
	HTTPBase   string // "http://10.77.0.1:8080"
	APIPort    int    // HTTPS port of the API with --tls-cert; 0 without TLS
	TFTPAddr   string // "" when off
	PoolStart  netip.Addr
	PoolEnd    netip.Addr
	Router     netip.Addr
	DNS        []netip.Addr
	BootInitrd []string
}

// Validate checks the configuration and resolves interface and addresses. Messages name the
// flag to fix.
func (c Config) Validate() (*Resolved, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	r := &Resolved{}

	switch c.DHCPMode {
	case DHCPProxy, DHCPFull, DHCPOff:
	default:
		bad("--dhcp must be %s, %s or %s, not %q", DHCPProxy, DHCPFull, DHCPOff, c.DHCPMode)
	}
	if c.DataDir == "" {
		bad("--data must name a directory")
	}
	if c.Database != "" && !strings.HasPrefix(c.Database, "postgres://") && !strings.HasPrefix(c.Database, "postgresql://") {
		bad("--database must be a postgres:// URL (or empty for the SQLite file in --data)")
	}
	if c.ImagesDir != "" {
		if st, err := os.Stat(c.ImagesDir); err != nil {
			bad("--images %s: %v (create it, or mount the shared image directory there)", c.ImagesDir, err)
		} else if !st.IsDir() {
			bad("--images %s: not a directory", c.ImagesDir)
		}
	}
	if c.Site != "" && !siteRE.MatchString(c.Site) {
		bad("--site %q: use letters, digits, '.', '_', '-' (at most 63)", c.Site)
	}

	// HTTP port: boot URLs carry it explicitly (UEFI HTTP Boot drops the port from Host).
	_, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		bad("--http %q: want host:port or :port (%v)", c.HTTPAddr, err)
	} else if p, err := parsePort(port); err != nil || p == 0 {
		bad("--http %q: need a fixed port: machines are told it in their boot URLs", c.HTTPAddr)
	} else {
		r.HTTPPort = p
	}

	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("--tls-cert and --tls-key go together: give both (HTTPS for the API on --api-addr) or neither")
	} else if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			bad("--tls-cert %s / --tls-key %s: %v", c.TLSCert, c.TLSKey, err)
		}
		if _, aport, err := net.SplitHostPort(c.APIAddr); err != nil {
			bad("--api-addr %q: want host:port or :port (%v)", c.APIAddr, err)
		} else if p, err := parsePort(aport); err != nil || p == 0 {
			bad("--api-addr %q: need a fixed port", c.APIAddr)
		} else if p == r.HTTPPort {
			bad("--api-addr %s and --http %s use the same port: HTTPS for the API needs its own (default :8443)", c.APIAddr, c.HTTPAddr)
		} else {
			r.APIPort = p
		}
	}

	ifname := c.Interface
	if ifname == "" {
		ifname, err = DefaultRouteInterface()
		if err != nil && c.AdvertiseIP == "" {
			bad("no --interface given and %v; pass --interface (and --advertise-ip)", err)
		}
	}
	r.Interface = ifname
	var ifaceNet *net.IPNet
	if ifname != "" {
		ifaceNet, err = interfaceIPv4(ifname)
		if err != nil && (c.AdvertiseIP == "" || c.DHCPMode != DHCPOff) {
			bad("--interface %s: %v", ifname, err)
		}
	}
	if c.AdvertiseIP != "" {
		a, err := netip.ParseAddr(c.AdvertiseIP)
		if err != nil || !a.Is4() {
			bad("--advertise-ip %q is not an IPv4 address", c.AdvertiseIP)
		} else {
			r.ServerIP = a
		}
	} else if ifaceNet != nil {
		r.ServerIP, _ = netip.AddrFromSlice(ifaceNet.IP.To4())
	}
	if ifaceNet != nil {
		r.Netmask = ifaceNet.Mask
	}
	if c.Netmask != "" {
		m := net.ParseIP(c.Netmask).To4()
		mask := net.IPMask(m)
		if ones, bits := mask.Size(); m == nil || (ones == 0 && bits == 0) {
			bad("--netmask %q is not a dotted IPv4 netmask", c.Netmask)
		} else {
			r.Netmask = mask
		}
	}
	if r.ServerIP.IsValid() {
		r.HTTPBase = fmt.Sprintf("http://%s:%d", r.ServerIP, r.HTTPPort)
	}

	if c.TFTPAddr != "off" && c.TFTPAddr != "" {
		host, port, err := net.SplitHostPort(c.TFTPAddr)
		if err != nil {
			bad("--tftp %q: want host:port, :port or off (%v)", c.TFTPAddr, err)
		} else {
			if host == "" && r.ServerIP.IsValid() {
				host = r.ServerIP.String()
			}
			r.TFTPAddr = net.JoinHostPort(host, port)
		}
	}

	if c.DHCPMode == DHCPFull {
		if c.Pool == "" {
			bad("--dhcp=full needs --pool START-END (e.g. --pool 10.0.0.100-10.0.0.199)")
		} else if s, e, err := ParsePool(c.Pool); err != nil {
			bad("--pool: %v", err)
		} else {
			r.PoolStart, r.PoolEnd = s, e
			if r.Netmask != nil && r.ServerIP.IsValid() {
				n := &net.IPNet{IP: r.ServerIP.AsSlice(), Mask: r.Netmask}
				if !n.Contains(s.AsSlice()) || !n.Contains(e.AsSlice()) {
					bad("--pool %s is outside %s/%d; fix --pool or --netmask", c.Pool, r.ServerIP, maskOnes(r.Netmask))
				}
			}
		}
		if r.Netmask == nil {
			bad("--dhcp=full needs --netmask (the interface has no IPv4 mask to borrow)")
		}
		if c.LeaseTime < time.Minute {
			bad("--lease-time %s is too short; use at least 1m", c.LeaseTime)
		}
	}
	if c.DHCPMode != DHCPOff && ifname == "" {
		bad("--dhcp=%s needs --interface", c.DHCPMode)
	}
	if c.Router != "" {
		a, err := netip.ParseAddr(c.Router)
		if err != nil || !a.Is4() {
			bad("--router %q is not an IPv4 address", c.Router)
		}
		r.Router = a
	}
	for _, d := range c.DNS {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		a, err := netip.ParseAddr(d)
		if err != nil || !a.Is4() {
			bad("--dns %q is not an IPv4 address", d)
			continue
		}
		r.DNS = append(r.DNS, a)
	}
	if !ipxe.IsHTTPBootFile(c.HTTPBootFile) {
		bad("--http-boot-file must be %s or %s, not %q", ipxe.UEFISnp, ipxe.UEFIFull, c.HTTPBootFile)
	}
	switch c.BootChain {
	case boot.ChainAuto, boot.ChainShim, boot.ChainIPXE:
	default:
		bad("--boot-chain must be %s, %s or %s, not %q", boot.ChainAuto, boot.ChainShim, boot.ChainIPXE, c.BootChain)
	}
	if c.BootKernel != "" {
		if err := checkAssetPath(c.BootKernel); err != nil {
			bad("--boot-kernel: %v", err)
		}
	}
	for _, p := range c.BootInitrd {
		for _, q := range strings.Split(p, ",") {
			if q = strings.TrimSpace(q); q == "" {
				continue
			}
			if err := checkAssetPath(q); err != nil {
				bad("--boot-initrd: %v", err)
			}
			r.BootInitrd = append(r.BootInitrd, q)
		}
	}
	if c.BootKernel == "" && (len(r.BootInitrd) > 0 || c.BootCmdline != "") {
		bad("--boot-initrd/--boot-cmdline need --boot-kernel")
	}
	if strings.ContainsAny(c.BootCmdline, "\n\r") {
		bad("--boot-cmdline must be one line")
	}
	if u := boot.Unassigned(c.Unassigned); u != boot.UnassignedMenu && u != boot.UnassignedLocal {
		bad("--unassigned must be %s or %s", boot.UnassignedMenu, boot.UnassignedLocal)
	}
	if c.Token != "" && len(c.Token) < 16 {
		bad("--token must be at least 16 characters")
	}
	if c.ReadOnlyToken != "" && len(c.ReadOnlyToken) < 16 {
		bad("--readonly-token must be at least 16 characters")
	}
	if c.Token != "" && c.Token == c.ReadOnlyToken {
		bad("--token and --readonly-token must differ")
	}
	for _, d := range c.RegisterDirs {
		if st, err := os.Stat(d); err != nil {
			bad("--register-dir %s: %v", d, err)
		} else if !st.IsDir() {
			bad("--register-dir %s: not a directory", d)
		}
	}
	if c.MaxUploads < 1 || c.MaxPendingUploads < 1 || c.HTTPMaxConns < 16 || c.TFTPMaxTransfers < 1 {
		bad("--max-uploads, --max-pending-uploads and --tftp-max-transfers must be at least 1, --http-max-conns at least 16")
	}
	if c.BodyIdleTimeout < time.Second {
		bad("--body-idle-timeout must be at least 1s")
	}
	if c.HTTPWriteIdleTimeout != 0 && c.HTTPWriteIdleTimeout < time.Second {
		bad("--http-write-idle-timeout must be at least 1s (0: never)")
	}
	if c.UploadExpiry < time.Minute {
		bad("--upload-expiry must be at least 1m")
	}
	if c.DrainTimeout < 0 {
		bad("--drain-timeout must not be negative")
	}
	if c.MenuTimeout < 0 {
		bad("--menu-timeout must not be negative")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("--log-level must be debug, info, warn or error")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("--log-format must be text or json")
	}
	if !r.ServerIP.IsValid() && len(errs) == 0 {
		bad("cannot tell which IPv4 address machines should use; pass --advertise-ip")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// ParsePool parses "START-END" into two IPv4 addresses with START <= END.
func ParsePool(s string) (netip.Addr, netip.Addr, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("%q: want START-END", s)
	}
	start, err1 := netip.ParseAddr(strings.TrimSpace(a))
	end, err2 := netip.ParseAddr(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || !start.Is4() || !end.Is4() {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("%q: START and END must be IPv4 addresses", s)
	}
	if end.Less(start) {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("%q: END is before START", s)
	}
	return start, end, nil
}

// checkAssetPath accepts a clean relative path below <data>/assets.
func checkAssetPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") || strings.Contains(p, "\\") {
		return fmt.Errorf("%q must be a relative path below <data>/assets", p)
	}
	if c := path.Clean(p); c != p || c == ".." || strings.HasPrefix(c, "../") {
		return fmt.Errorf("%q must be a clean relative path below <data>/assets", p)
	}
	return nil
}

func parsePort(s string) (int, error) {
	var p int
	if _, err := fmt.Sscanf(s, "%d", &p); err != nil || p < 0 || p > 65535 || fmt.Sprint(p) != s {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return p, nil
}

func maskOnes(m net.IPMask) int { o, _ := m.Size(); return o }

// interfaceIPv4 returns the first IPv4 address (with mask) of the named interface.
func interfaceIPv4(name string) (*net.IPNet, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return &net.IPNet{IP: n.IP.To4(), Mask: n.Mask}, nil
		}
	}
	return nil, fmt.Errorf("has no IPv4 address")
}

// DefaultRouteInterface returns the interface of the IPv4 default route, read from
// /proc/net/route (no netlink dependency needed for one line).
func DefaultRouteInterface() (string, error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return "", fmt.Errorf("read routes: %w", err)
	}
	return defaultRouteFrom(string(b))
}

func defaultRouteFrom(table string) (string, error) {
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			return f[0], nil
		}
	}
	return "", errors.New("there is no IPv4 default route")
}
