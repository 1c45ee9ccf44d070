package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fleetboot/fleetboot/internal/client"
)

// parseKV turns repeated k=v flags into a map.
func parseKV(flag string, kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want key=value", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

func formatKV(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// machineChangeFlags are the flags of `machine add` and `machine set`.
type machineChangeFlags struct {
	profile, hostname, state string
	labels                   []string
}

func (m *machineChangeFlags) register(cmd *cobra.Command, withState bool) {
	cmd.Flags().StringVar(&m.profile, "profile", "", `profile to install ("" with --profile= unassigns)`)
	cmd.Flags().StringVar(&m.hostname, "hostname", "", "hostname handed to the unattended install")
	cmd.Flags().StringArrayVar(&m.labels, "label", nil, "label key=value (repeatable; replaces all labels)")
	if withState {
		cmd.Flags().StringVar(&m.state, "state", "", "discovered, install-pending, installing, installed or failed")
	}
}

// change holds only the flags the user gave, so that `set` leaves the rest alone.
func (m *machineChangeFlags) change(cmd *cobra.Command) (client.MachineChange, error) {
	var ch client.MachineChange
	fl := cmd.Flags()
	if fl.Changed("profile") {
		ch.Profile = &m.profile
	}
	if fl.Changed("hostname") {
		ch.Hostname = &m.hostname
	}
	if fl.Changed("label") {
		l, err := parseKV("label", m.labels)
		if err != nil {
			return ch, err
		}
		ch.Labels = l
	}
	if fl.Lookup("state") != nil && fl.Changed("state") {
		ch.State = &m.state
	}
	return ch, nil
}

func printMachines(cmd *cobra.Command, ms []client.Machine) error {
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	machineTable(tw, ms)
	return tw.Flush()
}

func machineTable(tw *tabwriter.Writer, ms []client.Machine) {
	fmt.Fprintln(tw, "MAC\tHOSTNAME\tSTATE\tPROFILE\tIP\tFIRMWARE\tPRODUCT\tLABELS\tLAST SEEN")
	for _, m := range ms {
		seen := "never"
		if !m.LastSeen.IsZero() {
			seen = m.LastSeen.Local().Format("2006-01-02 15:04:05")
		}
		product := strings.TrimSpace(m.Hardware["manufacturer"] + " " + m.Hardware["product"])
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.MAC, orDash(m.Hostname), m.State, orDash(m.Profile), orDash(m.IP),
			orDash(m.Firmware), orDash(product), formatKV(m.Labels), seen)
	}
}

func newMachineCmd() *cobra.Command {
	var f apiFlags
	cmd := groupCommand(&cobra.Command{
		Use:   "machine",
		Short: "List and manage machines (assign profiles, reinstall, timeline)",
		Example: `  fleetboot machine add 52:54:00:12:34:56 --profile fedora-41 --hostname web1 --label rack=r1
  fleetboot machine reinstall 52:54:00:12:34:56      # next network boot installs again
  fleetboot machine events 52:54:00:12:34:56`,
	})
	f.register(cmd)

	var state string
	var lsOut outputFlag
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List machines", Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return lsOut.check() },
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			ms, err := c.Machines(cmd.Context(), state)
			if err != nil {
				return err
			}
			return lsOut.print(cmd.OutOrStdout(), ms, func(tw *tabwriter.Writer) { machineTable(tw, ms) })
		}),
	}
	ls.Flags().StringVar(&state, "state", "", "only machines in this state")
	lsOut.register(ls)

	show := &cobra.Command{
		Use: "show MAC", Short: "Show a machine as JSON", Args: cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			m, err := c.Machine(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), m)
		}),
	}

	var addFlags machineChangeFlags
	var install bool
	add := &cobra.Command{
		Use: "add MAC", Short: "Add a machine before it first boots", Args: cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			ch, err := addFlags.change(cmd)
			if err != nil {
				return err
			}
			if install {
				s := "install-pending"
				ch.State = &s
			}
			m, err := c.CreateMachine(cmd.Context(), args[0], ch)
			if err != nil {
				return err
			}
			return printMachines(cmd, []client.Machine{*m})
		}),
	}
	addFlags.register(add, false)
	add.Flags().BoolVar(&install, "install", false, "install the profile on the next network boot")

	var setFlags machineChangeFlags
	var setInstall bool
	set := &cobra.Command{
		Use: "set MAC", Short: "Change a machine's profile, hostname, labels or state", Args: cobra.ExactArgs(1),
		Example: `  fleetboot machine set 52:54:00:12:34:56 --profile rocky9 --install   # install rocky9 on the next network boot
  fleetboot machine set 52:54:00:12:34:56 --profile=                    # unassign`,
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			ch, err := setFlags.change(cmd)
			if err != nil {
				return err
			}
			if setInstall {
				s := "install-pending"
				ch.State = &s
			}
			if ch.Profile == nil && ch.Hostname == nil && ch.Labels == nil && ch.State == nil {
				return fmt.Errorf("nothing to change: give --profile, --hostname, --label, --install or --state")
			}
			m, err := c.UpdateMachine(cmd.Context(), args[0], ch)
			if err != nil {
				return err
			}
			return printMachines(cmd, []client.Machine{*m})
		}),
	}
	setFlags.register(set, true)
	set.Flags().BoolVar(&setInstall, "install", false, "install the machine's profile on its next network boot (state install-pending)")
	set.MarkFlagsMutuallyExclusive("install", "state")

	reinstall := &cobra.Command{
		Use: "reinstall MAC", Short: "Install the machine's profile again on its next network boot", Args: cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			m, err := c.ReinstallMachine(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printMachines(cmd, []client.Machine{*m})
		}),
	}

	rm := &cobra.Command{
		Use: "rm MAC", Aliases: []string{"delete"}, Short: "Forget a machine", Args: cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteMachine(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		}),
	}

	var limit int
	var evOut outputFlag
	events := &cobra.Command{
		Use: "events MAC", Short: "Show a machine's timeline", Args: cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error { return evOut.check() },
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			ev, err := c.MachineEvents(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			return evOut.print(cmd.OutOrStdout(), ev, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "TIME\tKIND\tDETAIL")
				for _, e := range ev {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Kind, e.Detail)
				}
			})
		}),
	}
	events.Flags().IntVar(&limit, "limit", 0, "at most this many events (0: the server's default)")
	evOut.register(events)

	cmd.AddCommand(ls, show, add, set, reinstall, rm, events)
	return cmd
}

