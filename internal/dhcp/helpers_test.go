package dhcp

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Test clients, shaped after what the firmware actually sends (vendor class strings as seen
// from SeaBIOS+iPXE ROM, OVMF PXE, OVMF HTTP Boot and iPXE itself).
var (
	testMAC   = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	testGUID  = append([]byte{0x00}, 0x8a, 0x2f, 0x5e, 0x11, 0x3c, 0x4d, 0x4e, 0x8b, 0x9f, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd)
	testXID   = dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}
	serverIP  = net.IPv4(10, 99, 0, 1).To4()
	testHTTP  = "http://10.99.0.1:8080"
	biosVC    = "PXEClient:Arch:00000:UNDI:002001"
	efiVC     = "PXEClient:Arch:00007:UNDI:003000"
	httpVC    = "HTTPClient:Arch:00016:UNDI:003000"
	ipxeFeats = []byte{0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e, 0x13, 0x01, 0x01, 0x11, 0x01, 0x01} // 175 as iPXE sends it
)

// msg builds a client message and returns it as it would arrive: marshalled and parsed again.
func msg(t testing.TB, typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(testXID),
		dhcpv4.WithHwAddr(testMAC),
		dhcpv4.WithHWType(iana.HWTypeEthernet),
		dhcpv4.WithMessageType(typ),
	}
	m, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := dhcpv4.FromBytes(m.ToBytes())
	if err != nil {
		t.Fatalf("re-parse test packet: %v", err)
	}
	return wire
}

func withArch(a uint16) dhcpv4.Modifier {
	return dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(a >> 8), byte(a)})
}

func withVC(vc string) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vc))
}

func withGUID() dhcpv4.Modifier {
	return dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, testGUID)
}

func withOpt(code uint8, v []byte) dhcpv4.Modifier {
	return dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(code), v)
}

// Client shapes.
func biosPXE() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{withVC(biosVC), withArch(archBIOS), withGUID()}
}

func uefiPXE() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{withVC(efiVC), withArch(archEFIx64), withGUID()}
}

func uefiHTTP() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{withVC(httpVC), withArch(archEFIx64HTTP), withGUID()}
}

func ipxeClient() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{withVC(biosVC), withArch(archBIOS), withGUID(),
		withOpt(optUserClass, []byte("iPXE")), withOpt(optIPXEEncap, ipxeFeats)}
}

func plainClient() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptHostName("laptop"))}
}

func join(mods ...[]dhcpv4.Modifier) []dhcpv4.Modifier {
	var out []dhcpv4.Modifier
	for _, m := range mods {
		out = append(out, m...)
	}
	return out
}
