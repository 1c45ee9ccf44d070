// Package tftp is fleetboot's read-only TFTP server: it hands the iPXE binaries (and a generated
// autoexec.ipxe) to PXE firmware and nothing else. It never touches the filesystem; the files
// come from a Files set held in memory. The protocol work is github.com/pin/tftp/v3 (v3.2.0);
// this package adds name checking, size announcement, per-transfer reports and bounded
// shutdown.
//
// Known client behaviour and library quirks, seen with the library version above:
//   - EDK2 (OVMF, most UEFI PXE ROMs) first asks "tsize=0 blksize=1468 windowsize=4", reads the
//     OACK to learn the size, then aborts with an ERROR packet (code 8, "User aborted the
//     transfer") and asks again. That probe is normal: it is reported with Probe=true and
//     logged at debug level, not as a failure.
//   - pin/tftp negotiates blksize and tsize only. Other options (windowsize from EDK2) are left
//     out of the OACK, which tells the client to fall back to lock-step (RFC 7440 §4); a raw
//     EDK2-style exchange in the tests proves the download then works. The blksize is capped
//     by Config.MaxBlockSize and by the MTU of the interface the request came in on.
//   - The library's sliding-window "anticipate" mode is left off: it is experimental and
//     known to be buggy.
//   - pin/tftp panics building an OACK longer than its 516-byte buffer (a blksize padded with
//     zeros next to a short file name); readFrom recovers, the transfer dies, the server not.
//   - The library answers every handler error with ERROR code 1. Write requests get a code 2
//     "Access violation" from us first (see handleWrite), then the library's own code 1 from
//     another port, which the client, having stopped at the first, ignores.
//   - The transfer mode is not visible to handlers: an RRQ with a mode other than "netascii"
//     is served as "octet" (a name followed by a stray NUL and junk reads as name + mode).
package tftp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pin/tftp/v3"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Defaults applied by New to zero Config fields.
const (
	// DefaultTimeout is the per-packet retransmit timeout: long enough for a CPU-starved VM or a
	// busy switch, short enough that a lost packet costs little.
	DefaultTimeout = 2 * time.Second
	// DefaultRetries is how often an unacknowledged packet is sent again before the transfer is
	// given up: with DefaultTimeout, a client silent for 12 s is dropped.
	DefaultRetries = 5
	// DefaultMaxBlockSize is what EDK2 asks for: 1468 bytes of data fill a 1500-byte Ethernet
	// frame once IP, UDP and TFTP headers are added, with room for a VLAN tag.
	DefaultMaxBlockSize = 1468
)

// codeAccessViolation is the TFTP error code (RFC 1350) for a refused write.
const codeAccessViolation = 2

// wireError is an error whose text goes to the client as is: pin/tftp sends a handler's error
// text as the message of its ERROR packet, so these double as the protocol messages (hence
// capitalised, as RFC 1350 spells them).
type wireError struct{ msg string }

func (e *wireError) Error() string { return e.msg }

