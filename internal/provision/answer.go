package provision

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/fleetboot/fleetboot/internal/ipxe"
)

// Proxmox VE automated installation (PVE 8.2+), as fleetboot relies on it. Sources: the
// Proxmox wiki "Automated Installation" and proxmox/pve-installer
// (proxmox-fetch-answer/src/fetch_plugins/http.rs, proxmox-auto-installer/src/sysinfo.rs):
//
//   - The ISO is prepared with `proxmox-auto-install-assistant prepare-iso --fetch-from http
//     [--url URL]`; it then boots an "Automated Installation" entry
//     (proxmox-start-auto-installer). The installer reads no answer URL from the kernel
//     command line.
//   - With --fetch-from http the URL comes, in this order, from the prepared ISO (--url), DHCP
//     option 250 (dhclient's "proxmox-auto-installer-manifest-url", text; 251 is the TLS
//     certificate's SHA-256 fingerprint), or the DNS TXT record
//     proxmox-auto-installer.<search domain>.
//   - The installer POSTs a JSON document (Content-Type application/json) to that URL:
//     {"product": {...}, "iso": {...}, "dmi": {"system": {"name", "serial", "uuid", "sku"},
//     "baseboard": {...}, "chassis": {...}}, "network_interfaces": [{"link": "ens18",
//     "mac": "bc:24:11:..."}]} and takes the response body as answer.toml.
//   - The answer is TOML with the sections [global] (keyboard, country, fqdn, mailto,
//     timezone, root-password or root-password-hashed), [network] (source = "from-dhcp" or
//     "from-answer" with cidr, dns, gateway and filter) and [disk-setup] (filesystem, and
//     disk-list or filter). PVE 8.3 renamed keys to kebab-case (root-password, disk-list) and
//     still accepts 8.2's snake_case (root_password, disk_list); both are accepted here.

// SysInfo is what fleetboot reads of the system information the Proxmox installer POSTs.
type SysInfo struct {
	// MACs are the machine's network interfaces' addresses, normalised (aa:bb:cc:dd:ee:ff),
	// in the order the installer listed them; malformed ones are skipped.
	MACs []string
	// Links are the interface names by MAC (ens18, eno1 …).
	Links map[string]string
	// Product ("pve"), Release ("8.2") and Serial/UUID/Name (DMI system) are for logs.
	Product, Release, Serial, UUID, Name string
}

// maxSysInfoMACs bounds the MACs looked up per request (each is a store query, and the
// endpoint is open): far more interfaces than a server has, SR-IOV functions included.
const maxSysInfoMACs = 256

// maxSysInfo bounds the JSON body: a real one is a few KiB even with dozens of interfaces.
const maxSysInfo = 1 << 20

// ParseSysInfo parses the installer's JSON. It needs at least one well-formed MAC address:
// that is how the machine is identified.
func ParseSysInfo(b []byte) (SysInfo, error) {
	if len(b) > maxSysInfo {
		return SysInfo{}, fmt.Errorf("system information: %d bytes, more than the %d a real installer sends", len(b), maxSysInfo)
	}
	var raw struct {
		Product struct {
			Product string `json:"product"`
		} `json:"product"`
		ISO struct {
			Release string `json:"release"`
		} `json:"iso"`
		DMI struct {
			System struct {
				Name   string `json:"name"`
				Serial string `json:"serial"`
				UUID   string `json:"uuid"`
			} `json:"system"`
		} `json:"dmi"`
		NetworkInterfaces []struct {
			Link string `json:"link"`
			MAC  string `json:"mac"`
		} `json:"network_interfaces"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return SysInfo{}, fmt.Errorf("system information is not the Proxmox installer's JSON: %w", err)
	}
	si := SysInfo{Links: map[string]string{}, Product: raw.Product.Product, Release: raw.ISO.Release,
		Serial: raw.DMI.System.Serial, UUID: raw.DMI.System.UUID, Name: raw.DMI.System.Name}
	for _, n := range raw.NetworkInterfaces {
		if len(si.MACs) == maxSysInfoMACs {
			break
		}
		mac := ipxe.NormalizeMAC(n.MAC)
		if mac == "" || si.Links[mac] != "" {
			continue
		}
		si.MACs = append(si.MACs, mac)
		si.Links[mac] = n.Link
		if si.Links[mac] == "" {
			si.Links[mac] = "?"
		}
	}
	if len(si.MACs) == 0 {
		return SysInfo{}, errors.New(`system information has no network_interfaces with a "mac": cannot tell which machine this is`)
	}
	return si, nil
}

// answerKeys are the keys each required section must have; each entry lists the spellings
// accepted for one key (8.3+ kebab-case first, then 8.2's snake_case, then alternatives).
var answerKeys = []struct {
	section string
	keys    [][]string
}{
	{"global", [][]string{{"keyboard"}, {"country"}, {"fqdn"}, {"mailto"}, {"timezone"},
		{"root-password", "root_password", "root-password-hashed", "root_password_hashed"}}},
	{"network", [][]string{{"source"}}},
	{"disk-setup", [][]string{{"filesystem"}}},
}

// CheckAnswer says whether b is an answer file the Proxmox installer can use: well-formed
// TOML (errors carry the line and column) with the sections and keys it requires.
func CheckAnswer(b []byte) error {
	var doc map[string]any
	if err := toml.Unmarshal(b, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("answer.toml line %d, column %d: %s", row, col, de.Error())
		}
		return fmt.Errorf("answer.toml: %w", err)
	}
	for _, s := range answerKeys {
		sec, ok := doc[s.section].(map[string]any)
		if !ok {
			return fmt.Errorf("answer.toml: no [%s] section; the Proxmox installer needs [global], [network] and [disk-setup]", s.section)
		}
		for _, alts := range s.keys {
			if !hasAny(sec, alts) {
				return fmt.Errorf("answer.toml: [%s] has no %s", s.section, strings.Join(alts, " or "))
			}
		}
	}
	net := doc["network"].(map[string]any)
	switch src, _ := net["source"].(string); src {
	case "from-dhcp":
	case "from-answer":
		for _, k := range []string{"cidr", "dns", "gateway", "filter"} {
			if _, ok := net[k]; !ok {
				return fmt.Errorf(`answer.toml: [network] source = "from-answer" needs %s (cidr, dns, gateway and filter)`, k)
			}
		}
	default:
		return fmt.Errorf(`answer.toml: [network] source is %q; want "from-dhcp" or "from-answer"`, src)
	}
	disk := doc["disk-setup"].(map[string]any)
	fsName, _ := disk["filesystem"].(string)
	if !map[string]bool{"ext4": true, "xfs": true, "zfs": true, "btrfs": true}[fsName] {
		return fmt.Errorf(`answer.toml: [disk-setup] filesystem is %q; want ext4, xfs, zfs or btrfs`, fsName)
	}
	list, filter := hasAny(disk, []string{"disk-list", "disk_list"}), hasAny(disk, []string{"filter"})
	if list == filter {
		return errors.New("answer.toml: [disk-setup] needs exactly one of disk-list (or disk_list) and filter")
	}
	return nil
}

func hasAny(m map[string]any, keys []string) bool {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// tomlString quotes s as a TOML basic string, so a template can write
// fqdn = {{toml .Hostname}} whatever the value holds. A JSON string is a valid TOML basic
// string (same escapes, \uXXXX included).
func tomlString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// sortedMACs is for messages.
func sortedMACs(macs []string) string {
	s := append([]string(nil), macs...)
	sort.Strings(s)
	return strings.Join(s, " ")
}
