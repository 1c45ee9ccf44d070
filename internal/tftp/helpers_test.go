package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

// testFiles stands in for the iPXE binaries (a clean clone has none): deterministic
// pseudo-random bytes of the real sizes, plus sizes that end exactly on a block boundary.
func testFiles() map[string][]byte {
	gen := func(seed uint64, n int) []byte {
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	return map[string][]byte{
		"undionly.kpxe": gen(1, 108847),
		"snponly.efi":   gen(2, 284672),
		"ipxe.efi":      gen(3, 996864),
		// 187904 = 512 × 367 = 1468 × 128: the transfer ends with an empty DATA packet at
		// both common block sizes.
		"boundary.bin":  gen(4, 187904),
		"autoexec.ipxe": []byte("#!ipxe\nifconf -c dhcp && chain http://10.77.0.1:8080/boot.ipxe?mac=${net0/mac:hexhyp}\n"),
	}
}

// syncBuffer collects log output from concurrent transfers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a running Server on 127.0.0.1 with its reports collected.
type testServer struct {
	srv       *Server
	addr      *net.UDPAddr
	transfers chan Transfer
	logs      *syncBuffer
	stop      func() time.Duration // cancels Run and returns how long it took to return
}

// liveness bounds how long a test waits for something that normally takes milliseconds: long
// enough for -race on a 2-core CI machine that also runs QEMU guests, so that only a hang
// (never a slow machine) reaches it. Tests assert events, never how fast they came.
const liveness = time.Minute

// startServer runs a Server on 127.0.0.1:0 serving files; mod may adjust the config. The
// server is stopped at cleanup; a Run that does not return within liveness fails the test.
func startServer(t testing.TB, files map[string][]byte, mod func(*Config)) *testServer {
	t.Helper()
	ts := &testServer{transfers: make(chan Transfer, 4096), logs: &syncBuffer{}}
	cfg := Config{
		Addr:       "127.0.0.1:0",
		Files:      StaticFiles(files),
		Logger:     slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnTransfer: func(tr Transfer) { ts.transfers <- tr },
		Timeout:    time.Second, // generous: -race on a busy machine
		Retries:    3,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(liveness):
		cancel()
		t.Fatalf("server not ready after %v", liveness)
	}
	if srv.Addr() == nil {
		cancel()
		t.Fatalf("Run failed to bind: %v", <-done)
	}
	ts.srv = srv
	ts.addr = srv.Addr().(*net.UDPAddr)
	var once sync.Once
	var took time.Duration
	ts.stop = func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v after cancel", err)
				}
			case <-time.After(liveness):
				t.Errorf("Run did not return within %v of cancel", liveness)
			}
			took = time.Since(start)
		})
		return took
	}
	t.Cleanup(func() { ts.stop() })
	return ts
}

// next waits for the next transfer report.
func (ts *testServer) next(t testing.TB) Transfer {
	t.Helper()
	select {
	case tr := <-ts.transfers:
		return tr
	case <-time.After(liveness):
		t.Fatalf("no transfer reported within %v", liveness)
		return Transfer{}
	}
}

// download fetches name with pin/tftp's own client.
func download(addr *net.UDPAddr, name string, blksize int, tsize bool) (data []byte, announced int64, err error) {
	c, err := tftp.NewClient(addr.String())
	if err != nil {
		return nil, 0, err
	}
	c.SetTimeout(time.Second)
	c.SetRetries(3)
	if blksize > 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(tsize)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, 0, err
	}
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		announced, _ = it.Size()
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, announced, err
	}
	return buf.Bytes(), announced, nil
}

// Raw TFTP packets, for what pin/tftp's client will not send.

const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// request builds an RRQ or WRQ; opts are name, value pairs.
func request(op uint16, name, mode string, opts ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, op)
	for _, s := range append([]string{name, mode}, opts...) {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

func ack(block uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, opACK), block)
}

// packet is a parsed TFTP packet.
type packet struct {
	op    uint16
	block uint16 // DATA, ACK
	code  uint16 // ERROR
	msg   string // ERROR
	data  []byte // DATA
	opts  map[string]string
}

