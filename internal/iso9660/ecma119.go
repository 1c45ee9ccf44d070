package iso9660

// On-disk structures of ECMA-119 (ISO 9660), the System Use Sharing Protocol (SUSP, IEEE
// P1281), the Rock Ridge Interchange Protocol (RRIP, IEEE P1282) and Joliet, decoded from
// byte slices. Everything here is pure: no I/O, every length is checked against the slice it
// indexes, and hostile input yields an error or a "not present" result, never a panic.

// (Why fleetboot has its own decoder: see the package comment in doc.go.)

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

const (
	sectorSize = 2048
	// firstVDSector is where the volume descriptor set starts, after the 32 KiB system area
	// (ECMA-119 6.2.1). UDF's volume recognition sequence starts at the same byte offset.
	firstVDSector = 16
	// maxVDSectors bounds the descriptor scan; real images have fewer than ten.
	maxVDSectors = 64
)

// Directory record file flags (ECMA-119 9.1.6).
const (
	flagHidden      = 1 << 0
	flagDirectory   = 1 << 1
	flagAssociated  = 1 << 2
	flagMultiExtent = 1 << 7
)

// volumeDescriptors is what the descriptor scan found.
type volumeDescriptors struct {
	primary    []byte // the Primary Volume Descriptor sector, nil if none
	joliet     []byte // a Joliet Supplementary Volume Descriptor sector, nil if none
	udf        bool   // an NSR02/NSR03 descriptor: the image carries UDF
	terminated bool   // an ISO 9660 set terminator was seen
}

// classifyDescriptor looks at one 2048-byte sector of the descriptor area and updates vds.
// It reports false when the sector is not a volume (recognition) descriptor at all, which
// ends the scan.
func classifyDescriptor(vds *volumeDescriptors, sec []byte) bool {
	if len(sec) < sectorSize {
		return false
	}
	id := string(sec[1:6])
	switch id {
	case "CD001":
		switch sec[0] {
		case 1:
			if vds.primary == nil {
				vds.primary = append([]byte(nil), sec...)
			}
		case 2:
			// Version 1 with a UCS-2 escape sequence is Joliet; version 2 is the
			// ISO 9660:1999 enhanced descriptor, which we do not use.
			if sec[6] == 1 && vds.joliet == nil && isJolietEscape(sec[88:120]) {
				vds.joliet = append([]byte(nil), sec...)
			}
		case 255:
			vds.terminated = true
		}
		return true
	case "NSR02", "NSR03":
		vds.udf = true
		return true
	case "BEA01", "TEA01", "BOOT2", "CDW02":
		return true
	}
	return false
}

// isJolietEscape reports whether an SVD's escape sequences field names UCS-2 level 1, 2 or 3
// ("%/@", "%/C", "%/E").
func isJolietEscape(esc []byte) bool {
	for _, lvl := range []string{"%/@", "%/C", "%/E"} {
		if bytes.Contains(esc, []byte(lvl)) {
			return true
		}
	}
	return false
}

// volumeInfo is what we need from a PVD or SVD.
type volumeInfo struct {
	label      string
	blocks     int64 // volume space size in logical blocks
	blockSize  int
	rootRecord []byte // the 34-byte root directory record
}

func parseVolume(sec []byte, joliet bool) (volumeInfo, error) {
	var v volumeInfo
	if len(sec) < sectorSize {
		return v, errors.New("short volume descriptor")
	}
	if joliet {
		v.label = strings.TrimRight(decodeUCS2(sec[40:72]), " \x00")
	} else {
		v.label = strings.TrimRight(string(sec[40:72]), " \x00")
		if !utf8.ValidString(v.label) {
			v.label = strings.ToValidUTF8(v.label, "?")
		}
	}
	v.blocks = int64(binary.LittleEndian.Uint32(sec[80:84]))
	v.blockSize = int(binary.LittleEndian.Uint16(sec[128:130]))
	v.rootRecord = sec[156 : 156+34]
	if v.rootRecord[0] < 34 {
		return v, fmt.Errorf("root directory record length %d", v.rootRecord[0])
	}
	return v, nil
}

