package dhcp

import (
	"context"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDORA is one client's DISCOVER (Reserve) and REQUEST (Bind) against a table that
// already holds b.N leases: the cost per new client as the fleet grows.
func BenchmarkDORA(b *testing.B) {
	st, db := openTestStore(b, storetest.Backends[0].Fresh(b))
	defer st.Close()
	p := Pool{Start: net.IPv4(10, 0, 0, 1).To4(), End: net.IPv4(10, 0, 255, 254).To4()}
	now := time.Now()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mac := net.HardwareAddr{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		ip, err := db.Reserve(ctx, LeaseRequest{Pool: p, MAC: mac, Now: now, Until: now.Add(offerHold)})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Bind(ctx, LeaseRequest{Pool: p, MAC: mac, IP: ip, Now: now, Until: now.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDORAParallel is BenchmarkDORA with 64 clients at once, as the server handles them
// (DefaultMaxInFlight): their Binds share commits.
func BenchmarkDORAParallel(b *testing.B) {
	st, db := openTestStore(b, storetest.Backends[0].Fresh(b))
	defer st.Close()
	doraParallel(b, db)
}

// BenchmarkDORAHAPair is BenchmarkDORAParallel on PostgreSQL through the two lease stores of
// an HA pair, each client at one of them: every change takes the shared lease lock, so this
// measures how long a change holds it.
func BenchmarkDORAHAPair(b *testing.B) {
	dbs := haPair(b)
	doraParallel(b, dbs[0], dbs[1])
}

// doraParallel runs b.N DORAs of new clients, 32 per CPU at once, spread over dbs in turn.
func doraParallel(b *testing.B, dbs ...*LeaseDB) {
	p := Pool{Start: net.IPv4(10, 0, 0, 1).To4(), End: net.IPv4(10, 0, 255, 254).To4()}
	now := time.Now()
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			db := dbs[int(i)%len(dbs)]
			mac := net.HardwareAddr{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
			ip, err := db.Reserve(ctx, LeaseRequest{Pool: p, MAC: mac, Now: now, Until: now.Add(offerHold)})
			if err != nil {
				b.Fatal(err)
			}
			if err := db.Bind(ctx, LeaseRequest{Pool: p, MAC: mac, IP: ip, Now: now, Until: now.Add(time.Hour)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