// Errors reported in Transfer.Err for requests the server refuses.
var (
	// ErrNotFound is a read request for a name that is not served (unknown, a directory, a
	// path elsewhere). The client gets TFTP error 1 "File not found".
	ErrNotFound error = &wireError{"File not found"}
	// ErrAccessViolation is a write request; the server is read-only. The client gets TFTP
	// error 2 "Access violation".
	ErrAccessViolation error = &wireError{"Access violation"}
	// ErrShutdown ends transfers still running when the server stops.
	ErrShutdown error = &wireError{"Server shutting down"}
	// ErrBusy refuses a read request beyond Config.MaxTransfers; firmware retries.
	ErrBusy error = &wireError{"Server busy, try again"}
)

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// Addr is the UDP address to listen on, e.g. "10.77.0.1:69" or ":69". A host that is empty
	// or IPv4 listens on IPv4 only (PXE is IPv4).
	Addr string
	// Files is the set of files served; nothing else is reachable. Required.
	Files Files
	// Logger receives one line per transfer; nil discards.
	Logger *slog.Logger
	// Optional, when set, names files clients ask for knowing they may be absent (shim's
	// revocation lists): refusing them is logged at debug level, not as a refusal.
	Optional func(name string) bool
	// OnTransfer, when set, is called once per finished, failed or refused request (metrics,
	// machine timeline). It runs on the transfer's goroutine, possibly concurrently with other
	// calls, and must not block.
	OnTransfer func(Transfer)
	// Timeout is the per-packet retransmit timeout (default DefaultTimeout). A client that goes
	// silent is given up after Timeout × (Retries+1); shutdown waits for that at most.
	Timeout time.Duration
	// Retries is how many times an unacknowledged packet is sent again before the transfer is
	// given up (default DefaultRetries).
	Retries int
	// MaxBlockSize caps the negotiated blksize, 513–65464 (default DefaultMaxBlockSize).
	// Clients that do not ask for blksize get 512-byte blocks regardless.
	MaxBlockSize int
	// DrainTimeout is how long transfers still running when Run's context ends may go on
	// before they are cut off at their next block. Zero cuts them off at once.
	DrainTimeout time.Duration
	// MaxTransfers bounds the read transfers running at once (each holds a goroutine and a
	// socket until its client finishes or times out); a request beyond it gets a TFTP error,
	// and firmware retries. Zero: no bound.
	MaxTransfers int
}

// Transfer reports one read or write request after it ended.
type Transfer struct {
	// Client is the peer's address (*net.UDPAddr).
	Client net.Addr
	// File is the served name, or for refused requests the name as the client sent it (free
	// client input: fold it before using it as a metric label).
	File string
	// Size is the file's size as announced in tsize; 0 for refused requests.
	Size int64
	// Bytes is how much file data was sent.
	Bytes int64
	// BlockSize is the negotiated block size (512 when the client asked none); 0 if unknown.
	BlockSize int
	// Retransmits counts packets sent again because no acknowledgement came in time.
	Retransmits int
	// Dur is the time from request to the end of the transfer.
	Dur time.Duration
	// Err is nil for a complete transfer and for a probe; ErrNotFound or ErrAccessViolation for
	// refused requests; otherwise why the transfer failed (client abort, timeout, shutdown).
	Err error
	// Probe is set when the client asked for the size (tsize), read it from our OACK and then
	// aborted on purpose, as EDK2 does before every real download.
	Probe bool
}

// Server is a read-only TFTP server. Create it with New, start it with Run.
type Server struct {
	addr       string
	files      Files
	optional   func(string) bool
	log        *slog.Logger
	onTransfer func(Transfer)
	timeout    time.Duration
	retries    int
	maxBlock   int
	drain      time.Duration
	maxActive  int64 // Config.MaxTransfers; 0: no bound

	running atomic.Bool
	active  atomic.Int64 // read transfers in progress
	conn    *net.UDPConn // bound by Listen, served by Run
	ready   chan struct{}
	mu      sync.Mutex
	bound   net.Addr
	ctx     context.Context // ends DrainTimeout after Run's; handlers stop reading then

	board statsBoard
}