func newProfileCmd() *cobra.Command {
	var f apiFlags
	cmd := groupCommand(&cobra.Command{
		Use:   "profile",
		Short: "Manage profiles: which ISO entry to boot, extra kernel arguments, unattended template",
		Example: `  fleetboot profile put fedora-ks --iso fedora-41 --args "console=ttyS0" \
      --template-file ks.cfg --template-kind kickstart --var tz=UTC
  fleetboot profile ls`,
	})
	f.register(cmd)

	var lsOut outputFlag
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List profiles", Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return lsOut.check() },
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			ps, err := c.Profiles(cmd.Context())
			if err != nil {
				return err
			}
			return lsOut.print(cmd.OutOrStdout(), ps, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "NAME\tISO\tENTRY\tMODE\tTEMPLATE\tSECURE BOOT\tEXTRA ARGS\tSTATUS")
				var broken []string
				for _, p := range ps {
					status := "ok"
					if p.Broken {
						status = "BROKEN"
						broken = append(broken, fmt.Sprintf("%s: %s", p.Name, p.Problem))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.ISO, orDash(p.Entry), orDash(p.Mode), orDash(p.Kind),
						secureBootWord(p.SecureBoot), orDash(p.ExtraArgs), status)
				}
				// Why each broken profile cannot boot, below the table (too long for a column;
				// a line without tabs does not widen the columns above it).
				for _, b := range broken {
					fmt.Fprintln(tw, "broken "+b)
				}
			})
		}),
	}
	lsOut.register(ls)

	show := &cobra.Command{
		Use: "show NAME", Short: "Show a profile as JSON", Args: cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			p, err := c.Profile(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), p)
		}),
	}

	var bootMAC string
	boot := &cobra.Command{
		Use:   "boot NAME [--mac MAC]",
		Short: "Show what the profile boots: the final kernel command line and what happened to each of the ISO's own arguments",
		Args:  cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			e, err := c.ProfileBoot(cmd.Context(), args[0], bootMAC)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "entry    %s (%s)\nkernel   %s\ncmdline  %s\n", e.ID, e.Label, e.Kernel, e.Cmdline)
			if e.ISOEntry != "" {
				fmt.Fprintf(out, "from     %s\n", e.ISOEntry)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			for _, a := range e.ISOArgs {
				now := ""
				if a.Now != "" {
					now = "→ " + a.Now + " "
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s%s\n", a.Arg, a.Action, now, a.Why)
			}
			return tw.Flush()
		}),
	}
	boot.Flags().StringVar(&bootMAC, "mac", "", "resolve for this machine (its firmware picks the entry)")

	var p client.Profile
	var templateFile string
	var vars []string
	put := &cobra.Command{
		Use:   "put NAME --iso ID",
		Short: "Create or replace a profile (the server checks the ISO, entry and template first)",
		Args:  cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			p.Name = args[0]
			if templateFile != "" {
				b, err := os.ReadFile(templateFile)
				if err != nil {
					return err
				}
				p.Template = string(b)
			}
			if len(vars) > 0 {
				v, err := parseKV("var", vars)
				if err != nil {
					return err
				}
				p.Vars = v
			}
			out, err := c.PutProfile(cmd.Context(), p)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved profile %s (iso %s)\n", out.Name, out.ISO)
			if sb := out.SecureBoot; sb != nil && !sb.Ready {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: machines with Secure Boot on cannot boot profile %s (entry %s): %s\n", out.Name, orDash(sb.Entry), sb.Reason)
			}
			return nil
		}),
	}
	put.Flags().StringVar(&p.ISO, "iso", "", "ISO id or name (required)")
	put.Flags().StringVar(&p.Mode, "mode", "", "install-once (default: the installer until it calls back done, then the local disk), "+
		"boot-once (once, no callback: memtest, rescue) or always (every network boot, state untouched)")
	put.Flags().StringVar(&p.Entry, "entry", "", "boot entry id of the ISO (listed by: fleetboot iso show ID; default: the first that fits)")
	put.Flags().StringVar(&p.ExtraArgs, "args", "", "extra kernel command line arguments")
	put.Flags().StringVar(&templateFile, "template-file", "", "unattended-install template (Go text/template)")
	put.Flags().StringVar(&p.Kind, "template-kind", "", "kickstart, preseed, autoinstall, autoyast, raw or answer (Proxmox VE answer.toml)")
	put.Flags().StringArrayVar(&vars, "var", nil, "template variable key=value (repeatable)")
	put.Flags().StringArrayVar(&p.SSHKeys, "ssh-key", nil, "SSH public key for the template (repeatable)")
	put.MarkFlagRequired("iso")

	rm := &cobra.Command{
		Use: "rm NAME", Aliases: []string{"delete"}, Short: "Delete a profile no machine or rule uses", Args: cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteProfile(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", args[0])
			return nil
		}),
	}

	cmd.AddCommand(ls, show, boot, put, rm)
	return cmd
}

