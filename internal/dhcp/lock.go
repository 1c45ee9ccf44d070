package dhcp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockInterface claims the right to serve DHCP on iface by binding the Linux abstract unix
// socket "@fleetboot-dhcp-<iface>". Abstract sockets belong to a network namespace, which is
// exactly the scope of the DHCP ports, live in no file system (nothing stale after a crash:
// the kernel frees the name when the process dies) and cannot be bound twice. This catches the
// double start that SO_REUSEPORT (set by server4) would otherwise let through silently.
//
// Close the returned socket to release the claim.
func lockInterface(iface string) (io.Closer, error) {
	name := lockName(iface)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err == nil {
		return c, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		holder := "pid unknown"
		if pid := abstractSocketHolder(name); pid != "" {
			holder = "pid " + pid
		}
		return nil, fmt.Errorf("another fleetboot already serves DHCP on %s (%s; it holds %s): "+
			"stop it, or start this one with --dhcp=off", iface, holder, name)
	}
	return nil, fmt.Errorf("dhcp: claim interface %s (%s): %w", iface, name, err)
}

func lockName(iface string) string { return "@fleetboot-dhcp-" + iface }

// abstractSocketHolder finds, best effort, the pid holding the abstract unix socket name in
// the calling thread's network namespace: its inode from /proc/thread-self/net/unix, then the
// process with a descriptor on that inode. It returns "" when not found or not permitted.
func abstractSocketHolder(name string) string {
	f, err := os.Open("/proc/thread-self/net/unix")
	if err != nil {
		return ""
	}
	defer f.Close()
	var inode string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Num RefCount Protocol Flags Type St Inode Path
		fields := strings.Fields(sc.Text())
		if len(fields) == 8 && fields[7] == name {
			inode = fields[6]
			break
		}
	}
	if inode == "" {
		return ""
	}
	want := "socket:[" + inode + "]"
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		fds, _ := os.ReadDir(filepath.Join(p, "fd"))
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(p, "fd", fd.Name())); err == nil && link == want {
				return filepath.Base(p)
			}
		}
	}
	return ""
}
