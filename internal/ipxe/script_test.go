package ipxe

import (
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from golden:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var sc = ScriptConfig{HTTPBase: "http://10.77.0.1:8080", MenuTimeout: 7 * time.Second}

func TestScriptsMatchGolden(t *testing.T) {
	taken := map[string]bool{}
	target := BootTarget{
		Label:  "default target",
		Kernel: "http://10.77.0.1:8080/assets/vmlinuz",
		Initrds: []Initrd{
			{Name: InitrdName("boot/initrd.img", 0, taken), URL: "http://10.77.0.1:8080/assets/boot/initrd.img"},
			{Name: InitrdName("extra/initrd.img", 1, taken), URL: "http://10.77.0.1:8080/assets/extra/initrd.img"},
		},
		Cmdline: "console=ttyS0 fbtoken=abc",
	}
	for name, got := range map[string][]byte{
		"chain":      Chain(sc),
		"autoexec":   Autoexec(sc),
		"boot":       Boot(sc, target),
		"boot-nocmd": Boot(sc, BootTarget{Label: "k", Kernel: "http://s/k"}),
		"boot-as": Boot(sc, BootTarget{Label: "pve", Kernel: "http://s/linux26", Initrds: []Initrd{
			{Name: "initrd.img", URL: "http://s/initrd.img"}, {Name: "proxmox.iso", URL: "http://s/image.iso", As: "/proxmox.iso"}}}),
		"sanboot":    Boot(sc, BootTarget{Label: "rescue", Sanboot: "http://s/isos/x/image.iso"}),
		"menu":       Menu(sc, "fleetboot", nil),
		"menu-items": Menu(sc, "fleetboot", []MenuItem{{Name: "deb12", Label: "Install deb12 (debian-12.iso)"}, {Name: "a&b", Label: "Install a&b"}}),
		"local":      LocalBoot(sc),
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.HasPrefix(string(got), "#!ipxe\n") {
				t.Fatalf("script does not start with #!ipxe: %q", got)
			}
			golden(t, name, got)
		})
	}
}

func TestBootScriptNamesEveryInitrdOnTheCmdline(t *testing.T) {
	got := string(Boot(sc, BootTarget{Label: "x", Kernel: "http://s/k",
		Initrds: []Initrd{{Name: "a.img", URL: "http://s/a"}, {Name: "b.img", URL: "http://s/b"}}}))
	if !strings.Contains(got, "kernel http://s/k initrd=a.img initrd=b.img ||") {
		t.Errorf("kernel line lacks initrd= names:\n%s", got)
	}
	if !strings.Contains(got, "initrd --name b.img http://s/b") {
		t.Errorf("missing initrd line:\n%s", got)
	}
}

func TestScriptsCannotBeSplitByNewlinesInValues(t *testing.T) {
	// reboot is a command the script itself never runs (shell is: the no-disk choice).
	got := string(Boot(sc, BootTarget{Label: "evil\nreboot", Kernel: "http://s/k", Cmdline: "a\nchain http://evil"}))
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "reboot") || strings.HasPrefix(line, "chain http://evil") {
			t.Fatalf("a value injected a script line %q:\n%s", line, got)
		}
	}
}

func TestInitrdNameMakesNamesUnique(t *testing.T) {
	taken := map[string]bool{}
	a := InitrdName("x/initrd.img", 0, taken)
	b := InitrdName("y/initrd.img", 1, taken)
	c := InitrdName("", 2, taken)
	if a != "initrd.img" || b != "1-initrd.img" || c != "initrd" {
		t.Fatalf("names %q %q %q", a, b, c)
	}
}

func TestParseIdentity(t *testing.T) {
	cases := []struct {
		query string
		want  Identity
	}{
		{"mac=52-54-00-AB-cd-01&uuid=8c1f6a3e-0b7e-4a5e-9f00-1234567890ab&arch=x86_64&platform=efi&ip=10.77.0.101",
			Identity{MAC: "52:54:00:ab:cd:01", UUID: "8c1f6a3e-0b7e-4a5e-9f00-1234567890ab", Arch: "x86_64", Platform: "efi", IP: "10.77.0.101"}},
		{"mac=52:54:00:ab:cd:01&platform=pcbios&arch=i386", Identity{MAC: "52:54:00:ab:cd:01", Arch: "i386", Platform: "pcbios"}},
		{"mac=525400abcd01", Identity{MAC: "52:54:00:ab:cd:01"}},
		{"mac=zz-54-00-ab-cd-01&arch=<script>&platform=" + strings.Repeat("e", 40), Identity{}},
		{"mac=52-54-00-ab-cd", Identity{}},
		{"", Identity{}},
		// Hardware facts as iPXE's :uristring sends them; placeholders and junk are dropped.
		{"mac=52-54-00-ab-cd-01&manufacturer=Dell%20Inc.&product=PowerEdge%20R650%20&serial=7XK2LM3&asset=To%20Be%20Filled%20By%20O.E.M." +
			"&memsize=&cpuvendor=GenuineIntel&cpumodel=a%0Ab&nic_chip=i350&nic_bustype=PCI&bogus=1",
			Identity{MAC: "52:54:00:ab:cd:01", Hardware: map[string]string{"manufacturer": "Dell Inc.", "product": "PowerEdge R650",
				"serial": "7XK2LM3", "cpuvendor": "GenuineIntel", "nic_chip": "i350", "nic_bustype": "PCI"}}},
		{"mac=52-54-00-ab-cd-01&product=" + strings.Repeat("x", 300), Identity{MAC: "52:54:00:ab:cd:01"}},
	}
	for _, c := range cases {
		q, _ := url.ParseQuery(c.query)
		if got := ParseIdentity(q); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseIdentity(%q) = %+v, want %+v", c.query, got, c.want)
		}
	}
}

// TestParseIdentityQueryKeepsPlus: what QEMU's SMBIOS product looks like on the wire from
// iPXE's :uristring ('+' unescaped).
func TestParseIdentityQueryKeepsPlus(t *testing.T) {
	id := ParseIdentityQuery("mac=52-54-00-ab-cd-01&product=Standard%20PC%20(i440FX+PIIX,%201996)&serial=A%2BB")
	if id.Hardware["product"] != "Standard PC (i440FX+PIIX, 1996)" || id.Hardware["serial"] != "A+B" || id.MAC != "52:54:00:ab:cd:01" {
		t.Fatalf("got %+v", id)
	}
}

func TestCleanNameRejectsPathsAndTraversal(t *testing.T) {
	for in, want := range map[string]string{
		"undionly.kpxe":     "undionly.kpxe",
		"/snponly.efi":      "snponly.efi",
		"":                  "",
		"/":                 "",
		"../etc/passwd":     "",
		"a/../snponly.efi":  "",
		"dir/ipxe.efi":      "",
		"ipxe.efi\x00x":     "",
		"..":                "",
		"c:\\ipxe.efi":      "",
		"//undionly.kpxe":   "",
		"./undionly.kpxe":   "",
		"undionly.kpxe/":    "",
		"undionly.kpxe/../": "",
	} {
		if got := CleanName(in); got != want {
			t.Errorf("CleanName(%q) = %q, want %q", in, got, want)
		}
	}
}