func parse(b []byte) (packet, error) {
	if len(b) < 2 {
		return packet{}, fmt.Errorf("short packet %x", b)
	}
	p := packet{op: binary.BigEndian.Uint16(b)}
	switch p.op {
	case opDATA, opACK:
		if len(b) < 4 {
			return p, fmt.Errorf("short DATA/ACK %x", b)
		}
		p.block = binary.BigEndian.Uint16(b[2:])
		p.data = b[4:]
	case opERROR:
		if len(b) < 5 || b[len(b)-1] != 0 {
			return p, fmt.Errorf("malformed ERROR %q", b)
		}
		p.code = binary.BigEndian.Uint16(b[2:])
		p.msg = string(b[4 : len(b)-1])
	case opOACK:
		if b[len(b)-1] != 0 {
			return p, fmt.Errorf("OACK not NUL-terminated %q", b)
		}
		f := strings.Split(string(b[2:len(b)-1]), "\x00")
		if len(f)%2 != 0 {
			return p, fmt.Errorf("OACK with odd field count %q", b)
		}
		p.opts = map[string]string{}
		for i := 0; i < len(f); i += 2 {
			p.opts[f[i]] = f[i+1]
		}
	default:
		return p, fmt.Errorf("unexpected opcode %d", p.op)
	}
	return p, nil
}

// rawPeer is a UDP socket on loopback speaking raw TFTP.
type rawPeer struct {
	t    testing.TB
	conn *net.UDPConn
}

func newRawPeer(t testing.TB) *rawPeer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawPeer{t: t, conn: c}
}

func (r *rawPeer) send(to *net.UDPAddr, b []byte) {
	r.t.Helper()
	if _, err := r.conn.WriteToUDP(b, to); err != nil {
		r.t.Fatalf("send to %v: %v", to, err)
	}
}

// recv reads one packet; ok=false on timeout.
func (r *rawPeer) recv(timeout time.Duration) (p packet, from *net.UDPAddr, ok bool) {
	r.t.Helper()
	buf := make([]byte, 65536)
	if err := r.conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		r.t.Fatal(err)
	}
	n, from, err := r.conn.ReadFromUDP(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return packet{}, nil, false
	}
	if err != nil {
		r.t.Fatalf("recv: %v", err)
	}
	p, err = parse(buf[:n])
	if err != nil {
		r.t.Fatalf("recv from %v: %v", from, err)
	}
	return p, from, true
}

// mustRecv reads one packet or fails the test.
func (r *rawPeer) mustRecv() (packet, *net.UDPAddr) {
	r.t.Helper()
	p, from, ok := r.recv(liveness)
	if !ok {
		r.t.Fatalf("no reply within %v", liveness)
	}
	return p, from
}

// lockstep downloads the rest of a transfer whose first reply (OACK or DATA 1) was first,
// from the server's transfer port tid, ACKing one block at a time as RFC 1350 does.
func (r *rawPeer) lockstep(first packet, tid *net.UDPAddr, blksize int) []byte {
	r.t.Helper()
	var out []byte
	p := first
	if p.op == opOACK {
		r.send(tid, ack(0))
		p, _ = r.mustRecv()
	}
	for want := uint16(1); ; want++ {
		// A slow ACK (a loaded machine) makes the server send the previous packet again;
		// RFC 1123 says to ignore the duplicate, not to ACK it again.
		for (p.op == opOACK && want == 1) || (p.op == opDATA && p.block == want-1) {
			p, _ = r.mustRecv()
		}
		if p.op != opDATA || p.block != want {
			r.t.Fatalf("want DATA %d, got %+v", want, p)
		}
		if len(p.data) > blksize {
			r.t.Fatalf("DATA %d holds %d bytes, more than blksize %d", want, len(p.data), blksize)
		}
		out = append(out, p.data...)
		r.send(tid, ack(want))
		if len(p.data) < blksize {
			return out
		}
		p, _ = r.mustRecv()
	}
}

// waitGoroutines waits until the goroutine count falls to at most n.
func waitGoroutines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for {
		got := runtime.NumGoroutine()
		if got <= n {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want ≤ %d:\n%s", got, n, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// portClosed reports whether nothing listens on addr any more: a connected UDP socket gets
// ECONNREFUSED (from the ICMP port unreachable) on its next read.
func portClosed(t testing.TB, addr *net.UDPAddr) bool {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(ack(0)); err != nil {
		return true
	}
	// The refusal arrives at once; the deadline only bounds the wait for an open port that
	// stays silent. It must not be short: Go checks an expired deadline before it reads, so a
	// goroutine descheduled past it would miss a refusal that is already queued.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1024))
	return err != nil && strings.Contains(err.Error(), "refused")
}
