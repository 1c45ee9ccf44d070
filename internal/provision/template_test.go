package provision

import (
	"fmt"
	"strings"
	"testing"
)

func TestCheckReportsTemplateErrorsAtSaveTime(t *testing.T) {
	cases := []struct {
		name, kind, body, want string
	}{
		{"unknown kind", "cloudinit", "x", "template kind"},
		{"syntax", KindKickstart, "{{ if .Hostname }}", "unexpected EOF"},
		{"unknown field", KindKickstart, "network --hostname={{.Hostnme}}", "Hostnme"},
		{"unknown function", KindRaw, "{{ shout .MAC }}", "shout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check(c.kind, c.body)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
}

func TestRenderPerMachine(t *testing.T) {
	body := `network --hostname={{.Hostname}}
{{range .SSHKeys}}sshkey --username=root {{quote .}}
{{end}}%post
{{.DoneCommand}}
%end
# rack={{index .Labels "rack"}} {{default "none" .Vars.extra}}`
	if err := Check(KindKickstart, body); err != nil {
		t.Fatal(err)
	}
	tm, _ := Parse(KindKickstart, body)
	// Missing label and var keys render empty: a machine without the label must still install.
	v := Vars{Hostname: "node7", SSHKeys: []string{"ssh-ed25519 AAA it's"}, Labels: map[string]string{"rack": "r1"},
		DoneURL: "http://s/boot/done/m"}
	v.DoneCommand = doneCommand(v.DoneURL)
	out, err := Render(tm, v)
	if err != nil {
		t.Fatal(err)
	}
	want := "network --hostname=node7\nsshkey --username=root 'ssh-ed25519 AAA it'\\''s'\n%post\n" +
		"curl -fsS -X POST http://s/boot/done/m || wget -q -O- --post-data= http://s/boot/done/m || true\n%end\n# rack=r1 none"
	if string(out) != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
}

// An answer template is checked as the installer will read it: well-formed TOML (the error
// names the line) with the sections and keys Proxmox requires.
func TestCheckRejectsBadAnswerFilesAtSaveTime(t *testing.T) {
	good := "[global]\nkeyboard = \"en-us\"\ncountry = \"de\"\nfqdn = {{toml .Hostname}}\nmailto = \"a@b\"\n" +
		"timezone = \"UTC\"\nroot-password = \"x\"\n[network]\nsource = \"from-dhcp\"\n[disk-setup]\nfilesystem = \"ext4\"\ndisk-list = [\"sda\"]\n"
	if err := Check(KindAnswer, good); err != nil {
		t.Fatalf("a valid answer template was refused: %v", err)
	}
	cases := []struct{ name, body, want string }{
		{"unclosed string on line 4", strings.Replace(good, `fqdn = {{toml .Hostname}}`, `fqdn = "{{.Hostname}}`, 1), "line 4, column"},
		{"unquoted value", strings.Replace(good, "{{toml .Hostname}}", "{{.Hostname}}", 1), "line 4"},
		{"no disk-setup", strings.Split(good, "[disk-setup]")[0], "no [disk-setup] section"},
		{"no root password", strings.Replace(good, "root-password = \"x\"\n", "", 1), "root-password or root_password"},
		{"bad network source", strings.Replace(good, "from-dhcp", "dhcp", 1), `want "from-dhcp" or "from-answer"`},
		{"from-answer without cidr", strings.Replace(good, `source = "from-dhcp"`, `source = "from-answer"`, 1), "needs cidr"},
		{"bad filesystem", strings.Replace(good, `"ext4"`, `"ntfs"`, 1), "want ext4, xfs, zfs or btrfs"},
		{"disk-list and filter", good + "filter.ID_SERIAL = \"*\"\n", "exactly one of disk-list"},
		{"template error first", "{{ if .Hostname }}", "unexpected EOF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check(KindAnswer, c.body)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want error containing %q", err, c.want)
			}
		})
	}
	// 8.2's snake_case spellings are accepted too.
	old := strings.NewReplacer("root-password", "root_password", "disk-list", "disk_list").Replace(good)
	if err := Check(KindAnswer, old); err != nil {
		t.Fatalf("PVE 8.2 spelling refused: %v", err)
	}
}

// The installer's POST body as proxmox-fetch-answer builds it (sysinfo.rs: product, iso, dmi,
// network_interfaces with link and mac).
const proxmoxSysInfo = `{
  "product": {"fullname": "Proxmox VE", "product": "pve", "enable_btrfs": true},
  "iso": {"release": "8.2", "isorelease": "1"},
  "dmi": {
    "system": {"name": "PowerEdge R650", "serial": "7XK2LM3", "uuid": "4c4c4544-0058-4b10-8032-b7c04f4c4d33", "sku": "SKU=0A6C"},
    "baseboard": {"asset_tag": "", "serial": ".7XK2LM3.CNFCP0012300AB.", "name": "0Y2K8M"},
    "chassis": {"asset_tag": "", "serial": "7XK2LM3", "sku": ""}
  },
  "network_interfaces": [
    {"link": "eno1", "mac": "B0:7B:25:AA:00:01"},
    {"link": "eno2", "mac": "b0:7b:25:aa:00:02"},
    {"link": "bad", "mac": "not-a-mac"}
  ]
}`

func TestParseSysInfo(t *testing.T) {
	si, err := ParseSysInfo([]byte(proxmoxSysInfo))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(si.MACs, " ") != "b0:7b:25:aa:00:01 b0:7b:25:aa:00:02" || si.Links["b0:7b:25:aa:00:02"] != "eno2" ||
		si.Product != "pve" || si.Release != "8.2" || si.Serial != "7XK2LM3" {
		t.Fatalf("parsed %+v", si)
	}
	var many strings.Builder
	many.WriteString(`{"network_interfaces": [`)
	for i := 0; i < 300; i++ {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `{"mac": "02:00:00:00:%02x:%02x"}`, i/256, i%256)
	}
	many.WriteString("]}")
	if si, err := ParseSysInfo([]byte(many.String())); err != nil || len(si.MACs) != maxSysInfoMACs {
		t.Errorf("300 interfaces: %d MACs kept (%v), want the first %d", len(si.MACs), err, maxSysInfoMACs)
	}
	for _, bad := range []string{``, `{`, `[]`, `{"network_interfaces": []}`, `{"network_interfaces": [{"mac": "zz"}]}`,
		`{"network_interfaces": "eno1"}`, strings.Repeat(" ", 2<<20)} {
		if _, err := ParseSysInfo([]byte(bad)); err == nil {
			t.Errorf("%.40q accepted", bad)
		}
	}
}

func FuzzParseSysInfo(f *testing.F) {
	f.Add([]byte(proxmoxSysInfo))
	f.Add([]byte(`{"network_interfaces": [{"link": "x", "mac": "00:00:00:00:00:00"}]}`))
	f.Add([]byte(`{"network_interfaces": [{"mac": null}, {"mac": 5}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		si, err := ParseSysInfo(b)
		if err != nil {
			return
		}
		if len(si.MACs) == 0 {
			t.Fatal("accepted without a MAC")
		}
		for _, m := range si.MACs {
			if len(m) != 17 {
				t.Fatalf("MAC %q not normalised", m)
			}
		}
	})
}

func FuzzCheckAnswer(f *testing.F) {
	f.Add([]byte("[global]\nkeyboard = \"en-us\"\n[network]\nsource = \"from-dhcp\"\n[disk-setup]\nfilesystem = \"zfs\"\n"))
	f.Add([]byte("[network]\nsource = 5\n[disk-setup]\nfilesystem = []\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = CheckAnswer(b) // an error is fine; a panic is not
	})
}
