package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/fleetboot/fleetboot/internal/dhcp"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/quirk"
	"github.com/fleetboot/fleetboot/internal/store"
)

// dhcpTimeline returns the DHCP server's Timeline sink: it runs on the DHCP server's own
// writer goroutine, never on the packet path, and writes each batch in one transaction.
// Quirks go to the reporter (log, metric, their own event); everything else becomes a "dhcp"
// line in the machine's timeline, with the firmware kind and option-97 UUID recorded on it.
func dhcpTimeline(inv *inventory.Inventory, quirks *quirk.Reporter, log *slog.Logger) func([]dhcp.Event) {
	return func(evs []dhcp.Event) {
		// Not the server's context: what was queued before shutdown is still written.
		ctx := context.Background()
		batch := make([]inventory.DHCPSighting, 0, len(evs))
		for _, e := range evs {
			mac := ipxe.NormalizeMAC(e.MAC.String())
			if e.Quirk != "" {
				// The inventory stores any event's text as StorableText itself; the log line
				// shows the same text.
				quirks.Report(ctx, quirk.Report{Kind: e.Quirk, MAC: mac, Detail: store.StorableText(e.Reason)})
				continue
			}
			batch = append(batch, inventory.DHCPSighting{MAC: mac, Firmware: bootFirmware(e.Firmware), UUID: e.UUID, Detail: dhcpDetail(e), Time: e.Time})
		}
		if err := inv.RecordDHCP(ctx, batch); err != nil {
			log.Warn("record dhcp events in machine timelines", "events", len(batch), "err", err)
		}
	}
}

// bootFirmware is the firmware kind worth recording on the machine: how its firmware
// network-boots. iPXE's own requests (after the chainload) and unrecognised clients say
// nothing about that.
func bootFirmware(fw dhcp.Firmware) string {
	if fw.BootsFromNetwork() {
		return string(fw)
	}
	return ""
}

// dhcpDetail is the timeline line of one DHCP event.
func dhcpDetail(e dhcp.Event) string {
	detail := fmt.Sprintf("%s %s firmware=%s arch=%s port=%d", e.Kind, orNone(e.IP), e.Firmware, e.Arch, e.Port)
	if e.UUID != "" {
		detail += " uuid=" + e.UUID
	}
	if e.BootFile != "" {
		detail += " file=" + e.BootFile
	}
	if e.Reason != "" {
		detail += ": " + e.Reason
	}
	return detail
}