// New validates cfg, applies defaults and returns a Server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("tftp: no listen address (Config.Addr)")
	}
	if cfg.Files == nil {
		return nil, errors.New("tftp: nothing to serve (Config.Files is nil)")
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("tftp: negative timeout %v", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Retries < 0 {
		return nil, fmt.Errorf("tftp: negative retries %d", cfg.Retries)
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	if cfg.MaxBlockSize == 0 {
		cfg.MaxBlockSize = DefaultMaxBlockSize
	}
	if cfg.DrainTimeout < 0 {
		return nil, fmt.Errorf("tftp: negative drain timeout %v", cfg.DrainTimeout)
	}
	// pin/tftp ignores caps outside (512, 65465); say so instead of silently not capping.
	if cfg.MaxBlockSize <= 512 || cfg.MaxBlockSize > 65464 {
		return nil, fmt.Errorf("tftp: max block size %d out of range 513–65464 "+
			"(clients that ask for no blksize get 512 anyway)", cfg.MaxBlockSize)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		addr:       cfg.Addr,
		files:      cfg.Files,
		optional:   cfg.Optional,
		log:        log,
		onTransfer: cfg.OnTransfer,
		timeout:    cfg.Timeout,
		retries:    cfg.Retries,
		maxBlock:   cfg.MaxBlockSize,
		drain:      cfg.DrainTimeout,
		maxActive:  int64(cfg.MaxTransfers),
		ready:      make(chan struct{}),
		board:      statsBoard{m: map[string][]*hookStats{}},
	}, nil
}

// Addr returns the address the server is bound to, or nil before Run has bound it (see Ready).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

// Ready is closed once Run has bound its socket (Addr is then set) or has failed to.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Listen binds the server's socket without serving yet, so that a caller can bind every
// listener it needs before it commits to starting. Run serves the bound socket; Listen is
// optional (Run binds by itself) and may be called once.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return errors.New("tftp: Listen called twice")
	}
	conn, err := listen(s.addr)
	if err != nil {
		return fmt.Errorf("tftp: listen %s: %w", s.addr, err)
	}
	// pin/tftp asks for each request's destination address and interface (to reply from the
	// address the client used and to cap blksize by that interface's MTU) only once Serve
	// runs. A request queued before then comes without them and is served from the wildcard
	// address with 512-byte blocks; so ask now, before anyone learns we listen.
	enablePacketInfo(conn)
	s.conn = conn
	s.bound = conn.LocalAddr()
	return nil
}

// Close releases a socket bound by Listen when Run will not be called (a start that failed
// after binding). Once Run has started it owns the socket and Close does nothing.
func (s *Server) Close() error {
	if s.running.Load() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn, s.bound = nil, nil
	return err
}

// Active returns how many read transfers are in progress.
func (s *Server) Active() int { return int(s.active.Load()) }

// Run listens on Config.Addr (unless Listen already did) and serves until ctx ends. A bind
// error is returned at once. On cancellation it stops accepting requests, lets running
// transfers go on for up to DrainTimeout, then aborts the rest at their next block, waits for
// them (at most Timeout × (Retries+1), for a client that stopped answering), closes the socket
// and returns nil. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("tftp: Run called twice")
	}
	s.mu.Lock()
	bound := s.conn != nil
	s.mu.Unlock()
	if !bound {
		if err := s.Listen(); err != nil {
			close(s.ready)
			return err
		}
	}
	// Transfers stop reading from abortCtx, which ends DrainTimeout after ctx does.
	abortCtx, abort := context.WithCancel(context.Background())
	defer abort()
	s.mu.Lock()
	conn := s.conn
	s.ctx = abortCtx
	s.mu.Unlock()
	close(s.ready)

	srv := tftp.NewServer(s.handleRead, s.handleWrite)
	srv.SetHook(hook{s})
	srv.SetTimeout(s.timeout)
	srv.SetRetries(s.retries)
	srv.SetBlockSize(s.maxBlock)
	// The library sleeps a random 0–1 s between retransmissions by default; the timeout
	// already spaces them, and the sleep would stretch shutdown.
	srv.SetBackoff(func(int) time.Duration { return 0 })

	s.log.Info("tftp serving", "addr", conn.LocalAddr().String(), "timeout", s.timeout,
		"retries", s.retries, "max_blksize", s.maxBlock)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(conn) }()
	select {
	case <-ctx.Done():
		// pin/tftp's Shutdown closes the socket (no new requests) and waits for the running
		// transfers, which finish or, once the drain time is up, stop at their next block.
		t := time.AfterFunc(s.drain, abort)
		defer t.Stop()
		srv.Shutdown()
		<-served
		return nil
	case err := <-served:
		// Serve only returns early when it cannot use the socket.
		abort()
		srv.Shutdown()
		conn.Close()
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		return fmt.Errorf("tftp: serve %s: %w", conn.LocalAddr(), err)
	}
}

