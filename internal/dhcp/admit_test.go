package dhcp

import (
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestAdmitShedsDiscoversFirst: with three quarters of the handling slots busy a new
// DISCOVER is dropped while a REQUEST (an exchange already offered) still gets a slot; with
// every slot busy everything is dropped; nothing is ever queued.
func TestAdmitShedsDiscoversFirst(t *testing.T) {
	cfg := proxyConfig()
	cfg.MaxInFlight = 8
	s, _ := newTestServer(t, cfg, nil)
	discover := msg(t, dhcpv4.MessageTypeDiscover, uefiPXE()...).ToBytes()
	request := msg(t, dhcpv4.MessageTypeRequest, uefiPXE()...).ToBytes()
	for i := 0; i < 6; i++ { // 6 = 8 * 3/4
		if r := s.admit(discover); r != "" {
			t.Fatalf("DISCOVER %d refused with %d in flight: %s", i, len(s.sem), r)
		}
	}
	if r := s.admit(discover); r != s.shedReason {
		t.Fatalf("DISCOVER with 6 of 8 in flight: %q, want it shed", r)
	}
	for i := 0; i < 2; i++ {
		if r := s.admit(request); r != "" {
			t.Fatalf("REQUEST with %d of 8 in flight refused: %s", len(s.sem), r)
		}
	}
	if r := s.admit(request); r != s.fullReason {
		t.Fatalf("REQUEST with every slot busy: %q, want it dropped", r)
	}
	if len(s.sem) != 8 {
		t.Fatalf("%d slots taken, want 8", len(s.sem))
	}
}

// TestRawMessageType reads option 53 from unparsed packets as dhcpv4 does, and gives up on
// the ones that do not parse that far.
func TestRawMessageType(t *testing.T) {
	for _, typ := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeRelease} {
		if got := rawMessageType(msg(t, typ, biosPXE()...).ToBytes()); got != typ {
			t.Errorf("%s read as %s", typ, got)
		}
	}
	valid := msg(t, dhcpv4.MessageTypeDiscover).ToBytes()
	for name, pkt := range map[string][]byte{
		"empty":        nil,
		"header only":  valid[:240],
		"bad cookie":   append(append([]byte(nil), valid[:236]...), 1, 2, 3, 4, 53, 1, 1),
		"cut option":   append(append([]byte(nil), valid[:240]...), 12, 200, 'x'),
		"no option 53": append(append([]byte(nil), valid[:240]...), 0, 0, 12, 1, 'x', 255, 53, 1, 1),
		"long 53":      append(append([]byte(nil), valid[:240]...), 53, 2, 1, 1),
	} {
		if got := rawMessageType(pkt); got != dhcpv4.MessageTypeNone {
			t.Errorf("%s: %s, want none", name, got)
		}
	}
}

// FuzzRawMessageType: never a panic, and whenever dhcpv4 parses a packet with a one-byte
// option 53 (and no overloaded fields), the raw read agrees with it.
func FuzzRawMessageType(f *testing.F) {
	for _, typ := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest} {
		f.Add(msg(f, typ, uefiPXE()...).ToBytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := rawMessageType(b)
		m, err := dhcpv4.FromBytes(b)
		if err != nil || m.Options.Has(dhcpv4.OptionOptionOverload) {
			return
		}
		if v := m.Options.Get(dhcpv4.OptionDHCPMessageType); len(v) == 1 && got != dhcpv4.MessageType(v[0]) {
			t.Fatalf("raw %s, dhcpv4 %s", got, dhcpv4.MessageType(v[0]))
		}
	})
}
