// Package clienttest runs a real fleetboot API (ISO store, inventory, provisioning, boot
// planner on a temp data dir, built by server.Build as `fleetboot serve` builds it) on a
// loopback port, for the tests of the API client and the CLI. It also builds small ISO images with xorriso.
package clienttest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/config"
	"github.com/fleetboot/fleetboot/internal/dhcp"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/server"
)

// Token is the admin API token of every test server; ReadOnlyToken its read-only token.
const (
	Token         = "clienttest-token-0123456789"
	ReadOnlyToken = "clienttest-readonly-0123456789"
)

// Server is a running test API.
type Server struct {
	*httptest.Server
	// DataDir is the server's data directory; it holds api-token like a real one.
	DataDir string
	ISOs    *isostore.Store
	Inv     *inventory.Inventory
	// Leases is a full-mode lease table the API lists (GET /api/v1/leases), as with
	// --dhcp=full; tests fill it with Reserve and Bind.
	Leases *dhcp.LeaseDB
}

// Start runs a server until the test ends. wrap, when not nil, wraps the API handler (to
// count requests or cut connections).
func Start(t testing.TB, wrap func(http.Handler) http.Handler) *Server {
	t.Helper()
	return start(t, wrap, func(*config.Config, *server.Deps) {})
}

// StartConfigured runs a server as Start does, with configure changing its configuration
// first (a limit, a mode) as serve's flags would.
func StartConfigured(t testing.TB, configure func(*config.Config)) *Server {
	t.Helper()
	return start(t, nil, func(c *config.Config, _ *server.Deps) { configure(c) })
}

// StartShared runs a server on the PostgreSQL database dsn (--database) as instance site
// (--site), with a data directory of its own: one of several fleetboot instances sharing an
// inventory, a catalog and a lease table. Its live event stream sends heartbeats only every
// hour, and so wakes only for events: a test sees that another instance's events reach it.
func StartShared(t testing.TB, dsn, site string) *Server {
	t.Helper()
	return start(t, nil, func(c *config.Config, d *server.Deps) {
		c.Database, c.Site = dsn, site
		d.EventHeartbeat = time.Hour
	})
}

// StartSharedImages is StartShared with the uploaded images in images, a directory every
// instance of the test uses (`fleetboot serve --images DIR`).
func StartSharedImages(t testing.TB, dsn, site, images string) *Server {
	t.Helper()
	return start(t, nil, func(c *config.Config, d *server.Deps) {
		c.Database, c.Site, c.ImagesDir = dsn, site, images
		d.EventHeartbeat = time.Hour
	})
}

