package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fleetboot/fleetboot/internal/dhcp"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/quirk"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// TestDHCPTimelineRecordsEveryStepFirmwareAndUUID feeds the events a full-mode DHCP server
// reports for two machines through the filter and sink the server wires: INFORM, DECLINE and
// RELEASE reach the timeline like offers and ACKs; the firmware kind (from options 93/60/77)
// and the option-97 UUID end up on the machine, also for one DHCP saw before its first boot
// script; iPXE's own requests do not overwrite the firmware.
func TestDHCPTimelineRecordsEveryStepFirmwareAndUUID(t *testing.T) {
	ctx := context.Background()
	inv := openTestInventory(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sink := dhcpTimeline(inv, &quirk.Reporter{}, log)

	newMAC, _ := net.ParseMAC("52:54:00:00:00:01")
	knownMAC, _ := net.ParseMAC("52:54:00:00:00:02")
	const uuid = "8a7f6e5d-4c3b-2a19-0807-060504030201"
	if _, _, err := inv.See(ctx, inventory.Sighting{MAC: knownMAC.String(), Arch: "x86_64"}); err != nil {
		t.Fatal(err)
	}
	ip := net.IPv4(10, 0, 0, 5).To4()
	events := []dhcp.Event{
		{Kind: "offer", MAC: newMAC, UUID: uuid, Firmware: "uefi-pxe", Arch: "efi-x64", IP: ip, Port: 67, BootFile: "ipxe.efi"},
		{Kind: "ack", MAC: newMAC, UUID: uuid, Firmware: "uefi-pxe", Arch: "efi-x64", IP: ip, Port: 67},
		{Kind: "inform", MAC: newMAC, Firmware: "ipxe", IP: ip, Port: 67},
		{Kind: "decline", MAC: newMAC, Firmware: "ipxe", IP: ip, Port: 67, Reason: "address in use by another host; quarantined for 10m0s"},
		{Kind: "release", MAC: newMAC, Firmware: "ipxe", IP: ip, Port: 67},
		{Kind: "ignored", MAC: newMAC, Firmware: "other", Port: 67, Reason: "not a network-boot client"},
		{Kind: "dropped", MAC: newMAC, Firmware: "other", Port: 67},
		{Kind: "ack", MAC: knownMAC, UUID: uuid + "x", Firmware: "bios-pxe", Arch: "bios", IP: ip, Port: 67},
		{Kind: "ack", MAC: knownMAC, Firmware: "ipxe", Arch: "bios", IP: ip, Port: 67},
	}
	var timeline []dhcp.Event
	for _, e := range events {
		if e.Timeline() {
			timeline = append(timeline, e)
		}
	}
	sink(timeline)

	evs, err := inv.Events(ctx, newMAC.String(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		if e.Kind == "dhcp" {
			kinds = append(kinds, strings.Fields(e.Detail)[0])
		}
	}
	if got := strings.Join(kinds, " "); got != "offer ack inform decline release" {
		t.Errorf("timeline of the new machine: %q, want offer ack inform decline release\n%+v", got, evs)
	}
	if len(evs) != 5 {
		t.Fatalf("%d events, want 5", len(evs))
	}
	if !strings.Contains(evs[3].Detail, "quarantined") || !strings.Contains(evs[0].Detail, "uuid="+uuid) {
		t.Errorf("details: %+v", evs)
	}
	// The first boot script records the machine: it takes what DHCP saw.
	m, created, err := inv.See(ctx, inventory.Sighting{MAC: newMAC.String(), Arch: "x86_64"})
	if err != nil || !created {
		t.Fatal(created, err)
	}
	if m.Firmware != "uefi-pxe" || m.UUID != uuid {
		t.Errorf("new machine: firmware %q uuid %q, want uefi-pxe %s", m.Firmware, m.UUID, uuid)
	}
	k, err := inv.Machine(ctx, knownMAC.String())
	if err != nil {
		t.Fatal(err)
	}
	if k.Firmware != "bios-pxe" || k.UUID != uuid+"x" {
		t.Errorf("known machine: firmware %q uuid %q, want bios-pxe (not iPXE's request) and the option-97 UUID", k.Firmware, k.UUID)
	}
}

// TestDHCPTimelineKeepsABatchWithBytesFromTheWire: a timeline line carrying bytes another host
// sent that are not UTF-8 (the boot file name of a foreign DHCP reply) is written as valid
// text, and the other machines' lines of its batch with it. PostgreSQL refuses text that is not
// UTF-8, and a batch is one statement there: the whole batch was lost.
func TestDHCPTimelineKeepsABatchWithBytesFromTheWire(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		inv, err := inventory.Open(ctx, b.Open(t))
		if err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		sink := dhcpTimeline(inv, &quirk.Reporter{}, slog.New(slog.NewTextHandler(&logs, nil)))
		good, _ := net.ParseMAC("52:54:00:00:00:01")
		peer, _ := net.ParseMAC("52:54:00:00:00:02")
		sink([]dhcp.Event{
			{Kind: "ack", MAC: good, Firmware: "ipxe", IP: net.IPv4(10, 0, 0, 5).To4(), Port: 67},
			{Kind: "ignored", MAC: peer, Firmware: "other", Port: 68, BootFile: "boot\xe9\x00.efi", Reason: "HA partner 10.0.0.2 sent ACK (file boot\xe9\x00.efi)"},
		})
		for _, mac := range []net.HardwareAddr{good, peer} {
			evs, err := inv.Events(ctx, mac.String(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("%s: %d timeline lines, want 1 (log: %s)", mac, len(evs), logs.String())
			}
			if d := evs[0].Detail; !utf8.ValidString(d) || strings.ContainsRune(d, 0) {
				t.Errorf("%s: detail %q", mac, d)
			}
		}
	})
}
