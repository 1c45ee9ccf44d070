package simulate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseBootReadsKernelArgsAndInitrds(t *testing.T) {
	script := "#!ipxe\necho fleetboot: booting default target\n" +
		"kernel http://10.0.0.1:8080/isos/ab/files/linux initrd=initrd.gz auto=true url=http://10.0.0.1:8080/unattended/52-54-00-00-00-01/preseed.cfg --- quiet || goto failed\n" +
		"initrd --name initrd.gz http://10.0.0.1:8080/isos/ab/files/initrd.gz || goto failed\n" +
		"initrd http://10.0.0.1:8080/assets/extra.img\nboot || goto failed\n"
	k, args, initrds := parseBoot(script)
	if k != "http://10.0.0.1:8080/isos/ab/files/linux" {
		t.Errorf("kernel %q", k)
	}
	wantArgs := []string{"initrd=initrd.gz", "auto=true", "url=http://10.0.0.1:8080/unattended/52-54-00-00-00-01/preseed.cfg", "---", "quiet"}
	if !reflect.DeepEqual(args, wantArgs) {
		t.Errorf("args %q, want %q", args, wantArgs)
	}
	if want := []string{"http://10.0.0.1:8080/isos/ab/files/initrd.gz", "http://10.0.0.1:8080/assets/extra.img"}; !reflect.DeepEqual(initrds, want) {
		t.Errorf("initrds %q", initrds)
	}
	if k, _, _ := parseBoot("#!ipxe\nsanboot --drive 0x80\n"); k != "" {
		t.Errorf("local boot script gave kernel %q", k)
	}
}

