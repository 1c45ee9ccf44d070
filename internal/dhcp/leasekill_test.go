package dhcp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

const leaseChildEnv = "FLEETBOOT_LEASE_KILL_CHILD"

// leaseChild binds addresses for new clients from four goroutines, printing "ACK mac ip" once
// each Bind returned (the moment the server would send the DHCPACK), until it is killed.
func leaseChild(t *testing.T) {
	_, db := openTestStore(t, os.Getenv(leaseChildEnv))
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
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), leaseChildEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			cmd.Process.Kill()
		}
	}
	defer kill()
	acked := map[string]string{}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(2 * time.Minute)
	for len(acked) < 200 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("child ended after %d acks: %s", len(acked), stderr.String())
			}
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "ACK":
				acked[f[1]] = f[2]
			case len(f) > 0 && f[0] == "ERR":
				t.Fatalf("child: %s", l)
			}
		case <-deadline:
			t.Fatalf("only %d acks within 2 minutes: %s", len(acked), stderr.String())
		}
	}
	kill()
	// Lines the child wrote before it died are acknowledgements too.
	for l := range lines {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "ACK" {
			acked[f[1]] = f[2]
		}
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child did not die by the signal: %v", err)
	}

	st, db := openTestStore(t, dir)
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
