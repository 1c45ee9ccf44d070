package iso9660

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// NameSource says which naming layer of the image an Index took its names from.
type NameSource string

// Name sources, in order of preference.
const (
	NamesRockRidge NameSource = "rockridge" // RRIP (POSIX names, modes, symlinks)
	NamesJoliet    NameSource = "joliet"    // Joliet (UCS-2 names), when there is no Rock Ridge
	NamesISO9660   NameSource = "iso9660"   // plain ISO 9660 identifiers
)

// Extent is a run of bytes of the image file: a file inside the ISO is one or more extents.
type Extent struct {
	Offset int64 // byte offset in the image file
	Length int64 // bytes
}

// Entry is one file, directory or symlink of an ISO image.
type Entry struct {
	// Path is clean, "/"-rooted and spelled as the image names it ("/" is the root).
	Path string
	// Mode carries the type (fs.ModeDir, fs.ModeSymlink, or none for a regular file) and,
	// with Rock Ridge, the recorded permissions (0444/0555 otherwise).
	Mode fs.FileMode
	// Size in bytes of a regular file (0 for directories and symlinks).
	Size int64
	// ModTime is the Rock Ridge modification time, else the directory record's time; zero
	// when the image records none.
	ModTime time.Time
	// Extents hold a regular file's data in order; files over 4 GiB have several, empty
	// files none. Shared with the Index: do not modify.
	Extents []Extent
	// Target is a symlink's target as recorded; Resolved is the path of the non-symlink
	// entry it finally leads to inside the image, "" when the link is broken (dangling,
	// looping, escaping the image root, or host-specific).
	Target, Resolved string

	parent       int32 // index of the parent directory (the root is its own parent)
	first, count int32 // directories: their children are Entries[first : first+count]
}

// Name is the last element of the entry's path ("/" for the root).
func (e *Entry) Name() string { return path.Base(e.Path) }

// IsDir reports whether the entry is a directory.
func (e *Entry) IsDir() bool { return e.Mode.IsDir() }

// IsRegular reports whether the entry is a regular file.
func (e *Entry) IsRegular() bool { return e.Mode.IsRegular() }

// IsSymlink reports whether the entry is a symbolic link.
func (e *Entry) IsSymlink() bool { return e.Mode&fs.ModeSymlink != 0 }

// Problem is a part of an image the index left out or could not make sense of, with why.
type Problem struct {
	Path   string
	Reason string
}

// Index is the file table of one ISO image: built once by BuildIndex, persisted, then
// consulted for every request. An Index is immutable after it is built or loaded and safe for
// concurrent use.
type Index struct {
	Label      string     // volume identifier
	VolumeSize int64      // bytes the primary volume descriptor claims
	ImageSize  int64      // bytes of the image file that was indexed
	Names      NameSource // where the names came from
	// Entries[0] is the root directory. Every directory's children are contiguous and sorted
	// by name.
	Entries  []Entry
	Problems []Problem

	byPath     map[string]int32
	foldOnce   sync.Once
	foldedPath map[string]int32 // lower-cased paths, built on demand for NamesISO9660
}

// FileCount is the number of regular files.
func (ix *Index) FileCount() int {
	n := 0
	for i := range ix.Entries {
		if ix.Entries[i].IsRegular() {
			n++
		}
	}
	return n
}

// Limits that keep a hostile image from consuming unbounded memory or time. Each is far
// above what real installer images use (the largest DVDs have ~100k entries, depth < 20).
const (
	maxEntries  = 4_000_000
	maxDepth    = 128
	maxPathLen  = 4096
	maxCEHops   = 32        // continuation areas per record (Linux's isofs uses the same)
	maxDirBytes = 256 << 20 // one directory extent
	maxLinkHops = 40        // symlinks followed per lookup, as Linux's MAXSYMLINKS
)

// ErrUDFOnly is returned (wrapped in ErrBadISO) for images whose only usable file system is
// UDF, such as Windows installer images.
var ErrUDFOnly = errors.New("UDF-only image (e.g. Windows installer) is not supported")