func newRuleCmd() *cobra.Command {
	var f apiFlags
	cmd := groupCommand(&cobra.Command{
		Use:   "rule",
		Short: "Manage rules that assign profiles to machines by MAC prefix, labels and hardware facts",
		Example: `  fleetboot rule add --profile fedora-ks --mac-prefix 52:54:00 --install
  fleetboot rule add --profile db --label role=db --priority 10
  fleetboot rule add --profile r650 --hardware "product=PowerEdge R650" --hardware "manufacturer=Dell*"`,
	})
	f.register(cmd)

	var lsOut outputFlag
	ls := &cobra.Command{
		Use: "ls", Aliases: []string{"list"}, Short: "List rules (lower priority wins)", Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return lsOut.check() },
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			rs, err := c.Rules(cmd.Context())
			if err != nil {
				return err
			}
			return lsOut.print(cmd.OutOrStdout(), rs, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tPRIORITY\tMAC PREFIX\tLABELS\tHARDWARE\tPROFILE\tINSTALL")
				for _, r := range rs {
					fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%v\n", r.ID, r.Priority, orDash(r.MACPrefix), formatKV(r.Labels), formatKV(r.Hardware), r.Profile, r.Install)
				}
			})
		}),
	}
	lsOut.register(ls)

	var r client.Rule
	var labels, hardware []string
	add := &cobra.Command{
		Use: "add --profile P", Short: "Add a rule; machines without a profile that match get it at once", Args: cobra.NoArgs,
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			if len(labels) > 0 {
				l, err := parseKV("label", labels)
				if err != nil {
					return err
				}
				r.Labels = l
			}
			if len(hardware) > 0 {
				h, err := parseKV("hardware", hardware)
				if err != nil {
					return err
				}
				r.Hardware = h
			}
			out, applied, err := c.AddRule(cmd.Context(), r)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added rule %d (profile %s); assigned to %d machines\n", out.ID, out.Profile, applied)
			return nil
		}),
	}
	add.Flags().StringVar(&r.Profile, "profile", "", "profile to assign (required)")
	add.Flags().StringVar(&r.MACPrefix, "mac-prefix", "", "match MACs starting with these octets, e.g. 52:54:00")
	add.Flags().StringArrayVar(&labels, "label", nil, "match machines with label key=value (repeatable; all must match)")
	add.Flags().StringArrayVar(&hardware, "hardware", nil, "match a hardware fact iPXE reports, fact=value; * and ? glob, case ignored\n(repeatable; all must match; facts: manufacturer, product, serial, asset, memsize, cpuvendor, cpumodel, nic_chip, nic_bustype)")
	add.Flags().BoolVar(&r.Install, "install", false, "also set matching machines to install-pending")
	add.Flags().IntVar(&r.Priority, "priority", 0, "lower wins among matching rules")
	add.MarkFlagRequired("profile")

	rm := &cobra.Command{
		Use: "rm ID", Aliases: []string{"delete"}, Short: "Delete a rule", Args: cobra.ExactArgs(1),
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("rule id %q: want a number (see `fleetboot rule ls`)", args[0])
			}
			if err := c.DeleteRule(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted rule %d\n", id)
			return nil
		}),
	}

	cmd.AddCommand(ls, add, rm)
	return cmd
}

