package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/fleetboot/fleetboot/internal/distro"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/iso9660"
	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/secureboot"
	"github.com/fleetboot/fleetboot/internal/urls"
)

// ErrNotFound is returned for a file the machine's profile does not have.
var ErrNotFound = errors.New("not found")

// ErrInvalidProfile marks what is wrong with a profile itself (an ISO that does not exist, a
// template that does not parse, an entry the ISO lacks): the client's to fix (HTTP 422). A
// profile that could not be checked (a database or disk error) is not marked.
var ErrInvalidProfile = errors.New("invalid profile")

// invalidError is a profile problem: its message is the cause's alone, and it matches both the
// cause and ErrInvalidProfile.
type invalidError struct{ err error }

func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{e.err, ErrInvalidProfile} }

func invalid(err error) error {
	if err == nil {
		return nil
	}
	return invalidError{err}
}

// ISOs is what provisioning needs of the ISO catalog: an ISO's row and file table, its
// files, and a place to record what detection found. *isostore.Store implements it.
type ISOs interface {
	Get(ctx context.Context, idOrName string) (*isostore.ISO, error)
	Index(ctx context.Context, idOrName string) (*iso9660.Index, *isostore.ISO, error)
	OpenFile(ctx context.Context, idOrName, p string) (*iso9660.File, error)
	SetDetected(ctx context.Context, id, detected string) error
	// List is every published ISO (ISOPairs: the signed pairs served to machines).
	List(ctx context.Context) ([]*isostore.ISO, error)
	// ImageStatus says whether this instance can serve an ISO's bytes (a stat, no hash).
	ImageStatus(ctx context.Context, iso *isostore.ISO) (isostore.ImageState, error)
}

// Inventory is what provisioning reads of the inventory. *inventory.Inventory implements it.
type Inventory interface {
	Machine(ctx context.Context, mac string) (*inventory.Machine, error)
	Profile(ctx context.Context, name string) (*inventory.Profile, error)
}

var (
	_ ISOs      = (*isostore.Store)(nil)
	_ Inventory = (*inventory.Inventory)(nil)
)

// Service joins the ISO catalog, distro recipes and the inventory.
type Service struct {
	ISOs ISOs
	Inv  Inventory
	// HTTPBase is the server's base URL, e.g. http://10.77.0.1:8080.
	HTTPBase string
	// Shims are the shims fleetboot serves, per architecture ("x86_64", "arm64"), to machines
	// whose ISO carries no signed shim + GRUB pair of its own (Debian's). Secure Boot
	// readiness checks kernels against them; nil means none: such entries are reported as
	// not ready.
	Shims map[string]*secureboot.Shim
	// ServesISOPairs is true when machines installing a profile whose ISO carries its own
	// signed shim + GRUB get that pair instead of Shims (the server sets it whenever it serves
	// the signed chain at all: boot.Planner.ShimPath), which decides whose trust readiness
	// reports.
	ServesISOPairs bool
}

// ISOURL is the base URL of an ISO's files and image.
func (s *Service) ISOURL(id string) string { return urls.Base(s.HTTPBase).ISO(id) }

// Detection is what Detect stores for an ISO and the API shows: what the ISO is and the boot
// entries fleetboot offers for it.
type Detection struct {
	distro.Result
	Recipes []distro.Entry `json:"recipes,omitempty"`
	// RecipeError says why no recipe exists (not netbootable, …).
	RecipeError string `json:"recipe_error,omitempty"`
	// SecureBoot is the ISO's Secure Boot readiness: its own shim + GRUB pairs and, per
	// recipe, whether the kernel is signed, by whom, and trusted by the shim that would be
	// served. Worked out at publish time so that serving needs no PE parsing.
	SecureBoot *secureboot.ISOReadiness `json:"secure_boot,omitempty"`
}

