package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/dhcp"
)

// Leases lists the full-mode DHCP leases and the pool's usage (internal/dhcp).
type Leases interface {
	Leases(ctx context.Context) ([]dhcp.Lease, error)
	PoolUsage(ctx context.Context) (dhcp.PoolUsage, error)
}

// LeaseInfo is a full-mode DHCP lease as the API shows it (internal/client decodes into it too).
type LeaseInfo struct {
	IP       string    `json:"ip"`
	MAC      string    `json:"mac"`
	State    string    `json:"state"`
	Active   bool      `json:"active"`
	Expires  time.Time `json:"expires"`
	Hostname string    `json:"hostname,omitempty"`
	Updated  time.Time `json:"updated"`
}

// listLeases answers GET /api/v1/leases; 404 when fleetboot does not hand out addresses.
func (a *API) listLeases(c echo.Context) error {
	if a.cfg.Leases == nil {
		return httpError(http.StatusNotFound, "no leases: fleetboot runs with --dhcp=proxy or off and hands out no addresses")
	}
	ls, err := a.cfg.Leases.Leases(c.Request().Context())
	if err != nil {
		return err
	}
	now := time.Now()
	out := make([]LeaseInfo, 0, len(ls))
	for _, l := range ls {
		out = append(out, LeaseInfo{IP: l.IP.String(), MAC: l.MAC.String(), State: string(l.State), Active: l.Active(now),
			Expires: l.Expires, Hostname: l.Hostname, Updated: l.Updated})
	}
	return c.JSON(http.StatusOK, out)
}