// listen binds the UDP socket; IPv4 only unless the host is an IPv6 literal.
func listen(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	network := "udp4"
	if ua.IP != nil && ua.IP.To4() == nil {
		network = "udp6"
	}
	return net.ListenUDP(network, ua)
}

// enablePacketInfo turns on the control messages pin/tftp reads (IP_PKTINFO). Failure is not
// fatal: the library then serves without them, as it does on platforms that lack them.
func enablePacketInfo(conn *net.UDPConn) {
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil && a.IP != nil {
		_ = ipv6.NewPacketConn(conn).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
		return
	}
	_ = ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
}

// runCtx returns the context transfers read under; handlers only run while Run does.
func (s *Server) runCtx() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx
}

// handleRead serves one read request; pin/tftp calls it on a goroutine of its own with a
// socket already bound for the transfer.
func (s *Server) handleRead(filename string, rf io.ReaderFrom) error {
	start := time.Now()
	t := Transfer{File: filename}
	ot, _ := rf.(tftp.OutgoingTransfer)
	var key string
	if ot != nil {
		a := ot.RemoteAddr()
		t.Client = &a
		key = a.String()
	}
	name := requestName(filename)
	var (
		r    io.ReadSeeker
		size int64
		ok   bool
	)
	if name != "" {
		if cf, isCF := s.files.(ClientFiles); isCF {
			var from netip.Addr
			if ot != nil {
				a := ot.RemoteAddr()
				from, _ = netip.AddrFromSlice(a.IP)
				from = from.Unmap()
			}
			r, size, ok = cf.OpenFor(name, from)
		} else {
			r, size, ok = s.files.Open(name)
		}
	}
	if !ok || r == nil {
		t.Err, t.Dur = ErrNotFound, time.Since(start)
		s.finish(t)
		return ErrNotFound // the library sends it as ERROR code 1
	}
	t.File, t.Size = name, size
	if ot != nil {
		// Always announce the size when asked (tsize): firmware sizes its buffer from it
		// (EDK2's first request asks for nothing else). The library would otherwise only
		// learn it by seeking, which stopReader does not offer.
		ot.SetSize(size)
	}

	if a := s.active.Add(1); s.maxActive > 0 && a > s.maxActive {
		s.active.Add(-1)
		t.Err, t.Dur = ErrBusy, time.Since(start)
		s.finish(t)
		return ErrBusy
	}
	stats := s.board.open(key)
	src, release := buffered(r)
	n, rerr := readFrom(rf, &stopReader{ctx: s.runCtx(), r: src})
	release()
	s.active.Add(-1)
	if c, isCloser := r.(io.Closer); isCloser {
		c.Close() // before the report: whoever hears of the transfer may rely on it
	}
	hs := s.board.close(key, stats)
	t.Bytes, t.Dur = n, time.Since(start)
	t.BlockSize, t.Retransmits = hs.blockSize, hs.retransmits
	if rerr != nil {
		t.Err = rerr
		if block, code, msg, isAbort := peerAbort(rerr); isAbort {
			switch {
			case block == 0 && hs.tsize:
				t.Err, t.Probe = nil, true
			case block == 0:
				t.Err = fmt.Errorf("client refused our options (TFTP error %d %q)", code, msg)
			default:
				t.Err = fmt.Errorf("client aborted at block %d (TFTP error %d %q)", block, code, msg)
			}
		} else if errors.Is(rerr, ErrShutdown) {
			t.Err = ErrShutdown
		}
	}
	s.finish(t)
	// ReadFrom has already sent the ERROR packet and closed the transfer when it failed;
	// returning the error tells the library nothing new (its abort is then a no-op).
	return rerr
}