// dirRecord is one decoded directory record (ECMA-119 9.1).
type dirRecord struct {
	extent    int64 // logical block of the extent (after the extended attribute record)
	length    int64 // data length in bytes
	flags     byte
	unitSize  byte // interleaving; non-zero is unsupported
	mtime     time.Time
	ident     []byte // raw file identifier; aliases the record buffer
	systemUse []byte // system use area; aliases the record buffer
}

func (r *dirRecord) isDir() bool  { return r.flags&flagDirectory != 0 }
func (r *dirRecord) isDot() bool  { return len(r.ident) == 1 && r.ident[0] == 0 }
func (r *dirRecord) isDot2() bool { return len(r.ident) == 1 && r.ident[0] == 1 }

// parseDirRecord decodes the record at the start of b. b must hold at least the record's
// length byte worth of data.
func parseDirRecord(b []byte) (dirRecord, error) {
	var r dirRecord
	if len(b) < 34 {
		return r, errors.New("directory record shorter than 34 bytes")
	}
	n := int(b[0])
	if n < 34 || n > len(b) {
		return r, fmt.Errorf("directory record length %d", n)
	}
	b = b[:n]
	ear := int64(b[1])
	r.extent = int64(binary.LittleEndian.Uint32(b[2:6])) + ear
	r.length = int64(binary.LittleEndian.Uint32(b[10:14]))
	r.mtime = recordingTime(b[18:25])
	r.flags = b[25]
	r.unitSize = b[26]
	idLen := int(b[32])
	if 33+idLen > n {
		return r, fmt.Errorf("file identifier length %d exceeds record length %d", idLen, n)
	}
	r.ident = b[33 : 33+idLen]
	su := 33 + idLen
	if idLen%2 == 0 {
		su++ // padding byte after an even-length identifier
	}
	if su < n {
		r.systemUse = b[su:n]
	}
	return r, nil
}

// recordingTime decodes the 7-byte date of a directory record (ECMA-119 9.1.5). An invalid
// date (many images carry zeros) yields the zero time.
func recordingTime(b []byte) time.Time {
	if len(b) < 7 {
		return time.Time{}
	}
	mon, day, h, m, s := int(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5])
	if mon < 1 || mon > 12 || day < 1 || day > 31 || h > 23 || m > 59 || s > 59 {
		return time.Time{}
	}
	off := int(int8(b[6]))
	if off < -48 || off > 52 {
		off = 0
	}
	return time.Date(1900+int(b[0]), time.Month(mon), day, h, m, s, 0,
		time.FixedZone("", off*15*60)).UTC()
}

