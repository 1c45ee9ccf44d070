package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/config"
)

func TestServePlanSaysWhereAndWhatItAnswers(t *testing.T) {
	resolved := &config.Resolved{
		Interface: "eth0", ServerIP: netip.MustParseAddr("10.0.0.5"), Netmask: net.CIDRMask(24, 32),
		HTTPPort: 8080, HTTPBase: "http://10.0.0.5:8080", TFTPAddr: "10.0.0.5:69",
		PoolStart: netip.MustParseAddr("10.0.0.100"), PoolEnd: netip.MustParseAddr("10.0.0.199"),
	}
	withCfg := func(edit func(*config.Config)) config.Config {
		c := config.Default()
		edit(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  config.Config
		r    *config.Resolved
		want []string
		not  []string
	}{
		{name: "default: proxy on the default route's interface", cfg: config.Default(), r: resolved, want: []string{
			"interface: eth0 (the default route's; --interface to choose another)\n",
			"address:   10.0.0.5/24 ",
			"lan:       10.0.0.0/24\n",
			"dhcp:      proxy: answers PXE, UEFI HTTP Boot and iPXE clients on that LAN (UDP 67, 4011) with boot options; hands out no addresses\n",
			"tftp:      10.0.0.5:69 (UDP",
			"http:      :8080 (TCP: boot scripts, files, API), boot script http://10.0.0.5:8080/boot.ipxe\n",
			"unknown:   machines with nothing assigned get the boot menu, local disk after 10s",
			"data:      ./data\n",
		}},
		{name: "interface given", cfg: withCfg(func(c *config.Config) { c.Interface = "eth0" }), r: resolved,
			want: []string{"interface: eth0 (--interface)\n"}, not: []string{"default route"}},
		{name: "full DHCP hands out addresses to everyone",
			cfg: withCfg(func(c *config.Config) { c.DHCPMode = config.DHCPFull; c.Unassigned = "local" }), r: resolved, want: []string{
				"dhcp:      full: the DHCP server of that LAN (UDP 67, 4011), addresses 10.0.0.100-10.0.0.199 to every DHCP client there, not only PXE ones\n",
				"unknown:   machines with nothing assigned get the local disk (--unassigned local)\n",
			}},
		{name: "DHCP and TFTP off", cfg: withCfg(func(c *config.Config) { c.DHCPMode = config.DHCPOff; c.TFTPAddr = "off" }),
			r: &config.Resolved{Interface: "eth0", ServerIP: resolved.ServerIP, Netmask: resolved.Netmask, HTTPBase: resolved.HTTPBase},
			want: []string{
				"dhcp:      off: answers no DHCP; machines come only when your DHCP server points them at http://10.0.0.5:8080/boot.ipxe\n",
				"tftp:      off\n",
			}, not: []string{"UDP 67"}},
		{name: "advertised address without an interface address",
			cfg:  withCfg(func(c *config.Config) { c.DHCPMode = config.DHCPOff; c.AdvertiseIP = "192.0.2.7" }),
			r:    &config.Resolved{ServerIP: netip.MustParseAddr("192.0.2.7"), HTTPBase: "http://192.0.2.7:8080"},
			want: []string{"interface: none (the default route's", "address:   192.0.2.7 (machines", "lan:       unknown\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := servePlan(tc.cfg, tc.r)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("plan lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("plan has %q:\n%s", n, got)
				}
			}
		})
	}
}

// serve --dry-run resolves the configuration like serve does, prints the plan and starts
// nothing: no data directory appears, and a bad flag fails the same way serve would.
func TestServeDryRunPrintsThePlanAndStartsNothing(t *testing.T) {
	cliEnv(t)
	data := filepath.Join(t.TempDir(), "data")
	out, _, err := runCLI(t, "serve", "--dry-run", "--data", data, "--interface", "lo", "--http", "127.0.0.1:1", "--dhcp", "off")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"interface: lo (--interface)", "address:   127.0.0.1/8", "lan:       127.0.0.0/8", "dhcp:      off:", "data:      " + data} {
		if !strings.Contains(out, w) {
			t.Errorf("dry run output lacks %q:\n%s", w, out)
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("dry run touched the data directory: %v", err)
	}
	t.Setenv("FLEETBOOT_DHCP", "full")
	_, _, err = runCLI(t, "serve", "--dry-run", "--data", data, "--interface", "lo")
	if err == nil || !strings.Contains(err.Error(), "--pool") {
		t.Errorf("dry run with FLEETBOOT_DHCP=full and no pool: %v, want the --pool error serve gives", err)
	}
	_, _, err = runCLI(t, "serve", "--dry-run", "--interface", "no-such-if0")
	if err == nil || !strings.Contains(err.Error(), "no-such-if0") {
		t.Errorf("dry run on a missing interface: %v", err)
	}
}
