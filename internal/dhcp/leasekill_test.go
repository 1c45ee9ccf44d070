package dhcp

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/faulttest"
)

const leaseChildEnv = "FLEETBOOT_LEASE_KILL_CHILD"

// leaseChild binds addresses for new clients from four goroutines, printing "ACK mac ip" once
// each Bind returned (the moment the server would send the DHCPACK), until it is killed.
func leaseChild(t *testing.T) {
	_, db := openLeaseFile(t, os.Getenv(leaseChildEnv))
	p := Pool{Start: net.IPv4(10, 99, 0, 1).To4(), End: net.IPv4(10, 99, 3, 254).To4()}
	var out sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < 1000; i += 4 {
				mac := macN(i)
				now := time.Now()
				ip, err := db.Reserve(context.Background(), LeaseRequest{Pool: p, MAC: mac, Now: now, Until: now.Add(offerHold)})
				if err == nil {
					err = db.Bind(context.Background(), LeaseRequest{Pool: p, MAC: mac, IP: ip, Now: now, Until: now.Add(time.Hour)})
				}
				out.Lock()
				if err != nil {
					fmt.Printf("ERR %s %v\n", mac, err)
				} else {
					fmt.Printf("ACK %s %s\n", mac, ip)
				}
				out.Unlock()
			}
		}()
	}
	wg.Wait()
	time.Sleep(5 * time.Minute) // the parent kills before; this bounds an orphan
}

// TestKillDuringLeaseWritesLosesNoAcknowledgedLease SIGKILLs a process binding leases from
// four goroutines once it acknowledged 200 of them, at whatever point of a group commit it
// is. After a restart every acknowledged lease is bound to its client, and no address is held
// by two.
func TestKillDuringLeaseWritesLosesNoAcknowledgedLease(t *testing.T) {
	if dir := os.Getenv(leaseChildEnv); dir != "" {
		leaseChild(t)
		return
	}
	dir := t.TempDir()
	acked := map[string]string{}
	for _, f := range faulttest.KillAfterAcks(t, 200, leaseChildEnv+"="+dir) {
		if len(f) == 2 {
			acked[f[0]] = f[1]
		}
	}

	st, db := openLeaseFile(t, dir)
	defer st.Close()
	leases, err := db.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	byMAC, byIP := map[string]Lease{}, map[string]string{}
	for _, l := range leases {
		if l.State != StateBound || !l.Active(now) {
			continue
		}
		if other, ok := byIP[l.IP.String()]; ok {
			t.Errorf("%s bound to %s and %s", l.IP, other, l.MAC)
		}
		byIP[l.IP.String()] = l.MAC.String()
		byMAC[l.MAC.String()] = l
	}
	for mac, ip := range acked {
		if l, ok := byMAC[mac]; !ok || l.IP.String() != ip {
			t.Errorf("acknowledged lease %s → %s lost after the kill (table has %+v)", mac, ip, l)
		}
	}
	t.Logf("killed after %d acknowledged leases; %d bound after restart (writes in flight may have committed too)", len(acked), len(byMAC))
}
