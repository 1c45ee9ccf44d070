package provision

import (
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
