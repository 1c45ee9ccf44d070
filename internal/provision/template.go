// Package provision turns an install profile into what a machine boots: the recipe's kernel,
// initrds and command line with URLs into the ISO, and the unattended-install file (kickstart,
// preseed, autoinstall, AutoYaST or a raw file) rendered per machine with Go text/template.
package provision

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// Template kinds and the file name each is served under below /unattended/<mac>/.
const (
	KindKickstart   = "kickstart"   // Fedora/RHEL family: inst.ks=<url>
	KindPreseed     = "preseed"     // Debian installer: url=<url>
	KindAutoinstall = "autoinstall" // Ubuntu subiquity: cloud-init NoCloud user-data (+ meta-data)
	KindAutoYaST    = "autoyast"    // openSUSE/SLES: autoyast=<url>
	KindRaw         = "raw"         // any file; the profile's extra args reference {{.UnattendedURL}}
	// KindAnswer is Proxmox VE's answer.toml: the installer POSTs its system information to
	// urls.ProxmoxAnswer and gets the rendered file back (answer.go).
	KindAnswer = "answer"
)

// Kinds lists the template kinds with their file names.
var Kinds = map[string]string{
	KindKickstart:   "ks.cfg",
	KindPreseed:     "preseed.cfg",
	KindAutoinstall: "user-data",
	KindAutoYaST:    "autoyast.xml",
	KindRaw:         "file",
	KindAnswer:      "answer.toml",
}

// Vars is what a template sees.
type Vars struct {
	Hostname  string
	MAC       string // aa:bb:cc:dd:ee:ff
	MACHyphen string // aa-bb-cc-dd-ee-ff
	IP        string
	ServerURL string // http://SERVER:PORT
	// DoneURL is the one-shot callback the installer POSTs to when it has finished, after
	// which the machine boots from its disk.
	DoneURL string
	// DoneCommand is a ready shell line that calls DoneURL with whatever the installer has
	// (curl or wget, both tried).
	DoneCommand string
	// ProgressURL is where the installer reports its phases (POST, ?phase=&status=, or a
	// curtin webhook event as JSON); they appear in the machine's timeline, and a failure makes
	// it failed. ProgressHooks is the ready-made block of hooks for the template's kind:
	// kickstart %pre/%post/%onerror sections, preseed early commands, the autoinstall
	// reporting webhook with early- and error-commands, AutoYaST pre-scripts. Shell lines for
	// your own hooks: {{.ProgressCommand "phase"}}, {{.ProgressFailedCommand "phase" "/log"}}.
	ProgressURL   string
	ProgressHooks string
	UnattendedURL string
	ISOURL        string
	Profile       string
	SSHKeys       []string
	Labels        map[string]string
	Vars          map[string]string
	// Hardware is the machine's hardware facts as iPXE reported them (manufacturer, product,
	// serial, asset, memsize, cpuvendor, cpumodel, nic_chip, nic_bustype); a missing fact is "".
	Hardware map[string]string
}

// funcs are the helpers templates may use.
var funcs = template.FuncMap{
	"join": strings.Join,
	// toml quotes a value as a TOML string: fqdn = {{toml .Hostname}}.
	"toml":  tomlString,
	"quote": func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" },
	"default": func(def, v string) string {
		if v == "" {
			return def
		}
		return v
	},
	"keys": func(m map[string]string) []string {
		ks := make([]string, 0, len(m))
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	},
}

// Parse parses a template of kind. It is called when a profile is saved, so that errors are
// reported then rather than at boot; Check also executes it against sample data so that a
// reference to a field that does not exist fails at save time too.
func Parse(kind, body string) (*template.Template, error) {
	if _, ok := Kinds[kind]; !ok {
		return nil, fmt.Errorf("template kind %q: want one of kickstart, preseed, autoinstall, autoyast, raw, answer", kind)
	}
	t, err := template.New(kind).Funcs(funcs).Option("missingkey=zero").Parse(body)
	if err != nil {
		return nil, explainTemplateError("template", err)
	}
	return t, nil
}

// Check parses and renders the template with sample values.
func Check(kind, body string) error {
	t, err := Parse(kind, body)
	if err != nil {
		return err
	}
	sample := sampleVars()
	sample.ProgressHooks = progressHooks(kind, sample.ProgressURL)
	out, err := Render(t, sample)
	if err != nil {
		return err
	}
	if kind == KindAnswer {
		// The installer stops at a broken answer file; say so when the profile is saved, with
		// the line in the rendered file (the template's lines, unless an action spans lines).
		return CheckAnswer(out)
	}
	return nil
}

