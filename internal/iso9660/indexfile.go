package iso9660

// The persisted index: a compact binary file next to the image, so serving never parses the
// ISO again. JSON or gob would do, but a hand-written format loads 100k entries in tens of
// milliseconds, shares path prefixes (installer trees are deep), carries its own version and
// a CRC so that a torn or stale file is detected and rebuilt from the image instead of
// serving wrong extents, and does not silently drop a field when a struct is renamed.
//
//	magic "FLEETBOOT-ISOIDX" | version byte
//	label | volumeSize | imageSize | names
//	entryCount, entries: sharedPrefixLen pathSuffix | mode | size | mtimeSec mtimeNsec |
//	  extentCount (offset length)* | target | resolved | first | count
//	problemCount, problems: path | reason
//	CRC-32C (little endian) of everything above
//
// Integers are uvarints (mtime seconds a zig-zag varint), strings a uvarint length and bytes.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"time"
)

const (
	indexMagic   = "FLEETBOOT-ISOIDX"
	indexVersion = 1
	maxIndexStr  = 1 << 16
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// WriteTo writes the index in its persisted form.
func (ix *Index) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(cw, crc), 64<<10)
	enc := indexEncoder{w: bw}
	enc.raw([]byte(indexMagic))
	enc.raw([]byte{indexVersion})
	enc.str(ix.Label)
	enc.uint(uint64(ix.VolumeSize))
	enc.uint(uint64(ix.ImageSize))
	enc.str(string(ix.Names))
	enc.uint(uint64(len(ix.Entries)))
	prev := ""
	for i := range ix.Entries {
		e := &ix.Entries[i]
		n := commonPrefix(prev, e.Path)
		enc.uint(uint64(n))
		enc.str(e.Path[n:])
		prev = e.Path
		enc.uint(uint64(e.Mode))
		enc.uint(uint64(e.Size))
		if e.ModTime.IsZero() {
			enc.int(math.MinInt64)
			enc.uint(0)
		} else {
			enc.int(e.ModTime.Unix())
			enc.uint(uint64(e.ModTime.Nanosecond()))
		}
		enc.uint(uint64(len(e.Extents)))
		for _, x := range e.Extents {
			enc.uint(uint64(x.Offset))
			enc.uint(uint64(x.Length))
		}
		enc.str(e.Target)
		enc.str(e.Resolved)
		enc.uint(uint64(e.first))
		enc.uint(uint64(e.count))
	}
	enc.uint(uint64(len(ix.Problems)))
	for _, p := range ix.Problems {
		enc.str(p.Path)
		enc.str(p.Reason)
	}
	if enc.err == nil {
		enc.err = bw.Flush()
	}
	if enc.err == nil {
		var sum [4]byte
		binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
		_, enc.err = cw.Write(sum[:])
	}
	return cw.n, enc.err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

type indexEncoder struct {
	w   *bufio.Writer
	err error
	buf [binary.MaxVarintLen64]byte
}

