package grub

import (
	"bytes"
	"fmt"
	"math"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/fleetboot/fleetboot/internal/ipxe"

	"github.com/fleetboot/fleetboot/internal/urls"
)

// Config is what every rendered GRUB config needs to know about the server.
type Config struct {
	// HTTPBase is the server's base URL, e.g. "http://10.77.0.1:8080".
	HTTPBase string
	// MenuTimeout is how long the menu waits before booting from the local disk.
	MenuTimeout time.Duration
	// IPXEFile is the iPXE binary (under /ipxe/) GRUB chainloads when Secure Boot is off and
	// the machine's chain is auto.
	IPXEFile string
	// TFTPServer is the server's IPv4 address as GRUB's tftp device names it; configs rendered
	// OverTFTP load everything from there.
	TFTPServer string

	tftp bool
}

// OverTFTP is c for GRUBs that fetch everything over TFTP: an ISO's own GRUB older than 2.12
// (upstream GRUB's http device connects to port 80 only, and fleetboot's HTTP port is
// --http's) that was loaded by UEFI PXE. The configs it gets name (tftp,SERVER) instead of
// (http,SERVER:PORT); fleetboot's TFTP server serves the same paths as its HTTP server for
// them (GRUB configs below /grub/, ISO files below /isos/).
func (c Config) OverTFTP() Config {
	c.tftp = true
	return c
}

// ViaTFTP reports whether c renders for GRUB's tftp device.
func (c Config) ViaTFTP() bool { return c.tftp }

// Device is the GRUB device that reaches fleetboot's HTTP server, e.g. "(http,10.77.0.1:8080)".
//
// Quirk: GRUB's http device takes the port after a colon (GRUB 2.12; older upstream GRUB always
// used port 80). The host must be an address or a name GRUB can resolve.
func (c Config) Device() string {
	if c.tftp {
		if c.TFTPServer == "" {
			return "(tftp)" // GRUB's default server: the one that served it
		}
		return "(tftp," + c.TFTPServer + ")"
	}
	u, err := url.Parse(c.HTTPBase)
	if err != nil || u.Host == "" {
		return "(http)"
	}
	host := u.Host
	if u.Port() == "80" {
		host = u.Hostname()
	}
	return "(http," + host + ")"
}

// URL shapes below the prefix, all over HTTP. MACs are in GRUB's $net_default_mac form
// (aa:bb:cc:dd:ee:ff).
const (
	// machineDir is /grub/mac/<mac>/: everything specific to one machine. urls.GRUBDir is
	// the HTTP route of GRUB's prefix (config_test.go pins the two together).
	machineDir = urls.GRUBDir + "mac/"
)

// MachineConfigPath is the path of the config a machine gets after the bootstrap, by Secure
// Boot state ("on" or "off").
func MachineConfigPath(mac, sb string) string { return machineDir + mac + "/sb-" + sb + ".cfg" }

// Bootstrap renders $prefix/grub.cfg, the same for every machine: it finds out whether Secure
// Boot is on and hands over to the machine's own config on fleetboot's HTTP server.
//
// GRUB 2.12 under Secure Boot (shim's shim_lock protocol present) sets lockdown=y and
// shim_lock=y; with Secure Boot off neither is set. $net_default_mac is the MAC of the
// interface GRUB booted from (set from the firmware's DHCP answer over PXE and HTTP Boot).
func Bootstrap(c Config) []byte { return render(bootstrapTmpl, c, "", nil) }

// ChainIPXE renders the config that hands a machine over to iPXE (Secure Boot off, chain auto):
// GRUB chainloads fleetboot's iPXE, which then boots exactly as without shim.
func ChainIPXE(c Config, mac string) []byte { return render(chainIPXETmpl, c, mac, nil) }

