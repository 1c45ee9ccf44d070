package isostore

import (
	"os"
	"sync"

	"github.com/fleetboot/fleetboot/internal/iso9660"
)

// maxIdleFDs bounds the descriptors kept open per image between requests: enough for the
// requests a busy server has in flight at once; the rest are closed when handed back.
const maxIdleFDs = 64

// fdPools holds one fdPool per uploaded image, by SHA-256.
type fdPools struct {
	mu    sync.Mutex
	pools map[string]*fdPool
}

// fdPool keeps open descriptors of one image for reuse. Each is used by one File at a time:
// sendfile works from the descriptor's offset, which two requests would race on.
type fdPool struct {
	mu      sync.Mutex
	idle    []*os.File
	dropped bool // the image was deleted: descriptors handed back are closed
}

// pool returns the pool of the image with SHA-256 sum, creating it.
func (ps *fdPools) pool(sum string) *fdPool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.pools[sum]
	if p == nil {
		if ps.pools == nil {
			ps.pools = map[string]*fdPool{}
		}
		p = &fdPool{}
		ps.pools[sum] = p
	}
	return p
}

// drop closes the idle descriptors of an image being deleted, so its disk space is freed
// once the requests still reading it finish; those close theirs instead of handing them back.
func (ps *fdPools) drop(sum string) {
	ps.mu.Lock()
	p := ps.pools[sum]
	delete(ps.pools, sum)
	ps.mu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	idle := p.idle
	p.idle, p.dropped = nil, true
	p.mu.Unlock()
	for _, f := range idle {
		f.Close()
	}
}

// retain drops the pools of every image not in keep: images another instance deleted from a
// shared catalog, whose descriptors would otherwise stay open here (and keep the file's space
// allocated on the shared directory).
func (ps *fdPools) retain(keep map[string]bool) {
	ps.mu.Lock()
	var gone []string
	for sum := range ps.pools {
		if !keep[sum] {
			gone = append(gone, sum)
		}
	}
	ps.mu.Unlock()
	for _, sum := range gone {
		ps.drop(sum)
	}
}

// get takes an idle descriptor, or returns nil.
func (p *fdPool) get() *os.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		f := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return f
	}
	return nil
}

// put hands a descriptor back (File.Close).
func (p *fdPool) put(r iso9660.ReaderAt) error {
	f, ok := r.(*os.File)
	if !ok {
		return r.Close()
	}
	p.mu.Lock()
	if !p.dropped && len(p.idle) < maxIdleFDs {
		p.idle = append(p.idle, f)
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	return f.Close()
}
