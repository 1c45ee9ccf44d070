package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// outputFlag is -o/--output of every list command: a table for people, JSON for scripts.
type outputFlag struct{ format string }

func (o *outputFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "table", "output format: table or json")
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

// check fails on an unknown format before anything is asked of the server.
func (o *outputFlag) check() error {
	switch o.format {
	case "table", "json":
		return nil
	}
	return fmt.Errorf("--output %q: want table or json", o.format)
}

// print writes v as indented JSON (an empty list as [], never null), or calls table with a
// tabwriter.
func (o *outputFlag) print(w io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	if o.format == "json" {
		return printJSON(w, v)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// groupCommand makes cmd, which only holds subcommands, print its help when run alone and
// fail on an unknown subcommand with suggestions. Cobra does that by itself only for the
// root: `fleetboot iso uplod` would print the help of `iso` and exit 0.
func groupCommand(cmd *cobra.Command) *cobra.Command {
	cmd.SuggestionsMinimumDistance = 2
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return errors.New(msg + " (see " + c.CommandPath() + " --help)")
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	return cmd
}
