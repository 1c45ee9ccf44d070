package httpapi

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/isostore"
	"github.com/fleetboot/fleetboot/internal/provision"
)

// statusError carries an HTTP status with a message meant for the client.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func httpError(code int, msg string) error { return &statusError{code: code, msg: msg} }

// handleError is the one place errors become HTTP statuses. API routes answer JSON
// {"error": "..."}; boot paths answer plain text, which iPXE prints on the console.
func (a *API) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	var se *statusError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &se):
		code, msg = se.code, se.msg
	case errors.As(err, &he):
		code = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(code)
		}
	case errors.As(err, new(*http.MaxBytesError)):
		code, msg = http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, isostore.ErrNotFound), errors.Is(err, isostore.ErrNotDir), errors.Is(err, isostore.ErrIsDir),
		errors.Is(err, provision.ErrNotFound):
		code, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, isostore.ErrBadPath), errors.Is(err, isostore.ErrBadChecksum), errors.Is(err, isostore.ErrBadName):
		code, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, isostore.ErrBadISO), errors.Is(err, isostore.ErrChecksumMismatch):
		code, msg = http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, isostore.ErrNameTaken), errors.Is(err, isostore.ErrInUse), errors.Is(err, isostore.ErrOffsetMismatch),
		errors.Is(err, isostore.ErrUploadBusy), errors.Is(err, isostore.ErrUploadIncomplete), errors.Is(err, isostore.ErrChanged):
		code, msg = http.StatusConflict, err.Error()
	case errors.Is(err, isostore.ErrTooManyUploads):
		code, msg = http.StatusTooManyRequests, err.Error()
	case errors.Is(err, isostore.ErrRegisterOff), errors.Is(err, isostore.ErrNotAllowed):
		code, msg = http.StatusForbidden, err.Error()
	case errors.Is(err, isostore.ErrTooLarge):
		code, msg = http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, context.Canceled):
		// The client went away or sent less than it announced; nothing was published.
		code, msg = http.StatusBadRequest, "request body ended early: "+err.Error()
	case errors.Is(err, isostore.ErrImageMissing), errors.Is(err, isostore.ErrImageCorrupt):
		// This instance cannot serve the bytes; another one (or this one, once the shared
		// image directory is mounted or the file replaced) can.
		code, msg = http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, isostore.ErrNoSpace):
		code, msg = http.StatusInsufficientStorage, err.Error()
	case errors.Is(err, inventory.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		code, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, inventory.ErrConflict):
		code, msg = http.StatusConflict, err.Error()
	case errors.Is(err, inventory.ErrInvalid):
		code, msg = http.StatusBadRequest, err.Error()
	}
	if code >= 500 {
		a.log.Error("http request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(code)
		return
	}
	if strings.HasPrefix(c.Request().URL.Path, "/api/") {
		c.JSON(code, errorBody(err, msg))
		return
	}
	c.String(code, msg+"\n")
}

// errorBody is the JSON body of an API error: {"error": msg}, plus for an ISO whose bytes this
// instance cannot serve the ISO, where its bytes were looked for and their expected (and, when
// they were hashed, actual) SHA-256.
func errorBody(err error, msg string) map[string]any {
	body := map[string]any{"error": msg}
	var missing *isostore.MissingImageError
	var corrupt *isostore.CorruptImageError
	switch {
	case errors.As(err, &missing):
		body["iso"], body["path"], body["sha256"] = missing.ID, missing.Where, missing.SHA256
	case errors.As(err, &corrupt):
		body["iso"], body["path"], body["sha256"] = corrupt.ID, corrupt.Where, corrupt.SHA256
		if corrupt.Actual != "" {
			body["actual_sha256"] = corrupt.Actual
		} else {
			body["actual_size"] = corrupt.ActualSize
		}
	}
	return body
}
