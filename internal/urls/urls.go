// Package urls owns fleetboot's URL layout: the path of every route the HTTP server answers
// and every URL it hands out (in DHCP replies, iPXE scripts, GRUB configs, kernel command
// lines, unattended files and API answers). The HTTP routes are registered from these
// constants and the URLs built by Base's methods, so a path is spelled in one place. It has no
// dependencies, so every package may use it.
package urls

import (
	"net/url"
	"strings"
)

// Paths and path prefixes (prefixes end in "/").
const (
	// BootScript is the iPXE boot script: first a chain to itself with the machine's
	// identity, then the machine's decision (install, menu, local disk).
	BootScript = "/boot.ipxe"
	// IPXEDir serves the iPXE binaries (UEFI HTTP Boot fetches them here).
	IPXEDir = "/ipxe/"
	// SecureBootDir serves the signed shim and, beside it where shim looks, GRUB.
	SecureBootDir = "/secureboot/"
	// GRUBDir serves GRUB's configs and files below its prefix ("/grub").
	GRUBDir = "/grub/"
	// ISOPairDir serves each ISO's own signed shim + GRUB below ISOPairDir + id (over TFTP
	// too, without the leading slash): internal/grub's pair layout.
	ISOPairDir = "/isopair/"
	// AssetsDir serves <data>/assets (the default boot target's files).
	AssetsDir = "/assets/"
	// ISOsDir serves each ISO below ISOsDir + id: its files below ISOFilesDir and the whole
	// image at ISOImage.
	ISOsDir = "/isos/"
	// ISOFilesDir is the directory of an ISO's files, relative to the ISO's URL.
	ISOFilesDir = "/files/"
	// ISOImage is the whole image, relative to the ISO's URL.
	ISOImage = "/image.iso"
	// UnattendedDir serves a machine's unattended-install files below UnattendedDir + MAC.
	UnattendedDir = "/unattended/"
	// DoneDir takes the installer's "done" callback at DoneDir + MAC.
	DoneDir = "/boot/done/"
	// ProgressDir is where installers report their phases: POST ProgressDir + MAC. Like the
	// done callback it is open (an installer has no token) and only the machine's own
	// address may use it.
	ProgressDir = "/boot/progress/"
	// ProxmoxAnswer is where the Proxmox installer POSTs its system information and gets its
	// answer file back. One URL for every machine: the installer identifies itself by MACs.
	ProxmoxAnswer = "/proxmox/answer"
	// Healthz and Metrics are for monitoring.
	Healthz = "/healthz"
	Metrics = "/metrics"
	// API is the prefix of the operator's API (token required).
	API = "/api/v1"
)

// BootPaths are the paths (and prefixes, ending in "/") that booting machines fetch over plain
// HTTP, plus the monitoring endpoints: everything outside the operator's API.
var BootPaths = []string{
	BootScript, IPXEDir, SecureBootDir, GRUBDir, ISOPairDir, AssetsDir, ISOsDir, UnattendedDir, DoneDir,
	ProgressDir, ProxmoxAnswer, Healthz, Metrics,
}

// MAC is a MAC address as it appears in URL paths: "52-54-00-12-34-56" (colons are legal in
// paths but confuse some installers' URL parsers).
func MAC(mac string) string { return strings.ReplaceAll(mac, ":", "-") }

// Base is the server's base URL as machines reach it, e.g. "http://10.77.0.1:8080" (no
// trailing slash).
type Base string

// BootScript is the URL of the iPXE boot script.
func (b Base) BootScript() string { return string(b) + BootScript }

// IPXE is the URL of the iPXE binary file.
func (b Base) IPXE(file string) string { return string(b) + IPXEDir + file }

// SecureBoot is the URL of a file of the signed shim + GRUB chain.
func (b Base) SecureBoot(file string) string { return string(b) + SecureBootDir + file }

// Asset is the URL of a file below <data>/assets, each path element escaped.
func (b Base) Asset(p string) string { return string(b) + AssetsDir + escapePath(p) }

// ISO is the URL of an ISO by ID: its files are below ISOFiles, its image at ISOImage.
func (b Base) ISO(id string) string { return string(b) + ISOsDir + id }

// Unattended is the directory URL of a machine's unattended files.
func (b Base) Unattended(mac string) string { return string(b) + UnattendedDir + MAC(mac) }

// Done is the URL of a machine's "installation done" callback.
func (b Base) Done(mac string) string { return string(b) + DoneDir + MAC(mac) }

// Progress is the URL of a machine's installer progress reports.
func (b Base) Progress(mac string) string { return string(b) + ProgressDir + MAC(mac) }

// ProxmoxAnswer is the URL of the Proxmox installer's answer endpoint.
func (b Base) ProxmoxAnswer() string { return string(b) + ProxmoxAnswer }

// ISOFile is the URL of path p inside the ISO served at isoURL (Base.ISO), each path element
// escaped.
func ISOFile(isoURL, p string) string {
	return strings.TrimRight(isoURL, "/") + ISOFilesDir + escapePath(p)
}

// ISOFiles is the URL of the directory of an ISO's files (what installers that take a
// repository URL get), with its trailing slash.
func ISOFiles(isoURL string) string { return strings.TrimRight(isoURL, "/") + ISOFilesDir }

// ISOImageURL is the URL of the whole image of the ISO served at isoURL.
func ISOImageURL(isoURL string) string { return strings.TrimRight(isoURL, "/") + ISOImage }

func escapePath(p string) string {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
