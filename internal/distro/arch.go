package distro

import (
	"errors"
	"fmt"
	"strings"
)

// ErrWrongArch is returned (wrapped, naming both architectures) when an image has no boot
// entry for the machine's architecture: an arm64 ISO for an x86 machine or the other way round.
var ErrWrongArch = errors.New("wrong architecture")

// ErrNoEntry is returned (wrapped) by ForMachine when the image has no entry with that ID.
var ErrNoEntry = errors.New("no such boot entry")

// ArchFits reports whether an entry built for entryArch can boot on a machine whose iPXE
// reports machineArch as ${buildarch}. Both use iPXE's spelling (x86_64, i386, arm64 …), which
// Entry.Arch and Result.Arch already do; an empty side is unknown and fits anything.
//
// The x86 architectures fit each other: BIOS iPXE (undionly.kpxe, and every NIC ROM) is an i386
// build and says i386 on 64-bit machines, which boot x86_64 kernels. Everything else must be
// equal: iPXE's arm64 build cannot run an x86 kernel, nor the x86 builds an arm64 one.
func ArchFits(machineArch, entryArch string) bool {
	m, e := normArch(machineArch), normArch(entryArch)
	if m == "" || e == "" || m == e {
		return true
	}
	return isX86(m) && isX86(e)
}

func isX86(a string) bool { return a == "x86_64" || a == "i386" }

// archList names the architectures of entries for a message, e.g. "arm64" or "arm64, x86_64".
func archList(entries []Entry) string {
	var out []string
	seen := map[string]bool{}
	for _, e := range entries {
		a := e.Arch
		if a == "" {
			a = "unknown"
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return strings.Join(out, ", ")
}

// ForMachine picks the entry a machine boots: the one with ID id (any when id is "") whose
// architecture fits machineArch and whose firmware fits firmware (FirmwareBoth: any). An ISO
// that carries both x86_64 and arm64 kernels has one entry per architecture under the same ID,
// so a profile naming the ID boots the right kernel on either kind of machine.
//
// The error says why nothing fits: ErrWrongArch when entries with that ID exist only for other
// architectures, a firmware mismatch, or no such ID.
func ForMachine(entries []Entry, id, machineArch string, firmware Firmware) (Entry, error) {
	var withID, fitsArch []Entry
	for _, e := range entries {
		if id != "" && e.ID != id {
			continue
		}
		withID = append(withID, e)
		if !ArchFits(machineArch, e.Arch) {
			continue
		}
		fitsArch = append(fitsArch, e)
		if firmware == FirmwareBoth || e.Firmware == FirmwareBoth || e.Firmware == firmware {
			return e, nil
		}
	}
	what := "a boot entry"
	if id != "" {
		what = "boot entry " + id
	}
	switch {
	case len(withID) == 0:
		return Entry{}, fmt.Errorf("%w: %s", ErrNoEntry, what)
	case len(fitsArch) == 0:
		return Entry{}, fmt.Errorf("%w: %s is built for %s, this machine is %s", ErrWrongArch, what, archList(withID), machineArch)
	default:
		return Entry{}, fmt.Errorf("%s boots on %s firmware only, this machine is %s", what, fitsArch[0].Firmware, firmware)
	}
}
