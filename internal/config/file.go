package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// ConfigFlag is the flag naming the configuration file; FLEETBOOT_CONFIG sets it too.
const ConfigFlag = "config"

// notInFile are flags that are actions of one run, not configuration.
var notInFile = map[string]bool{ConfigFlag: true, "dry-run": true}

// ApplyFile sets every flag of fs that neither the command line nor the environment set from
// the YAML file at path: a mapping whose keys are flag names without the dashes (lease-time:
// 2h, dns: [10.0.0.1, 10.0.0.2]). Precedence is flags > environment > file > defaults, so call
// it after ApplyEnv. A key that is no flag is an error (a misspelt key silently doing nothing
// is how a server ends up answering DHCP on the wrong interface), as is a value the flag
// refuses; both name the file and the key. The keys come from fs itself, so a new flag is a
// valid key at once.
func ApplyFile(fs *pflag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: not a YAML mapping of flag names to values: %v", path, err)
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []string
	for _, k := range keys {
		n := doc[k]
		f := fs.Lookup(k)
		if f == nil || notInFile[k] {
			msg := fmt.Sprintf("line %d: unknown key %q", n.Line, k)
			if s := suggest(fs, k); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			errs = append(errs, msg)
			continue
		}
		if f.Changed {
			continue // the command line or the environment said otherwise
		}
		if err := setFromNode(f, &n); err != nil {
			errs = append(errs, fmt.Sprintf("line %d: %s: %v", n.Line, k, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("config file %s: %s (keys are the flags of `fleetboot serve --help` without the dashes; `fleetboot config` prints them all)",
			path, strings.Join(errs, "; "))
	}
	return nil
}

// setFromNode sets flag f from a YAML scalar, or for list flags (--dns, --register-dir …) a
// scalar or a sequence of scalars.
func setFromNode(f *pflag.Flag, n *yaml.Node) error {
	var vals []string
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return fmt.Errorf("no value (leave the key out for the default)")
		}
		vals = []string{n.Value}
	case yaml.SequenceNode:
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return fmt.Errorf("takes one value, not a list")
		}
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode {
				return fmt.Errorf("list items must be plain values")
			}
			vals = append(vals, e.Value)
		}
		if err := sv.Replace(vals); err != nil {
			return err
		}
		f.Changed = true
		return nil
	default:
		return fmt.Errorf("want a value or a list of values, not a mapping")
	}
	// One value for a list flag is as on the command line: --dns 10.0.0.1,10.0.0.2.
	if err := f.Value.Set(vals[0]); err != nil {
		return err
	}
	f.Changed = true
	return nil
}

// suggest names the flag closest to a misspelt key (at most two edits away).
func suggest(fs *pflag.FlagSet, k string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *pflag.Flag) {
		if notInFile[f.Name] {
			return
		}
		if d := editDistance(k, f.Name); d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// WriteExample writes a configuration file that names every flag of fs (except --config):
// its help text as a comment and its default, commented out. `fleetboot config` prints it;
// docs/fleetboot.yaml is this output (a test keeps them equal), so the documented file covers
// every flag, including ones added later.
func WriteExample(w io.Writer, fs *pflag.FlagSet) error {
	var b strings.Builder
	b.WriteString(`# fleetboot configuration file: fleetboot serve --config /etc/fleetboot/fleetboot.yaml
# (or FLEETBOOT_CONFIG). Every key is a flag of "fleetboot serve" without the dashes; the
# command line and FLEETBOOT_* environment variables win over this file, which wins over the
# defaults. Unknown keys are an error. Remove the "# " of a key to set it; lists take YAML
# lists. Generated from the flag set by "fleetboot config".
`)
	fs.VisitAll(func(f *pflag.Flag) {
		if notInFile[f.Name] || f.Hidden {
			return
		}
		b.WriteString("\n")
		for _, line := range wrap(f.Usage, 90) {
			b.WriteString("# " + line + "\n")
		}
		b.WriteString("# " + f.Name + ": " + exampleValue(f) + "\n")
	})
	_, err := io.WriteString(w, b.String())
	return err
}

// exampleValue is f's default as YAML.
func exampleValue(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		items := sv.GetSlice()
		q := make([]string, len(items))
		for i, s := range items {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	switch f.Value.Type() {
	case "bool", "int", "uint", "int64", "float64":
		return f.DefValue
	}
	return strconv.Quote(f.DefValue)
}

func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
