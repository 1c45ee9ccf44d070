package iso9660

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// File is an open file inside an ISO image, for http.ServeContent: it is an
// io.ReadSeeker over the file's extents of the image, and it lets net/http use sendfile(2).
//
// How sendfile happens: ServeContent seeks to the start of the range and copies with
// io.CopyN(w, file, n), so the response writer's ReadFrom gets an *io.LimitedReader around
// File. net/http passes that to (*net.TCPConn).ReadFrom, whose sendfile path (as of Go 1.26,
// net/sendfile.go) unwraps the LimitedReader and accepts any source implementing
// syscall.Conn, then sends N bytes from the source descriptor's *current offset* (Linux
// sendfile with a nil offset). File therefore keeps the image's *os.File positioned at
// extent start + position (Seek moves it, Read advances it, and Read derives its position
// from it, since sendfile advances it behind File's back) and returns that file's
// SyscallConn. The first 512 bytes of a response go through Read (net/http sniffs them
// before switching to ReadFrom); the rest is sendfile. An io.SectionReader cannot do this:
// its reads are preads that never move the descriptor.
//
// Only files stored in one extent take that path; a multi-extent file (over 4 GiB) makes
// SyscallConn fail, which tells net to fall back to copying through Read. WriteTo (used by
// io.Copy when File is not wrapped) sends each extent with sendfile regardless.
//
// The one misuse to avoid: handing net a File inside a LimitedReader whose N exceeds the
// bytes left in the file would let sendfile run past the file's end into the rest of the
// image. ServeContent never does that (N is the range length, clamped to the size).
//
// Each File owns its descriptor while it is open, because sendfile works from the
// descriptor's offset, which sharing a descriptor between requests would race on. Close calls
// the release function OpenFile got, with which internal/isostore takes an uploaded image's
// descriptor back for a later request (Store.openPooled): open(2) with its path walk was a
// tenth of a 64 KiB Range request's CPU.
//
// Seeks cost no system call: the position is kept here and the descriptor is moved only when
// it must hold it — when net asks for SyscallConn to sendfile from it. ServeContent seeks three
// times per request (to the end for the size, back, to the range's start); those were three
// lseek(2)s of each 64 KiB Range request. Read uses pread(2), so it needs no lseek either.
//
// All of the above needs the image to be a local *os.File. An image that is not a local file
// (an object in a bucket, say) is any ReaderAt: File then reads it with ReadAt at a position of its
// own, SyscallConn declines, and net/http copies through Read.
type File struct {
	r       ReaderAt
	f       *os.File             // r when it is a local file: the sendfile path; nil otherwise
	release func(ReaderAt) error // Close's action: close r, or hand it back for reuse
	closed  bool
	entry   Entry
	etag    string
	single  bool  // a local file with zero or one extent: sendfile may read the descriptor
	start   int64 // single: the extent's bounds in the image
	end     int64
	pos     int64 // the position, unless fdPos
	fdPos   bool  // single: the descriptor's offset holds the position (sendfile moves it)
}

var (
	_ io.ReadSeekCloser = (*File)(nil)
	_ io.ReaderAt       = (*File)(nil)
	_ io.WriterTo       = (*File)(nil)
	_ syscall.Conn      = (*File)(nil)
)

// errNoSendfile makes net's sendfile path decline a multi-extent File or one whose image is
// not a local file.
var errNoSendfile = errors.New("iso9660: multi-extent or non-local file: no sendfile through ReadFrom")

// OpenFile returns the file e of the image r, for serving with the entity tag etag. The File
// owns r until Close, which hands it to release (nil: r.Close), e.g. to keep a local image's
// descriptor for the next request.
func OpenFile(r ReaderAt, e Entry, etag string, release func(ReaderAt) error) (*File, error) {
	if release == nil {
		release = ReaderAt.Close
	}
	fl := &File{r: r, release: release, entry: e, etag: etag}
	fl.f, _ = r.(*os.File)
	if fl.f == nil {
		return fl, nil
	}
	switch len(e.Extents) {
	case 0:
		fl.single = true
	case 1:
		fl.single = true
		fl.start, fl.end = e.Extents[0].Offset, e.Extents[0].Offset+e.Extents[0].Length
	}
	return fl, nil
}