// readFrom runs the library's transfer loop. pin/tftp v3.2.0 panics when the OACK it builds is
// longer than its send buffer (a padded blksize value and a short file name can do that); the
// transfer then dies, the server does not. The library's deferred cleanup has closed the
// transfer socket by the time we recover.
func readFrom(rf io.ReaderFrom, r io.Reader) (n int64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("tftp library panic: %v", p)
		}
	}()
	return rf.ReadFrom(r)
}

// handleWrite refuses a write request. pin/tftp would answer a handler error with code 1, and
// firmware and tftp clients print the code, so we first send the proper code 2 from a socket of
// our own, bound to the address the request came to; the library's code 1 follows from the
// transfer socket and the client, already done, ignores it.
func (s *Server) handleWrite(filename string, wt io.WriterTo) error {
	t := Transfer{File: filename, Err: ErrAccessViolation}
	var local net.IP
	if l, ok := wt.(interface{ LocalIP() net.IP }); ok {
		local = l.LocalIP()
	}
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		a := it.RemoteAddr()
		t.Client = &a
		if err := sendError(local, &a, codeAccessViolation, ErrAccessViolation.Error()); err != nil {
			s.log.Debug("tftp send access violation", "client", a.String(), "err", err)
		}
	}
	s.finish(t)
	return ErrAccessViolation
}

// sendError sends one TFTP ERROR packet from a fresh socket on local.
func sendError(local net.IP, to *net.UDPAddr, code uint16, msg string) error {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: local})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.WriteToUDP(errorPacket(code, msg), to)
	return err
}

// errorPacket builds a TFTP ERROR packet (RFC 1350): opcode 5, code, message, NUL.
func errorPacket(code uint16, msg string) []byte {
	p := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(p[0:2], 5)
	binary.BigEndian.PutUint16(p[2:4], code)
	p = append(p, msg...)
	return append(p, 0)
}

// finish logs a transfer and reports it.
func (s *Server) finish(t Transfer) {
	client := ""
	if t.Client != nil {
		client = t.Client.String()
	}
	attrs := []any{"client", client, "file", t.File, "bytes", t.Bytes, "dur", t.Dur}
	switch {
	case t.Probe:
		s.log.Debug("tftp size probe", append(attrs, "size", t.Size)...)
	case t.Err == nil:
		s.log.Info("tftp sent", append(attrs, "blksize", t.BlockSize, "retransmits", t.Retransmits)...)
	case errors.Is(t.Err, ErrNotFound) && s.optional != nil && s.optional(t.File):
		s.log.Debug("tftp optional file not served", append(attrs, "err", t.Err)...)
	case errors.Is(t.Err, ErrNotFound), errors.Is(t.Err, ErrAccessViolation), errors.Is(t.Err, ErrBusy):
		s.log.Info("tftp refused", append(attrs, "err", t.Err)...)
	default:
		s.log.Warn("tftp transfer failed", append(attrs, "blksize", t.BlockSize,
			"retransmits", t.Retransmits, "err", t.Err)...)
	}
	if s.onTransfer != nil {
		s.onTransfer(t)
	}
}

// peerAbort recognises the error pin/tftp v3.2.0's ReadFrom returns when the client sent an
// ERROR packet instead of an ACK: "sending block %d: code=%d, error: %s". Block 0 means the
// client answered our OACK with an error. Tests pin this text against the real library.
func peerAbort(err error) (block, code int, msg string, ok bool) {
	rest, found := strings.CutPrefix(err.Error(), "sending block ")
	if !found {
		return 0, 0, "", false
	}
	blockStr, rest, found := strings.Cut(rest, ": code=")
	if !found {
		return 0, 0, "", false
	}
	codeStr, msg, found := strings.Cut(rest, ", error: ")
	if !found {
		return 0, 0, "", false
	}
	block, err1 := strconv.Atoi(blockStr)
	code, err2 := strconv.Atoi(codeStr)
	if err1 != nil || err2 != nil {
		return 0, 0, "", false
	}
	return block, code, msg, true
}

// readBufferSize is how much of a file not held in memory is read at once: 44 blocks of 1468
// bytes, 128 of 512.
const readBufferSize = 64 << 10

