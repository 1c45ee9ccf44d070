package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fleetboot/fleetboot/internal/simulate"
)

func newSimulateCmd() *cobra.Command {
	var (
		cfg      = simulate.Config{Machines: 50, Mode: "full", Spread: 10 * time.Second, InitrdMB: 16, Timeout: 30 * time.Minute}
		mix      string
		macsFile string
		jsonOut  string
		quiet    bool
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Rehearse a mass install: boot simulated machines against a real server in private network namespaces",
		Long: `simulate starts "fleetboot serve" in a private pair of network namespaces and powers on
--machines simulated machines against it, spread over --spread. Each goes through the chain its
firmware would: DHCP with the options of its kind (BIOS PXE, UEFI PXE, UEFI HTTP Boot, iPXE),
TFTP with the tsize probe or HTTP Boot's HEAD and GET, iPXE's own DHCP, boot.ipxe and the
identify request, the kernel and initrds in Range requests, the unattended file and the done
callback. It prints a live progress line, then per-phase latency (p50/p95/p99/max), failures
by phase, bytes and throughput; --json writes the same as JSON.

Without --data it rehearses with a generated ISO (Debian's installer kernel and an initrd of
--initrd-mb MiB), a preseed profile and a rule that installs it on every simulated machine.
With --data it runs the server on that data directory — give it a COPY of yours (fleetboot
restore of a backup into a scratch directory): machines get registered and installed there —
and with --macs your fleet's MACs, so your own rules, profiles and templates decide what each
machine boots. Needs root (namespaces). Exits 1 when any machine failed.

With --servers 2 --database postgres://… it rehearses an HA pair: two instances, each in its
own namespace on the one simulated segment (a bridge), with the same --pool on one PostgreSQL
database (give it a scratch database) and the generated ISO registered in place where both
read it. Every machine takes the first OFFER, from either; the report counts the DHCPACKs of
each instance and the addresses ACKed to two machines (there must be none).`,
		Example: `  fleetboot simulate                                   # 50 machines, all firmware kinds, full DHCP
  fleetboot simulate --machines 1000 --spread 60s --json run.json
  fleetboot simulate --dhcp proxy --mix uefi-http=3,ipxe=1
  fleetboot simulate --data /srv/rehearsal --macs fleet-macs.txt --machines 200
  fleetboot simulate --servers 2 --database postgres://fleetboot@db/scratch --machines 200`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Mix, err = simulate.ParseMix(mix); err != nil {
				return err
			}
			if macsFile != "" {
				if cfg.MACs, err = readMACs(macsFile); err != nil {
					return err
				}
				if !cmd.Flags().Changed("machines") {
					cfg.Machines = len(cfg.MACs)
				}
			}
			if !quiet {
				cfg.Progress = cmd.ErrOrStderr()
			}
			cfg.Log, err = newLogger(cmd.ErrOrStderr(), "info", "text")
			if err != nil {
				return err
			}
			rep, err := simulate.Run(cmd.Context(), cfg)
			if rep != nil {
				rep.WriteTable(cmd.OutOrStdout())
				if jsonOut != "" {
					b, _ := json.MarshalIndent(rep, "", "  ")
					if werr := os.WriteFile(jsonOut, append(b, '\n'), 0o644); werr != nil && err == nil {
						err = werr
					}
				}
			}
			if err != nil {
				return err
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%d of %d machines failed", rep.Failed, rep.Machines)
			}
			if rep.DuplicateAddresses > 0 {
				return fmt.Errorf("%d addresses were ACKed to more than one machine", rep.DuplicateAddresses)
			}
			if rep.ServerInstalled != rep.Succeeded {
				return fmt.Errorf("%d machines completed the chain but the server lists %d as installed", rep.Succeeded, rep.ServerInstalled)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Machines, "machines", cfg.Machines, "how many machines to power on (at most 4000)")
	f.StringVar(&mix, "mix", "", "firmware mix as KIND=WEIGHT,… over bios-pxe, uefi-pxe, uefi-http, ipxe (default: equal)")
	f.DurationVar(&cfg.Spread, "spread", cfg.Spread, "power-on window: machines start at random times within it")
	f.StringVar(&cfg.Mode, "dhcp", cfg.Mode, "the server's DHCP mode: full or proxy (proxy: the simulator stands in for the site DHCP server's addresses)")
	f.StringVar(&cfg.DataDir, "data", "", "the server's data directory (a copy of yours); default: a fresh one with a generated ISO, profile and rule")
	f.StringVar(&macsFile, "macs", "", "file with the machines' MACs, one per line (default: generated 02:fb:5e:… addresses)")
	f.IntVar(&cfg.InitrdMB, "initrd-mb", cfg.InitrdMB, "size of the generated ISO's initrd, MiB (without --data)")
	f.IntVar(&cfg.Servers, "servers", 1, "instances serving the one simulated segment with the same pool; more than 1 (an HA pair) needs --database")
	f.StringVar(&cfg.Database, "database", "", "PostgreSQL URL the servers share (a scratch database: the rehearsal registers and installs its machines there); default: SQLite in the data directory")
	f.StringSliceVar(&cfg.ServeArgs, "serve-arg", nil, "extra flag for fleetboot serve (repeatable), e.g. --serve-arg=--log-level=debug")
	f.StringVar(&jsonOut, "json", "", "also write the report as JSON to this file")
	f.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on the whole run")
	f.BoolVar(&quiet, "quiet", false, "no live progress line")
	return cmd
}

// readMACs reads one MAC per line ('#' comments and blank lines skipped).
func readMACs(p string) ([]net.HardwareAddr, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []net.HardwareAddr
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		mac, err := net.ParseMAC(strings.Fields(l)[0])
		if err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("%s:%d: %q is not an Ethernet MAC", p, n, l)
		}
		out = append(out, mac)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no MACs", p)
	}
	return out, nil
}
