package ipxe

import (
	"bytes"
	"fmt"
	"net/url"
	"path"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/fleetboot/fleetboot/internal/urls"
)

// The iPXE variables a machine reports about itself when it asks for its script. netX is the
// network device iPXE opened last, i.e. the one that booted (net0 would be wrong on a
// multi-port machine that boots from its second port). :hexhyp avoids ':' in the query.
const identityQuery = "mac=${netX/mac:hexhyp}&uuid=${uuid}&arch=${buildarch}&platform=${platform}&ip=${netX/ip}"

// HardwareFact is one hardware fact a machine reports on the identify URL: Key is the query
// parameter and the name fleetboot records it under (machines, rules, templates), Setting the
// iPXE setting it comes from.
type HardwareFact struct {
	Key     string
	Setting string
	// About says where the value comes from and when it is empty, for the docs.
	About string
}

// HardwareFacts are the facts iPXE knows at boot, in display order. A setting a build does
// not have expands to nothing (iPXE treats unknown names as empty user settings), so the
// query is the same for every binary; checked in Debian trixie's 1.21.1 EFI builds: the
// SMBIOS settings (manufacturer, product, serial, asset) and the NIC's chip/bustype are
// there; memsize (MEMMAP_SETTINGS) and cpuvendor/cpumodel (CPUID_SETTINGS) are not compiled
// in and arrive empty. :uristring escapes '&', ' ' and the like so a value cannot break
// the query.
var HardwareFacts = []HardwareFact{
	{"manufacturer", "manufacturer", "SMBIOS system manufacturer, e.g. Dell Inc."},
	{"product", "product", "SMBIOS product name, e.g. PowerEdge R650"},
	{"serial", "serial", "SMBIOS system serial number (service tag)"},
	{"asset", "asset", "SMBIOS asset tag"},
	{"memsize", "memsize", "memory in MiB (iPXE builds with MEMMAP_SETTINGS only)"},
	{"cpuvendor", "cpuvendor", "CPU vendor, e.g. GenuineIntel (x86 iPXE builds with CPUID_SETTINGS only)"},
	{"cpumodel", "cpumodel", "CPU model string (x86 iPXE builds with CPUID_SETTINGS only)"},
	{"nic_chip", "netX/chip", "boot NIC's chip/driver, e.g. virtio-net, i350"},
	{"nic_bustype", "netX/bustype", "boot NIC's bus type: PCI, USB …"},
}

// IsHardwareFact reports whether key names one of HardwareFacts.
func IsHardwareFact(key string) bool {
	for _, f := range HardwareFacts {
		if f.Key == key {
			return true
		}
	}
	return false
}

// identifyQuery is the query string of the identify URL: identity, then hardware facts.
var identifyQuery = func() string {
	q := identityQuery
	for _, f := range HardwareFacts {
		q += "&" + f.Key + "=${" + f.Setting + ":uristring}"
	}
	return q
}()

// maxFact bounds one hardware fact's length: SMBIOS strings are at most 64 bytes in practice
// (255 by the spec).
const maxFact = 255

// BootTarget is what a machine should boot: a kernel, its initrds and its command line, all
// as absolute URLs the machine can fetch over HTTP.
type BootTarget struct {
	// Label is shown on the console while loading ("default target", a profile name, …).
	Label   string
	Kernel  string
	Initrds []Initrd
	Cmdline string
	// Sanboot, when set, boots this image URL with iPXE's sanboot instead of a kernel (whole
	// ISOs whose payload runs from RAM).
	Sanboot string
	// ISOName names the ISO the target comes out of, for menus ("" for the --boot-kernel
	// default target).
	ISOName string
}

// Initrd is one initrd and the name the kernel sees it under.
type Initrd struct {
	Name string
	URL  string
	// As, when set, is a path inside the initramfs: iPXE wraps the file in a cpio header so
	// it appears there (Proxmox's installer looks for /proxmox.iso).
	As string
}

// ScriptConfig is what every rendered script needs to know about the server.
type ScriptConfig struct {
	// HTTPBase is the server's base URL, e.g. "http://10.77.0.1:8080".
	HTTPBase string
	// MenuTimeout is how long the menu waits before booting from the local disk.
	MenuTimeout time.Duration
}

// Chain renders the first script every iPXE gets from the DHCP filename: it asks for
// /boot.ipxe again, this time saying who it is, because iPXE does not expand variables in a
// DHCP filename.
func Chain(c ScriptConfig) []byte {
	return render(chainTmpl, c, nil)
}

// Autoexec renders autoexec.ipxe. Debian trixie's EFI iPXE fetches it from the server it was
// loaded from (TFTP or HTTP) before its normal boot; running it skips the Ctrl-B prompt and
// the IPv6 router-advertisement wait (`ifconf -c dhcp` configures DHCPv4 only). If it fails,
// iPXE carries on with its normal DHCP boot, which reaches /boot.ipxe anyway.
func Autoexec(c ScriptConfig) []byte {
	return render(autoexecTmpl, c, nil)
}

