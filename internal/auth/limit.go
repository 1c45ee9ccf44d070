package auth

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Limiter is a token bucket per source address for failed sign-ins: each address may fail
// Burst times in a row, then once more per Every. Memory is bounded: at most Max addresses are
// tracked; when a new one comes, the one that failed least recently is forgotten first, and
// an address whose bucket has refilled is dropped whenever it is seen.
//
// IPv6 addresses are counted per /64: one host usually holds a whole /64, and counting single
// addresses would give it 2^64 buckets.
type Limiter struct {
	burst float64
	every time.Duration
	max   int
	now   func() time.Time

	mu  sync.Mutex
	m   map[netip.Addr]*list.Element // of *bucket
	lru list.List                    // front: most recent failure
}

type bucket struct {
	key    netip.Addr
	tokens float64
	at     time.Time
}

// Defaults for the API's failed sign-in limit: 10 failures in a row, then one per 6 s, for at
// most 4096 addresses (a few hundred KiB).
const (
	DefaultFailBurst = 10
	DefaultFailEvery = 6 * time.Second
	DefaultFailAddrs = 4096
)

// NewLimiter returns a limiter; now is the clock (nil: time.Now).
func NewLimiter(burst int, every time.Duration, max int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	if burst < 1 {
		burst = 1
	}
	if max < 1 {
		max = 1
	}
	return &Limiter{burst: float64(burst), every: every, max: max, now: now, m: map[netip.Addr]*list.Element{}}
}

func limitKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.Addr()
		}
	}
	return a
}

// refill brings b up to now and reports whether it is full again (then it carries nothing).
func (l *Limiter) refill(b *bucket, now time.Time) bool {
	if l.every > 0 {
		b.tokens += float64(now.Sub(b.at)) / float64(l.every)
	}
	b.at = now
	if b.tokens >= l.burst {
		b.tokens = l.burst
		return true
	}
	return false
}

// Blocked reports whether addr has no failure left; retry is how long until it has one.
func (l *Limiter) Blocked(addr netip.Addr) (blocked bool, retry time.Duration) {
	if l == nil {
		return false, 0
	}
	k := limitKey(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[k]
	if !ok {
		return false, 0
	}
	b := e.Value.(*bucket)
	if l.refill(b, l.now()) {
		l.lru.Remove(e)
		delete(l.m, k)
		return false, 0
	}
	if b.tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - b.tokens) * float64(l.every))
}

// Fail takes one failure from addr's bucket.
func (l *Limiter) Fail(addr netip.Addr) {
	if l == nil {
		return
	}
	k := limitKey(addr)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[k]
	if !ok {
		for l.lru.Len() >= l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.m, old.Value.(*bucket).key)
		}
		e = l.lru.PushFront(&bucket{key: k, tokens: l.burst, at: now})
		l.m[k] = e
	} else {
		l.refill(e.Value.(*bucket), now)
		l.lru.MoveToFront(e)
	}
	b := e.Value.(*bucket)
	if b.tokens >= 1 {
		b.tokens--
	} else {
		b.tokens = 0
	}
}

// Tracked is how many addresses the limiter holds (for tests and metrics).
func (l *Limiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
