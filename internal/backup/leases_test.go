package backup

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/dhcp"
	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/store"
)

// The DHCP lease file is in a backup as a snapshot (never the live file with its WAL beside
// it) and a restore brings the bound leases back, while the lease store is open and writing.
func TestBackupHoldsTheLeaseFile(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	st, err := store.Open(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := isostore.Open(ctx, isostore.Config{DataDir: data, DB: st}); err != nil {
		t.Fatal(err)
	}
	leases, err := dhcp.OpenLeaseFile(ctx, data, st)
	if err != nil {
		t.Fatal(err)
	}
	defer leases.Close()
	pool := dhcp.Pool{Start: net.IPv4(10, 9, 0, 10).To4(), End: net.IPv4(10, 9, 0, 50).To4()}
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	now := time.Now()
	ip, err := leases.Reserve(ctx, dhcp.LeaseRequest{Pool: pool, MAC: mac, Now: now, Until: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := leases.Bind(ctx, dhcp.LeaseRequest{Pool: pool, MAC: mac, IP: ip, Now: now, Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	to := filepath.Join(t.TempDir(), "b.tar")
	m, err := Create(ctx, data, "", to, "test")
	if err != nil {
		t.Fatal(err)
	}
	var have bool
	for _, f := range m.Files {
		if f.Path == store.LeasesFile {
			have = true
		}
		if strings.HasSuffix(f.Path, "-wal") || strings.HasSuffix(f.Path, "-shm") {
			t.Errorf("backup holds the live database's %s", f.Path)
		}
	}
	if !have {
		t.Fatalf("backup has no %s: %+v", store.LeasesFile, m.Files)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(ctx, to, restored, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	st2, err := store.Open(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	back, err := dhcp.OpenLeaseFile(ctx, restored, st2)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	list, err := back.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !list[0].IP.Equal(ip) || list[0].MAC.String() != mac.String() || list[0].State != dhcp.StateBound {
		t.Fatalf("restored leases: %+v, want %s bound to %s", list, ip, mac)
	}
}