// BuildIndex reads the ISO 9660 image in r (size bytes) once and returns its file table.
//
// Names come from Rock Ridge when the image has it, else from Joliet, else from the ISO 9660
// identifiers (";1" and the trailing "." of extension-less names stripped). Multi-extent
// files (over 4 GiB) are joined into one entry with several extents. Symlinks are resolved
// inside the image only.
//
// What counts as a broken image and what is only left out: an image that is not ISO 9660,
// that is UDF-only, whose logical block size is not 2048, or that is shorter than its
// volume claims (a truncated upload) is an error wrapping ErrBadISO, and so is one with more
// than 4 million entries. Damage confined to one entry is recorded in Index.Problems and
// the entry left out, so that one bad record does not make the rest of an installer
// unusable: a file whose extents run past the end of the image, an interleaved file, a
// device node, a directory reached a second time (a loop or a hard-linked directory), a
// directory deeper than 128 levels, a duplicate name, a multi-extent file missing its last
// part, a symlink that dangles, loops or escapes the root (kept, with Resolved empty).
// Errors that do not wrap ErrBadISO are I/O errors from r.
func BuildIndex(r io.ReaderAt, size int64) (*Index, error) {
	w := &walker{r: r, size: size, visited: map[int64]bool{}, budget: 4*size + 64<<20}
	ix, err := w.build()
	if err != nil {
		return nil, err
	}
	ix.resolveSymlinks()
	return ix, nil
}

func badISO(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadISO, fmt.Sprintf(format, args...))
}

// walker holds the state of one index build.
type walker struct {
	r        io.ReaderAt
	size     int64
	joliet   bool
	rr       bool
	suspSkip int
	visited  map[int64]bool // directory extents already read
	budget   int64          // bytes we may still read for directories and continuation areas
	ix       *Index
	ceBuf    [sectorSize]byte
}

// readAt reads exactly len(b) bytes at off, charging the read budget.
func (w *walker) readAt(b []byte, off int64) error {
	w.budget -= int64(len(b))
	if w.budget < 0 {
		return badISO("directory data exceeds what an image of %d bytes can hold", w.size)
	}
	if off < 0 || off+int64(len(b)) > w.size {
		return badISO("read of %d bytes at %d past end of image", len(b), off)
	}
	n, err := w.r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read image at %d: %w", off, err)
}

func (w *walker) build() (*Index, error) {
	if w.size < (firstVDSector+1)*sectorSize {
		return nil, badISO("%d bytes is too small for an ISO 9660 image", w.size)
	}
	var vds volumeDescriptors
	sec := make([]byte, sectorSize)
	for i := int64(0); i < maxVDSectors; i++ {
		off := (firstVDSector + i) * sectorSize
		if off+sectorSize > w.size {
			break
		}
		if err := w.readAt(sec, off); err != nil {
			return nil, err
		}
		if !classifyDescriptor(&vds, sec) {
			break
		}
	}
	if vds.primary == nil {
		if vds.udf {
			return nil, fmt.Errorf("%w: %w", ErrBadISO, ErrUDFOnly)
		}
		return nil, badISO("no ISO 9660 primary volume descriptor at sector 16")
	}
	pvd, err := parseVolume(vds.primary, false)
	if err != nil {
		return nil, badISO("primary volume descriptor: %v", err)
	}
	if pvd.blockSize != sectorSize {
		return nil, badISO("logical block size %d is not supported (only 2048)", pvd.blockSize)
	}
	volBytes := pvd.blocks * sectorSize
	if volBytes > w.size {
		return nil, badISO("truncated: the volume claims %d bytes but the image has %d", volBytes, w.size)
	}
	w.ix = &Index{Label: pvd.label, VolumeSize: volBytes, ImageSize: w.size, Names: NamesISO9660}

	root, err := parseDirRecord(pvd.rootRecord)
	if err != nil {
		return nil, badISO("root directory record: %v", err)
	}
	if err := w.detectRockRidge(root); err != nil {
		return nil, err
	}
	if w.rr {
		w.ix.Names = NamesRockRidge
	} else if vds.joliet != nil {
		jv, err := parseVolume(vds.joliet, true)
		if err == nil {
			if jr, err := parseDirRecord(jv.rootRecord); err == nil && w.dirInImage(jr) {
				root, w.joliet, w.ix.Names = jr, true, NamesJoliet
				if w.ix.Label == "" {
					w.ix.Label = jv.label
				}
			}
		}
	}
	if !w.dirInImage(root) {
		return nil, badISO("root directory extent outside the image")
	}
	w.ix.Entries = append(w.ix.Entries, Entry{Path: "/", Mode: fs.ModeDir | 0o555, ModTime: root.mtime})
	if err := w.walk(root); err != nil {
		return nil, err
	}
	if vds.udf && w.udfBridgeStub() {
		return nil, fmt.Errorf("%w: %w", ErrBadISO, ErrUDFOnly)
	}
	return w.ix, nil
}

