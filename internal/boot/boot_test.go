package boot

import (
	"context"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/ipxe"
)

func TestStaticDecide(t *testing.T) {
	sc := ipxe.ScriptConfig{HTTPBase: "http://10.0.0.1:8080"}
	target := &Target{Kernel: "deb/linux", Initrds: []string{"deb/initrd.gz"}, Cmdline: "console=ttyS0"}
	cases := []struct {
		name     string
		policy   Static
		mac      string
		wantKind string
		want     []string
	}{
		{"unidentified machine is asked who it is", Static{Scripts: sc, Target: target}, "", KindChain,
			[]string{"chain --autofree http://10.0.0.1:8080/boot.ipxe?mac=${netX/mac:hexhyp}"}},
		{"identified machine boots the target", Static{Scripts: sc, Target: target}, "52:54:00:00:00:01", KindTarget,
			[]string{"kernel http://10.0.0.1:8080/assets/deb/linux initrd=initrd.gz console=ttyS0",
				"initrd --name initrd.gz http://10.0.0.1:8080/assets/deb/initrd.gz"}},
		{"no target means menu", Static{Scripts: sc}, "52:54:00:00:00:01", KindMenu,
			[]string{"item local Boot from local disk", "choose --timeout"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := c.policy.Decide(context.Background(), Request{Identity: ipxe.Identity{MAC: c.mac}})
			if err != nil {
				t.Fatal(err)
			}
			if d.Kind != c.wantKind {
				t.Errorf("kind %q, want %q", d.Kind, c.wantKind)
			}
			for _, w := range c.want {
				if !strings.Contains(string(d.Script), w) {
					t.Errorf("script lacks %q:\n%s", w, d.Script)
				}
			}
		})
	}
}

func TestAssetURLEscapesSegments(t *testing.T) {
	if got := AssetURL("http://s", "a b/c#d?.img"); got != "http://s/assets/a%20b/c%23d%3F.img" {
		t.Fatalf("got %s", got)
	}
}
