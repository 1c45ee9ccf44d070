// Package secureboot answers the questions a Secure Boot fleet asks before a machine boots:
// is this EFI binary or kernel signed, by whom, does the signature match the bytes, and does
// the shim fleetboot would serve trust it. It parses PE/COFF images and their Authenticode
// signatures (PKCS#7 SignedData in the certificate table), reads the certificates a shim
// carries (.vendor_cert: vendor_authorized and vendor_deauthorized), decides trust the way
// shim does, and finds an ISO's own shim + GRUB pair.
//
// Everything here is pure: callers hand in an io.ReaderAt (a file, an ISO's file, bytes) and
// get values back. Hostile input yields errors, never panics; the work per image is bounded
// (headers and sections are size-checked against the file, the digest is one streaming pass).
package secureboot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrNotPE is returned (wrapped) for input that is not a PE/COFF image.
var ErrNotPE = errors.New("not a PE/COFF image")

// Limits that keep a hostile header from making the parser allocate or loop much.
const (
	maxSections  = 96      // the PE spec's loader limit
	maxCertTable = 1 << 20 // Authenticode certificate tables are a few KiB
	maxSection   = 1 << 20 // sections this package reads whole (.vendor_cert, .sbat)
)

// PE machine types (IMAGE_FILE_MACHINE_*) the reports name.
const (
	MachineAMD64 = 0x8664
	MachineARM64 = 0xaa64
	MachineI386  = 0x14c
)

// Section is one PE section header.
type Section struct {
	Name           string
	VirtualSize    uint32
	VirtualAddress uint32
	Size           uint32 // SizeOfRawData
	Offset         uint32 // PointerToRawData
}

// Image is a parsed PE/COFF image: the header fields Authenticode hashing needs, the section
// table and the raw certificate table. Parse builds it; its methods read through the
// io.ReaderAt it was given, which must stay usable while the Image is.
type Image struct {
	r    io.ReaderAt
	size int64

	// Machine is the COFF machine type (MachineAMD64, MachineARM64 …).
	Machine  uint16
	Sections []Section

	checksumOff   int64 // offset of OptionalHeader.CheckSum
	certDirOff    int64 // offset of the certificate table's data directory entry (8 bytes)
	sizeOfHeaders int64
	certOff       int64 // certificate table offset in the file (a file offset, not an RVA)
	certSize      int64
}

// Arch names the machine type the way iPXE's ${buildarch} does ("x86_64", "arm64", "i386"),
// or "0x…" for others.
func (im *Image) Arch() string {
	switch im.Machine {
	case MachineAMD64:
		return "x86_64"
	case MachineARM64:
		return "arm64"
	case MachineI386:
		return "i386"
	}
	return fmt.Sprintf("%#x", im.Machine)
}

