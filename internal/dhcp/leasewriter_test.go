//go:build linux

package dhcp

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
)

// failDescriptors makes every write through this process's open descriptors of the files
// paths fail, as a failing disk does: each descriptor is replaced (dup3) by a read-only one of
// the same file, so writes return EBADF, and SQLite answers every commit on a connection
// holding them with "disk I/O error". Files opened afterwards are not affected. It returns
// how many descriptors it replaced.
func failDescriptors(t *testing.T, paths ...string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		for _, p := range paths {
			if target != p {
				continue
			}
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				t.Fatal(err)
			}
			ro, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Dup3(ro, fd, syscall.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			syscall.Close(ro)
			n++
		}
	}
	return n
}

// TestLeaseWriterReopensAfterAFailedCommit: the lease file's descriptors fail under the
// running server (failDescriptors), so the group-commit writer's connection fails every
// commit from then on. A Bind whose commit failed reports it (the server sends no ACK); the
// writer then gives up that connection and opens another by itself, and Binds succeed again
// without a restart. Nothing the in-memory copy holds is lost: the failed Bind's row and an
// offer queued while the writer was failing are in the file when it is opened again.
// (Before, the writer kept its connection, and every Bind failed until fleetboot restarted.)
func TestLeaseWriterReopensAfterAFailedCommit(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := OpenLeaseFile(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := pool(10, 49)
	now := t0
	ip1 := reserve(t, db, p, macN(1), nil, now)
	bind(t, db, p, macN(1), ip1, now)

	path := filepath.Join(dir, store.LeasesFile)
	if n := failDescriptors(t, path, path+"-wal"); n == 0 {
		t.Fatal("no open descriptor of the lease file")
	}
	ip2 := reserve(t, db, p, macN(2), nil, now)
	if err := db.Bind(ctx, LeaseRequest{Pool: p, MAC: macN(2), IP: ip2, Now: now, Until: now.Add(time.Hour)}); err == nil {
		t.Fatal("Bind succeeded although its commit cannot have: an ACK would go out for a lease that is not in the file")
	}
	ip3 := reserve(t, db, p, macN(3), nil, now) // an offer's hold, queued while the writer fails

	failed := time.Now()
	ip4 := reserve(t, db, p, macN(4), nil, now)
	attempts := 0
	for {
		attempts++
		err := db.Bind(ctx, LeaseRequest{Pool: p, MAC: macN(4), IP: ip4, Now: now, Until: now.Add(time.Hour)})
		if err == nil {
			break
		}
		if errors.Is(err, errLeasesClosed) || time.Since(failed) > time.Minute {
			t.Fatalf("Bind still fails %s after the failure (%d attempts): %v", time.Since(failed).Round(time.Millisecond), attempts, err)
		}
	}
	t.Logf("Bind committed again %s after the failure, at attempt %d", time.Since(failed).Round(time.Millisecond), attempts)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	again, err := OpenLeaseFile(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	for _, want := range []struct {
		ip    net.IP
		mac   string
		state LeaseState
	}{{ip1, macN(1).String(), StateBound}, {ip2, macN(2).String(), StateBound}, {ip3, macN(3).String(), StateOffered}, {ip4, macN(4).String(), StateBound}} {
		l := leaseOf(t, again, want.ip)
		if l.MAC.String() != want.mac || l.State != want.state {
			t.Errorf("%v in the reopened file: %s %s, want %s %s", want.ip, l.MAC, l.State, want.mac, want.state)
		}
	}
}
