// Package datadir guards fleetboot's data directory: one process at a time may own it.
//
// Two servers on one --data would each run their start-up cleanup (abandoned uploads, stale
// temporary files) against the other's work in progress, and a restore into a directory a
// server is using would swap its files underneath it. Lock takes an exclusive flock(2) on the
// directory itself: the kernel releases it when the process dies (kill -9 included), so nothing
// stale is left to clean up, and no file is added to the directory.
package datadir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrLocked is returned (wrapped) when another process holds the data directory.
var ErrLocked = errors.New("data directory in use")

// Lock is a held lock on a data directory; Close releases it.
type Lock struct {
	f *os.File
}

// Acquire takes the exclusive lock on the existing directory dir without waiting. When another
// process holds it, the error wraps ErrLocked and names the directory and, where /proc tells,
// the holder's pid and command line.
func Acquire(dir string) (*Lock, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("--data %s: %w", dir, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("--data %s: %w", dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err == nil {
		return &Lock{f: f}, nil
	}
	defer f.Close()
	if errors.Is(err, syscall.EWOULDBLOCK) {
		holder := "a process this one cannot see"
		if pid, cmd := holderOf(f); pid != "" {
			holder = "pid " + pid
			if cmd != "" {
				holder += " (" + cmd + ")"
			}
		}
		return nil, fmt.Errorf("--data %s is in use by another fleetboot, %s: stop it first, or give this one another --data: %w",
			abs, holder, ErrLocked)
	}
	return nil, fmt.Errorf("--data %s: lock: %w", abs, err)
}

// Close releases the lock.
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the only descriptor releases the flock
	l.f = nil
	return err
}

// holderOf finds, best effort, the process holding a flock on f's inode in /proc/locks
// ("1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF") and its command line. It returns ""
// when /proc does not tell (another pid namespace, no /proc).
func holderOf(f *os.File) (pid, cmd string) {
	st, err := f.Stat()
	if err != nil {
		return "", ""
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return "", ""
	}
	locks, err := os.Open("/proc/locks")
	if err != nil {
		return "", ""
	}
	defer locks.Close()
	ino := ":" + strconv.FormatUint(sys.Ino, 10)
	sc := bufio.NewScanner(locks)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// Blocked waiters are listed as "1: -> FLOCK …"; only holders count.
		if len(fields) < 6 || fields[1] != "FLOCK" || !strings.HasSuffix(fields[5], ino) {
			continue
		}
		pid = fields[4]
		if b, err := os.ReadFile("/proc/" + pid + "/cmdline"); err == nil {
			cmd = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
			if len(cmd) > 120 {
				cmd = cmd[:120] + "…"
			}
		}
		return pid, cmd
	}
	return "", ""
}
