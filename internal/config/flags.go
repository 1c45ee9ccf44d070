package config

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// RegisterFlags binds c's fields to flags on fs. Call it on a Config from Default so the
// defaults show in --help.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory: database, ISOs, assets, API token")
	fs.StringVar(&c.Database, "database", c.Database, "PostgreSQL URL (postgres://user:pass@host/db) shared by several instances; empty: the SQLite file in --data")
	fs.StringVar(&c.ImagesDir, "images", c.ImagesDir, "directory of uploaded ISO images (default: <data>/isos); instances sharing --database give it the same directory, an NFS or CephFS mount (README: several instances)")
	fs.StringVar(&c.Site, "site", c.Site, "name of this instance's segment or site, recorded on every timeline event it writes")
	fs.StringVar(&c.Interface, "interface", c.Interface, "network interface for DHCP and TFTP (default: the interface of the default route)")
	fs.StringVar(&c.AdvertiseIP, "advertise-ip", c.AdvertiseIP, "IPv4 address machines use to reach fleetboot (default: first IPv4 of --interface)")
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "HTTP listen address (boot scripts, files, API); needs a fixed port")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) for HTTPS: the API and UI move to --api-addr, boot paths stay plain HTTP on --http (needs --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key for --tls-cert")
	fs.StringVar(&c.APIAddr, "api-addr", c.APIAddr, "HTTPS listen address for the API and UI with --tls-cert")
	fs.StringVar(&c.TFTPAddr, "tftp", c.TFTPAddr, `TFTP listen address for the iPXE binaries, or "off" (empty host: the advertised IP)`)
	fs.StringVar(&c.DHCPMode, "dhcp", c.DHCPMode, "DHCP mode: proxy (boot options only; a site DHCP gives addresses), full (authoritative, needs --pool) or off")
	fs.StringVar(&c.Pool, "pool", c.Pool, "full DHCP: address range START-END")
	fs.StringVar(&c.Netmask, "netmask", c.Netmask, "full DHCP: netmask (default: the interface's)")
	fs.StringVar(&c.Router, "router", c.Router, "full DHCP: default gateway to hand out")
	fs.StringSliceVar(&c.DNS, "dns", c.DNS, "full DHCP: DNS servers to hand out (comma-separated)")
	fs.StringVar(&c.DomainName, "domain", c.DomainName, "full DHCP: domain name to hand out")
	fs.DurationVar(&c.LeaseTime, "lease-time", c.LeaseTime, "full DHCP: lease duration")
	fs.StringVar(&c.IPXEDir, "ipxe-dir", c.IPXEDir, "serve the iPXE binaries from this directory instead of the embedded ones")
	fs.StringVar(&c.HTTPBootFile, "http-boot-file", c.HTTPBootFile, "iPXE binary for UEFI HTTP Boot x64 clients: snponly.efi or ipxe.efi")
	fs.StringVar(&c.BootChain, "boot-chain", c.BootChain, "what UEFI x64 machines boot first: auto (signed shim → GRUB: Debian's, or the ISO's own pair for machines installing an ISO that carries one; iPXE when Secure Boot is off), shim or ipxe; a machine label or profile var boot-chain overrides it")
	fs.StringVar(&c.SecureBootDir, "secureboot-dir", c.SecureBootDir, "serve the signed shimx64.efi and grubnetx64.efi from this directory instead of the embedded ones")
	fs.StringVar(&c.BootKernel, "boot-kernel", c.BootKernel, "default boot target: kernel path below <data>/assets (empty: boot menu)")
	fs.StringSliceVar(&c.BootInitrd, "boot-initrd", c.BootInitrd, "default boot target: initrd path(s) below <data>/assets")
	fs.StringVar(&c.BootCmdline, "boot-cmdline", c.BootCmdline, "default boot target: kernel command line")
	fs.DurationVar(&c.MenuTimeout, "menu-timeout", c.MenuTimeout, "boot menu timeout before booting from local disk")
	fs.StringVar(&c.Unassigned, "unassigned", c.Unassigned, "what machines with nothing to install boot: menu or local")
	fs.StringVar(&c.Token, "token", c.Token, "admin API bearer token: every call (default: <data>/api-token, generated on first start)")
	fs.StringVar(&c.ReadOnlyToken, "readonly-token", c.ReadOnlyToken, "read-only API bearer token: GET calls only (default: <data>/api-token.readonly, generated on first start)")
	fs.StringArrayVar(&c.RegisterDirs, "register-dir", c.RegisterDirs, "directory ISOs may be registered from in place (iso add, POST /api/v1/isos/register); repeatable; none: registering by path is refused")
	fs.IntVar(&c.MaxUploads, "max-uploads", c.MaxUploads, "uploads streaming to disk at once; more get 503 with Retry-After")
	fs.IntVar(&c.MaxPendingUploads, "max-pending-uploads", c.MaxPendingUploads, "unfinished resumable uploads kept at once; creating more gets 429")
	fs.IntVar(&c.HTTPMaxConns, "http-max-conns", c.HTTPMaxConns, "open HTTP connections per listener; more wait in the accept queue")
	fs.DurationVar(&c.BodyIdleTimeout, "body-idle-timeout", c.BodyIdleTimeout, "cut off an API request whose body sends nothing for this long")
	fs.DurationVar(&c.HTTPWriteIdleTimeout, "http-write-idle-timeout", c.HTTPWriteIdleTimeout, "cut off a download whose client reads nothing for this long (0: never); a slow but moving download is never cut")
	fs.IntVar(&c.TFTPMaxTransfers, "tftp-max-transfers", c.TFTPMaxTransfers, "TFTP transfers at once; more get a TFTP error (the client retries)")
	fs.DurationVar(&c.UploadExpiry, "upload-expiry", c.UploadExpiry, "drop unfinished resumable uploads idle this long")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "on SIGTERM/Ctrl-C, how long running downloads may finish before they are cut off")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
}

// EnvName is the environment variable that sets a flag: --lease-time → FLEETBOOT_LEASE_TIME.
func EnvName(flag string) string {
	return "FLEETBOOT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ApplyEnv sets every flag of fs not given on the command line from its FLEETBOOT_*
// environment variable. Flags win over the environment.
func ApplyEnv(fs *pflag.FlagSet) error {
	var errs []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		v, ok := os.LookupEnv(EnvName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: %v", EnvName(f.Name), v, err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return nil
}
