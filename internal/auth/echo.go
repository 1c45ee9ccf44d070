package auth

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// scopeKey is where Guard leaves the caller's scope in the echo context.
const scopeKey = "fleetboot.auth.scope"

// Denial says why Guard or RequireScope turned a request away (for logs and metrics).
type Denial string

// The reasons a request is turned away.
const (
	// DeniedNoToken: no token, or one that is neither the admin nor the read-only token (401).
	DeniedNoToken Denial = "unauthorized"
	// DeniedRateLimited: too many failed sign-ins from the address (429).
	DeniedRateLimited Denial = "rate_limited"
	// DeniedScope: a valid token whose scope is too small, e.g. read-only on a POST (403).
	DeniedScope Denial = "forbidden"
)

// Denials lists every Denial (metrics labels are pre-initialised from it).
var Denials = []Denial{DeniedNoToken, DeniedRateLimited, DeniedScope}

// Guard authenticates API calls: it finds the scope of the bearer token and turns away calls
// without a valid one (401, counted against the source address) and calls from an address that
// failed too often (429 with Retry-After, before the token is even looked at: a blocked address
// learns nothing, not even whether a guess was right).
type Guard struct {
	Tokens Tokens
	// Limiter counts failed sign-ins per source address; nil: no limit.
	Limiter *Limiter
	// OnDeny, when set, hears every request turned away (log it, count it).
	OnDeny func(c echo.Context, why Denial, addr netip.Addr)
	// Session, when set, authenticates a request that carries no bearer token by other means
	// (the web UI's session cookie): ok with the session's scope, not ok to fall through to
	// the 401, or an error that answers the request (a missing CSRF token).
	Session func(c echo.Context) (s Scope, ok bool, err error)
}

// Authenticate is echo middleware: it sets the caller's scope (ScopeFrom) or answers 401/429.
func (g *Guard) Authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		addr := SourceAddr(c.Request())
		if blocked, retry := g.Limiter.Blocked(addr); blocked {
			secs := RetryAfter(retry)
			c.Response().Header().Set("Retry-After", secs)
			g.deny(c, DeniedRateLimited, addr)
			return echo.NewHTTPError(http.StatusTooManyRequests,
				fmt.Sprintf("too many failed sign-ins from %s: try again in %s s with the right token", addr, secs))
		}
		if g.Session != nil && Bearer(c.Request()) == "" {
			s, ok, err := g.Session(c)
			if err != nil {
				return err
			}
			if ok {
				c.Set(scopeKey, s)
				return next(c)
			}
		}
		s := g.Tokens.ScopeOf(c.Request())
		if s == ScopeNone {
			g.Limiter.Fail(addr)
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="fleetboot"`)
			g.deny(c, DeniedNoToken, addr)
			return echo.NewHTTPError(http.StatusUnauthorized,
				"missing or wrong API token: send Authorization: Bearer <token> (the admin token is in <data>/api-token, the read-only one in <data>/api-token.readonly)")
		}
		c.Set(scopeKey, s)
		return next(c)
	}
}

func (g *Guard) deny(c echo.Context, why Denial, addr netip.Addr) {
	if g.OnDeny != nil {
		g.OnDeny(c, why, addr)
	}
}

// ScopeFrom returns the scope Guard.Authenticate found for this request (ScopeNone before it).
func ScopeFrom(c echo.Context) Scope {
	s, _ := c.Get(scopeKey).(Scope)
	return s
}

// RequireScope is echo middleware that answers 403 unless the caller's scope allows need.
// Put it after Guard.Authenticate. onDeny may be nil.
func RequireScope(need Scope, onDeny func(c echo.Context, why Denial, addr netip.Addr)) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if have := ScopeFrom(c); !have.Allows(need) {
				if onDeny != nil {
					onDeny(c, DeniedScope, SourceAddr(c.Request()))
				}
				return echo.NewHTTPError(http.StatusForbidden,
					fmt.Sprintf("%s %s needs the %s token; this token is %s", c.Request().Method, c.Request().URL.Path, need, have))
			}
			return next(c)
		}
	}
}

// RequireMethodScope is RequireScope with the scope the request's method needs (ForMethod):
// reads need read, changes need admin.
func RequireMethodScope(onDeny func(c echo.Context, why Denial, addr netip.Addr)) echo.MiddlewareFunc {
	byScope := map[Scope]echo.MiddlewareFunc{ScopeRead: RequireScope(ScopeRead, onDeny), ScopeAdmin: RequireScope(ScopeAdmin, onDeny)}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		read, admin := byScope[ScopeRead](next), byScope[ScopeAdmin](next)
		return func(c echo.Context) error {
			if ForMethod(c.Request().Method) == ScopeRead {
				return read(c)
			}
			return admin(c)
		}
	}
}

// SourceAddr is the address the request came from: the TCP peer, never a header a client can
// set (fleetboot is not meant to sit behind a proxy that it would have to trust).
func SourceAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// RetryAfter formats d as a Retry-After value in whole seconds, at least 1.
func RetryAfter(d time.Duration) string {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}