// Parse reads the headers of the PE/COFF image r of size bytes. It checks every offset it
// will later read against size, so a truncated or hostile image fails here with an error.
func Parse(r io.ReaderAt, size int64) (*Image, error) {
	if size < 0x40 {
		return nil, fmt.Errorf("%d bytes: %w", size, ErrNotPE)
	}
	var dos [0x40]byte
	if _, err := r.ReadAt(dos[:], 0); err != nil {
		return nil, fmt.Errorf("read DOS header: %w", err)
	}
	if dos[0] != 'M' || dos[1] != 'Z' {
		return nil, fmt.Errorf("no MZ signature: %w", ErrNotPE)
	}
	peOff := int64(binary.LittleEndian.Uint32(dos[0x3c:]))
	// PE signature (4) + COFF file header (20).
	if peOff+24 > size {
		return nil, fmt.Errorf("PE header at %d beyond the end (%d bytes): %w", peOff, size, ErrNotPE)
	}
	var hdr [24]byte
	if _, err := r.ReadAt(hdr[:], peOff); err != nil {
		return nil, fmt.Errorf("read PE header: %w", err)
	}
	if string(hdr[:4]) != "PE\x00\x00" {
		return nil, fmt.Errorf("no PE signature: %w", ErrNotPE)
	}
	im := &Image{r: r, size: size, Machine: binary.LittleEndian.Uint16(hdr[4:])}
	nsec := int(binary.LittleEndian.Uint16(hdr[6:]))
	symtab := int64(binary.LittleEndian.Uint32(hdr[12:]))
	nsyms := int64(binary.LittleEndian.Uint32(hdr[16:]))
	optSize := int64(binary.LittleEndian.Uint16(hdr[20:]))
	optOff := peOff + 24
	if nsec > maxSections {
		return nil, fmt.Errorf("%d sections (limit %d): %w", nsec, maxSections, ErrNotPE)
	}
	if optOff+optSize > size || optSize < 2 {
		return nil, fmt.Errorf("optional header (%d bytes) beyond the end: %w", optSize, ErrNotPE)
	}
	opt := make([]byte, optSize)
	if _, err := r.ReadAt(opt, optOff); err != nil {
		return nil, fmt.Errorf("read optional header: %w", err)
	}
	// PE32 and PE32+ differ in where the data directories start (ImageBase and the stack/heap
	// sizes are 8 bytes in PE32+); CheckSum (64) and SizeOfHeaders (60) are at the same place.
	var ddOff, nddOff int64
	switch magic := binary.LittleEndian.Uint16(opt); magic {
	case 0x10b:
		nddOff, ddOff = 92, 96
	case 0x20b:
		nddOff, ddOff = 108, 112
	default:
		return nil, fmt.Errorf("optional header magic %#x: %w", magic, ErrNotPE)
	}
	if ddOff > optSize {
		return nil, fmt.Errorf("optional header too short (%d bytes): %w", optSize, ErrNotPE)
	}
	im.checksumOff = optOff + 64
	im.sizeOfHeaders = int64(binary.LittleEndian.Uint32(opt[60:]))
	ndd := int64(binary.LittleEndian.Uint32(opt[nddOff:]))
	// The certificate table is data directory 4 (IMAGE_DIRECTORY_ENTRY_SECURITY). An image
	// with fewer directories has no room for a signature: unsigned.
	const secDir = 4
	im.certDirOff = optOff + ddOff + secDir*8
	if ndd > secDir && ddOff+secDir*8+8 <= optSize {
		d := opt[ddOff+secDir*8:]
		// Unlike every other directory, this one holds a file offset, not an RVA.
		im.certOff = int64(binary.LittleEndian.Uint32(d))
		im.certSize = int64(binary.LittleEndian.Uint32(d[4:]))
	} else {
		im.certDirOff = -1
	}
	secOff := optOff + optSize
	if secOff+int64(nsec)*40 > size {
		return nil, fmt.Errorf("section table beyond the end: %w", ErrNotPE)
	}
	if im.sizeOfHeaders < secOff+int64(nsec)*40 || im.sizeOfHeaders > size {
		return nil, fmt.Errorf("SizeOfHeaders %d does not cover the headers or exceeds the file: %w", im.sizeOfHeaders, ErrNotPE)
	}
	if im.certDirOff >= 0 && im.certDirOff+8 > im.sizeOfHeaders {
		return nil, fmt.Errorf("certificate directory outside the headers: %w", ErrNotPE)
	}
	st := make([]byte, nsec*40)
	if _, err := r.ReadAt(st, secOff); err != nil {
		return nil, fmt.Errorf("read section table: %w", err)
	}
	for i := 0; i < nsec; i++ {
		h := st[i*40:]
		s := Section{
			Name:           sectionName(r, size, h[:8], symtab, nsyms),
			VirtualSize:    binary.LittleEndian.Uint32(h[8:]),
			VirtualAddress: binary.LittleEndian.Uint32(h[12:]),
			Size:           binary.LittleEndian.Uint32(h[16:]),
			Offset:         binary.LittleEndian.Uint32(h[20:]),
		}
		if s.Size > 0 && int64(s.Offset)+int64(s.Size) > size {
			return nil, fmt.Errorf("section %q (%d bytes at %d) beyond the end: %w", s.Name, s.Size, s.Offset, ErrNotPE)
		}
		im.Sections = append(im.Sections, s)
	}
	if im.certSize != 0 {
		if im.certOff < im.sizeOfHeaders || im.certOff+im.certSize > size || im.certSize > maxCertTable {
			return nil, fmt.Errorf("certificate table (%d bytes at %d) outside the file: %w", im.certSize, im.certOff, ErrNotPE)
		}
	}
	return im, nil
}