// Boot renders the script that boots target. iPXE's EFI builds before 2021 need
// `initrd=<name>` on the kernel command line to hand the initrd to the kernel (and Linux
// kernels older than 5.8 need it too), so the names are always there.
func Boot(c ScriptConfig, t BootTarget) []byte {
	return render(bootTmpl, c, t)
}

// MenuItem is one installable profile in the menu.
type MenuItem struct {
	Name  string // profile name, passed back as ?profile=
	Label string
}

// Menu renders the menu for machines with nothing assigned: the profiles, boot from local disk
// (the default, after MenuTimeout), retry, or an iPXE shell. Local boot is `exit` under UEFI
// (the firmware moves on to the next boot entry) and `sanboot --no-describe --drive 0x80` under
// BIOS (the first hard disk). Choosing a profile boots it once.
func Menu(c ScriptConfig, title string, items []MenuItem) []byte {
	clean := make([]MenuItem, 0, len(items))
	for _, it := range items {
		clean = append(clean, MenuItem{Name: url.QueryEscape(it.Name), Label: it.Label})
	}
	return render(menuTmpl, c, struct {
		Title string
		Items []MenuItem
	}{title, clean})
}

// LocalBoot renders a script that boots from the local disk at once.
func LocalBoot(c ScriptConfig) []byte {
	return render(localTmpl, c, nil)
}

// InitrdName picks the name the kernel sees an initrd under: the file's base name, made
// unique by an index when two initrds share one.
func InitrdName(p string, i int, taken map[string]bool) string {
	n := path.Base(p)
	if n == "." || n == "/" || n == "" {
		n = "initrd"
	}
	if taken[n] {
		n = fmt.Sprintf("%d-%s", i, n)
	}
	taken[n] = true
	return n
}

// Identity is what a machine said about itself in the boot script query.
type Identity struct {
	MAC      string // lower case, colon-separated; "" when absent or malformed
	UUID     string
	Arch     string // iPXE ${buildarch}: i386, x86_64, arm64 …
	Platform string // iPXE ${platform}: pcbios, efi
	IP       string
	// Hardware holds the HardwareFacts the machine reported, by key; empty ones are absent.
	Hardware map[string]string
}

// ParseIdentityQuery parses the raw query of an identify URL. iPXE's :uristring escapes a space
// as %20 but leaves '+' as it is (RFC 3986 sub-delims), and form decoding would turn it into a
// space ("Standard PC (i440FX+PIIX, 1996)", QEMU's SMBIOS product, arrived as "i440FX PIIX"),
// so '+' is taken literally here.
func ParseIdentityQuery(rawQuery string) Identity {
	q, _ := url.ParseQuery(strings.ReplaceAll(rawQuery, "+", "%2B"))
	return ParseIdentity(q)
}

// ParseIdentity reads the identifying query. Values iPXE could not expand arrive empty; bad
// values are dropped rather than trusted.
func ParseIdentity(q url.Values) Identity {
	id := Identity{
		MAC:      NormalizeMAC(q.Get("mac")),
		UUID:     cleanToken(q.Get("uuid"), 36),
		Arch:     cleanToken(q.Get("arch"), 16),
		Platform: cleanToken(q.Get("platform"), 16),
		IP:       cleanToken(q.Get("ip"), 15),
	}
	for _, f := range HardwareFacts {
		if v := cleanFact(q.Get(f.Key)); v != "" {
			if id.Hardware == nil {
				id.Hardware = map[string]string{}
			}
			id.Hardware[f.Key] = v
		}
	}
	return id
}

// cleanFact trims a hardware fact and drops values that are too long, not UTF-8 or carry
// control characters; SMBIOS placeholders firmware vendors leave in are dropped too.
func cleanFact(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxFact || !utf8.ValidString(s) {
		return ""
	}
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return ""
		}
	}
	switch strings.ToLower(s) {
	case "to be filled by o.e.m.", "default string", "not specified", "system serial number", "none", "n/a", "0":
		return ""
	}
	return s
}

// NormalizeMAC accepts aa:bb:…, aa-bb-… or aabbcc… (6 bytes) and returns aa:bb:cc:dd:ee:ff,
// or "" when s is not a MAC address.
func NormalizeMAC(s string) string {
	s = strings.ToLower(macSeparators.Replace(strings.TrimSpace(s)))
	if len(s) != 12 {
		return ""
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if !isHex(s[i]) || !isHex(s[i+1]) {
			return ""
		}
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(s[i : i+2])
	}
	return b.String()
}

// macSeparators is built once: NormalizeMAC runs for every DHCP packet.
var macSeparators = strings.NewReplacer(":", "", "-", "", ".", "")

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// cleanToken keeps values that are short and made of safe characters; others become "".
func cleanToken(s string, max int) string {
	if len(s) > max {
		return ""
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == ':') {
			return ""
		}
	}
	return s
}

type tmplData struct {
	ScriptConfig
	V any
}