// udfBridgeStub reports whether the ISO 9660 side of a UDF image is only the placeholder
// Windows images carry: a lone README.TXT telling the reader to use UDF.
func (w *walker) udfBridgeStub() bool {
	e := w.ix.Entries
	if len(e) == 1 {
		return true
	}
	return len(e) == 2 && e[1].IsRegular() && strings.EqualFold(e[1].Name(), "README.TXT")
}

func (w *walker) dirInImage(r dirRecord) bool {
	return r.isDir() && r.length <= maxDirBytes && r.extent*sectorSize+r.length <= w.size
}

// detectRockRidge reads the root's "." record: Rock Ridge is in use when its system use area
// starts with SUSP's SP entry and carries an ER naming RRIP (RRIP 1.09 writers without ER are
// recognised by an RR, PX or NM entry there instead).
func (w *walker) detectRockRidge(root dirRecord) error {
	if !w.dirInImage(root) || root.length < 34 {
		return nil
	}
	sec := make([]byte, sectorSize)
	if err := w.readAt(sec, root.extent*sectorSize); err != nil {
		return err
	}
	dot, err := parseDirRecord(sec)
	if err != nil || !dot.isDot() {
		return nil
	}
	skip, ok := spSkip(dot.systemUse)
	if !ok {
		return nil
	}
	found := false
	err = w.eachSUSP(dot.systemUse, func(e suspEntry) {
		switch e.sig {
		case "ER":
			if isRockRidgeER(e.data) {
				found = true
			}
		case "RR", "PX", "NM":
			found = true
		}
	})
	if err != nil {
		return err
	}
	w.rr, w.suspSkip = found, skip
	return nil
}

// eachSUSP calls fn for every SUSP entry of a system use area and of the continuation areas
// it chains to. Entries' data alias scratch buffers: fn must copy what it keeps.
func (w *walker) eachSUSP(area []byte, fn func(suspEntry)) error {
	entries, ce := splitSUSP(area)
	for hop := 0; ; hop++ {
		for _, e := range entries {
			fn(e)
		}
		// A continuation area lies within one logical block (Linux's isofs rejects others).
		if ce == nil || hop >= maxCEHops || ce.length <= 0 || ce.offset+ce.length > sectorSize {
			return nil
		}
		off := ce.block*sectorSize + ce.offset
		if off+ce.length > w.size {
			return nil
		}
		buf := w.ceBuf[:ce.length]
		if err := w.readAt(buf, off); err != nil {
			return err
		}
		entries, ce = splitSUSP(buf)
	}
}

// dirJob is a directory whose records are still to be read.
type dirJob struct {
	entry  int32
	rec    dirRecord
	depth  int
	parent int32
}

// child is one decoded, self-contained directory record (nothing aliases read buffers).
type child struct {
	name      string
	rawIdent  string
	dir       bool
	dirRec    dirRecord // directories: where to read them
	mode      fs.FileMode
	modeSet   bool
	mtime     time.Time
	extents   []Extent
	size      int64
	symlink   bool
	target    string
	multiOpen bool // a multi-extent file still waiting for its last part
	problem   string
}

