package server

import (
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendfileChunk is the most one sendfile(2) call is asked to send (nginx's
// sendfile_max_chunk is 2 MiB). A non-blocking socket takes at most its free send buffer per
// call anyway (loopback and LAN autotune it up to net.ipv4.tcp_wmem's maximum, 4 MiB by
// default); the bound matters for how long a call that bypasses the scheduler (below) may
// hold its P.
const sendfileChunk = 4 << 20

// cacheRegion is how far ahead sendFile looks into the page cache at a time, and
// cacheMissLimit how many of that region's pages may be missing for it to still count as
// cached: a few scattered pages (the kernel reclaims cold pages one by one) cost a few
// synchronous reads inside a raw call, about what nginx pays for them in its event loop;
// a file that is not in the cache at all (just uploaded and evicted, or on NFS) goes the
// ordinary way.
const (
	cacheRegion    = 4 << 20
	cacheMissLimit = 8
)

// sendfileHook, when set (tests), is told of every sendfile call that sent bytes and whether
// it bypassed the scheduler.
var sendfileHook func(raw bool, n int64)

// noCachestat is set once cachestat(2) (Linux ≥ 6.5) turns out to be missing: sendFile then
// leaves every body to net.TCPConn's own sendfile loop.
var noCachestat atomic.Bool

// sendFile sends r — an *io.LimitedReader around a file-backed source, as http.ServeContent
// hands it to the connection's ReadFrom, or such a source itself — to dst with sendfile(2),
// like net.TCPConn.ReadFrom does, but without entering the Go scheduler's syscall state when
// the bytes are already in the page cache.
//
// Why: every syscall.Syscall marks its P as in a syscall, and when all Ps were idle (a server
// waiting for its clients' sockets to drain, i.e. most of the time while streaming ISOs) that
// wakes the runtime's sysmon thread (futex wake, two context switches, then sysmon's own
// nanosleep ticks until it goes back to sleep). A stream is a cycle of "socket writable →
// sendfile until the buffer is full → EAGAIN → wait", so each cycle paid for that wake-up:
// perf showed ~4 context switches per sendfile call against nginx's ~1, and 1.2–1.3× nginx's
// CPU per GB. A raw syscall skips the scheduler, which is only right for a call that cannot
// block long: the socket is non-blocking, and cachestat(2), asked about each 4 MiB ahead,
// says whether the file's bytes are cached (all but a few pages, see cacheMissLimit), and
// only on a local file system (localFS). Bytes that need disk reads, and every byte of a
// file on NFS, CephFS or any other network file system, go through syscall.Syscall as net's
// own loop does, so a P stuck in a slow read is handed to another thread as usual.
//
// Anything else — a reader without a descriptor, a descriptor sendfile refuses, a kernel
// without cachestat — goes to dst.ReadFrom, net's sendfile-or-copy path, untouched.
//
// p, when not nil, is told after every chunk that went out (the write-idle deadline moves on);
// net's path cannot tell, so with p it is given the body in slices of fallbackSlice.
func sendFile(dst *net.TCPConn, r io.Reader, p progress) (int64, error) {
	if noCachestat.Load() {
		return readFromInSlices(dst, r, p)
	}
	src := r
	remain := int64(-1) // -1: to the source's end
	lr, limited := r.(*io.LimitedReader)
	if limited {
		if lr.N <= 0 {
			return 0, nil
		}
		remain, src = lr.N, lr.R
	}
	sc, ok := src.(syscall.Conn)
	if !ok {
		return readFromInSlices(dst, r, p)
	}
	srcRaw, err := sc.SyscallConn()
	if err != nil {
		return readFromInSlices(dst, r, p) // e.g. a multi-extent file inside an ISO: net copies it
	}
	dstRaw, err := dst.SyscallConn()
	if err != nil {
		return readFromInSlices(dst, r, p)
	}
	var (
		written  int64
		sendErr  error
		fallback bool // nothing sent and sendfile or cachestat is unusable here
	)
	ctlErr := srcRaw.Control(func(sfd uintptr) {
		// sendfile with a NULL offset reads from the descriptor's offset and advances it,
		// as net's loop does; cachestat needs the offset, so read it once.
		pos, _, e := syscall.RawSyscall(unix.SYS_LSEEK, sfd, 0, io.SeekCurrent)
		if e != 0 {
			fallback = true
			return
		}
		off := int64(pos)
		// An ordinary call: on NFS or CephFS fstat may ask the server (stale attributes),
		// and a raw call that waits on the network would hold up the whole process (a
		// goroutine in a raw syscall stops every garbage collection until it returns).
		var st syscall.Stat_t
		if _, _, e := syscall.Syscall(syscall.SYS_FSTAT, sfd, uintptr(unsafe.Pointer(&st)), 0); e != 0 || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			fallback = true
			return
		}
		if remain < 0 {
			// To the end: as many bytes as the file has left, so that the cache is asked
			// about no pages past its end (they would count as missing).
			if remain = max(st.Size-off, 0); remain == 0 {
				return
			}
		}
		// Raw calls only for files on a local file system: a network file system's cached
		// pages can still need a round trip to its server to be read (NFS revalidates the
		// file's attributes in its splice read, CephFS may wait on its metadata server), and
		// with a hard mount an unreachable server makes that wait endless.
		local := localFS(uint64(st.Dev), int(sfd))
		// The region [off, checkedTo) has been looked at; raw says whether it was cached.
		checkedTo, raw := off, false
		// Bytes sent since the goroutine last waited for the socket or yielded.
		var sinceYield int64
		sendErr = dstRaw.Write(func(dfd uintptr) bool {
			for written < remain {
				chunk := min(sendfileChunk, remain-written)
				if off >= checkedTo {
					region := min(cacheRegion, remain-written)
					raw = false
					if local {
						var err error
						raw, err = pageCachedFn(sfd, off, region)
						if err != nil {
							// ENOSYS: no cachestat on this kernel, for every file. EPERM
							// is about this file only (cachestat needs write permission
							// or ownership of a file it has not opened for writing: an
							// ISO registered in place, owned by another user).
							if err == unix.ENOSYS {
								noCachestat.Store(true)
							}
							if written == 0 {
								fallback = true
								return true
							}
						}
					}
					checkedTo = off + region
				}
				// One call stays inside the region looked at.
				chunk = min(chunk, checkedTo-off)
				var n uintptr
				var e syscall.Errno
				if raw {
					n, _, e = syscall.RawSyscall6(unix.SYS_SENDFILE, dfd, sfd, 0, uintptr(chunk), 0, 0)
				} else {
					n, _, e = syscall.Syscall6(unix.SYS_SENDFILE, dfd, sfd, 0, uintptr(chunk), 0, 0)
				}
				switch e {
				case 0:
					if n == 0 {
						return true // the source's end
					}
					written += int64(n)
					off += int64(n)
					if sendfileHook != nil {
						sendfileHook(raw, int64(n))
					}
					if p != nil {
						p.progressed()
					}
					// A short send usually means the socket's buffer is full. Calling again
					// at once mostly earns an EAGAIN (a syscall that also pulls the next
					// 64 KiB of pages into sendfile's pipe and drops them) or, when the
					// client freed a little space meanwhile, a small send: with 200
					// clients ~330 KB per call, 12–27 % of the calls EAGAIN. Instead ask
					// the socket (poll, timeout 0) whether it is writable: tcp_poll calls it
					// writable only once half its buffer is free, and when it is not, it
					// marks the socket (SOCK_NOSPACE) so that the ACKs that free the space
					// wake its poller: then wait for that, as nginx does after a short
					// send, and send ~4× as much per call. Not a wait on the short send
					// alone: a short send does not always mark the socket (a stream then
					// stalled with its buffer empty until the write-idle timeout).
					if uintptr(n) < uintptr(chunk) && !writable(dfd) {
						sinceYield = 0
						return false
					}
					// A raw call never lets the scheduler in: yield once a chunk's worth
					// went out without a wait, so a client that keeps the buffer drained
					// cannot starve other goroutines; a wait lets the scheduler in anyway.
					if sinceYield += int64(n); sinceYield >= sendfileChunk {
						sinceYield = 0
						gosched()
					}
				case unix.EAGAIN:
					if sendfileAgainHook != nil {
						sendfileAgainHook()
					}
					sinceYield = 0
					return false // wait until the socket is writable
				case unix.EINTR:
				case unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP:
					if written == 0 {
						fallback = true
					} else {
						sendErr = os.NewSyscallError("sendfile", e)
					}
					return true
				default:
					sendErr = os.NewSyscallError("sendfile", e)
					return true
				}
			}
			return true
		})
	})
	if fallback {
		return readFromInSlices(dst, r, p)
	}
	if limited {
		lr.N -= written
	}
	if sendErr == nil {
		sendErr = ctlErr
	}
	if sendErr != nil {
		sendErr = &net.OpError{Op: "sendfile", Net: "tcp", Source: dst.LocalAddr(), Addr: dst.RemoteAddr(), Err: sendErr}
	}
	return written, sendErr
}

// writable reports whether socket fd would take more bytes now (poll with timeout 0: a raw
// call, it does not block). An error or hang-up counts as writable: the next send reports it.
// When not writable, the kernel has marked the socket to signal its poller (epoll) once it
// is (tcp_poll sets SOCK_NOSPACE), so waiting for the poller afterwards cannot miss it.
func writable(fd uintptr) bool {
	pfd := unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
	var ts unix.Timespec // zero: do not wait
	for {
		n, _, e := syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			return true
		}
		return n > 0 && pfd.Revents != 0
	}
}