func start(t testing.TB, wrap func(http.Handler) http.Handler, configure func(*config.Config, *server.Deps)) *Server {
	t.Helper()
	ctx := context.Background()
	data := t.TempDir()
	// A token file as `fleetboot serve` leaves it, for the CLI's token lookup.
	if err := os.WriteFile(filepath.Join(data, auth.TokenFile), []byte(Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bins, err := ipxe.LoadBinaries(fstest.MapFS{
		"undionly.kpxe": {Data: []byte("BIOS-IPXE")},
		"snponly.efi":   {Data: []byte("SNP-IPXE-EFI")},
		"ipxe.efi":      {Data: []byte("FULL-IPXE-EFI")},
	}, "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	// A full-mode configuration whose DHCP server never runs (no sockets): the API lists its
	// leases (written into Leases by the tests) and the metrics read its pool,
	// 10.0.0.100-10.0.0.110.
	cfg := config.Default()
	cfg.DataDir, cfg.DHCPMode = data, config.DHCPFull
	// The test's own temporary directories: where BuildISO puts the images tests register.
	cfg.RegisterDirs = []string{filepath.Dir(t.TempDir())}
	res := &config.Resolved{Interface: "lo", ServerIP: netip.MustParseAddr("10.0.0.1"), HTTPBase: base,
		PoolStart: netip.MustParseAddr("10.0.0.100"), PoolEnd: netip.MustParseAddr("10.0.0.110"), Netmask: net.CIDRMask(24, 32)}
	deps := server.Deps{Binaries: bins, Tokens: auth.Tokens{Admin: Token, ReadOnly: ReadOnlyToken}}
	configure(&cfg, &deps)
	app, err := server.Build(ctx, cfg, res, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	var h http.Handler = app.API
	if wrap != nil {
		h = wrap(h)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return &Server{Server: srv, DataDir: data, ISOs: app.ISOs, Inv: app.Inventory, Leases: app.Leases}
}

// BindLease gives mac a bound one-hour lease from the test pool, as a DHCP exchange with the
// full-mode server would, and returns its address.
func (s *Server) BindLease(t testing.TB, mac net.HardwareAddr, hostname string) net.IP {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	req := dhcp.LeaseRequest{Pool: dhcp.Pool{Start: net.IPv4(10, 0, 0, 100), End: net.IPv4(10, 0, 0, 110)},
		MAC: mac, Hostname: hostname, Now: now, Until: now.Add(time.Hour)}
	ip, err := s.Leases.Reserve(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	req.IP = ip
	if err := s.Leases.Bind(ctx, req); err != nil {
		t.Fatal(err)
	}
	return ip
}

// BuildISO writes files (path → content) into a tree and makes an ISO of it with
// `xorriso -as mkisofs -R -J`; it skips the test when xorriso is not installed.
func BuildISO(t testing.TB, files map[string][]byte) string {
	t.Helper()
	x, err := exec.LookPath("xorriso")
	if err != nil {
		t.Skip("xorriso not installed (apt-get install xorriso)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "tree")
	for p, b := range files {
		fp := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(fp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fp, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "image.iso")
	if b, err := exec.Command(x, "-as", "mkisofs", "-R", "-J", "-V", "CLIENTTEST", "-quiet", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, b)
	}
	return out
}

// Pattern is n deterministic pseudo-random bytes: a wrong offset shows up as a mismatch.
func Pattern(seed, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// FedoraFiles is a Fedora Server DVD layout (real .treeinfo and grub.cfg from
// internal/distro's fixtures; small stand-ins for kernel and initrd). repoRoot is the path
// from the test's directory to the module root, e.g. "../..".
func FedoraFiles(t testing.TB, repoRoot string) map[string][]byte {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "boot-configs", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return map[string][]byte{
		".treeinfo":                 read("fedora-41-server-dvd.treeinfo"),
		".discinfo":                 []byte("1729013212.512\n41\nx86_64\n"),
		"EFI/BOOT/grub.cfg":         read("fedora-41-server-dvd.grub.cfg"),
		"boot/grub2/grub.cfg":       read("fedora-41-server-dvd.grub.cfg"),
		"images/pxeboot/vmlinuz":    Pattern(3, 200_000),
		"images/pxeboot/initrd.img": Pattern(4, 150_000),
		"images/install.img":        Pattern(5, 8192),
		"repodata/repomd.xml":       []byte("<repomd/>"),
	}
}

// HoldUploadSlot takes the only upload slot of the server at base (--max-uploads 1) with a
// one-shot upload whose body never ends, and returns once the server is seen refusing
// uploads for want of a slot; release (also run when the test ends) ends that upload.
//
// The server is asked with probes (an empty body: while the slot is free a probe takes it
// and is refused for its content). A probe can take the slot just before the holder's
// request reaches its handler; the holder is then refused (503) and a new one is started.
// The holder sends 64 KiB at once so that the client's transport writes its request out
// (it buffers headers and a first small write), and declares a length beyond what net/http
// drains from an unread body, so that a refused holder gets its answer at once.
func HoldUploadSlot(t testing.TB, base, token string) (release func()) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		body, pw := io.Pipe()
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			req, _ := http.NewRequest(http.MethodPut, base+"/api/v1/isos/holder", body)
			req.Header.Set("Authorization", "Bearer "+token)
			req.ContentLength = 1 << 30
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}()
		var once sync.Once
		release := func() {
			once.Do(func() {
				pw.CloseWithError(errors.New("holder gives up"))
				<-ended
			})
		}
		t.Cleanup(release)
		if _, err := pw.Write(make([]byte, 64<<10)); err != nil {
			release() // refused before it sent that much: try again
			continue
		}
		for time.Now().Before(deadline) {
			select {
			case <-ended: // refused: a probe had the slot
			default:
				req, _ := http.NewRequest(http.MethodPut, base+"/api/v1/isos/probe", http.NoBody)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode == http.StatusServiceUnavailable {
					return release
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			break
		}
		release()
	}
	t.Fatal("no upload kept the server's only slot within 30 s")
	return nil
}