// readBuffers are the read buffers of transfers in progress, reused from one to the next.
var readBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// buffered returns what the transfer reads r through, and a function to call once it is done.
// pin/tftp reads exactly one block per call. Files held in memory are copied from in place;
// anything else (a file inside an ISO image, where each read is a pread(2) on the image) is
// read through a pooled 64 KiB buffer, so a 512-byte transfer costs one system call per 128
// blocks instead of one per block.
func buffered(r io.Reader) (io.Reader, func()) {
	switch r.(type) {
	case *bytes.Reader, *strings.Reader:
		return r, func() {}
	}
	br := readBuffers.Get().(*bufio.Reader)
	br.Reset(r)
	return br, func() {
		br.Reset(nil) // drop the file: the pool must not keep it (or its image) alive
		readBuffers.Put(br)
	}
}

// stopReader ends a transfer at its next block once the server is shutting down, so shutdown
// does not wait for whole files.
type stopReader struct {
	ctx context.Context
	r   io.Reader
}

func (sr *stopReader) Read(p []byte) (int, error) {
	if sr.ctx != nil && sr.ctx.Err() != nil {
		return 0, ErrShutdown
	}
	return sr.r.Read(p)
}

// hook receives pin/tftp's per-transfer statistics.
type hook struct{ s *Server }

var _ tftp.Hook = hook{}

// OnSuccess records a finished transfer's statistics.
func (h hook) OnSuccess(st tftp.TransferStats) { h.s.board.record(st, true) }

// OnFailure records a failed transfer's statistics. The library also calls it, with empty
// statistics, for datagrams it could not use (garbage, stray ACKs, truncated requests).
func (h hook) OnFailure(st tftp.TransferStats, err error) {
	if st.RemoteAddr == nil {
		h.s.log.Debug("tftp datagram ignored", "err", err)
		return
	}
	h.s.board.record(st, false)
}

// hookStats is what the library's hook tells about one transfer.
type hookStats struct {
	filled      bool
	blockSize   int
	tsize       bool
	retransmits int
}

// statsBoard hands the hook's statistics to the read handler of the same transfer. The
// library calls the hook from inside ReadFrom, on the handler's goroutine, but gives it no
// handle to the transfer: the client's address and port (its TID) are the key. Two transfers
// under one key (a client that retransmitted its RRQ) may swap statistics, nothing worse.
type statsBoard struct {
	mu sync.Mutex
	m  map[string][]*hookStats
}

func (b *statsBoard) open(key string) *hookStats {
	hs := &hookStats{}
	b.mu.Lock()
	b.m[key] = append(b.m[key], hs)
	b.mu.Unlock()
	return hs
}

// close removes hs and returns a copy of what the hook recorded in it.
func (b *statsBoard) close(key string, hs *hookStats) hookStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	list := b.m[key]
	for i, x := range list {
		if x == hs {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(b.m, key)
	} else {
		b.m[key] = list
	}
	return *hs
}

// record files st under its transfer. Statistics of requests no handler waits for (refusals,
// reported by the handler itself) are dropped.
func (b *statsBoard) record(st tftp.TransferStats, ok bool) {
	key := net.JoinHostPort(st.RemoteAddr.String(), strconv.Itoa(st.Tid))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, hs := range b.m[key] {
		if hs.filled {
			continue
		}
		hs.filled = true
		hs.blockSize = 512
		// Opts holds the options as acknowledged in our OACK, after the library's capping.
		if v, err := strconv.Atoi(st.Opts["blksize"]); err == nil && v > 0 {
			hs.blockSize = v
		}
		_, hs.tsize = st.Opts["tsize"]
		// Every packet sent once and acknowledged counts one of each. A failed transfer also
		// ends with a packet that was never acknowledged, sent once plus its retransmissions.
		r := st.DatagramsSent - st.DatagramsAcked
		if !ok {
			r--
		}
		hs.retransmits = max(r, 0)
		return
	}
}
