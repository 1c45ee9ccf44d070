// Package provision turns an install profile into what a machine boots: the recipe's kernel,
// initrds and command line with URLs into the ISO, and the unattended-install file (kickstart,
// preseed, autoinstall, AutoYaST or a raw file) rendered per machine with Go text/template.
package provision

import (
	"bytes"
	"fmt"
	"sort"
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
)

// Kinds lists the template kinds with their file names.
var Kinds = map[string]string{
	KindKickstart:   "ks.cfg",
	KindPreseed:     "preseed.cfg",
	KindAutoinstall: "user-data",
	KindAutoYaST:    "autoyast.xml",
	KindRaw:         "file",
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
	DoneCommand   string
	UnattendedURL string
	ISOURL        string
	Profile       string
	SSHKeys       []string
	Labels        map[string]string
	Vars          map[string]string
}

// funcs are the helpers templates may use.
var funcs = template.FuncMap{
	"join":  strings.Join,
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
		return nil, fmt.Errorf("template kind %q: want one of kickstart, preseed, autoinstall, autoyast, raw", kind)
	}
	t, err := template.New(kind).Funcs(funcs).Option("missingkey=zero").Parse(body)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return t, nil
}

// Check parses and renders the template with sample values.
func Check(kind, body string) error {
	t, err := Parse(kind, body)
	if err != nil {
		return err
	}
	sample := Vars{Hostname: "host-525400000001", MAC: "52:54:00:00:00:01", MACHyphen: "52-54-00-00-00-01",
		IP: "192.0.2.10", ServerURL: "http://192.0.2.1:8080", DoneURL: "http://192.0.2.1:8080/boot/done/52:54:00:00:00:01",
		UnattendedURL: "http://192.0.2.1:8080/unattended/52:54:00:00:00:01/", ISOURL: "http://192.0.2.1:8080/isos/x",
		Profile: "sample", SSHKeys: []string{"ssh-ed25519 AAAA sample"}, Labels: map[string]string{}, Vars: map[string]string{}}
	sample.DoneCommand = doneCommand(sample.DoneURL)
	if _, err := Render(t, sample); err != nil {
		return err
	}
	return nil
}

// Render executes t for one machine.
func Render(t *template.Template, v Vars) ([]byte, error) {
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if v.Vars == nil {
		v.Vars = map[string]string{}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	return buf.Bytes(), nil
}

// doneCommand is a shell line that reports the install done with curl or wget.
func doneCommand(url string) string {
	return fmt.Sprintf("curl -fsS -X POST %s || wget -q -O- --post-data= %s || true", url, url)
}