func (w *walker) walk(root dirRecord) error {
	queue := []dirJob{{entry: 0, rec: root, depth: 0}}
	w.visited[root.extent] = true
	buf := make([]byte, 64<<10)
	for len(queue) > 0 {
		job := queue[0]
		queue = queue[1:]
		dirPath := w.ix.Entries[job.entry].Path
		kids, err := w.readDir(job.rec, dirPath, buf)
		if err != nil {
			return err
		}
		slices.SortStableFunc(kids, func(a, b child) int { return strings.Compare(a.name, b.name) })
		first := int32(len(w.ix.Entries))
		var prev string
		for i := range kids {
			k := &kids[i]
			p := path.Join(dirPath, k.name)
			if i > 0 && k.name == prev {
				w.problem(p, "duplicate name in directory")
				continue
			}
			prev = k.name
			if len(p) > maxPathLen {
				w.problem(p[:64]+"…", "path longer than 4096 bytes")
				continue
			}
			if len(w.ix.Entries) >= maxEntries {
				return badISO("more than %d entries", maxEntries)
			}
			e := Entry{Path: p, Mode: k.mode, ModTime: k.mtime, parent: job.entry}
			switch {
			case k.dir:
				if !k.modeSet {
					e.Mode = 0o555
				}
				e.Mode = e.Mode.Perm() | e.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) | fs.ModeDir
				if w.visited[k.dirRec.extent] {
					w.problem(p, "directory loop or hard-linked directory: not descended")
				} else if job.depth+1 > maxDepth {
					w.problem(p, "directory deeper than 128 levels: not descended")
				} else if !w.dirInImage(k.dirRec) {
					w.problem(p, "directory extent outside the image")
				} else {
					w.visited[k.dirRec.extent] = true
					queue = append(queue, dirJob{entry: int32(len(w.ix.Entries)), rec: k.dirRec, depth: job.depth + 1})
				}
			case k.symlink:
				if !k.modeSet {
					e.Mode = 0o777
				}
				e.Mode = e.Mode.Perm() | fs.ModeSymlink
				e.Target = k.target
			default:
				if !k.modeSet {
					e.Mode = 0o444
				}
				e.Mode = e.Mode.Perm() | e.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
				e.Size, e.Extents = k.size, k.extents
			}
			w.ix.Entries = append(w.ix.Entries, e)
		}
		w.ix.Entries[job.entry].first = first
		w.ix.Entries[job.entry].count = int32(len(w.ix.Entries)) - first
	}
	return nil
}

func (w *walker) problem(p, reason string) { w.ix.addProblem(p, reason) }

// addProblem records a problem; past 10,000 a hostile image gets no more (they are for
// humans, not for serving).
func (ix *Index) addProblem(p, reason string) {
	if len(ix.Problems) < 10_000 {
		ix.Problems = append(ix.Problems, Problem{Path: p, Reason: reason})
	}
}

// readDir decodes the records of one directory extent. Records never straddle a sector
// (ECMA-119 6.8.1.1); a zero length byte means the rest of the sector is padding.
func (w *walker) readDir(rec dirRecord, dirPath string, buf []byte) ([]child, error) {
	var kids []child
	var open *child // a multi-extent file still collecting parts
	closeOpen := func() {
		if open != nil {
			w.problem(path.Join(dirPath, open.name), "multi-extent file without its final part")
			open = nil
		}
	}
	start := rec.extent * sectorSize
	for done := int64(0); done < rec.length; {
		n := min(int64(len(buf)), rec.length-done)
		chunk := buf[:n]
		if err := w.readAt(chunk, start+done); err != nil {
			return nil, err
		}
		done += n
		for s := 0; s < len(chunk); s += sectorSize {
			sec := chunk[s:min(s+sectorSize, len(chunk))]
			for pos := 0; pos < len(sec) && sec[pos] != 0; {
				rl := int(sec[pos])
				if pos+rl > len(sec) {
					w.problem(dirPath, "directory record crosses a sector boundary")
					break
				}
				r, err := parseDirRecord(sec[pos : pos+rl])
				pos += rl
				if err != nil {
					w.problem(dirPath, "bad directory record: "+err.Error())
					continue
				}
				if r.isDot() || r.isDot2() {
					continue
				}
				if open != nil {
					if string(r.ident) == open.rawIdent && !r.isDir() {
						w.addExtent(open, r)
						if r.flags&flagMultiExtent == 0 {
							open.multiOpen = false
							if open.problem == "" {
								kids = append(kids, *open)
							} else {
								w.problem(path.Join(dirPath, open.name), open.problem)
							}
							open = nil
						}
						continue
					}
					closeOpen()
				}
				k, keep, err := w.decodeRecord(r, dirPath)
				if err != nil {
					return nil, err
				}
				if !keep {
					continue
				}
				if k.multiOpen {
					open = &k
					continue
				}
				if k.problem != "" {
					w.problem(path.Join(dirPath, k.name), k.problem)
					continue
				}
				kids = append(kids, k)
			}
		}
	}
	closeOpen()
	return kids, nil
}

