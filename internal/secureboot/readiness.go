package secureboot

import (
	"fmt"
	"strings"

	"github.com/fleetboot/fleetboot/internal/distro"
)

// ShimDebian names fleetboot's default shim (Debian's shim-signed, Microsoft-signed, trusting
// the Debian Secure Boot CA) in readiness reports.
const ShimDebian = "debian"

// EntryReadiness is the Secure Boot verdict for one boot entry (recipe) of an ISO: would a
// machine with Secure Boot on boot it through the shim fleetboot serves for it.
type EntryReadiness struct {
	// Entry is the recipe's ID (what profiles store).
	Entry  string `json:"entry"`
	Kernel string `json:"kernel,omitempty"`
	Arch   string `json:"arch,omitempty"`
	// Signature is the kernel's Authenticode report (signed, by whom, digest).
	Signature *Report `json:"signature,omitempty"`
	// Shim names the shim that is served for the entry: "iso:<path on the ISO>" for the ISO's own
	// (when CheckISO is told ISO pairs are served), or
	// ShimDebian; "" when there is none for the entry's architecture.
	Shim string `json:"shim,omitempty"`
	// Verdict: Trusted when that shim lets the kernel run; Reason otherwise.
	Verdict
	// ISOShim is the verdict of the ISO's own shim, when the ISO carries a pair for the
	// entry's architecture but that pair is not what is served (see CheckISO).
	ISOShim *Verdict `json:"iso_shim,omitempty"`
	// HTTPBoot is the verdict for UEFI HTTP Boot clients when they get another shim than PXE
	// clients: the ISO's pair is served over PXE only (Pair.OverHTTPBoot), HTTP Boot clients
	// get fleetboot's own (ShimDebian).
	HTTPBoot *Verdict `json:"http_boot,omitempty"`
}

// ISOReadiness is an ISO's Secure Boot readiness: its own shim + GRUB pairs, and a verdict per
// boot entry. fleetboot computes it when the ISO is published and stores it with the
// detection, so serving and profile checks need no re-parse.
type ISOReadiness struct {
	Pairs   []Pair           `json:"pairs,omitempty"`
	Entries []EntryReadiness `json:"entries,omitempty"`
}

// Entry returns the verdict for the recipe with ID id.
func (r *ISOReadiness) Entry(id string) (EntryReadiness, bool) {
	for _, e := range r.Entries {
		if e.Entry == id {
			return e, true
		}
	}
	return EntryReadiness{}, false
}