// sampleVars are the values templates and extra arguments are checked against when a profile
// is saved.
func sampleVars() Vars {
	sample := Vars{Hostname: "host-525400000001", MAC: "52:54:00:00:00:01", MACHyphen: "52-54-00-00-00-01",
		IP: "192.0.2.10", ServerURL: "http://192.0.2.1:8080", DoneURL: "http://192.0.2.1:8080/boot/done/52:54:00:00:00:01",
		UnattendedURL: "http://192.0.2.1:8080/unattended/52:54:00:00:00:01/", ISOURL: "http://192.0.2.1:8080/isos/x",
		Profile: "sample", SSHKeys: []string{"ssh-ed25519 AAAA sample"}, Labels: map[string]string{}, Vars: map[string]string{},
		Hardware: map[string]string{"manufacturer": "Dell Inc.", "product": "PowerEdge R650", "serial": "7XK2LM3", "nic_chip": "i350"}}
	sample.DoneCommand = doneCommand(sample.DoneURL)
	sample.ProgressURL = progressURL(sample.ServerURL, sample.MAC)
	return sample
}

// Render executes t for one machine.
func Render(t *template.Template, v Vars) ([]byte, error) {
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if v.Vars == nil {
		v.Vars = map[string]string{}
	}
	if v.Hardware == nil {
		v.Hardware = map[string]string{}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		what := "template"
		if t.Name() == argsTemplate {
			what = "extra_args"
		}
		return nil, explainTemplateError(what, err)
	}
	return buf.Bytes(), nil
}

// argsTemplate names the template made of a profile's extra arguments.
const argsTemplate = "extra_args"

// ExpandArgs renders a profile's extra kernel arguments for one machine: they may use the
// template fields ({{.UnattendedURL}} is how a raw template reaches the installer, {{.Hostname}}
// …). Arguments without "{{" are returned as they are.
func ExpandArgs(args string, v Vars) (string, error) {
	if !strings.Contains(args, "{{") {
		return args, nil
	}
	t, err := template.New(argsTemplate).Funcs(funcs).Option("missingkey=zero").Parse(args)
	if err != nil {
		return "", explainTemplateError("extra_args", err)
	}
	out, err := Render(t, v)
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(string(out), "\r\n") {
		return "", fmt.Errorf("extra_args: renders to more than one line")
	}
	return string(out), nil
}

// FieldNames lists the template fields (".Hostname", …) in declaration order.
func FieldNames() []string {
	t := reflect.TypeOf(Vars{})
	names := make([]string, t.NumField())
	for i := range names {
		names[i] = "." + t.Field(i).Name
	}
	return names
}

// FuncNames lists the template functions, sorted.
func FuncNames() []string {
	names := make([]string, 0, len(funcs))
	for n := range funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var (
	// text/template's errors: "template: NAME:LINE: msg" (parse) and
	// "template: NAME:LINE:COL: executing \"NAME\" at <ACTION>: msg" (execution).
	parseErrRE = regexp.MustCompile(`^template: [^:]*:(\d+): (.*)$`)
	execErrRE  = regexp.MustCompile(`^template: [^:]*:(\d+):(\d+): executing "[^"]*" at <([^>]*)>: (.*)$`)
	fieldErrRE = regexp.MustCompile(`^can't evaluate field (\w+) in type (\S+)$`)
	funcErrRE  = regexp.MustCompile(`^function "\w+" not defined$`)
)

// explainTemplateError rewrites text/template's error for the person who wrote the template:
// the line (and column) in their text, and for a misspelt field the fields that exist rather
// than a Go type name.
func explainTemplateError(what string, err error) error {
	msg := err.Error()
	if m := execErrRE.FindStringSubmatch(msg); m != nil {
		// text/template counts lines from 1 but columns from 0; editors count both from 1.
		line, action, why := m[1], m[3], m[4]
		col := m[2]
		if n, err := strconv.Atoi(m[2]); err == nil {
			col = strconv.Itoa(n + 1)
		}
		if f := fieldErrRE.FindStringSubmatch(why); f != nil {
			if f[2] == reflect.TypeOf(Vars{}).String() {
				return fmt.Errorf("%s line %s, column %s: .%s is not a template field; the fields are %s (functions: %s)",
					what, line, col, f[1], strings.Join(FieldNames(), " "), strings.Join(FuncNames(), " "))
			}
			return fmt.Errorf("%s line %s, column %s, at %s: a %s has no field %s", what, line, col, action, f[2], f[1])
		}
		return fmt.Errorf("%s line %s, column %s, at %s: %s", what, line, col, action, why)
	}
	if m := parseErrRE.FindStringSubmatch(msg); m != nil {
		line, why := m[1], m[2]
		if strings.Contains(why, "unexpected EOF") {
			why += " (an {{if}}, {{range}}, {{with}} or {{define}} without its {{end}}, or an unclosed {{ }}?)"
		}
		if funcErrRE.MatchString(why) {
			why += "; the functions are " + strings.Join(FuncNames(), " ")
		}
		return fmt.Errorf("%s line %s: %s", what, line, why)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// doneCommand is a shell line that reports the install done with curl or wget.
func doneCommand(url string) string {
	return fmt.Sprintf("curl -fsS -X POST %s || wget -q -O- --post-data= %s || true", url, url)
}
