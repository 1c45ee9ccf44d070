package distro

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// ISOFS is a read-only view of an ISO's files. The ISO store's persisted index implements it;
// MapFS implements it in memory for tests.
//
// Paths are "/"-rooted, as on the ISO, with the case the image stores. Callers in this
// package look names up case-insensitively when the exact spelling is not found (plain
// ISO 9660 names are upper case, Rock Ridge and Joliet names keep their case), so an
// implementation needs no case folding of its own.
type ISOFS interface {
	// Stat reports a file or directory. ok is false when nothing exists at path. A symbolic
	// link the store can resolve should be reported as its target.
	Stat(path string) (size int64, isDir bool, ok bool)
	// ReadFile returns the whole file, for small configuration files only (grub.cfg,
	// .treeinfo, isolinux.cfg …). A file bigger than max is an error wrapping ErrTooLarge.
	ReadFile(path string, max int64) ([]byte, error)
	// ReadDir returns the names (not paths) in a directory; an error when path is not one.
	ReadDir(path string) ([]string, error)
}

// ErrTooLarge is what ISOFS.ReadFile wraps when a file is bigger than the caller's cap.
var ErrTooLarge = errors.New("file too large")

// MapFile is one file of a MapFS.
type MapFile struct {
	// Data is what ReadFile returns.
	Data []byte
	// Size is the size Stat reports when it is larger than len(Data), so a test can stand in
	// a 2 GiB squashfs without 2 GiB of bytes. Zero means len(Data).
	Size int64
}

// MapFS is an in-memory ISOFS: keys are file paths ("/"-rooted or not); directories are
// implied by the files below them, and a key ending in "/" makes an empty directory. It is
// the test double the package's tests describe distribution layouts with.
type MapFS map[string]MapFile

var _ ISOFS = MapFS(nil)

func (m MapFS) lookup(p string) (MapFile, bool) {
	if f, ok := m[p]; ok {
		return f, true
	}
	if f, ok := m[strings.TrimPrefix(p, "/")]; ok {
		return f, true
	}
	for k, f := range m {
		if !strings.HasSuffix(k, "/") && cleanPath(k) == p {
			return f, true
		}
	}
	return MapFile{}, false
}

// key is a map key as a clean "/"-rooted path, keeping the trailing "/" of an empty
// directory.
func (m MapFS) key(k string) string {
	c := cleanPath(k)
	if strings.HasSuffix(k, "/") && c != "/" {
		c += "/"
	}
	return c
}

// Stat implements ISOFS.
func (m MapFS) Stat(p string) (int64, bool, bool) {
	p = cleanPath(p)
	if p == "/" {
		return 0, true, true
	}
	if f, ok := m.lookup(p); ok {
		if f.Size > int64(len(f.Data)) {
			return f.Size, false, true
		}
		return int64(len(f.Data)), false, true
	}
	prefix := p + "/"
	for k := range m {
		if strings.HasPrefix(m.key(k), prefix) {
			return 0, true, true
		}
	}
	return 0, false, false
}

// ReadFile implements ISOFS.
func (m MapFS) ReadFile(p string, max int64) ([]byte, error) {
	f, ok := m.lookup(cleanPath(p))
	if !ok {
		return nil, fmt.Errorf("read %s: %w", p, fs.ErrNotExist)
	}
	size := int64(len(f.Data))
	if f.Size > size {
		size = f.Size
	}
	if size > max {
		return nil, fmt.Errorf("read %s: %d bytes, cap %d: %w", p, size, max, ErrTooLarge)
	}
	return append([]byte(nil), f.Data...), nil
}