// sendfileAgainHook, when set (tests), is told of every sendfile call that found the socket
// full (EAGAIN).
var sendfileAgainHook func()

// gosched is runtime.Gosched; tests count the yields.
var gosched = runtime.Gosched

// pageCachedFn is pageCached; tests replace it to see how sendFile takes its errors.
var pageCachedFn = pageCached

// localFSTypes are the file systems (statfs f_type) whose cached pages are read without
// asking anyone: block-device and memory file systems. Anything else (NFS, CephFS, SMB,
// FUSE, …) takes ordinary system calls only.
var localFSTypes = map[int64]bool{
	0xEF53:     true, // ext2/3/4
	0x58465342: true, // xfs
	0x9123683E: true, // btrfs
	0x01021994: true, // tmpfs
	0x858458F6: true, // ramfs
	0x2FC12FC1: true, // zfs
	0xF2F52010: true, // f2fs
	0xCA451A4E: true, // bcachefs
	0x794C7630: true, // overlayfs (a container's root)
}

// fsType is the statfs type of the file system holding fd (tests replace it).
var fsType = func(fd int) (int64, error) {
	var s unix.Statfs_t
	err := unix.Fstatfs(fd, &s) // an ordinary call: on NFS it asks the server
	return int64(s.Type), err
}

// localDevs remembers localFS's verdict per device: file systems are few, and the serving
// path asks on every body.
var localDevs = struct {
	sync.RWMutex
	m map[uint64]bool
}{m: map[uint64]bool{}}

