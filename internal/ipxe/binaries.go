// Package ipxe owns the iPXE binaries fleetboot hands to firmware (embedded at build time or read
// from a directory) and the iPXE scripts it renders for machines.
package ipxe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// Names of the files fleetboot serves to firmware and iPXE, on TFTP and under /ipxe/ on HTTP.
// This is the one list of them: internal/dhcp names them in replies, internal/config validates
// --http-boot-file against them, internal/metrics derives its file labels from Served.
const (
	// BIOSUndi is iPXE for legacy BIOS PXE: it drives the NIC through the PXE ROM's UNDI.
	BIOSUndi = "undionly.kpxe"
	// UEFISnp is iPXE for x86_64 UEFI: it drives the NIC through the firmware's SNP protocol.
	UEFISnp = "snponly.efi"
	// UEFIFull is iPXE for x86_64 UEFI with its own NIC drivers (Debian's ipxe-amd64.efi).
	UEFIFull = "ipxe.efi"
	// UEFIArm64Snp is an SNP-only arm64 build. Debian ships none; an operator may put one in
	// --ipxe-dir, and it is then preferred over UEFIArm64Full (Arm64).
	UEFIArm64Snp = "snponly-arm64.efi"
	// UEFIArm64Full is Debian's arm64 iPXE (trixie's ipxe-arm64.efi) with its own drivers;
	// loaded by AAVMF over PXE or HTTP Boot it runs autoexec.ipxe and reports ${buildarch}
	// arm64 (verified under QEMU's virt board with virtio-net).
	UEFIArm64Full = "ipxe-arm64.efi"
	// AutoexecScript is the script trixie's EFI builds (x86_64 and arm64 alike) fetch from the
	// server they were loaded from before their own DHCP boot; fleetboot generates it.
	AutoexecScript = "autoexec.ipxe"
)

// required lists the binaries without which fleetboot cannot boot the x86 fleet it promises.
var required = []string{BIOSUndi, UEFISnp, UEFIFull}

// known lists every binary name served, required or optional.
var known = []string{BIOSUndi, UEFISnp, UEFIFull, UEFIArm64Snp, UEFIArm64Full}

// Served lists every file name fleetboot may serve as a boot file: the binaries and the
// generated autoexec.ipxe.
func Served() []string { return append(append([]string(nil), known...), AutoexecScript) }

// IsHTTPBootFile reports whether name may be configured as the x64 UEFI HTTP Boot binary.
func IsHTTPBootFile(name string) bool { return name == UEFISnp || name == UEFIFull }

// ErrMissing is returned by LoadBinaries when a required binary is absent.
var ErrMissing = errors.New("iPXE binaries missing")

// Binary is one iPXE file held in memory (they are small: 0.1–1 MiB).
type Binary struct {
	Name    string
	Data    []byte
	SHA256  string
	ModTime time.Time
}

// Binaries is the set of iPXE files available to serve, keyed by file name.
type Binaries struct {
	files   map[string]*Binary
	Version string // e.g. "debian-trixie ipxe 1.21.1+…", from the VERSION file when present
	Source  string // "embedded" or the directory they were read from
}

// LoadBinaries reads the known iPXE files from fsys (rooted at the directory that holds them).
// It fails with ErrMissing, naming the files and how to get them, when a required one is absent.
func LoadBinaries(fsys fs.FS, source string) (*Binaries, error) {
	b := &Binaries{files: map[string]*Binary{}, Source: source}
	// Embedded files have no modification time; the load time keeps Last-Modified stable for
	// the life of the process.
	loaded := time.Now().UTC().Truncate(time.Second)
	var missing []string
	for _, name := range known {
		data, err := fs.ReadFile(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			if contains(required, name) {
				missing = append(missing, name)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read iPXE binary %s from %s: %w", name, source, err)
		}
		if len(data) == 0 {
			missing = append(missing, name+" (empty)")
			continue
		}
		b.files[name] = NewBinary(name, data, loaded)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w from %s: %s; run `scripts/fetch-ipxe.sh` before `go build` "+
			"(it takes them from Debian's ipxe package), or point --ipxe-dir at a directory that holds them",
			ErrMissing, source, strings.Join(missing, ", "))
	}
	b.Version = ReadVersion(fsys)
	return b, nil
}

// NewBinary is data served under name, with its sha256 (for ETags, `fleetboot version` and the
// start-up log) and modTime as its Last-Modified.
func NewBinary(name string, data []byte, modTime time.Time) *Binary {
	sum := sha256.Sum256(data)
	return &Binary{Name: name, Data: data, SHA256: hex.EncodeToString(sum[:]), ModTime: modTime}
}

// ReadVersion is the trimmed VERSION file the fetch scripts write beside the binaries in fsys,
// or "" without one.
func ReadVersion(fsys fs.FS) string {
	v, err := fs.ReadFile(fsys, "VERSION")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(v))
}

// LoadBinariesFrom loads from dir when it is set, else from the embedded files.
func LoadBinariesFrom(embedded fs.FS, dir string) (*Binaries, error) {
	fsys, source, err := DirOrEmbedded(embedded, "ipxe", dir, "--ipxe-dir")
	if err != nil {
		return nil, err
	}
	return LoadBinaries(fsys, source)
}

// DirOrEmbedded is the directory dir (named by flag in errors) when it is set, else the
// embedded directory sub; source says which ("embedded" or dir).
func DirOrEmbedded(embedded fs.FS, sub, dir, flag string) (fsys fs.FS, source string, err error) {
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", flag, err)
		}
		if !st.IsDir() {
			return nil, "", fmt.Errorf("%s %s is not a directory", flag, dir)
		}
		return os.DirFS(dir), dir, nil
	}
	fsys, err = fs.Sub(embedded, sub)
	if err != nil {
		return nil, "", fmt.Errorf("embedded %s files: %w", sub, err)
	}
	return fsys, "embedded", nil
}

// Get returns the named binary. Names are exact: no directories, no case folding.
func (b *Binaries) Get(name string) (*Binary, bool) {
	if b == nil {
		return nil, false
	}
	f, ok := b.files[name]
	return f, ok
}

// Has reports whether the named binary is available.
func (b *Binaries) Has(name string) bool {
	_, ok := b.Get(name)
	return ok
}

// List returns the available binaries sorted by name.
func (b *Binaries) List() []*Binary {
	out := make([]*Binary, 0, len(b.files))
	for _, f := range b.files {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Reader returns a fresh reader over the binary's bytes (for TFTP and http.ServeContent).
func (f *Binary) Reader() *bytes.Reader { return bytes.NewReader(f.Data) }

// Arm64 returns the name of the arm64 UEFI binary to offer, preferring an SNP-only build, or ""
// when none is available (then arm64 clients get no boot offer).
func (b *Binaries) Arm64() string {
	for _, n := range []string{UEFIArm64Snp, UEFIArm64Full} {
		if b.Has(n) {
			return n
		}
	}
	return ""
}

// CleanName turns a requested path ("/snponly.efi", "snponly.efi") into a binary name, or ""
// when it names anything else (directories, traversal, unknown files).
func CleanName(p string) string {
	p = strings.TrimPrefix(p, "/")
	if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "/\\\x00") || path.Clean(p) != p {
		return ""
	}
	return p
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
