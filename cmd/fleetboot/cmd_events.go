package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fleetboot/fleetboot/internal/client"
)

func newEventsCmd() *cobra.Command {
	var f apiFlags
	var out outputFlag
	var machine string
	var follow bool
	var limit int
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the machines' timelines; --follow streams new events as they happen",
		Long: `Show the newest events of every machine (or of --machine), oldest first: DHCP answers,
boot scripts, downloads, installer phases, state changes, errors.

With --follow the command keeps running and prints every new event as fleetboot records it,
until Ctrl-C. A broken connection is reopened where it stopped, so no event is missed.
--follow --machine of a machine not seen yet waits for it: start it, then power the machine on.

-o json prints a JSON array; with --follow, one JSON object per line (JSON Lines), for
scripts: fleetboot events --follow -o json | jq -r 'select(.kind=="state") | .mac+" "+.detail'`,
		Example: `  fleetboot events
  fleetboot events --follow
  fleetboot events --follow --machine 52:54:00:12:34:56
  fleetboot events --follow -o json --limit 0`,
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return out.check() },
		RunE: f.run(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			w := cmd.OutOrStdout()
			// With --follow --limit 0 the newest event is still asked for (and not printed): the
			// stream goes on from it, so nothing recorded after the command started is lost.
			ask := limit
			if follow {
				ask = max(limit, 1)
			}
			recent, err := c.Events(cmd.Context(), machine, ask)
			var ae *client.APIError
			if follow && machine != "" && errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				// A machine not seen yet (about to be powered on): all its events are new.
				fmt.Fprintf(cmd.ErrOrStderr(), "machine %s has not been seen yet; waiting for its first event\n", machine)
				recent, err = nil, nil
			}
			if err != nil {
				return err
			}
			after := int64(0) // no events yet: every one that comes is new
			if len(recent) > 0 {
				after = recent[len(recent)-1].ID
			}
			if follow && limit < 1 {
				recent = nil
			}
			if !follow {
				return out.print(w, recent, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "TIME\tMAC\tKIND\tDETAIL")
					for _, e := range recent {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.MAC, e.Kind, e.Detail)
					}
				})
			}
			print := func(e client.Event) error { return printEventLine(w, out.format, e) }
			for _, e := range recent {
				if err := print(e); err != nil {
					return err
				}
			}
			return c.FollowEvents(cmd.Context(), machine, after, print)
		}),
	}
	f.register(cmd)
	out.register(cmd)
	cmd.Flags().StringVar(&machine, "machine", "", "only this machine's events (MAC)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep running and print new events as they happen")
	cmd.Flags().IntVar(&limit, "limit", 20, "print this many recent events (0: the server's default of 100; with --follow, 0: only new ones)")
	return cmd
}

// printEventLine prints one followed event: a line for people, or a JSON object on one line.
func printEventLine(w io.Writer, format string, e client.Event) error {
	if format == "json" {
		return json.NewEncoder(w).Encode(e)
	}
	_, err := fmt.Fprintf(w, "%s  %s  %-10s %s\n", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.MAC, e.Kind, e.Detail)
	return err
}