// localFS says whether dev, the device of open file fd, is a local file system.
func localFS(dev uint64, fd int) bool {
	localDevs.RLock()
	v, ok := localDevs.m[dev]
	localDevs.RUnlock()
	if ok {
		return v
	}
	t, err := fsType(fd)
	v = err == nil && localFSTypes[t]
	localDevs.Lock()
	localDevs.m[dev] = v
	localDevs.Unlock()
	return v
}

// progress hears that bytes went out (limitedTCPConn moves its write-idle deadline).
type progress interface{ progressed() }

// fallbackSlice is how much of a body net's own ReadFrom is given at a time when progress
// must be reported: with --http-write-idle-timeout T a client on that path must take each
// 1 MiB within T (8.7 KB/s at the default 2 min), where sendFile's own loop needs only some
// progress within T.
const fallbackSlice = 1 << 20

// readFromInSlices is dst.ReadFrom(r), in slices of fallbackSlice with p told after each
// when p is set.
func readFromInSlices(dst *net.TCPConn, r io.Reader, p progress) (int64, error) {
	if p == nil {
		return dst.ReadFrom(r)
	}
	src, remain := r, int64(-1) // -1: to the source's end
	lr, limited := r.(*io.LimitedReader)
	if limited {
		src, remain = lr.R, lr.N
	}
	var total int64
	for remain != 0 {
		want := int64(fallbackSlice)
		if remain > 0 {
			want = min(want, remain)
		}
		// One level of LimitedReader around the source, as net's sendfile path expects.
		n, err := dst.ReadFrom(&io.LimitedReader{R: src, N: want})
		total += n
		if remain > 0 {
			remain -= n
		}
		if err != nil || n < want {
			if limited {
				lr.N = remain
			}
			return total, err
		}
		p.progressed()
	}
	if limited {
		lr.N = remain
	}
	return total, nil
}

// pageSize is the page cache's unit.
var pageSize = int64(os.Getpagesize())

// pageCached reports whether the pages of the n bytes at off of fd are in the page cache,
// all but at most cacheMissLimit of them (cachestat(2), itself a raw call: it only looks at
// the cache). Pages past the file's end count as missing.
func pageCached(fd uintptr, off, n int64) (bool, error) {
	if n <= 0 {
		return true, nil
	}
	first, last := off/pageSize, (off+n-1)/pageSize
	rng := unix.CachestatRange{Off: uint64(first * pageSize), Len: uint64((last - first + 1) * pageSize)}
	var st unix.Cachestat_t
	for {
		_, _, e := syscall.RawSyscall6(unix.SYS_CACHESTAT, fd, uintptr(unsafe.Pointer(&rng)), uintptr(unsafe.Pointer(&st)), 0, 0, 0)
		switch e {
		case 0:
			return int64(st.Cache)+cacheMissLimit >= last-first+1, nil
		case unix.EINTR:
			continue
		default:
			return false, e
		}
	}
}
