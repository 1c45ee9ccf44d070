package main

import (
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	embedded "github.com/fleetboot/fleetboot/embed"
	"github.com/fleetboot/fleetboot/internal/config"
	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/server"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "fleetboot",
		Short: "Network boot server: PXE/UEFI HTTP Boot → embedded iPXE → everything over HTTP",
		Long: `fleetboot boots machines over the network. DHCP (proxy or full) and TFTP only hand
legacy PXE firmware an embedded iPXE binary; UEFI HTTP Boot clients fetch it over HTTP. From
then on scripts, kernels and initrds come over HTTP.

Every flag can also be set by an environment variable: --lease-time → FLEETBOOT_LEASE_TIME;
serve's flags also in a YAML file: serve --config fleetboot.yaml ("fleetboot config" prints one).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate("fleetboot {{.Version}}\n")
	root.AddCommand(newServeCmd(), newVersionCmd(), newISOCmd(), newMachineCmd(), newProfileCmd(), newRuleCmd(), newLeasesCmd(), newEventsCmd(), newConfigCmd(), newAuditCmd(), newBackupCmd(), newRestoreCmd(), newSimulateCmd())
	return root
}

// errLogged is an error the command already logged; main exits 1 without printing it again.
type errLogged struct{ error }

func (e errLogged) Unwrap() error { return e.error }

func newServeCmd() *cobra.Command {
	cfg := config.Default()
	var dryRun bool
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the boot server (DHCP, TFTP, HTTP)",
		Example: `  fleetboot serve                                  # proxyDHCP on the default-route interface
  fleetboot serve --interface eth1 --dhcp full --pool 10.0.0.100-10.0.0.199 --router 10.0.0.1 --dns 10.0.0.1
  fleetboot serve --dhcp off --tftp off            # a site DHCP server points machines at http://HOST:8080/boot.ipxe
  fleetboot serve --dry-run                        # which interface and LAN it would answer on, then exit
  fleetboot serve --config /etc/fleetboot/fleetboot.yaml   # every flag as a key; flags and FLEETBOOT_* win`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			if configFile != "" {
				if err := config.ApplyFile(cmd.Flags(), configFile); err != nil {
					return err
				}
			}
			if dryRun {
				r, err := cfg.Validate()
				if err != nil {
					return err
				}
				fmt.Fprint(cmd.OutOrStdout(), servePlan(cfg, r))
				return nil
			}
			log, err := newLogger(cmd.ErrOrStderr(), cfg.LogLevel, cfg.LogFormat)
			if err != nil {
				return err
			}
			log.Info("fleetboot starting", "version", version())
			if err := server.Run(cmd.Context(), cfg, log); err != nil {
				// In the log too, so a log collector (json) sees why it stopped; nothing
				// said "serving" before (Run logs that only once every listener is up), so
				// a refused second instance reads "starting" then "not started".
				log.Error("fleetboot not started", "err", err)
				return errLogged{err}
			}
			return nil
		},
	}
	cfg.RegisterFlags(cmd.Flags())
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the interface, address and what DHCP/TFTP/HTTP would answer, then exit without listening")
	cmd.Flags().StringVar(&configFile, config.ConfigFlag, "", "YAML configuration file: every flag as a key (lease-time: 2h); flags and FLEETBOOT_* variables win over it (\"fleetboot config\" prints one with every key)")
	return cmd
}

func newConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print a configuration file for serve --config with every flag, its help and default",
		Example: `  fleetboot config > /etc/fleetboot/fleetboot.yaml   # then remove the "# " of the keys to set
  fleetboot serve --config /etc/fleetboot/fleetboot.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return config.WriteExample(cmd.OutOrStdout(), newServeCmd().Flags())
		},
	}
}

func newVersionCmd() *cobra.Command {
	var dir, sbDir string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version and the iPXE binaries and signed shim + GRUB this build serves, with sha256",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "fleetboot %s\n", version())
			bins, err := ipxe.LoadBinariesFrom(embedded.IPXE, dir)
			if err != nil {
				fmt.Fprintf(out, "iPXE binaries: %v\n", err)
				return nil
			}
			printBinaries(out, fmt.Sprintf("iPXE binaries (%s, %s)", bins.Source, bins.Version), bins.List())
			chain, err := grub.LoadChainFrom(embedded.SecureBoot, sbDir)
			if err != nil {
				fmt.Fprintf(out, "Secure Boot chain: %v\n", err)
				return nil
			}
			printBinaries(out, fmt.Sprintf("Secure Boot chain (%s, %s)", chain.Source, chain.Version), chain.Binaries())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "ipxe-dir", "", "report the binaries in this directory instead of the embedded ones")
	cmd.Flags().StringVar(&sbDir, "secureboot-dir", "", "report the signed shim + GRUB in this directory instead of the embedded ones")
	return cmd
}

// printBinaries lists served binaries with their sizes and sha256 under a heading.
func printBinaries(out io.Writer, heading string, bins []*ipxe.Binary) {
	fmt.Fprintf(out, "%s:\n", heading)
	for _, b := range bins {
		fmt.Fprintf(out, "  %-18s %8d bytes  sha256:%s\n", b.Name, len(b.Data), b.SHA256)
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// version describes this binary from what the Go toolchain stamped into it.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel (no build information)"
	}
	return describeBuild(bi)
}

// describeBuild is "<module version> (commit <revision>[, modified], <commit time>, <go version>)".
// The module version is the tag `go install …@v1.2.3` was given, or since Go 1.24 a
// pseudo-version derived from the checkout (v0.0.0-<time>-<commit>[+dirty]); "devel" when the
// build knows neither (go run, go test, a tree without .git).
func describeBuild(bi *debug.BuildInfo) string {
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	var parts []string
	if rev != "" {
		c := "commit " + rev
		if modified {
			c += ", modified"
		}
		parts = append(parts, c)
		if at != "" {
			parts = append(parts, at)
		}
	}
	parts = append(parts, bi.GoVersion)
	return v + " (" + strings.Join(parts, ", ") + ")"
}