// longTime decodes the 17-byte "dec-datetime" form (ECMA-119 8.4.26.1) used by RRIP TF with
// the LONG_FORM flag.
func longTime(b []byte) time.Time {
	if len(b) < 17 {
		return time.Time{}
	}
	num := func(s []byte) int {
		v := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	y, mon, d, h, m, s, cs := num(b[0:4]), num(b[4:6]), num(b[6:8]), num(b[8:10]), num(b[10:12]), num(b[12:14]), num(b[14:16])
	if y < 1 || mon < 1 || mon > 12 || d < 1 || d > 31 || h < 0 || h > 23 || m < 0 || m > 59 || s < 0 || s > 59 || cs < 0 {
		return time.Time{}
	}
	off := int(int8(b[16]))
	if off < -48 || off > 52 {
		off = 0
	}
	return time.Date(y, time.Month(mon), d, h, m, s, cs*10_000_000, time.FixedZone("", off*15*60)).UTC()
}

// decodeUCS2 decodes Joliet's big-endian UCS-2 (UTF-16 in practice). An odd trailing byte is
// dropped; unpaired surrogates become U+FFFD.
func decodeUCS2(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// isoName turns an ISO 9660 or Joliet file identifier into the name users see: the version
// suffix ";1" is dropped and, for files, so are trailing dots ("README." is how level 1
// records a name without extension). Linux's isofs does the same.
func isoName(ident []byte, joliet, dir bool) string {
	var s string
	if joliet {
		s = decodeUCS2(ident)
	} else {
		s = strings.ToValidUTF8(string(ident), "?")
	}
	if dir {
		return s
	}
	if i := strings.LastIndexByte(s, ';'); i >= 0 && allDigits(s[i+1:]) {
		s = s[:i]
	}
	if t := strings.TrimRight(s, "."); t != "" {
		s = t
	}
	return s
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// suspEntry is one SUSP system use entry: signature, version and payload.
type suspEntry struct {
	sig  string
	data []byte // payload after the 4-byte header
}

// ceRef is a SUSP continuation area reference (SUSP 5.1).
type ceRef struct {
	block, offset, length int64
}

// splitSUSP splits one system use area into entries. It stops at ST, at a malformed header
// (length < 4 or past the end: SUSP 4 says remaining space under four bytes is ignored) and
// returns the continuation area named by a CE entry, if any.
func splitSUSP(area []byte) (entries []suspEntry, ce *ceRef) {
	for len(area) >= 4 {
		n := int(area[2])
		if n < 4 || n > len(area) {
			break
		}
		e := suspEntry{sig: string(area[0:2]), data: area[4:n]}
		area = area[n:]
		switch e.sig {
		case "ST":
			return entries, ce
		case "PD":
			continue
		case "CE":
			if len(e.data) >= 24 {
				ce = &ceRef{
					block:  int64(binary.LittleEndian.Uint32(e.data[0:4])),
					offset: int64(binary.LittleEndian.Uint32(e.data[8:12])),
					length: int64(binary.LittleEndian.Uint32(e.data[16:20])),
				}
			}
			continue
		}
		entries = append(entries, e)
	}
	return entries, ce
}

// spSkip reports whether a system use area starts with a valid SP entry (SUSP 5.3) and the
// number of bytes every other record skips before its own entries.
func spSkip(area []byte) (int, bool) {
	if len(area) < 7 || area[0] != 'S' || area[1] != 'P' || area[2] < 7 || area[4] != 0xBE || area[5] != 0xEF {
		return 0, false
	}
	return int(area[6]), true
}

// rrIdentifiers are the ER extension identifiers of the RRIP versions in use (1.09, 1.10,
// 1.12).
var rrIdentifiers = []string{"RRIP_1991A", "IEEE_P1282", "IEEE_1282"}

// isRockRidgeER reports whether an ER entry announces Rock Ridge.
func isRockRidgeER(data []byte) bool {
	if len(data) < 4 {
		return false
	}
	idLen := int(data[0])
	if 4+idLen > len(data) {
		return false
	}
	id := string(data[4 : 4+idLen])
	for _, want := range rrIdentifiers {
		if id == want {
			return true
		}
	}
	return false
}

// rrInfo is the Rock Ridge information of one record, accumulated across its system use area
// and continuation areas.
type rrInfo struct {
	name       []byte // NM, concatenated
	nameSet    bool
	nameDot    bool // NM with CURRENT or PARENT: a "." or ".." record
	mode       uint32
	modeSet    bool
	symlink    []byte // SL components rendered as a path, "/"-joined
	symlinkSet bool
	slPending  bool // the last SL component had CONTINUE set: the next SL continues it
	slBad      bool // an SL component we refuse (host-specific) — the link is broken
	mtime      time.Time
	childLink  int64 // CL: location of the relocated directory, -1 if none
	relocated  bool  // RE: this record is the relocated directory's placeholder in rr_moved
}

func newRRInfo() rrInfo { return rrInfo{childLink: -1} }

// maxRRName caps the NM name; POSIX NAME_MAX is 255 bytes.
const maxRRName = 1024

// maxRRLink caps an SL target; Linux PATH_MAX is 4096.
const maxRRLink = 8192

// addEntry folds one SUSP entry into the record's Rock Ridge information.
func (ri *rrInfo) addEntry(e suspEntry) {
	d := e.data
	switch e.sig {
	case "NM":
		if len(d) < 1 {
			return
		}
		if d[0]&(0x02|0x04) != 0 {
			ri.nameDot = true
			return
		}
		if len(ri.name)+len(d)-1 <= maxRRName {
			ri.name = append(ri.name, d[1:]...)
			ri.nameSet = true
		}
	case "PX":
		if len(d) >= 4 && !ri.modeSet {
			ri.mode = binary.LittleEndian.Uint32(d[0:4])
			ri.modeSet = true
		}
	case "SL":
		if len(d) < 1 {
			return
		}
		ri.symlinkSet = true
		comps := d[1:]
		for len(comps) >= 2 {
			cf, cl := comps[0], int(comps[1])
			if 2+cl > len(comps) {
				ri.slBad = true
				break
			}
			content := comps[2 : 2+cl]
			comps = comps[2+cl:]
			var part string
			switch {
			case cf&0x02 != 0:
				part = "."
			case cf&0x04 != 0:
				part = ".."
			case cf&0x08 != 0:
				part = "" // ROOT: an absolute link; rendered as a leading "/"
			case cf&0x10 != 0 || cf&0x20 != 0:
				// VOLROOT / HOST: meaningful only on the writer's machine.
				ri.slBad = true
				continue
			default:
				part = string(content)
			}
			switch {
			case cf&0x08 != 0:
				ri.symlink = append(ri.symlink[:0], '/')
			case ri.slPending:
				ri.symlink = append(ri.symlink, part...)
			default:
				if len(ri.symlink) > 0 && ri.symlink[len(ri.symlink)-1] != '/' {
					ri.symlink = append(ri.symlink, '/')
				}
				ri.symlink = append(ri.symlink, part...)
			}
			ri.slPending = cf&0x01 != 0
			if len(ri.symlink) > maxRRLink {
				ri.slBad = true
				ri.symlink = ri.symlink[:0]
				return
			}
		}
	case "TF":
		ri.mtime = parseTF(d)
	case "CL":
		if len(d) >= 4 {
			ri.childLink = int64(binary.LittleEndian.Uint32(d[0:4]))
		}
	case "RE":
		ri.relocated = true
	}
}

// parseTF returns the modification time of an RRIP TF entry, zero if absent.
func parseTF(d []byte) time.Time {
	if len(d) < 1 {
		return time.Time{}
	}
	flags := d[0]
	size := 7
	if flags&0x80 != 0 {
		size = 17
	}
	p := d[1:]
	// Stamps are recorded in flag-bit order: creation, modify, access, attributes, ...
	if flags&0x01 != 0 { // creation precedes modify
		if len(p) < size {
			return time.Time{}
		}
		p = p[size:]
	}
	if flags&0x02 == 0 || len(p) < size {
		return time.Time{}
	}
	if size == 17 {
		return longTime(p[:17])
	}
	return recordingTime(p[:7])
}

// posixMode converts an RRIP PX st_mode to an fs.FileMode. ok is false for device nodes,
// FIFOs and sockets, which an HTTP file server has no use for.
func posixMode(m uint32) (mode fs.FileMode, ok bool) {
	perm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		perm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		perm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		perm |= fs.ModeSticky
	}
	switch m & 0o170000 {
	case 0o100000, 0: // regular (0: writers that leave the type out)
		return perm, true
	case 0o040000:
		return perm | fs.ModeDir, true
	case 0o120000:
		return perm | fs.ModeSymlink, true
	}
	return 0, false
}