// Section returns the contents of the named section, cut to its VirtualSize when that is
// smaller (the raw data is padded to the file alignment). ok is false when the image has no
// such section; sections over 1 MiB are an error.
func (im *Image) Section(name string) (data []byte, ok bool, err error) {
	for _, s := range im.Sections {
		if s.Name != name {
			continue
		}
		n := int64(s.Size)
		if s.VirtualSize != 0 && int64(s.VirtualSize) < n {
			n = int64(s.VirtualSize)
		}
		if n > maxSection {
			return nil, true, fmt.Errorf("section %s: %d bytes (limit %d)", name, n, maxSection)
		}
		b := make([]byte, n)
		if _, err := im.r.ReadAt(b, int64(s.Offset)); err != nil {
			return nil, true, fmt.Errorf("read section %s: %w", name, err)
		}
		return b, true, nil
	}
	return nil, false, nil
}

// hashRanges are the byte ranges of the file the Authenticode digest covers, in order
// (Microsoft's "Windows Authenticode Portable Executable Signature Format", "Calculating the
// PE Image Hash"): the headers without the CheckSum field and the certificate directory
// entry, the sections sorted by file offset, then whatever follows the last section up to
// the certificate table.
//
// Two deviations from the document, both what shim (and EDK2's DxeImageVerificationLib) do,
// since shim is the verifier that matters here: nothing is appended as padding (sbsign and
// pesign pad the file to 8 bytes before signing, so signed images need none), and a
// certificate table that is not at the very end of the file is an error.
func (im *Image) hashRanges() ([][2]int64, error) {
	var rs [][2]int64
	add := func(from, to int64) {
		if to > from {
			rs = append(rs, [2]int64{from, to})
		}
	}
	if im.certDirOff >= 0 {
		add(0, im.checksumOff)
		add(im.checksumOff+4, im.certDirOff)
		add(im.certDirOff+8, im.sizeOfHeaders)
	} else {
		add(0, im.checksumOff)
		add(im.checksumOff+4, im.sizeOfHeaders)
	}
	secs := make([]Section, 0, len(im.Sections))
	for _, s := range im.Sections {
		if s.Size > 0 {
			secs = append(secs, s)
		}
	}
	// Insertion sort by file offset, stable like shim's.
	for i := 1; i < len(secs); i++ {
		for j := i; j > 0 && secs[j].Offset < secs[j-1].Offset; j-- {
			secs[j], secs[j-1] = secs[j-1], secs[j]
		}
	}
	sum := im.sizeOfHeaders
	for _, s := range secs {
		add(int64(s.Offset), int64(s.Offset)+int64(s.Size))
		sum += int64(s.Size)
	}
	if sum > im.size {
		return nil, fmt.Errorf("sections add up to %d bytes, more than the file's %d", sum, im.size)
	}
	end := im.size - im.certSize
	if im.certSize != 0 && im.certOff != end {
		// shim refuses this too ("Malformed binary after Attribute Certificate Table"):
		// bytes after the signature would be covered by nothing.
		return nil, fmt.Errorf("certificate table at %d is not at the end of the file (%d bytes)", im.certOff, im.size)
	}
	if end > sum {
		add(sum, end)
	}
	return rs, nil
}

// sectionName returns a section's name. Names longer than 8 bytes (".vendor_cert") are
// stored as "/<decimal offset>" into the COFF string table, which follows the symbol table;
// GNU ld writes them that way for shim. An unreadable long name stays "/<offset>".
func sectionName(r io.ReaderAt, size int64, raw []byte, symtab, nsyms int64) string {
	name := strings.TrimRight(string(raw), "\x00")
	if len(name) < 2 || name[0] != '/' || symtab == 0 {
		return name
	}
	off, err := strconv.ParseUint(name[1:], 10, 32)
	if err != nil {
		return name
	}
	at := symtab + nsyms*18 + int64(off)
	if at < 0 || at >= size {
		return name
	}
	buf := make([]byte, 64)
	n, _ := r.ReadAt(buf, at)
	buf = buf[:n]
	if i := bytes.IndexByte(buf, 0); i > 0 {
		return string(buf[:i])
	}
	return name
}
