package tftp

import (
	"errors"
	"strings"
	"testing"
)

// TestTransfersBeyondMaxTransfersGetBusy: with one transfer running (its client got the first
// block and sent no ACK yet), a second read request gets a TFTP error "Server busy" instead of
// a goroutine; once the first ends, requests are served again.
func TestTransfersBeyondMaxTransfersGetBusy(t *testing.T) {
	ts := startServer(t, testFiles(), func(c *Config) { c.MaxTransfers = 1 })
	slow := newRawPeer(t)
	slow.send(ts.addr, request(opRRQ, "undionly.kpxe", "octet"))
	first, tid := slow.mustRecv()
	if first.op != opDATA {
		t.Fatalf("first transfer: %+v", first)
	}
	other := newRawPeer(t)
	other.send(ts.addr, request(opRRQ, "undionly.kpxe", "octet"))
	p, _ := other.mustRecv()
	if p.op != opERROR || !strings.Contains(p.msg, "busy") {
		t.Fatalf("second request while one runs: %+v", p)
	}
	if tr := ts.next(t); !errors.Is(tr.Err, ErrBusy) {
		t.Fatalf("report: %+v", tr)
	}
	// Finish the first transfer, then the next request is served.
	slow.lockstep(first, tid, 512)
	if tr := ts.next(t); tr.Err != nil {
		t.Fatalf("first transfer: %+v", tr)
	}
	if _, _, err := download(ts.addr, "undionly.kpxe", 0, false); err != nil {
		t.Fatalf("after the first ended: %v", err)
	}
}
