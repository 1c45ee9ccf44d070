package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/fleetboot/fleetboot/internal/boot"
	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/tftp"
)

// bootFiles is what TFTP serves beyond the fixed files: what an ISO's own GRUB loaded by UEFI
// PXE fetches. Such a GRUB (older than 2.12) cannot use fleetboot's HTTP server, so it gets
// over TFTP what other GRUBs get over HTTP, at the same paths:
//
//	isopair/<ISO id>/…                 the ISO's shim, GRUB and bootstrap config (grub.ResolvePair)
//	<the GRUB's prefix>/grub.cfg …     the bootstrap at the GRUB's own config paths
//	grub/mac/<mac>/…                   the machine's GRUB configs (boot.Planner.GRUBFile)
//	isos/<ISO id>/files/<path>         files inside ISOs: the kernel and initrds
type bootFiles struct {
	ctx     context.Context
	static  tftp.Files
	pairs   grub.PairSource
	isos    *isostore.Store
	planner *boot.Planner
	grub    grub.Config
	log     *slog.Logger
}

var _ tftp.ClientFiles = (*bootFiles)(nil)

// Open implements tftp.Files for callers that do not say who asks.
func (b *bootFiles) Open(name string) (io.ReadSeeker, int64, bool) {
	return b.OpenFor(name, netip.Addr{})
}

// OpenFor implements tftp.ClientFiles.
func (b *bootFiles) OpenFor(name string, client netip.Addr) (io.ReadSeeker, int64, bool) {
	if r, n, ok := b.static.Open(name); ok {
		return r, n, true
	}
	ctx := b.ctx
	switch {
	case strings.HasPrefix(name, grub.Prefix+"/mac/"):
		d, err := b.planner.GRUBFile(ctx, name, client)
		if err != nil {
			if !errors.Is(err, boot.ErrNoGRUBFile) {
				b.log.Warn("tftp: GRUB config", "file", name, "client", client, "err", err)
			}
			return nil, 0, false
		}
		b.log.Info("grub config", "file", name, "ip", client, "kind", d.Kind, "target", d.Label, "via", "tftp")
		return bytes.NewReader(d.Script), int64(len(d.Script)), true
	case strings.HasPrefix(name, "isos/"):
		id, p, ok := strings.Cut(strings.TrimPrefix(name, "isos/"), "/files/")
		if !ok || b.isos == nil {
			return nil, 0, false
		}
		f, err := b.isos.OpenFile(ctx, id, "/"+p)
		if err != nil {
			return nil, 0, false
		}
		return f, f.Size(), true
	}
	if b.pairs == nil || !grub.MayBePair(name) {
		return nil, 0, false
	}
	pairs, err := b.pairs.ISOPairs(ctx)
	if err != nil {
		b.log.Warn("tftp: list ISO pairs", "err", err)
		return nil, 0, false
	}
	pf, ok := grub.ResolvePair(pairs, name, b.grub, true)
	switch {
	case !ok || pf.Optional:
		return nil, 0, false
	case pf.Config != nil:
		return bytes.NewReader(pf.Config), int64(len(pf.Config)), true
	}
	f, err := b.isos.OpenFile(ctx, pf.ISO, pf.Path)
	if err != nil {
		b.log.Warn("tftp: ISO pair file", "iso", pf.ISO, "path", pf.Path, "err", err)
		return nil, 0, false
	}
	b.log.Info("secure boot binary from the ISO", "file", name, "iso", pf.ISO, "path", pf.Path, "ip", client, "via", "tftp")
	return f, f.Size(), true
}
