package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/audit"
	"github.com/fleetboot/fleetboot/internal/auth"
)

// audit is the /api/v1 middleware (after authentication, before the scope check, so refused
// changes are recorded too) that writes every call that changes something — every method but
// GET, HEAD and OPTIONS — to the audit log and the log, with its result.
func (a *API) audit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if auth.ForMethod(c.Request().Method) != auth.ScopeAdmin {
			return next(c)
		}
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // answered here, so the status is known; observe sees nil
		}
		e := audit.Entry{
			Time:       start,
			Scope:      auth.ScopeFrom(c).String(),
			IP:         remoteIP(c).String(),
			Method:     c.Request().Method,
			Route:      c.Path(),
			Target:     auditTarget(c),
			Status:     c.Response().Status,
			DurationMS: time.Since(start).Milliseconds(),
		}
		if err != nil {
			e.Error = err.Error()
			if he, ok := err.(*echo.HTTPError); ok {
				e.Error = errString(he.Message)
			}
		}
		level := a.log.Info
		if e.Status >= 400 {
			level = a.log.Warn
		}
		level("audit", "scope", e.Scope, "ip", e.IP, "method", e.Method, "route", e.Route, "target", e.Target,
			"status", e.Status, "err", e.Error)
		if a.cfg.Audit != nil {
			// The client may have gone; the record must not go with it.
			if rerr := a.cfg.Audit.Record(context.WithoutCancel(c.Request().Context()), e); rerr != nil {
				a.log.Error("audit log write failed", "method", e.Method, "route", e.Route, "err", rerr)
			}
		}
		return nil
	}
}

// auditTarget names what the call acted on: its route parameters, and the ISO name of an
// upload by query (POST /api/v1/isos?name=).
func auditTarget(c echo.Context) string {
	var parts []string
	for i, n := range c.ParamNames() {
		if i < len(c.ParamValues()) {
			parts = append(parts, n+"="+c.ParamValues()[i])
		}
	}
	if n := c.QueryParam("name"); n != "" {
		parts = append(parts, "name="+n)
	}
	return strings.Join(parts, " ")
}

// listAudit answers GET /api/v1/audit[?limit=&before=&since=] (admin only): the newest entries
// first; before= the smallest id of the previous page.
func (a *API) listAudit(c echo.Context) error {
	if a.cfg.Audit == nil {
		return httpError(http.StatusNotFound, "this server keeps no audit log")
	}
	var q audit.Query
	var err error
	if v := c.QueryParam("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 1 || q.Limit > audit.MaxLimit {
			return httpError(http.StatusBadRequest, "limit must be 1 to "+strconv.Itoa(audit.MaxLimit))
		}
	}
	if v := c.QueryParam("before"); v != "" {
		if q.Before, err = strconv.ParseInt(v, 10, 64); err != nil || q.Before < 1 {
			return httpError(http.StatusBadRequest, "before must be an entry id")
		}
	}
	if v := c.QueryParam("since"); v != "" {
		if q.Since, err = time.Parse(time.RFC3339, v); err != nil {
			return httpError(http.StatusBadRequest, "since must be an RFC 3339 time (2026-01-02T15:04:05Z)")
		}
	}
	entries, err := a.cfg.Audit.List(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, entries)
}
