package provision

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/isostore"
)

// detectedPairs reads the signed pairs stored with an ISO's detection (worked out at publish
// time by Detect: no PE parsing when a machine boots).
func detectedPairs(iso *isostore.ISO) []grub.ISOPair {
	if iso.Detected == "" {
		return nil
	}
	var d Detection
	if json.Unmarshal([]byte(iso.Detected), &d) != nil || d.SecureBoot == nil {
		return nil
	}
	var out []grub.ISOPair
	for _, p := range d.SecureBoot.Pairs {
		if ip := (grub.ISOPair{ISO: iso.ID, Pair: p}); ip.Servable() {
			out = append(out, ip)
		}
	}
	return out
}

// ISOPair implements boot.PairLookup: the servable x86_64 pair of the ISO id (or name).
func (s *Service) ISOPair(ctx context.Context, id string) (grub.ISOPair, bool, error) {
	iso, err := s.ISOs.Get(ctx, id)
	if errors.Is(err, isostore.ErrNotFound) {
		return grub.ISOPair{}, false, nil
	}
	if err != nil {
		return grub.ISOPair{}, false, err
	}
	if ps := detectedPairs(iso); len(ps) > 0 {
		return ps[0], true, nil
	}
	return grub.ISOPair{}, false, nil
}

// ISOPairs implements grub.PairSource: the servable pairs of every published ISO.
func (s *Service) ISOPairs(ctx context.Context) ([]grub.ISOPair, error) {
	isos, err := s.ISOs.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []grub.ISOPair
	for _, iso := range isos {
		out = append(out, detectedPairs(iso)...)
	}
	return out, nil
}
