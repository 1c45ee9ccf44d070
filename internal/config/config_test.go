package config

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/fleetboot/fleetboot/internal/tlstest"
)

func valid() Config {
	c := Default()
	c.Interface = "lo"
	c.AdvertiseIP = "10.77.0.1"
	return c
}

func TestValidateMessagesSayWhatToDo(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"bad mode", func(c *Config) { c.DHCPMode = "auto" }, "--dhcp must be proxy, full or off"},
		{"full without pool", func(c *Config) { c.DHCPMode = DHCPFull; c.Netmask = "255.255.255.0" }, "--dhcp=full needs --pool"},
		{"pool backwards", func(c *Config) { c.DHCPMode = DHCPFull; c.Pool = "10.77.0.9-10.77.0.1" }, "END is before START"},
		{"pool outside net", func(c *Config) {
			c.DHCPMode = DHCPFull
			c.Pool = "10.78.0.1-10.78.0.9"
			c.Netmask = "255.255.255.0"
		}, "outside 10.77.0.1/24"},
		{"http without port", func(c *Config) { c.HTTPAddr = ":0" }, "need a fixed port"},
		{"http garbage", func(c *Config) { c.HTTPAddr = "nope" }, "--http"},
		{"kernel traversal", func(c *Config) { c.BootKernel = "../etc/passwd" }, "--boot-kernel"},
		{"kernel absolute", func(c *Config) { c.BootKernel = "/vmlinuz" }, "relative path"},
		{"initrd without kernel", func(c *Config) { c.BootInitrd = []string{"i"} }, "need --boot-kernel"},
		{"cmdline newline", func(c *Config) { c.BootKernel = "k"; c.BootCmdline = "a\nshell" }, "one line"},
		{"bad dns", func(c *Config) { c.DNS = []string{"x"} }, "--dns"},
		{"short lease", func(c *Config) {
			c.DHCPMode = DHCPFull
			c.Pool = "10.77.0.10-10.77.0.20"
			c.Netmask = "255.255.255.0"
			c.LeaseTime = time.Second
		}, "--lease-time"},
		{"bad http boot file", func(c *Config) { c.HTTPBootFile = "x.efi" }, "--http-boot-file"},
		{"bad advertise", func(c *Config) { c.AdvertiseIP = "::1" }, "--advertise-ip"},
		{"short read-only token", func(c *Config) { c.ReadOnlyToken = "short" }, "--readonly-token must be at least 16"},
		{"tls cert without key", func(c *Config) { c.TLSCert = "/nonexistent/cert.pem" }, "--tls-cert and --tls-key go together"},
		{"tls unreadable", func(c *Config) { c.TLSCert, c.TLSKey = "/nonexistent/cert.pem", "/nonexistent/key.pem" }, "--tls-cert /nonexistent/cert.pem"},
		{"register dir missing", func(c *Config) { c.RegisterDirs = []string{"/nonexistent/isos"} }, "--register-dir /nonexistent/isos"},
		{"same tokens", func(c *Config) { c.Token = "same-token-0123456789"; c.ReadOnlyToken = c.Token }, "must differ"},
		{"write idle too short", func(c *Config) { c.HTTPWriteIdleTimeout = 500 * time.Millisecond }, "--http-write-idle-timeout must be at least 1s (0: never)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mod(&c)
			_, err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateResolves(t *testing.T) {
	c := valid()
	c.DHCPMode = DHCPFull
	c.Pool = "10.77.0.100-10.77.0.199"
	c.Netmask = "255.255.255.0"
	c.DNS = []string{"10.77.0.1", " 1.1.1.1"}
	c.BootKernel = "linux"
	c.BootInitrd = []string{"a.img,b.img", "c.img"}
	c.TFTPAddr = ":69"
	r, err := c.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPBase != "http://10.77.0.1:8080" || r.TFTPAddr != "10.77.0.1:69" || r.PoolStart.String() != "10.77.0.100" ||
		len(r.DNS) != 2 || strings.Join(r.BootInitrd, ",") != "a.img,b.img,c.img" {
		t.Fatalf("resolved %+v", r)
	}
	c.TFTPAddr = "off"
	if r, _ := c.Validate(); r.TFTPAddr != "" {
		t.Fatalf("tftp off resolved to %q", r.TFTPAddr)
	}
}

func TestDefaultRouteFrom(t *testing.T) {
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	if got, err := defaultRouteFrom(table); err != nil || got != "eth0" {
		t.Fatalf("got %q %v", got, err)
	}
	if _, err := defaultRouteFrom(strings.Split(table, "\n")[0] + "\n"); err == nil {
		t.Fatal("want error without default route")
	}
}

func TestEnvFillsUnsetFlagsOnly(t *testing.T) {
	c := Default()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	t.Setenv("FLEETBOOT_DHCP", "full")
	t.Setenv("FLEETBOOT_HTTP", ":9999")
	t.Setenv("FLEETBOOT_LEASE_TIME", "2h")
	if err := fs.Parse([]string{"--http", ":7777"}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyEnv(fs); err != nil {
		t.Fatal(err)
	}
	if c.DHCPMode != "full" || c.HTTPAddr != ":7777" || c.LeaseTime != 2*time.Hour {
		t.Fatalf("got mode=%s http=%s lease=%s", c.DHCPMode, c.HTTPAddr, c.LeaseTime)
	}
	t.Setenv("FLEETBOOT_LEASE_TIME", "soon")
	c2 := Default()
	fs2 := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c2.RegisterFlags(fs2)
	fs2.Parse(nil)
	if err := ApplyEnv(fs2); err == nil || !strings.Contains(err.Error(), "FLEETBOOT_LEASE_TIME") {
		t.Fatalf("want env error, got %v", err)
	}
}

func TestValidateTLSNeedsItsOwnPort(t *testing.T) {
	c := valid()
	c.TLSCert, c.TLSKey, _ = tlstest.WriteSelfSigned(t, t.TempDir(), "x")
	c.APIAddr = c.HTTPAddr
	if _, err := c.Validate(); err == nil || !strings.Contains(err.Error(), "same port") {
		t.Fatalf("same port: %v", err)
	}
	c.APIAddr = ":8443"
	r, err := c.Validate()
	if err != nil || r.APIPort != 8443 {
		t.Fatalf("valid TLS: %+v %v", r, err)
	}
}
