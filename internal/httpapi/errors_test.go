package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/isostore"
)

// An ISO whose bytes this instance cannot serve is a 503 on the API (JSON, with the message's
// parts as fields) and on the boot paths (the message as text, for iPXE's console).
func TestImageErrorsAre503WithTheirPartsAsFields(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	missing := fmt.Errorf("open: %w", &isostore.MissingImageError{ID: sum[:16], Name: "fedora", SHA256: sum, Where: "/srv/isos/" + sum + ".iso"})
	corrupt := &isostore.CorruptImageError{ID: sum[:16], Name: "fedora", SHA256: sum, Where: "/srv/isos/" + sum + ".iso",
		Actual: strings.Repeat("cd", 32), Size: 10, ActualSize: 10}
	for _, tc := range []struct {
		err                    error
		path, wantBody, noBody string
	}{
		{missing, "/api/v1/x", `"iso":"` + sum[:16] + `","path":"/srv/isos/` + sum + `.iso","sha256":"` + sum + `"`, "actual"},
		{corrupt, "/api/v1/x", `"actual_sha256":"` + corrupt.Actual + `","error":"image fedora`, "actual_size"},
		{missing, "/isos/x/image.iso", "is in the catalog but not at /srv/isos/" + sum + ".iso: mount the shared image directory", "{"},
		{corrupt, "/isos/x/image.iso", "has sha256 " + corrupt.Actual + ", the catalog says sha256 " + sum, "{"},
	} {
		a := &API{log: slog.New(slog.DiscardHandler)}
		e := echo.New()
		rec := httptest.NewRecorder()
		a.handleError(tc.err, e.NewContext(httptest.NewRequest(http.MethodGet, tc.path, nil), rec))
		body := rec.Body.String()
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, tc.wantBody) || strings.Contains(body, tc.noBody) {
			t.Errorf("%s, %T: %d %s", tc.path, tc.err, rec.Code, body)
		}
	}
}