func (w *walker) addExtent(k *child, r dirRecord) {
	if r.unitSize != 0 {
		k.problem = "interleaved file (not supported)"
		return
	}
	if r.length == 0 {
		return
	}
	off := r.extent * sectorSize
	if off+r.length > w.size {
		k.problem = "file extent past end of image"
		return
	}
	k.extents = append(k.extents, Extent{Offset: off, Length: r.length})
	k.size += r.length
}

// decodeRecord turns one directory record into a child. keep is false for records that are
// not entries of their own: associated files, relocated-directory placeholders and "."/".."
// under Rock Ridge.
func (w *walker) decodeRecord(r dirRecord, dirPath string) (k child, keep bool, err error) {
	if r.flags&flagAssociated != 0 {
		return k, false, nil
	}
	k.rawIdent = string(r.ident)
	k.mtime = r.mtime
	k.dir = r.isDir()
	k.dirRec = r
	k.dirRec.ident, k.dirRec.systemUse = nil, nil // they alias the directory read buffer
	ri := newRRInfo()
	if w.rr && len(r.systemUse) > w.suspSkip {
		if err := w.eachSUSP(r.systemUse[w.suspSkip:], ri.addEntry); err != nil {
			return k, false, err
		}
	}
	if ri.relocated || ri.nameDot {
		return k, false, nil
	}
	if ri.childLink >= 0 && !k.dir {
		// RRIP 4.1.5.1: a deep directory moved elsewhere (rr_moved); this file-looking record
		// stands for it. Its own "." record gives the directory's length.
		d, ok, err := w.dotRecord(ri.childLink)
		if err != nil {
			return k, false, err
		}
		k.dir = true
		if ok {
			k.dirRec = d
		} else {
			k.dirRec = dirRecord{extent: -1, flags: flagDirectory}
		}
	}
	if ri.nameSet {
		k.name = string(ri.name)
	} else {
		k.name = isoName(r.ident, w.joliet, k.dir)
	}
	switch {
	case k.name == "" || k.name == "." || k.name == "..":
		k.name = fmt.Sprintf("%q", k.rawIdent)
		k.problem = "invalid name"
		return k, true, nil
	case strings.ContainsAny(k.name, "/\x00"):
		k.name = strings.NewReplacer("/", "%2F", "\x00", "%00").Replace(k.name)
		k.problem = "name contains '/' or NUL"
		return k, true, nil
	}
	if !ri.mtime.IsZero() {
		k.mtime = ri.mtime
	}
	if ri.modeSet {
		m, ok := posixMode(ri.mode)
		if !ok {
			k.problem = "device node, FIFO or socket"
			return k, true, nil
		}
		k.mode, k.modeSet = m, true
		if m&fs.ModeSymlink != 0 && !k.dir {
			k.symlink = true
		}
	}
	if ri.symlinkSet && !k.dir {
		k.symlink = true
	}
	if k.symlink {
		if !ri.slBad {
			k.target = string(ri.symlink)
		}
		return k, true, nil
	}
	if k.dir {
		return k, true, nil
	}
	w.addExtent(&k, r)
	if r.flags&flagMultiExtent != 0 {
		k.multiOpen = true
	}
	return k, true, nil
}

// dotRecord reads the "." record of the directory at block.
func (w *walker) dotRecord(block int64) (dirRecord, bool, error) {
	if block*sectorSize+sectorSize > w.size {
		return dirRecord{}, false, nil
	}
	sec := make([]byte, sectorSize)
	if err := w.readAt(sec, block*sectorSize); err != nil {
		return dirRecord{}, false, err
	}
	d, err := parseDirRecord(sec)
	if err != nil || !d.isDot() || !d.isDir() {
		return dirRecord{}, false, nil
	}
	d.ident, d.systemUse = nil, nil // they alias sec
	d.extent = block                // trust the link's location over a "." that disagrees
	return d, true, nil
}

// resolveSymlinks fills in Resolved for every symlink and records broken ones.
func (ix *Index) resolveSymlinks() {
	ix.buildPathMap()
	for i := range ix.Entries {
		e := &ix.Entries[i]
		if !e.IsSymlink() {
			continue
		}
		j, err := ix.resolve(e.Path, true)
		if err != nil {
			ix.addProblem(e.Path, "broken symlink to "+e.Target+": "+err.Error())
			continue
		}
		e.Resolved = ix.Entries[j].Path
	}
}

func (ix *Index) buildPathMap() {
	ix.byPath = make(map[string]int32, len(ix.Entries))
	for i := range ix.Entries {
		ix.byPath[ix.Entries[i].Path] = int32(i)
	}
}