// Entry is the index entry of the file (its Path is the real path, symlinks resolved).
func (f *File) Entry() *Entry { e := f.entry; return &e }

// Name is the file's base name.
func (f *File) Name() string { return f.entry.Name() }

// Size is the file's length in bytes.
func (f *File) Size() int64 { return f.entry.Size }

// ModTime is the file's modification time as recorded in the image (for Last-Modified).
func (f *File) ModTime() time.Time { return f.entry.ModTime }

// ETag is the file's strong entity tag (see ETag).
func (f *File) ETag() string { return f.etag }

// Close closes the file (an uploaded image's descriptor goes back to the store for reuse).
func (f *File) Close() error {
	if f.closed {
		return os.ErrClosed
	}
	f.closed = true
	return f.release(f.r)
}

// position returns the current position inside the file.
func (f *File) position() (int64, error) {
	if !f.fdPos {
		return f.pos, nil
	}
	cur, err := f.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	return cur - f.start, nil
}

// Read reads from the current position.
func (f *File) Read(p []byte) (int, error) {
	if !f.single {
		n, err := f.ReadAt(p, f.pos)
		f.pos += int64(n)
		if err == io.EOF && n > 0 {
			err = nil
		}
		return n, err
	}
	pos, err := f.position()
	if err != nil {
		return 0, err
	}
	left := f.entry.Size - pos
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := f.f.ReadAt(p, f.start+pos)
	f.pos, f.fdPos = pos+int64(n), false
	if err == io.EOF {
		if n == len(p) {
			err = nil
		} else {
			err = io.ErrUnexpectedEOF // the image is shorter than its index says
		}
	}
	return n, err
}

// ReadAt reads len(p) bytes at offset off of the file without moving its position.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset", f.entry.Path)
	}
	n := 0
	base := int64(0)
	for _, x := range f.entry.Extents {
		if len(p) == 0 {
			break
		}
		if off >= base+x.Length {
			base += x.Length
			continue
		}
		within := off - base
		want := min(int64(len(p)), x.Length-within)
		m, err := f.r.ReadAt(p[:want], x.Offset+within)
		n += m
		if err != nil && !(err == io.EOF && int64(m) == want) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		p = p[want:]
		off += want
		base += x.Length
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

// Seek sets the position for the next Read (io.Seeker semantics; positions past the end
// are allowed and read as EOF).
func (f *File) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		pos, err := f.position()
		if err != nil {
			return 0, err
		}
		abs = pos + offset
	case io.SeekEnd:
		abs = f.entry.Size + offset
	default:
		return 0, fmt.Errorf("seek %s: invalid whence %d", f.entry.Path, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek %s: negative position", f.entry.Path)
	}
	f.pos, f.fdPos = abs, false
	return abs, nil
}

// SyscallConn exposes the image's descriptor, positioned at the file's current byte, to
// net's sendfile path (see File). It fails for multi-extent files so that net copies
// through Read instead.
func (f *File) SyscallConn() (syscall.RawConn, error) {
	if !f.single {
		return nil, errNoSendfile
	}
	if !f.fdPos {
		if _, err := f.f.Seek(f.start+f.pos, io.SeekStart); err != nil {
			return nil, err
		}
		f.fdPos = true
	}
	return f.f.SyscallConn()
}

// WriteTo writes the rest of the file to w. Each extent is copied as
// io.CopyN(w, *os.File, n), so a *net.TCPConn or an http.ResponseWriter that exposes
// ReadFrom sends it with sendfile; this is what io.Copy(w, file) uses. An image that is not
// a local file is copied from an io.SectionReader.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	pos, err := f.position()
	if err != nil {
		return 0, err
	}
	var total int64
	base := int64(0)
	for _, x := range f.entry.Extents {
		if pos >= base+x.Length {
			base += x.Length
			continue
		}
		within := pos - base
		var src io.Reader = io.NewSectionReader(f.r, x.Offset+within, x.Length-within)
		if f.f != nil {
			if _, err := f.f.Seek(x.Offset+within, io.SeekStart); err != nil {
				return total, err
			}
			src = f.f
		}
		n, err := io.CopyN(w, src, x.Length-within)
		total += n
		pos += n
		f.pos, f.fdPos = pos, false
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return total, err
		}
		base += x.Length
	}
	return total, nil
}
