package tftp

import (
	"bytes"
	"io"
	"net/netip"
	"strings"
)

// Files resolves a requested file name to its content. The server calls Open only with names
// that passed requestName (no directories, no traversal, no control characters); ok=false makes
// the server answer TFTP error 1 "File not found". Open is called concurrently, one call per
// request, and every call must return a fresh reader: transfers run in parallel.
type Files interface {
	Open(name string) (r io.ReadSeeker, size int64, ok bool)
}

// ClientFiles is Files that also wants to know who asks: a file generated per machine, or one
// only the machine itself may fetch. When Config.Files implements it, the server calls
// OpenFor instead of Open, with the client's address. A returned reader that is an io.Closer
// is closed when the transfer ends.
type ClientFiles interface {
	Files
	OpenFor(name string, client netip.Addr) (r io.ReadSeeker, size int64, ok bool)
}

// FilesFunc adapts a function to Files.
type FilesFunc func(name string) (r io.ReadSeeker, size int64, ok bool)

// Open calls f.
func (f FilesFunc) Open(name string) (io.ReadSeeker, int64, bool) { return f(name) }

// StaticFiles serves exactly the given in-memory files, looked up by exact name. The map is
// copied (the byte slices are not: they must not change afterwards). Keys that requestName
// would reject (containing "/", "\", control characters, or "." and "..") can never be
// requested and are effectively ignored.
func StaticFiles(files map[string][]byte) Files {
	m := make(map[string][]byte, len(files))
	for name, data := range files {
		m[name] = data
	}
	return FilesFunc(func(name string) (io.ReadSeeker, int64, bool) {
		data, ok := m[name]
		if !ok {
			return nil, 0, false
		}
		return bytes.NewReader(data), int64(len(data)), true
	})
}

// maxNameLen bounds the names we look up; our files have short names and a request datagram is
// at most 516 bytes anyway, so anything longer is junk.
const maxNameLen = 255

// requestName turns the file name of a read request into the name Files is asked for, or ""
// when it cannot name a file we serve. Firmware sends either "undionly.kpxe" or
// "/undionly.kpxe" (a DHCP filename with a leading slash), so exactly one leading "/" is
// stripped. "/" separates directories (GRUB reads grub/grub.cfg below its prefix), but every
// part must be a plain name: empty parts, "." and ".." are refused rather than cleaned, so
// "a/../undionly.kpxe" does not become "undionly.kpxe": only exact names match.
func requestName(raw string) string {
	name := strings.TrimPrefix(raw, "/")
	if name == "" || len(name) > maxNameLen {
		return ""
	}
	for i := 0; i < len(name); i++ {
		// Backslash: Windows-style clients (and some firmware) use it as a separator.
		// Control characters (NUL included) have no place in our names and would only reach
		// the logs.
		if c := name[i]; c == '\\' || c < 0x20 || c == 0x7f {
			return ""
		}
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return ""
		}
	}
	return name
}
