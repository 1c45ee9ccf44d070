// Package iso9660 reads ISO 9660 images: the volume descriptors, directory records, Rock
// Ridge (POSIX names, modes, times, symlinks, relocated directories) and Joliet names, into
// an Index, the file table of an image (BuildIndex); a compact binary form of the Index that
// survives restarts and is checked when read back (Index.WriteTo, ReadIndex); and File, a
// file inside an image served from its byte extents of the image, with sendfile(2) when the
// image is a local *os.File (OpenFile). It does no other I/O: callers hand it an io.ReaderAt
// and decide where images and indexes live (internal/isostore keeps the catalog).
//
// Everything here takes untrusted input (uploaded images, index files on disk): every length
// is checked against what it indexes, loops are bounded, and hostile input yields an error
// wrapping ErrBadISO, never a panic (fuzz targets FuzzBuildIndex and FuzzReadIndex).
//
// Why our own decoder rather than github.com/kdomanski/iso9660 v0.4.0 (read at
// $GOMODCACHE/github.com/kdomanski/iso9660@v0.4.0): besides the documented bugs (Rock Ridge
// names from the wrong sector because DirectoryEntry.SystemUse aliases a buffer reused for the
// next sector; no Joliet; multi-extent parts as separate files), its splitSystemUseEntries
// follows a CE continuation recursively with no hop limit and allocates the CE length
// (up to 4 GiB) before reading. A CE that points at itself recurses until the Go stack limit,
// which is a fatal error that recover() cannot catch, so "recover around the library" does
// not make it safe for uploaded images. It also lacks SL (symlinks), TF (times) and
// CL/RE (relocated directories). Fixing all that would replace most of the reader; the
// format is small enough to decode directly from the specs.
package iso9660

import (
	"errors"
	"io"
)

// Errors of this package; test for them with errors.Is. internal/isostore re-exports them, so
// the HTTP layer maps them to statuses in one place.
var (
	ErrNotFound = errors.New("not found")                   // no such path in the image
	ErrBadPath  = errors.New("invalid path")                // NUL, "..", too long
	ErrNotDir   = errors.New("not a directory")             // a path element is a file
	ErrIsDir    = errors.New("is a directory")              // OpenFile of a directory
	ErrBadISO   = errors.New("not a usable ISO 9660 image") // the image cannot be indexed
)

// ReaderAt is an open image: random access reads, then Close. *os.File is one; OpenFile
// uses sendfile(2) only for that one.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
}
