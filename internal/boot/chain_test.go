package boot

import "testing"

func TestResolveChainMachineThenProfileThenServer(t *testing.T) {
	for _, tc := range []struct{ server, profile, machine, want string }{
		{"auto", "", "", ChainAuto},
		{"ipxe", "", "", ChainIPXE},
		{"ipxe", "shim", "", ChainShim},
		{"ipxe", "shim", "auto", ChainAuto},
		{"auto", "", "ipxe", ChainIPXE},
		{"shim", "sometimes", "", ChainShim}, // invalid values are ignored
		{"", "", "bogus", ChainAuto},
	} {
		if got := ResolveChain(tc.server, tc.profile, tc.machine); got != tc.want {
			t.Errorf("ResolveChain(%q, %q, %q) = %q, want %q", tc.server, tc.profile, tc.machine, got, tc.want)
		}
	}
}