// ReadDir implements ISOFS.
func (m MapFS) ReadDir(p string) ([]string, error) {
	p = cleanPath(p)
	if _, isDir, ok := m.Stat(p); !ok || !isDir {
		return nil, fmt.Errorf("readdir %s: %w", p, fs.ErrNotExist)
	}
	prefix := p
	if prefix != "/" {
		prefix += "/"
	}
	seen := map[string]bool{}
	for k := range m {
		k = m.key(k)
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		rest := k[len(prefix):]
		name, _, _ := strings.Cut(rest, "/")
		if name != "" {
			seen[name] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// cleanPath makes p "/"-rooted and clean; ".." cannot climb above the root.
func cleanPath(p string) string {
	return path.Clean("/" + strings.ReplaceAll(p, "\\", "/"))
}

// Work limits for one Detect or Recipe call. A hostile image could otherwise make detection
// read every config it names or walk directories forever; these keep one call to a few
// milliseconds and a few MiB whatever the ISO holds.
const (
	maxOps         = 4096    // ISOFS calls per Detect/Recipe
	maxConfigBytes = 1 << 20 // one config file
	maxReadBytes   = 8 << 20 // all config files together
	maxDirNames    = 4096    // names kept from one directory listing
)

// view wraps an ISOFS with case-insensitive lookups, caches and a work budget. It is not safe
// for concurrent use; every Detect/Recipe call makes its own.
type view struct {
	fs    ISOFS
	ops   int
	bytes int64
	dirs  map[string][]string // actual dir path → names
	found map[string]string   // cleaned request → actual path, "" when missing
	reads map[string][]byte
}

func newView(fsys ISOFS) *view {
	return &view{fs: fsys, dirs: map[string][]string{}, found: map[string]string{}, reads: map[string][]byte{}}
}

func (v *view) spend() bool {
	if v.ops >= maxOps {
		return false
	}
	v.ops++
	return true
}

// list returns the names in the directory at the actual path dir.
func (v *view) list(dir string) []string {
	if names, ok := v.dirs[dir]; ok {
		return names
	}
	var names []string
	if v.spend() {
		if n, err := v.fs.ReadDir(dir); err == nil {
			if len(n) > maxDirNames {
				n = n[:maxDirNames]
			}
			names = n
		}
	}
	v.dirs[dir] = names
	return names
}

// resolve finds p on the image: the exact spelling first, then each element compared without
// case. It returns the path as the image stores it.
func (v *view) resolve(p string) (string, bool) {
	p = cleanPath(p)
	if actual, ok := v.found[p]; ok {
		return actual, actual != ""
	}
	actual := v.resolveUncached(p)
	v.found[p] = actual
	return actual, actual != ""
}

func (v *view) resolveUncached(p string) string {
	if p == "/" {
		return "/"
	}
	if !v.spend() {
		return ""
	}
	if _, _, ok := v.fs.Stat(p); ok {
		return p
	}
	parent, ok := v.resolve(path.Dir(p))
	if !ok {
		return ""
	}
	base := path.Base(p)
	for _, n := range v.list(parent) {
		if strings.EqualFold(n, base) {
			return path.Join(parent, n)
		}
	}
	return ""
}

// stat resolves p and reports it.
func (v *view) stat(p string) (actual string, size int64, isDir bool, ok bool) {
	actual, ok = v.resolve(p)
	if !ok || !v.spend() {
		return "", 0, false, false
	}
	size, isDir, ok = v.fs.Stat(actual)
	return actual, size, isDir, ok
}

// file reports whether a regular file exists at p and returns its stored path.
func (v *view) file(p string) (string, bool) {
	actual, _, isDir, ok := v.stat(p)
	return actual, ok && !isDir
}

// dir reports whether a directory exists at p and returns its stored path.
func (v *view) dir(p string) (string, bool) {
	actual, _, isDir, ok := v.stat(p)
	return actual, ok && isDir
}

// size is the size of the file at p, 0 when missing.
func (v *view) size(p string) int64 {
	_, size, isDir, ok := v.stat(p)
	if !ok || isDir {
		return 0
	}
	return size
}

// read returns a small config file, nil when missing, too big or over budget.
func (v *view) read(p string) []byte {
	actual, ok := v.file(p)
	if !ok {
		return nil
	}
	if b, ok := v.reads[actual]; ok {
		return b
	}
	left := maxReadBytes - v.bytes
	if left <= 0 || !v.spend() {
		return nil
	}
	max := int64(maxConfigBytes)
	if left < max {
		max = left
	}
	b, err := v.fs.ReadFile(actual, max)
	if err != nil || int64(len(b)) > max {
		v.reads[actual] = nil
		return nil
	}
	v.bytes += int64(len(b))
	v.reads[actual] = b
	return b
}

// glob returns the stored paths of the files in dir whose lower-case names match pattern
// (path.Match syntax), sorted.
func (v *view) glob(dir, pattern string) []string {
	d, ok := v.dir(dir)
	if !ok {
		return nil
	}
	var out []string
	for _, n := range v.list(d) {
		if m, _ := path.Match(pattern, strings.ToLower(n)); m {
			if p, ok := v.file(path.Join(d, n)); ok {
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}