// Boot renders the config that boots t. Kernel and initrds are loaded over HTTP through the
// linux and initrd commands, which verify the kernel through shim under Secure Boot; when a
// step fails, GRUB reports it to fleetboot (GET of the machine's failed/<step> URL, which
// records it in the timeline) and returns to the firmware.
func Boot(c Config, mac string, t ipxe.BootTarget) []byte {
	if t.Sanboot != "" {
		return render(unsupportedTmpl, c, mac, "fleetboot: "+t.Label+" boots the whole ISO with iPXE's sanboot, which GRUB cannot do; switch Secure Boot off or give the machine boot-chain=ipxe")
	}
	var irds []string
	for _, i := range t.Initrds {
		p := c.gpath(i.URL)
		if i.As != "" {
			// GRUB wraps a file into the initramfs under a name with newc:NAME:FILE.
			p = "newc:" + strings.TrimPrefix(i.As, "/") + ":" + p
		}
		irds = append(irds, quote(p))
	}
	var args []string
	for _, a := range strings.Fields(t.Cmdline) {
		args = append(args, quote(a))
	}
	return render(bootTmpl, c, mac, struct {
		Label   string
		Kernel  string
		Args    string
		Initrds string
	}{t.Label, quote(c.gpath(t.Kernel)), strings.Join(args, " "), strings.Join(irds, " ")})
}

// Menu renders the menu for machines with nothing assigned: local disk (the default, after
// MenuTimeout), the profiles, and asking fleetboot again.
func Menu(c Config, mac, title string, items []ipxe.MenuItem) []byte {
	type item struct{ Label, Path string }
	var its []item
	for _, it := range items {
		its = append(its, item{Label: it.Label, Path: machineDir + mac + "/profile/" + url.PathEscape(it.Name) + ".cfg"})
	}
	return render(menuTmpl, c, mac, struct {
		Title   string
		Items   []item
		Timeout int
	}{title, its, int(math.Ceil(c.MenuTimeout.Seconds()))})
}

// LocalBoot renders a config that boots from the local disk at once.
//
// GRUB has no "boot the next device": `exit` returns to shim, which returns to the firmware,
// which goes on with the next entry of its boot order (the disk). A non-zero exit status
// matters: UEFI boot managers may stop at their own menu when a boot option returns success.
func LocalBoot(c Config, mac string) []byte { return render(localTmpl, c, mac, nil) }

// Failed renders what a machine gets back when it reports a failed step: a message, then the
// local disk.
func Failed(c Config, mac, msg string) []byte { return render(failedTmpl, c, mac, msg) }

// gpath turns an absolute URL on fleetboot's HTTP server into a GRUB path on Device(); any
// other URL is kept as GRUB would read it (which then fails visibly).
func (c Config) gpath(u string) string {
	if rest, ok := strings.CutPrefix(u, c.HTTPBase); ok && strings.HasPrefix(rest, "/") {
		if c.tftp {
			// TFTP has no query strings or escapes: the path as the file is named.
			if p, err := url.PathUnescape(rest); err == nil {
				rest = p
			}
		}
		return c.Device() + rest
	}
	if pu, err := url.Parse(u); err == nil && pu.Scheme == "http" && pu.Host != "" && !c.tftp {
		return "(http," + pu.Host + ")" + pu.RequestURI()
	}
	return u
}

// quote makes s one GRUB word that GRUB passes on unchanged: single quotes keep ;, $, spaces
// and braces literal (ds=nocloud-net;s=… would otherwise end the command); a single quote is
// written as '\”.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// say makes text safe inside an echo: one line, quoted.
func say(s string) string {
	return quote(strings.NewReplacer("\n", " ", "\r", " ").Replace(s))
}

type tmplData struct {
	Config
	Dev string
	MAC string
	// IPXEPath is iPXE's path on Dev: /ipxe/<file> over HTTP, /<file> at the TFTP root.
	IPXEPath string
	// MachineDir is machineDir: the templates spell no path of their own.
	MachineDir string
	V          any
}

func render(t *template.Template, c Config, mac string, v any) []byte {
	var buf bytes.Buffer
	ipxePath := urls.IPXEDir + c.IPXEFile
	if c.tftp {
		ipxePath = "/" + c.IPXEFile
	}
	if err := t.Execute(&buf, tmplData{Config: c, Dev: c.Device(), MAC: mac, IPXEPath: ipxePath, MachineDir: machineDir, V: v}); err != nil {
		// Constant templates with fixed types: an error is a bug. Say so on the console.
		return []byte(fmt.Sprintf("echo %s\nsleep 10\nexit 1\n", say("fleetboot: internal error rendering GRUB config: "+err.Error())))
	}
	return buf.Bytes()
}