func TestUnattendedURLsFromEveryInstallerFamily(t *testing.T) {
	args := []string{"quiet", "url=http://s/unattended/m/preseed.cfg", "inst.ks=http://s/unattended/m/ks.cfg",
		"ds=nocloud-net;s=http://s/unattended/m/", "url=http://elsewhere/x.cfg"}
	want := []string{"http://s/unattended/m/preseed.cfg", "http://s/unattended/m/ks.cfg",
		"http://s/unattended/m/meta-data", "http://s/unattended/m/user-data"}
	if got := unattendedURLs(args); !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExpandFillsIPXESettings(t *testing.T) {
	m := &machine{n: 7, fw: FirmwareBIOSPXE, mac: []byte{2, 0xfb, 0x5e, 0, 0, 7}, uuid: [16]byte{1}}
	m.ip = addrAdd(poolStart, 7)
	got := m.expand("http://s/boot.ipxe?mac=${netX/mac:hexhyp}&arch=${buildarch}&platform=${platform}&ip=${netX/ip}&serial=${serial:uristring}&x=${unknown}")
	want := "http://s/boot.ipxe?mac=02-fb-5e-00-00-07&arch=i386&platform=pcbios&ip=10.213.16.17&serial=SIM000007&x="
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestFirmwareDeckFollowsTheMix(t *testing.T) {
	deck, err := firmwareDeck(map[Firmware]int{FirmwareUEFIHTTP: 3, FirmwareIPXE: 1}, 8)
	if err != nil {
		t.Fatal(err)
	}
	n := map[Firmware]int{}
	for _, f := range deck {
		n[f]++
	}
	if n[FirmwareUEFIHTTP] != 6 || n[FirmwareIPXE] != 2 || len(n) != 2 {
		t.Errorf("deck %v", deck)
	}
	if first := map[Firmware]bool{deck[0]: true, deck[1]: true, deck[2]: true, deck[3]: true}; len(first) != 2 {
		t.Errorf("kinds not interleaved: %v", deck)
	}
	if _, err := ParseMix("uefi-pxe=2,floppy=1"); err == nil || !strings.Contains(err.Error(), "floppy") {
		t.Errorf("bad kind accepted: %v", err)
	}
	if _, err := firmwareDeck(map[Firmware]int{FirmwareIPXE: 0}, 3); err == nil {
		t.Error("all-zero mix accepted")
	}
}

func TestPercentilesAreNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if pct(d, 50) != 100*time.Millisecond || pct(d, 99) != 198*time.Millisecond || pct(d[:1], 99) != time.Millisecond {
		t.Errorf("p50 %v p99 %v", pct(d, 50), pct(d, 99))
	}
}

// fleetbootBinary builds cmd/fleetboot once for the fleet tests.
func fleetbootBinary(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the simulation creates network namespaces")
	}
	for _, c := range []string{"ip", "xorriso", "go"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s", c)
		}
	}
	if _, err := os.Stat(debianKernel); err != nil {
		t.Skip("needs debian-installer-12-netboot-amd64 (scripts/deps.sh)")
	}
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "fleetboot-simulate-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.dir = dir
		bin := filepath.Join(dir, "fleetboot")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/fleetboot")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		build.bin = bin
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// build is the one fleetboot binary the package's tests run (built once, removed by TestMain).
var build struct {
	once     sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// TestFleetInstallsEndToEnd boots a small fleet of every firmware kind through the whole
// chain against a real server, in full and in proxy DHCP mode, and checks that every machine
// got through every phase its firmware has and that the server agrees they are installed.
func TestFleetInstallsEndToEnd(t *testing.T) {
	bin := fleetbootBinary(t)
	for _, tc := range []struct {
		mode     string
		machines int
	}{{"full", 50}, {"proxy", 20}} {
		t.Run(tc.mode, func(t *testing.T) {
			var progress strings.Builder
			rep, err := Run(context.Background(), Config{Binary: bin, Machines: tc.machines, Mode: tc.mode,
				Spread: 3 * time.Second, InitrdMB: 2, Progress: &progress, Timeout: 10 * time.Minute})
			if rep != nil {
				var b strings.Builder
				rep.WriteTable(&b)
				t.Log(b.String())
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Failed != 0 || rep.Succeeded != tc.machines || rep.ServerInstalled != tc.machines {
				t.Fatalf("%d succeeded, %d failed (%v), server lists %d installed", rep.Succeeded, rep.Failed, rep.Examples, rep.ServerInstalled)
			}
			mix, n := rep.Mix, tc.machines
			if len(mix) != 4 || mix[FirmwareIPXE] < n/4 || mix[FirmwareBIOSPXE] > n/4+1 {
				t.Errorf("default mix %v is not the four kinds equally", mix)
			}
			pxe := mix[FirmwareBIOSPXE] + mix[FirmwareUEFIPXE]
			want := map[string]int{PhaseDHCP: n - mix[FirmwareIPXE], PhaseTFTP: pxe, PhaseNBPHTTP: mix[FirmwareUEFIHTTP],
				PhaseDHCPIPXE: n, PhaseScript: n, PhaseKernel: n, PhaseInitrd: n, PhaseUnattended: n, PhaseDone: n}
			for ph, n := range want {
				if got := rep.Phases[ph].Count; got != n {
					t.Errorf("phase %s: %d machines, want %d", ph, got, n)
				}
			}
			if kb := rep.Phases[PhaseInitrd].Bytes; kb < int64(tc.machines)*2<<20 {
				t.Errorf("initrd bytes %d, want at least %d × 2 MiB", kb, tc.machines)
			}
			if !strings.Contains(progress.String(), "powered on") {
				t.Errorf("no progress line: %q", progress.String())
			}
			// This process's namespaces only: another fleetboot simulate or test on the
			// machine has its own, with its own PID in their names.
			out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
			if strings.Contains(string(out), fmt.Sprintf("fbsim-%d-", os.Getpid())) {
				t.Errorf("namespaces left behind: %s", out)
			}
		})
	}
}

// Several servers on one segment share their leases only through PostgreSQL, and each runs
// on a fresh data directory of its own: Run says so before it creates anything.
func TestRunRefusesAnHAPairWithoutADatabase(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Machines: 1, Mode: "full", Servers: 2}, "--database"},
		{Config{Machines: 1, Mode: "full", Servers: 2, Database: "postgres://x/y", DataDir: "/srv/data"}, "--data is for one server"},
		{Config{Machines: 1, Mode: "full", Servers: 9, Database: "postgres://x/y"}, "want 1 to 8"},
	} {
		if _, err := Run(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %q", tc.cfg, err, tc.want)
		}
	}
}