// CheckISO works out the readiness of each UEFI-bootable entry of an ISO. isoArch is the
// detected architecture, used for entries that do not name one. fallback maps an
// architecture to the shim fleetboot serves (ShimDebian's); a missing architecture means
// there is none. servesISOPairs says whether machines get the ISO's own shim + GRUB when it
// carries a pair: then the verdict is that shim's; when not (the server serves its own shim
// to everyone), the verdict is fleetboot's shim's and ISOShim tells what the ISO's own would
// say. Entries that boot under BIOS only are left out: Secure Boot is a UEFI matter.
func CheckISO(fsys ISOFiles, entries []distro.Entry, isoArch string, fallback map[string]*Shim, servesISOPairs bool) ISOReadiness {
	r := ISOReadiness{Pairs: ISOPairs(fsys)}
	// Entries often share a kernel (Proxmox's, Ubuntu's HWE variants …): check each kernel
	// once per architecture (which decides the shim).
	type key struct{ kernel, arch string }
	seen := map[key]EntryReadiness{}
	for _, e := range entries {
		if e.Firmware == distro.FirmwareBIOS {
			continue
		}
		er := EntryReadiness{Entry: e.ID, Kernel: e.Kernel, Arch: e.Arch}
		if er.Arch == "" {
			er.Arch = isoArch
		}
		if e.Sanboot {
			er.Reason = "sanboot needs iPXE, which is not signed: it cannot run with Secure Boot on"
			r.Entries = append(r.Entries, er)
			continue
		}
		var shim *Shim
		if prev, ok := seen[key{e.Kernel, er.Arch}]; ok && er.Arch != "" {
			prev.Entry = e.ID
			r.Entries = append(r.Entries, prev)
			continue
		}
		rep, im, closeFn := inspectFile(fsys, e.Kernel)
		er.Signature = &rep
		if rep.PE && er.Arch == "" {
			er.Arch = rep.Arch
		}
		var pair *Pair
		for i := range r.Pairs {
			if r.Pairs[i].Arch == er.Arch {
				pair = &r.Pairs[i]
				break
			}
		}
		if pair != nil && servesISOPairs && pair.GRUBTrusted {
			shim, er.Shim = pair.shim, "iso:"+pair.Shim
		} else if fallback[er.Arch] != nil {
			shim, er.Shim = fallback[er.Arch], ShimDebian
		}
		switch {
		case im == nil:
			er.Reason = "the kernel is not an EFI (PE/COFF) image: " + rep.Problem
		case shim == nil && pair != nil:
			er.Reason = "fleetboot has no signed shim for " + er.Arch + " and does not serve the ISO's own"
		case shim == nil:
			er.Reason = "no signed shim for " + er.Arch + ": the ISO carries none and fleetboot has none for this architecture"
		default:
			er.Verdict = shim.Verify(im)
			if !er.Trusted && er.Shim == ShimDebian && rep.Signed {
				er.Reason += "; Debian's shim trusts only Debian's key and enrolled MOKs"
			}
		}
		if httpOK, why := pair.overHTTPBoot(); im != nil && pair != nil && er.Shim == "iso:"+pair.Shim && !httpOK {
			v := Verdict{Reason: "over UEFI HTTP Boot: the ISO's pair is not served (" + why + ") and fleetboot has no shim of its own for " + er.Arch}
			if fb := fallback[er.Arch]; fb != nil {
				v = fb.Verify(im)
				v.Reason = strings.TrimPrefix(v.Reason+"; over UEFI HTTP Boot machines get Debian's shim: the ISO's pair is not served there ("+why+")", "; ")
			}
			er.HTTPBoot = &v
		}
		if im != nil && pair != nil && er.Shim != "iso:"+pair.Shim {
			v := pair.shim.Verify(im)
			er.ISOShim = &v
			if v.Trusted && !er.Trusted {
				er.Reason += "; the ISO's own shim trusts it, but fleetboot serves its own shim, not the ISO's"
			}
		}
		if closeFn != nil {
			closeFn()
		}
		seen[key{e.Kernel, er.Arch}] = er
		r.Entries = append(r.Entries, er)
	}
	return r
}

// overHTTPBoot is OverHTTPBoot for a pair that may be nil (no pair: nothing to say).
func (p *Pair) overHTTPBoot() (bool, string) {
	if p == nil {
		return true, ""
	}
	return p.OverHTTPBoot()
}

// maxKernelBytes bounds what one readiness check hashes: kernels and unified kernel images
// are tens of MiB; a "kernel" of gigabytes is a hostile or broken config, not worth reading.
const maxKernelBytes = 512 << 20

// inspectFile reports on one file of the ISO and keeps it open for Verify when it is a PE.
func inspectFile(fsys ISOFiles, p string) (Report, *Image, func()) {
	f, err := fsys.Open(p)
	if err != nil {
		return Report{Problem: err.Error()}, nil, nil
	}
	if f.Size() > maxKernelBytes {
		f.Close()
		return Report{Problem: fmt.Sprintf("%s: %d bytes, too big for a kernel", p, f.Size())}, nil, nil
	}
	im, err := Parse(f, f.Size())
	if err != nil {
		f.Close()
		return Report{Problem: err.Error()}, nil, nil
	}
	return im.Report(), im, func() { f.Close() }
}