var funcs = template.FuncMap{"say": say, "quote": quote}

// failTail reports a failed step (.Step set with `set fb_step=…`) and returns to the firmware.
const failTail = `
echo {{say "fleetboot: could not boot"}} "$fb_step"
source {{.Dev}}{{.MachineDir}}{{.MAC}}/failed/${fb_step}.cfg
sleep 10
exit 1
`

var bootstrapTmpl = template.Must(template.New("bootstrap").Funcs(funcs).Parse(`# fleetboot: the same for every machine; hands over to the machine's own config.
if [ "$lockdown" = "y" -o "$shim_lock" = "y" ]; then
  set fb_sb=on
else
  set fb_sb=off
fi
echo "fleetboot: GRUB on $net_default_mac, Secure Boot lockdown: $fb_sb"
configfile {{.Dev}}{{.MachineDir}}${net_default_mac}/sb-${fb_sb}.cfg
echo {{say (printf "fleetboot: no config for this machine from %s; local disk in 10 s" .HTTPBase)}}
sleep 10
exit 1
`))

var chainIPXETmpl = template.Must(template.New("chain-ipxe").Funcs(funcs).Parse(`# fleetboot: Secure Boot is off, so iPXE may run: hand over to it.
echo {{say "fleetboot: Secure Boot is off: continuing with iPXE"}}
set fb_step=chainload-ipxe
if chainloader {{.Dev}}{{.IPXEPath}}; then
  boot
fi
` + failTail))

var bootTmpl = template.Must(template.New("boot").Funcs(funcs).Parse(`# fleetboot: {{.V.Label}}
echo {{say (printf "fleetboot: booting %s" .V.Label)}}
set fb_step=linux
if linux {{.V.Kernel}}{{if .V.Args}} {{.V.Args}}{{end}}; then
  set fb_step=initrd
  if {{if .V.Initrds}}initrd {{.V.Initrds}}{{else}}true{{end}}; then
    set fb_step=boot
    boot
  fi
fi
` + failTail))

var unsupportedTmpl = template.Must(template.New("unsupported").Funcs(funcs).Parse(`echo {{say .V}}
set fb_step=unsupported
` + failTail))

var menuTmpl = template.Must(template.New("menu").Funcs(funcs).Parse(`# fleetboot menu
set timeout={{.V.Timeout}}
set timeout_style=menu
set default=local
echo {{say .V.Title}}
menuentry 'Boot from local disk' --id local {
  exit 1
}
{{- range .V.Items}}
menuentry {{say (printf "Install %s" .Label)}} {
  configfile {{$.Dev}}{{.Path}}
}
{{- end}}
menuentry 'Ask fleetboot again' --id retry {
  configfile {{.Dev}}{{.MachineDir}}{{.MAC}}/sb-on.cfg
}
`))

var localTmpl = template.Must(template.New("local").Funcs(funcs).Parse(`# fleetboot: local disk
echo {{say "fleetboot: booting from local disk"}}
exit 1
`))

var failedTmpl = template.Must(template.New("failed").Funcs(funcs).Parse(`echo {{say .V}}
`))

// FailureReason is what the timeline records for a step a machine's GRUB reported failed
// (failed/<step>.cfg; step cleaned with CleanStep).
func FailureReason(step string) string {
	why, ok := map[string]string{
		"linux":          "load the kernel (with Secure Boot on: the kernel is not signed by a key the served shim trusts)",
		"initrd":         "load the initrd",
		"boot":           "boot the loaded kernel",
		"chainload-ipxe": "chainload iPXE",
		"unsupported":    "boot this target (needs iPXE)",
	}[step]
	if !ok {
		why = step
	}
	return "GRUB could not " + why
}

// CleanStep keeps a reported step name short and plain.
func CleanStep(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, s)
}