// secureBootWord is a profile's Secure Boot column: "ready", "no" or "-" when unknown.
func secureBootWord(sb *client.SecureBootStatus) string {
	switch {
	case sb == nil:
		return "-"
	case sb.Ready:
		return "ready"
	}
	return "no"
}

func newLeasesCmd() *cobra.Command {
	var f apiFlags
	var out outputFlag
	cmd := &cobra.Command{
		Use:     "leases",
		Short:   "List the DHCP leases fleetboot handed out (--dhcp=full only)",
		Example: "  fleetboot leases\n  fleetboot leases -o json | jq -r '.[] | select(.active) | .ip'",
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return out.check() },
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			ls, err := c.Leases(cmd.Context())
			if err != nil {
				return err
			}
			return out.print(cmd.OutOrStdout(), ls, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "IP\tMAC\tSTATE\tACTIVE\tEXPIRES\tHOSTNAME")
				for _, l := range ls {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\n", l.IP, l.MAC, l.State, l.Active,
						l.Expires.Local().Format("2006-01-02 15:04:05"), orDash(l.Hostname))
				}
			})
		}),
	}
	f.register(cmd)
	out.register(cmd)
	return cmd
}

func newAuditCmd() *cobra.Command {
	var f apiFlags
	var out outputFlag
	var limit int
	var before int64
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List the audit log: every change made through the API (who, from where, what, result), newest first",
		Long: "List the audit log, newest first: every API call that changed something or tried to (refused calls " +
			"included), with the token's scope, the source address, method, route, target and HTTP status. Needs the admin token.",
		Example: "  fleetboot audit\n  fleetboot audit --limit 20 --before 1234\n  fleetboot audit -o json | jq '.[] | select(.status >= 400)'",
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return out.check() },
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			es, err := c.Audit(cmd.Context(), limit, before)
			if err != nil {
				return err
			}
			return out.print(cmd.OutOrStdout(), es, func(tw *tabwriter.Writer) {
				fmt.Fprintln(tw, "ID\tTIME\tSCOPE\tIP\tMETHOD\tROUTE\tTARGET\tSTATUS\tERROR")
				for _, e := range es {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.ID, e.Time.Local().Format("2006-01-02 15:04:05"),
						e.Scope, e.IP, e.Method, e.Route, orDash(e.Target), e.Status, orDash(e.Error))
				}
			})
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many entries (1 to 1000)")
	cmd.Flags().Int64Var(&before, "before", 0, "only entries older than this id (the next page)")
	f.register(cmd)
	out.register(cmd)
	return cmd
}