// Errors of symlink resolution (wrapped in ErrNotFound by lookups).
var (
	errLinkLoop   = errors.New("too many levels of symbolic links")
	errLinkEscape = errors.New("symlink leads outside the image")
	errLinkBad    = errors.New("host-specific or empty symlink target")
	errNoEntry    = errors.New("no such entry")
	errNotDir     = errors.New("not a directory")
)

// resolve walks the components of the absolute path p from the root, following symlinks
// in the middle of p and, when followLast, at its end. ".." in link targets goes to the
// parent of the directory actually reached (POSIX semantics), never above the root.
func (ix *Index) resolve(p string, followLast bool) (int32, error) {
	todo := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := int32(0)
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if cur == 0 {
				return 0, errLinkEscape
			}
			cur = ix.Entries[cur].parent
			continue
		}
		d := &ix.Entries[cur]
		if !d.IsDir() {
			return 0, errNotDir
		}
		next, ok := ix.child(cur, c)
		if !ok {
			return 0, errNoEntry
		}
		e := &ix.Entries[next]
		if e.IsSymlink() && (len(todo) > 0 || followLast) {
			hops++
			if hops > maxLinkHops {
				return 0, errLinkLoop
			}
			if e.Target == "" {
				return 0, errLinkBad
			}
			if strings.HasPrefix(e.Target, "/") {
				// Absolute targets are taken relative to the image root, as in a chroot:
				// they name the image's own files when it is mounted as /.
				cur = 0
			}
			todo = append(strings.Split(e.Target, "/"), todo...)
			if len(todo) > maxPathLen {
				return 0, errLinkLoop
			}
			continue
		}
		cur = next
	}
	return cur, nil
}

// child finds the entry named name in directory dir.
func (ix *Index) child(dir int32, name string) (int32, bool) {
	dp := ix.Entries[dir].Path
	var p string
	if dp == "/" {
		p = "/" + name
	} else {
		p = dp + "/" + name
	}
	if i, ok := ix.byPath[p]; ok {
		return i, true
	}
	if ix.Names == NamesISO9660 {
		// Plain ISO 9660 names are upper case, while boot configs and installers often ask
		// for them in lower case (Linux mounts such images with map=normal, which folds
		// them). Fall back to a case-insensitive match.
		ix.foldOnce.Do(func() {
			ix.foldedPath = make(map[string]int32, len(ix.Entries))
			for i := range ix.Entries {
				ix.foldedPath[strings.ToLower(ix.Entries[i].Path)] = int32(i)
			}
		})
		if i, ok := ix.foldedPath[strings.ToLower(p)]; ok && ix.Entries[i].parent == dir {
			return i, true
		}
	}
	return 0, false
}

// cleanLookupPath validates a path asked for by a client and returns its clean, "/"-rooted
// form. ".." is refused rather than cleaned away: it has no business in a request for a file
// inside an image.
func cleanLookupPath(p string) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL in path", ErrBadPath)
	}
	if len(p) > maxPathLen {
		return "", fmt.Errorf("%w: path longer than %d bytes", ErrBadPath, maxPathLen)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: %q has a \"..\" element", ErrBadPath, p)
		}
	}
	return path.Clean("/" + p), nil
}

// Lookup returns the entry at p, following symlinks (as a web server over a mounted image
// would). p may omit the leading "/"; paths with NUL or ".." fail with ErrBadPath; anything
// missing, or reached only through a broken symlink, fails with ErrNotFound.
func (ix *Index) Lookup(p string) (*Entry, error) {
	clean, err := cleanLookupPath(p)
	if err != nil {
		return nil, err
	}
	i, err := ix.resolve(clean, true)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotFound, clean, err)
	}
	e := ix.Entries[i]
	return &e, nil
}

// ReadDir lists the directory at p (symlinks followed), sorted by name. Symlinks in the
// listing are not followed: their Resolved field says where they lead.
func (ix *Index) ReadDir(p string) ([]Entry, error) {
	d, err := ix.Lookup(p)
	if err != nil {
		return nil, err
	}
	if !d.IsDir() {
		return nil, fmt.Errorf("%w: %s", ErrNotDir, d.Path)
	}
	return slices.Clone(ix.Entries[d.first : d.first+d.count]), nil
}