func (e *indexEncoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}
func (e *indexEncoder) uint(v uint64) { e.raw(e.buf[:binary.PutUvarint(e.buf[:], v)]) }
func (e *indexEncoder) int(v int64)   { e.raw(e.buf[:binary.PutVarint(e.buf[:], v)]) }
func (e *indexEncoder) str(s string) {
	e.uint(uint64(len(s)))
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

// errCorruptIndex marks a persisted index that cannot be trusted.
var errCorruptIndex = errors.New("corrupt index file")

// ReadIndex loads an index written by WriteTo; size is the length of the data in r. A
// truncated, corrupted or foreign file is an error (the caller rebuilds from the image).
func ReadIndex(r io.Reader, size int64) (*Index, error) {
	if size < int64(len(indexMagic))+1+4 {
		return nil, fmt.Errorf("%w: %d bytes", errCorruptIndex, size)
	}
	crc := crc32.New(crcTable)
	// The body is everything but the 4-byte CRC trailer: hashing it below bufio keeps the
	// per-field decoding free of checksum calls.
	br := bufio.NewReaderSize(io.TeeReader(io.LimitReader(r, size-4), crc), 64<<10)
	d := &indexDecoder{r: br}
	magic := d.bytes(len(indexMagic) + 1)
	if d.err != nil || string(magic[:len(indexMagic)]) != indexMagic {
		return nil, fmt.Errorf("%w: bad magic", errCorruptIndex)
	}
	if magic[len(indexMagic)] != indexVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errCorruptIndex, magic[len(indexMagic)], indexVersion)
	}
	ix := &Index{}
	ix.Label = d.str()
	ix.VolumeSize = int64(d.uint(math.MaxInt64))
	ix.ImageSize = int64(d.uint(math.MaxInt64))
	ix.Names = NameSource(d.str())
	n := d.uint(maxEntries)
	if d.err != nil {
		return nil, d.err
	}
	// Every entry takes at least 11 bytes, so a count the file cannot hold is caught before
	// allocating for it.
	if n > uint64(size)/11 {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", errCorruptIndex, n, size)
	}
	ix.Entries = make([]Entry, 0, n)
	prev := ""
	for i := uint64(0); i < n && d.err == nil; i++ {
		var e Entry
		shared := d.uint(uint64(len(prev)))
		e.Path = prev[:shared] + d.str()
		prev = e.Path
		e.Mode = fs.FileMode(d.uint(math.MaxUint32))
		e.Size = int64(d.uint(math.MaxInt64))
		sec := d.int()
		nsec := d.uint(999_999_999)
		if sec != math.MinInt64 {
			e.ModTime = time.Unix(sec, int64(nsec)).UTC()
		}
		if nx := d.uint(1 << 20); nx > 0 && d.err == nil {
			e.Extents = make([]Extent, 0, min(nx, 64))
			for j := uint64(0); j < nx && d.err == nil; j++ {
				e.Extents = append(e.Extents, Extent{Offset: int64(d.uint(math.MaxInt64)), Length: int64(d.uint(math.MaxInt64))})
			}
		}
		e.Target = d.str()
		e.Resolved = d.str()
		e.first = int32(d.uint(n))
		e.count = int32(d.uint(n))
		ix.Entries = append(ix.Entries, e)
	}
	np := d.uint(1 << 20)
	for i := uint64(0); i < np && d.err == nil; i++ {
		ix.Problems = append(ix.Problems, Problem{Path: d.str(), Reason: d.str()})
	}
	if d.err != nil {
		return nil, d.err
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data", errCorruptIndex)
	}
	var sum [4]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return nil, fmt.Errorf("%w: missing checksum", errCorruptIndex)
	}
	if binary.LittleEndian.Uint32(sum[:]) != crc.Sum32() {
		return nil, fmt.Errorf("%w: checksum mismatch", errCorruptIndex)
	}
	if err := ix.link(); err != nil {
		return nil, err
	}
	ix.buildPathMap()
	return ix, nil
}

// link checks the directory structure of a loaded index and restores parent indexes.
func (ix *Index) link() error {
	n := int64(len(ix.Entries))
	if n == 0 || ix.Entries[0].Path != "/" || !ix.Entries[0].IsDir() {
		return fmt.Errorf("%w: no root directory", errCorruptIndex)
	}
	for i := range ix.Entries {
		e := &ix.Entries[i]
		if !e.IsDir() {
			if e.count != 0 {
				return fmt.Errorf("%w: %s has children", errCorruptIndex, e.Path)
			}
			continue
		}
		f, c := int64(e.first), int64(e.count)
		if c == 0 {
			continue
		}
		if f <= int64(i) || f+c > n {
			return fmt.Errorf("%w: bad children of %s", errCorruptIndex, e.Path)
		}
		for j := f; j < f+c; j++ {
			ix.Entries[j].parent = int32(i)
		}
	}
	return nil
}

type indexDecoder struct {
	r   *bufio.Reader
	err error
}

func (d *indexDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errCorruptIndex, what)
	}
}

func (d *indexDecoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.fail("truncated")
		return nil
	}
	return b
}

// uint reads a uvarint no larger than max.
func (d *indexDecoder) uint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.fail("truncated")
		return 0
	}
	if v > max {
		d.fail("value out of range")
		return 0
	}
	return v
}

func (d *indexDecoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(d.r)
	if err != nil {
		d.fail("truncated")
	}
	return v
}

func (d *indexDecoder) str() string {
	n := d.uint(maxIndexStr)
	if d.err != nil || n == 0 {
		return ""
	}
	return string(d.bytes(int(n)))
}
