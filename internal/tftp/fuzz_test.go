package tftp

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// malformedDatagrams are the seeds for FuzzRequest and the cases of
// TestMalformedDatagramsDoNotStopTheServer.
func malformedDatagrams() [][]byte {
	long := strings.Repeat("x", 600)
	var manyOpts []string
	for range 300 {
		manyOpts = append(manyOpts, "opt", "1")
	}
	return [][]byte{
		{},
		{0},
		{0, 1},
		{0, 1, 0},
		{0, 0, 'a', 0, 'o', 0},                   // opcode 0
		{0, 7, 'a', 0, 'o', 0},                   // opcode 7
		{0xff, 0xff, 'a', 0},                     // opcode 65535
		[]byte("\x00\x01undionly.kpxe"),          // no NUL at all
		[]byte("\x00\x01undionly.kpxe\x00octet"), // mode not terminated
		[]byte("\x00\x01undionly.kpxe\x00"),      // no mode
		[]byte("\x00\x01\x00\x00"),               // empty name and mode
		[]byte("\x00\x01" + long + "\x00octet\x00"), // longer than a request may be
		request(opRRQ, "undionly.kpxe", "octet", manyOpts...),
		request(opRRQ, "undionly.kpxe", "octet", "blksize"), // option without value
		request(opRRQ, "undionly.kpxe", "octet", "blksize", "abc", "tsize", "x"),
		request(opRRQ, "undionly.kpxe", "octet", "tsize", "-5"),
		request(opRRQ, "undionly.kpxe", "netascii", "tsize", "0"),
		request(opRRQ, "undionly.kpxe", "mail"),
		request(opRRQ, "undionly.kpxe", "octet", "blksize", strings.Repeat("0", 480)+"512", "tsize", ""),
		request(opRRQ, "a", "", "blksize", strings.Repeat("0", 492)+"512", "tsize", ""),
		request(opWRQ, "undionly.kpxe", "octet", "blksize", "1468"),
		{0, opDATA, 0, 1, 'x'}, // stray DATA to the server port
		{0, opACK, 0, 1},       // stray ACK
		{0, opACK},             // short ACK
		{0, opERROR, 0, 1},     // short ERROR
		{0, opERROR, 0, 1, 'x', 0},
		{0, opOACK, 't', 0, '1', 0},
		bytes.Repeat([]byte{0, 1, 0}, 20000), // 60 kB datagram
	}
}

// fuzzFiles includes a one-letter name, which leaves the most room for crafted options in a
// request (see TestOversizedOACKDoesNotCrashTheServer).
func fuzzFiles() map[string][]byte {
	return map[string][]byte{
		"undionly.kpxe": bytes.Repeat([]byte("undionly"), 700), // 5600 bytes
		"a":             bytes.Repeat([]byte{1}, 1_000_000),
		"check":         []byte("the server still serves"),
	}
}

// checkServing downloads "check" to prove the server still answers.
func checkServing(t testing.TB, addr *net.UDPAddr) {
	t.Helper()
	got, _, err := download(addr, "check", 0, false)
	if err != nil || string(got) != "the server still serves" {
		t.Fatalf("server stopped serving: %q %v", got, err)
	}
}

func TestMalformedDatagramsDoNotStopTheServer(t *testing.T) {
	ts := startServer(t, fuzzFiles(), func(c *Config) {
		c.Timeout, c.Retries = 50*time.Millisecond, 1
	})
	for i, d := range malformedDatagrams() {
		peer := newRawPeer(t)
		peer.send(ts.addr, d)
		// Whatever the reply, it must be a well-formed TFTP packet (rawPeer.recv checks).
		peer.recv(20 * time.Millisecond)
		checkServing(t, ts.addr)
		if t.Failed() {
			t.Fatalf("after datagram %d %q", i, d)
		}
	}
}

// FuzzRequest sends arbitrary datagrams to a running server, then checks that a normal
// download still works. One server serves all inputs of a fuzzing process.
func FuzzRequest(f *testing.F) {
	for _, d := range malformedDatagrams() {
		f.Add(d)
	}
	f.Add(request(opRRQ, "undionly.kpxe", "octet", "tsize", "0", "blksize", "1468", "windowsize", "4"))
	ts := startServer(f, fuzzFiles(), func(c *Config) {
		// Inputs that are valid requests start transfers to sockets that are gone at once;
		// short timeouts keep those from piling up. Reports and logs are not kept.
		c.Timeout, c.Retries = 30*time.Millisecond, 1
		c.OnTransfer, c.Logger = nil, nil
	})
	// One sending socket for the whole fuzzing process, never closed while it runs: the
	// server's late answers to earlier inputs (errors after a transfer timed out) then always
	// reach it, never a new socket that the OS gave a recycled port — which the check's client
	// would read as its own answer. Whatever arrives on it is drained and ignored.
	sender, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { sender.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := sender.ReadFromUDP(buf); err != nil {
				return
			}
		}
	}()
	f.Fuzz(func(t *testing.T, datagram []byte) {
		if len(datagram) > 65507 {
			return // not a UDP/IPv4 datagram
		}
		if _, err := sender.WriteToUDP(datagram, ts.addr); err != nil {
			t.Fatal(err)
		}
		checkServing(t, ts.addr)
	})
}