// Detect recognises the ISO's distribution, works out its boot entries and stores both with
// the ISO's metadata.
func (s *Service) Detect(ctx context.Context, idOrName string) (*Detection, error) {
	ix, iso, err := s.ISOs.Index(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	fsys := &isoFS{ctx: ctx, s: s.ISOs, id: iso.ID, ix: ix}
	d := &Detection{Result: distro.Detect(fsys)}
	d.Recipes, err = distro.Recipe(d.Result, fsys, distro.Params{ISOURL: s.ISOURL(iso.ID), ISOSize: iso.Size})
	if err != nil {
		d.RecipeError = err.Error()
	}
	sb := secureboot.CheckISO(fsys, d.Recipes, d.Arch, s.Shims, s.ServesISOPairs)
	d.SecureBoot = &sb
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	if err := s.ISOs.SetDetected(ctx, iso.ID, string(b)); err != nil {
		return nil, err
	}
	return d, nil
}

// unattendedBase is the directory URL of a machine's unattended files.
func (s *Service) unattendedBase(m *inventory.Machine) string {
	return urls.Base(s.HTTPBase).Unattended(m.MAC)
}

// unattendedURL is what the recipe puts on the command line for the profile's template kind:
// the file itself, or for autoinstall (cloud-init NoCloud) the directory holding user-data and
// meta-data.
func (s *Service) unattendedURL(p *inventory.Profile, m *inventory.Machine) string {
	if p.Template == "" {
		return ""
	}
	base := s.unattendedBase(m)
	if p.Kind == KindAutoinstall {
		return base
	}
	return base + "/" + Kinds[p.Kind]
}

// entry resolves profile p for machine m to one recipe entry.
func (s *Service) entry(ctx context.Context, p *inventory.Profile, m *inventory.Machine) (distro.Entry, *isostore.ISO, error) {
	ix, iso, err := s.ISOs.Index(ctx, p.ISO)
	if errors.Is(err, isostore.ErrNotFound) {
		return distro.Entry{}, nil, invalid(fmt.Errorf("its ISO %s was deleted; point the profile at another ISO (fleetboot iso ls)", p.ISO))
	}
	if err != nil {
		return distro.Entry{}, nil, fmt.Errorf("ISO %s: %w", p.ISO, err)
	}
	fsys := &isoFS{ctx: ctx, s: s.ISOs, id: iso.ID, ix: ix}
	// Detection ran at publish time; an ISO stored before (or whose result is unreadable) is
	// detected now.
	var det distro.Result
	if iso.Detected == "" || json.Unmarshal([]byte(iso.Detected), &det) != nil || det.Family == "" {
		det = distro.Detect(fsys)
	}
	args, err := ExpandArgs(p.ExtraArgs, s.vars(p, m, iso.ID))
	if err != nil {
		return distro.Entry{}, nil, invalid(err)
	}
	params := distro.Params{ISOURL: s.ISOURL(iso.ID), ExtraArgs: args, Console: p.Vars["console"], ISOSize: iso.Size}
	// The recipe puts the answer file where the installer it knows looks for it. A raw
	// template is for installers fleetboot does not know: the profile's extra arguments
	// reference {{.UnattendedURL}} themselves.
	switch p.Kind {
	case KindRaw:
	case KindAnswer:
		// Proxmox's installer takes no answer URL on its command line: it POSTs to the URL
		// the prepared ISO, DHCP option 250 or DNS names (answer.go).
		if det.Family != distro.FamilyProxmox {
			return distro.Entry{}, nil, invalid(fmt.Errorf("template kind answer is Proxmox VE's answer.toml, and ISO %s is %s", iso.ID, det.Family))
		}
		params.AutoInstall = true
	default:
		params.UnattendedURL = s.unattendedURL(p, m)
	}
	entries, err := distro.Recipe(det, fsys, params)
	if err != nil {
		// What the ISO's boot configs hold (or lack); reading them failing is as rare as a
		// damaged ISO, which is the profile's problem too.
		return distro.Entry{}, nil, invalid(err)
	}
	// A machine that has not said what it is (no platform, no arch yet, or the profile check
	// below) is not filtered.
	firmware := distro.FirmwareBoth
	switch m.Platform {
	case "efi":
		firmware = distro.FirmwareUEFI
	case "pcbios":
		firmware = distro.FirmwareBIOS
	}
	e, err := distro.ForMachine(entries, p.Entry, m.Arch, firmware)
	if err != nil {
		if errors.Is(err, distro.ErrNoEntry) {
			return distro.Entry{}, nil, invalid(fmt.Errorf("ISO %s: %w (see GET /api/v1/isos/%s)", iso.Name, err, iso.ID))
		}
		return distro.Entry{}, nil, invalid(fmt.Errorf("ISO %s: %w", iso.Name, err))
	}
	return e, iso, nil
}

// Target implements boot.Targets: the profile's kernel, initrds and command line as URLs.
func (s *Service) Target(ctx context.Context, p *inventory.Profile, m *inventory.Machine) (ipxe.BootTarget, error) {
	e, iso, err := s.entry(ctx, p, m)
	if err != nil {
		return ipxe.BootTarget{}, err
	}
	isoURL := s.ISOURL(iso.ID)
	t := ipxe.BootTarget{Label: p.Name + ": " + e.Label, ISOName: iso.Name}
	if e.Sanboot {
		t.Sanboot = distro.FileURL(isoURL, distro.ImageISO)
		return t, nil
	}
	t.Kernel = distro.FileURL(isoURL, e.Kernel)
	t.Cmdline = e.Cmdline
	taken := map[string]bool{}
	for i, in := range e.Initrds {
		name := path.Base(in.Path)
		if in.As != "" {
			name = path.Base(in.As)
		}
		t.Initrds = append(t.Initrds, ipxe.Initrd{Name: ipxe.InitrdName(name, i, taken), URL: distro.FileURL(isoURL, in.Path), As: in.As})
	}
	return t, nil
}

// BootEntry is the boot entry profile name resolves to for the machine with that MAC (its
// firmware picks among the ISO's entries; an unknown MAC or "" resolves as a machine of
// unknown firmware): kernel, initrds, the final command line and what happened to each of the
// ISO's own arguments.
func (s *Service) BootEntry(ctx context.Context, name, mac string) (distro.Entry, error) {
	p, err := s.Inv.Profile(ctx, name)
	if err != nil {
		return distro.Entry{}, err
	}
	m := &inventory.Machine{MAC: "00:00:00:00:00:00"}
	if mac != "" {
		m.MAC = mac
		if known, err := s.Inv.Machine(ctx, mac); err == nil {
			m = known
		} else if !errors.Is(err, inventory.ErrNotFound) {
			return distro.Entry{}, err
		}
	}
	e, _, err := s.entry(ctx, p, m)
	return e, err
}

// CheckProfile validates a profile before it is saved: the ISO exists, the entry is one of
// its recipes (any firmware), and the template parses and renders.
func (s *Service) CheckProfile(ctx context.Context, p *inventory.Profile) error {
	iso, err := s.ISOs.Get(ctx, p.ISO)
	if errors.Is(err, isostore.ErrNotFound) {
		return invalid(fmt.Errorf("no ISO %q: fleetboot iso ls lists the ISOs (use a name or an id)", p.ISO))
	}
	if err != nil {
		return err
	}
	p.ISO = iso.ID // store the stable id, not a name that can be reused
	if p.Template != "" || p.Kind != "" {
		if p.Kind == "" {
			return invalid(fmt.Errorf("template_kind is required with a template: kickstart, preseed, autoinstall, autoyast, raw or answer"))
		}
		if err := Check(p.Kind, p.Template); err != nil {
			return invalid(err)
		}
	}
	if _, err := ExpandArgs(p.ExtraArgs, sampleVars()); err != nil {
		return invalid(err)
	}
	// Any machine will do to resolve the entry: no platform means no firmware filter.
	if _, _, err := s.entry(ctx, p, &inventory.Machine{MAC: "00:00:00:00:00:00"}); err != nil {
		return err
	}
	return nil
}

// Unattended renders file for machine m from its profile's template. For autoinstall the
// meta-data file is generated (instance-id changes with each install so cloud-init reruns).
func (s *Service) Unattended(ctx context.Context, m *inventory.Machine, file string) ([]byte, error) {
	if m.Profile == "" {
		return nil, fmt.Errorf("machine %s has no profile: %w", m.MAC, ErrNotFound)
	}
	p, err := s.Inv.Profile(ctx, m.Profile)
	if err != nil {
		return nil, err
	}
	return s.render(ctx, p, m, file)
}

// Preview renders profile p's main unattended file (p need not be saved: the web UI's editor
// previews what it is typing) as machine m would get it, and names the file.
func (s *Service) Preview(ctx context.Context, p *inventory.Profile, m *inventory.Machine) (string, []byte, error) {
	if p.Template == "" {
		return "", nil, fmt.Errorf("profile %s has no unattended template: %w", p.Name, ErrNotFound)
	}
	file, ok := Kinds[p.Kind]
	if !ok {
		return "", nil, fmt.Errorf("template kind %q: want one of kickstart, preseed, autoinstall, autoyast, raw, answer", p.Kind)
	}
	iso, err := s.ISOs.Get(ctx, p.ISO)
	if err != nil {
		return "", nil, fmt.Errorf("no ISO %q: %w", p.ISO, err)
	}
	q := *p
	q.ISO = iso.ID
	body, err := s.render(ctx, &q, m, file)
	return file, body, err
}

// render renders file of profile p for machine m.
func (s *Service) render(ctx context.Context, p *inventory.Profile, m *inventory.Machine, file string) ([]byte, error) {
	if p.Template == "" {
		return nil, fmt.Errorf("profile %s has no unattended template: %w", p.Name, ErrNotFound)
	}
	v := s.vars(p, m, p.ISO)
	if p.Kind == KindAutoinstall && file == "meta-data" {
		return []byte(fmt.Sprintf("instance-id: fleetboot-%s-%d\nlocal-hostname: %s\n",
			strings.ReplaceAll(m.MAC, ":", ""), m.StateChanged.Unix(), v.Hostname)), nil
	}
	if file != Kinds[p.Kind] {
		return nil, fmt.Errorf("profile %s serves %s, not %q: %w", p.Name, Kinds[p.Kind], file, ErrNotFound)
	}
	t, err := Parse(p.Kind, p.Template)
	if err != nil {
		return nil, err
	}
	if _, err := s.ISOs.Get(ctx, p.ISO); errors.Is(err, isostore.ErrNotFound) {
		return nil, fmt.Errorf("profile %s: its ISO %s was deleted: %w", p.Name, p.ISO, ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	out, err := Render(t, v)
	if err != nil {
		return nil, err
	}
	if p.Kind == KindAnswer {
		// Checked at save time against sample values; a machine's own values (a label, a
		// variable) could still break it, and the installer would stop on it.
		if err := CheckAnswer(out); err != nil {
			return nil, fmt.Errorf("profile %s renders a bad answer file for %s: %w", p.Name, m.MAC, err)
		}
	}
	return out, nil
}

// Answer finds the machine the Proxmox installer's system information describes (by the MACs
// of its interfaces) and renders its answer file. Errors: ErrNotFound when no machine has any
// of the MACs or its profile has no answer template; inventory.ErrConflict when the MACs
// belong to more than one machine with an answer profile.
func (s *Service) Answer(ctx context.Context, si SysInfo) (*inventory.Machine, []byte, error) {
	var known, answering []*inventory.Machine
	for _, mac := range si.MACs {
		m, err := s.Inv.Machine(ctx, mac)
		if errors.Is(err, inventory.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		known = append(known, m)
		if m.Profile == "" {
			continue
		}
		if p, err := s.Inv.Profile(ctx, m.Profile); err == nil && p.Kind == KindAnswer {
			answering = append(answering, m)
		}
	}
	switch {
	case len(known) == 0:
		return nil, nil, fmt.Errorf("no machine has any of the MACs %s (it must have booted fleetboot's chain, or be added with fleetboot machine add): %w",
			sortedMACs(si.MACs), ErrNotFound)
	case len(answering) == 0:
		m := known[0]
		if m.Profile == "" {
			return nil, nil, fmt.Errorf("machine %s has no profile: %w", m.MAC, ErrNotFound)
		}
		return nil, nil, fmt.Errorf("machine %s: its profile %s has no answer template (template_kind answer): %w", m.MAC, m.Profile, ErrNotFound)
	case len(answering) > 1:
		return nil, nil, fmt.Errorf("the MACs %s belong to %d machines with an answer profile (%s and %s); remove the extra machine: %w",
			sortedMACs(si.MACs), len(answering), answering[0].MAC, answering[1].MAC, inventory.ErrConflict)
	}
	m := answering[0]
	body, err := s.Unattended(ctx, m, Kinds[KindAnswer])
	if err != nil {
		return nil, nil, err
	}
	return m, body, nil
}

// AnswerURL is the answer URL DHCP option 250 hands the machine with MAC mac, or "" when its
// profile has no answer template.
func (s *Service) AnswerURL(ctx context.Context, mac string) (string, error) {
	m, err := s.Inv.Machine(ctx, mac)
	if errors.Is(err, inventory.ErrNotFound) {
		return "", nil
	}
	if err != nil || m.Profile == "" {
		return "", err
	}
	p, err := s.Inv.Profile(ctx, m.Profile)
	if errors.Is(err, inventory.ErrNotFound) {
		return "", nil
	}
	if err != nil || p.Kind != KindAnswer {
		return "", err
	}
	return urls.Base(s.HTTPBase).ProxmoxAnswer(), nil
}

// vars are the template fields for machine m installing profile p from ISO isoID.
func (s *Service) vars(p *inventory.Profile, m *inventory.Machine, isoID string) Vars {
	hostname := m.Hostname
	if hostname == "" {
		hostname = "host-" + strings.ReplaceAll(m.MAC, ":", "")
	}
	done := urls.Base(s.HTTPBase).Done(m.MAC)
	return Vars{
		Hostname: hostname, MAC: m.MAC, MACHyphen: urls.MAC(m.MAC), IP: m.IP,
		ServerURL: s.HTTPBase, DoneURL: done, DoneCommand: doneCommand(done),
		ProgressURL: progressURL(s.HTTPBase, m.MAC), ProgressHooks: progressHooks(p.Kind, progressURL(s.HTTPBase, m.MAC)),
		UnattendedURL: s.unattendedURL(p, m), ISOURL: s.ISOURL(isoID), Profile: p.Name,
		SSHKeys: p.SSHKeys, Labels: m.Labels, Vars: p.Vars, Hardware: m.Hardware,
	}
}

// Problem says why profile p cannot boot any machine, or "" when nothing stops it: its ISO
// was deleted (with force), or an ISO registered by path has lost its image file. The API
// shows it, and the boot planner neither offers nor hands out such a profile.
func (s *Service) Problem(ctx context.Context, p *inventory.Profile) string {
	iso, err := s.ISOs.Get(ctx, p.ISO)
	if errors.Is(err, isostore.ErrNotFound) {
		return fmt.Sprintf("its ISO %s was deleted; point the profile at another ISO (fleetboot iso ls)", p.ISO)
	}
	if err != nil {
		return "" // not known to be broken; a boot attempt reports the error
	}
	// Bytes this instance lacks (the shared image directory not mounted here), that do not
	// match the catalog, or a registered file that changed: the machine would fetch its kernel
	// and get an error; the console says why instead.
	switch state, err := s.ISOs.ImageStatus(ctx, iso); state {
	case isostore.ImageMissing, isostore.ImageCorrupt, isostore.ImageChanged:
		return err.Error()
	}
	if iso.SourcePath != "" {
		if _, err := os.Stat(iso.SourcePath); err != nil {
			return fmt.Sprintf("its ISO %s is registered from %s, which cannot be read: %v", iso.Name, iso.SourcePath, err)
		}
	}
	return ""
}

// SecureBootStatus is profile p's Secure Boot verdict: the entry a UEFI machine gets and
// whether the shim served for it trusts the entry's kernel. It reads the readiness stored at
// publish time; for an ISO published before readiness existed it works it out now (a read of
// the kernel's headers and signature). An error (ISO gone, no UEFI entry) is the reason.
func (s *Service) SecureBootStatus(ctx context.Context, p *inventory.Profile) *inventory.SecureBootStatus {
	e, iso, err := s.entry(ctx, p, &inventory.Machine{MAC: "00:00:00:00:00:00", Platform: "efi"})
	if err != nil {
		return &inventory.SecureBootStatus{Reason: err.Error()}
	}
	var det Detection
	if iso.Detected != "" {
		json.Unmarshal([]byte(iso.Detected), &det)
	}
	r, ok := secureboot.EntryReadiness{}, false
	if det.SecureBoot != nil {
		r, ok = det.SecureBoot.Entry(e.ID)
	}
	// The stored verdict is redone when it predates readiness, or when it was judged against
	// fleetboot's own shim and the server now has a different answer to "is there one" (the
	// ISO was published by a build without the embedded chain, or the other way round).
	if !ok || (r.Shim == "" && s.Shims[r.Arch] != nil) || (r.Shim == secureboot.ShimDebian && s.Shims[r.Arch] == nil) {
		ix, _, err := s.ISOs.Index(ctx, iso.ID)
		if err != nil {
			return &inventory.SecureBootStatus{Entry: e.ID, Reason: err.Error()}
		}
		sb := secureboot.CheckISO(&isoFS{ctx: ctx, s: s.ISOs, id: iso.ID, ix: ix}, []distro.Entry{e}, det.Arch, s.Shims, s.ServesISOPairs)
		r, ok = sb.Entry(e.ID)
	}
	if !ok {
		return &inventory.SecureBootStatus{Entry: e.ID, Reason: "no Secure Boot verdict for entry " + e.ID}
	}
	st := &inventory.SecureBootStatus{Ready: r.Trusted, Entry: e.ID, Shim: r.Shim, TrustedBy: r.By, Reason: r.Reason}
	if r.Signature != nil && len(r.Signature.Signers) > 0 {
		st.Signer = r.Signature.Signers[0].Subject
	}
	return st
}

// isoFS is the distro package's view of an ISO: the persisted index answers Stat and ReadDir,
// small files are read through the store, and Open gives the secureboot package random access
// to kernels and boot loaders.
type isoFS struct {
	ctx context.Context
	s   ISOs
	id  string
	ix  *iso9660.Index
}

func (f *isoFS) Stat(p string) (int64, bool, bool) {
	e, err := f.ix.Lookup(p)
	if err != nil {
		return 0, false, false
	}
	return e.Size, e.IsDir(), true
}

func (f *isoFS) ReadFile(p string, max int64) ([]byte, error) {
	file, err := f.s.OpenFile(f.ctx, f.id, p)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	if file.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes: %w", p, file.Size(), distro.ErrTooLarge)
	}
	return io.ReadAll(io.LimitReader(file, max))
}

func (f *isoFS) Open(p string) (secureboot.File, error) {
	return f.s.OpenFile(f.ctx, f.id, p)
}

func (f *isoFS) ReadDir(p string) ([]string, error) {
	entries, err := f.ix.ReadDir(p)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i := range entries {
		names[i] = entries[i].Name()
	}
	return names, nil
}
