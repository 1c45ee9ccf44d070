package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagRE finds what reads as a fleetboot flag in a message: "--name" after a space, quote or
// parenthesis (not "x--y", not the "--" or "---" of kernel command lines and YAML).
var flagRE = regexp.MustCompile(`(?:^|[\s("'\x60])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)`)

// notOurs are option names in string literals that belong to other programs fleetboot
// writes command lines or scripts for.
var notOurs = map[string]string{
	"autofree": "iPXE imgfetch", "default": "iPXE choose", "drive": "iPXE sanboot", "gap": "iPXE item",
	"no-describe": "iPXE sanboot", "timeout": "iPXE choose", "class": "GRUB menuentry", "hotkey": "GRUB menuentry",
	"id": "GRUB menuentry", "source": "GRUB", "users": "GRUB menuentry", "fetch-from": "proxmox-auto-install-assistant",
	"url": "proxmox-auto-install-assistant", "post-data": "wget in installer templates",
	"data-binary": "curl in installer progress hooks", "nochroot": "kickstart %post",
}

// TestMessagesNameOnlyFlagsThatExist reads every string literal in fleetboot's non-test Go
// code and checks that each --flag it names is a flag of some fleetboot command: an error
// message that tells the operator to use a flag that does not exist (--arm64-file) is a dead
// end.
func TestMessagesNameOnlyFlagsThatExist(t *testing.T) {
	known := map[string]bool{"help": true, "version": true}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		add := func(f *pflag.Flag) { known[f.Name] = true }
		c.Flags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())

	bad := map[string][]string{}
	for _, root := range []string{"../../internal", "."} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || d.Name() == "e2e") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					return true
				}
				for _, m := range flagRE.FindAllStringSubmatch(s, -1) {
					if name := m[1]; !known[name] && notOurs[name] == "" {
						bad[name] = append(bad[name], p)
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for n := range bad {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Errorf("--%s is named in %s but is no flag of any fleetboot command", n, strings.Join(bad[n], ", "))
	}
}
