package httpapi

import (
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/provision"
)

// maxProgressBody bounds a progress report: a curtin event (finish events of curtin's own
// steps may attach files, which fleetboot does not keep) or a log tail.
const maxProgressBody = 256 << 10

// progress serves POST /boot/progress/{mac} (urls.ProgressDir): the installer reports a
// phase — from the template's hooks (?phase=&status=, optional text body) or as a curtin /
// subiquity webhook event (JSON). Each becomes an "installer" event in the machine's timeline;
// a failure also makes the machine failed, with the reason, so that a broken install is a
// state and not silence. Like the done callback it carries no token and only the machine's own
// address may report.
func (a *API) progress(c echo.Context) error {
	m, err := a.machineParam(c)
	if err != nil {
		return err
	}
	if _, err := a.fromMachine(c, m, "report its install progress"); err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxProgressBody+1))
	if err != nil {
		return httpError(http.StatusBadRequest, "reading the report: "+err.Error())
	}
	if len(body) > maxProgressBody {
		return httpError(http.StatusRequestEntityTooLarge, "a progress report is at most 256 KiB")
	}
	r, keep, err := provision.ParseProgress(c.QueryParams(), body)
	if err != nil {
		return httpError(http.StatusBadRequest, err.Error())
	}
	if !keep {
		return c.NoContent(http.StatusNoContent)
	}
	ctx := c.Request().Context()
	if err := a.cfg.Inventory.AddEvent(ctx, m.MAC, "installer", r.Detail()); err != nil {
		return err
	}
	if r.Status == provision.ProgressFailed {
		// Only an install in progress fails; a late report after done (or a second failure
		// report) stays an event.
		_, err := a.cfg.Inventory.Transition(ctx, m.MAC, []inventory.State{inventory.InstallPending, inventory.Installing},
			inventory.Failed, "installer reported "+r.Detail())
		if err != nil && !errors.Is(err, inventory.ErrConflict) {
			return err
		}
		a.log.Warn("installer reported a failed install", "mac", m.MAC, "ip", m.IP, "profile", m.Profile, "phase", r.Phase, "message", r.Message)
	}
	return c.NoContent(http.StatusNoContent)
}