func render(t *template.Template, c ScriptConfig, v any) []byte {
	var buf bytes.Buffer
	if err := t.Execute(&buf, tmplData{ScriptConfig: c, V: v}); err != nil {
		// The templates are constants rendered with fixed types: an error is a bug here, not
		// bad input. Say so in the script rather than panicking a server.
		return []byte("#!ipxe\necho fleetboot: internal error rendering script: " + oneLine(err.Error()) + "\nshell\n")
	}
	return buf.Bytes()
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

var funcs = template.FuncMap{
	"bootURL": func(base string) string { return urls.Base(base).BootScript() },
	"ms":      func(d time.Duration) int64 { return d.Milliseconds() },
	// waitms is the no-disk choice's wait: the menu timeout, or 10 s when there is none
	// (iPXE's choose --timeout 0 would wait forever).
	"waitms": func(d time.Duration) int64 {
		if d <= 0 {
			d = 10 * time.Second
		}
		return d.Milliseconds()
	},
	"query":   func() string { return identifyQuery },
	"oneline": oneLine,
}

var chainTmpl = template.Must(template.New("chain").Funcs(funcs).Parse(`#!ipxe
chain --autofree {{bootURL .HTTPBase}}?{{query}} || shell
`))

var autoexecTmpl = template.Must(template.New("autoexec").Funcs(funcs).Parse(`#!ipxe
ifconf -c dhcp && chain --autofree {{bootURL .HTTPBase}}?{{query}}
`))

// noDiskBlock follows every BIOS local boot. SeaBIOS returns from `sanboot --drive 0x80` when
// the first disk has no boot sector (a new machine, a wiped disk); the menu used to `goto menu`
// there and redraw itself forever. Instead the console says why and offers asking fleetboot
// again, a shell, or powering off, which is the default after the wait: a machine with nothing
// to boot should not spin. `poweroff` needs an iPXE built with POWEROFF_CMD (Debian's are); where
// it is missing, `exit` hands back to the BIOS.
const noDiskBlock = `
:nodisk
echo fleetboot: no bootable local disk (BIOS drive 0x80 did not start): install an OS, assign a profile, or check the boot order
menu fleetboot: this machine has no bootable local disk
item nodisk_retry Ask fleetboot again
item nodisk_shell iPXE shell
item nodisk_poweroff Power off
choose --timeout {{waitms .MenuTimeout}} --default nodisk_poweroff nodisk_choice || goto nodisk_poweroff
goto ${nodisk_choice}
:nodisk_retry
chain --autofree {{bootURL .HTTPBase}}?{{query}} || goto nodisk
:nodisk_shell
shell
goto nodisk
:nodisk_poweroff
echo fleetboot: powering off (no bootable local disk)
poweroff || exit
`

var bootTmpl = template.Must(template.New("boot").Funcs(funcs).Parse(`#!ipxe
echo fleetboot: booting {{oneline .V.Label}}
{{- if .V.Sanboot}}
sanboot --no-describe {{.V.Sanboot}} || goto failed
{{- else}}
kernel {{.V.Kernel}}{{range .V.Initrds}} initrd={{.Name}}{{end}}{{if .V.Cmdline}} {{oneline .V.Cmdline}}{{end}} || goto failed
{{- range .V.Initrds}}
initrd --name {{.Name}} {{.URL}}{{if .As}} {{.As}}{{end}} || goto failed
{{- end}}
boot || goto failed
{{- end}}
:failed
echo fleetboot: could not boot {{oneline .V.Label}} - local disk in 10 s, any key for a shell
prompt --timeout 10000 && shell ||
iseq ${platform} efi && exit ||
sanboot --no-describe --drive 0x80 || goto nodisk` + noDiskBlock))

var menuTmpl = template.Must(template.New("menu").Funcs(funcs).Parse(`#!ipxe
:menu
menu {{oneline .V.Title}}
item --gap -- fleetboot ${netX/mac} (${platform}/${buildarch})
item local Boot from local disk
{{- if .V.Items}}
item --gap -- Install (once)
{{- range $i, $it := .V.Items}}
item p{{$i}} {{oneline $it.Label}}
{{- end}}
{{- end}}
item --gap -- Other
item retry Ask fleetboot again
item shell iPXE shell
choose --timeout {{ms .MenuTimeout}} --default local target || goto local
goto ${target}
{{- range $i, $it := .V.Items}}
:p{{$i}}
chain --autofree {{bootURL $.HTTPBase}}?{{query}}&profile={{$it.Name}} || goto menu
{{- end}}
:retry
chain --autofree {{bootURL .HTTPBase}}?{{query}} || goto menu
:shell
shell
goto menu
:local
echo fleetboot: booting from local disk
iseq ${platform} efi && exit ||
sanboot --no-describe --drive 0x80 || goto nodisk` + noDiskBlock))

var localTmpl = template.Must(template.New("local").Funcs(funcs).Parse(`#!ipxe
echo fleetboot: booting from local disk
iseq ${platform} efi && exit ||
sanboot --no-describe --drive 0x80 || goto nodisk` + noDiskBlock))
