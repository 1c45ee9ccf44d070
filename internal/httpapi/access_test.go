package httpapi_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/httpapi"
	"github.com/fleetboot/fleetboot/internal/server"
)

// routeAccess is the decision for one route: whether it needs the API token, and a concrete
// request that reaches it.
type routeAccess struct {
	token bool
	// session: a web UI page, which sends a browser without a session to the sign-in page.
	session bool
	// ui: the web UI's way in (sign-in form, its assets, redirects to it): open, but no boot
	// path (with --tls-cert it moves to HTTPS with the API).
	ui   bool
	path string
	body string
}

// TestEveryRouteHasAnAccessDecision walks the router's own route list: every route must have
// a decision in the table below (a route added without one fails here), every route that needs
// the token answers 401 with WWW-Authenticate without it or with a wrong one, and every open
// route (what a booting machine fetches, health, metrics) answers without a token.
func TestEveryRouteHasAnAccessDecision(t *testing.T) {
	e := newISOEnv(t)
	v := e.putISO(t, "g", buildISO(t, genericFiles(), nil), http.StatusCreated)
	const mac = "52:54:00:00:00:01"
	open := func(p string) routeAccess { return routeAccess{path: p} }
	tok := func(p, body string) routeAccess { return routeAccess{token: true, path: p, body: body} }
	page := func(p string) routeAccess { return routeAccess{session: true, path: p} }
	uiOpen := func(p string) routeAccess { return routeAccess{ui: true, path: p} }
	// The decisions, also written down in README's "HTTP endpoints" table.
	table := map[string]routeAccess{
		"GET /boot.ipxe":                       open("/boot.ipxe"),
		"HEAD /boot.ipxe":                      open("/boot.ipxe"),
		"GET /ipxe/:file":                      open("/ipxe/snponly.efi"),
		"HEAD /ipxe/:file":                     open("/ipxe/undionly.kpxe"),
		"GET /secureboot/:file":                open("/secureboot/shimx64.efi"),
		"HEAD /secureboot/:file":               open("/secureboot/grubx64.efi"),
		"GET /grub/*":                          open("/grub/grub.cfg"),
		"HEAD /grub/*":                         open("/grub/x86_64-efi/fs.lst"),
		"GET /isopair/:iso/*":                  open("/isopair/" + v.ID + "/bootx64.efi"),
		"HEAD /isopair/:iso/*":                 open("/isopair/" + v.ID + "/grubx64.efi"),
		echo.RouteNotFound + " /*":             open("/boot/grub/grub.cfg"),
		"GET /assets/*":                        open("/assets/vmlinuz"),
		"HEAD /assets/*":                       open("/assets/vmlinuz"),
		"GET /isos/:id":                        open("/isos/" + v.ID),
		"HEAD /isos/:id":                       open("/isos/" + v.ID),
		"GET /isos/:id/":                       open("/isos/" + v.ID + "/"),
		"HEAD /isos/:id/":                      open("/isos/" + v.ID + "/"),
		"GET /isos/:id/image.iso":              open("/isos/" + v.ID + "/image.iso"),
		"HEAD /isos/:id/image.iso":             open("/isos/" + v.ID + "/image.iso"),
		"GET /isos/:id/files":                  open("/isos/" + v.ID + "/files"),
		"HEAD /isos/:id/files":                 open("/isos/" + v.ID + "/files"),
		"GET /isos/:id/files/*":                open("/isos/" + v.ID + "/files/README.TXT"),
		"HEAD /isos/:id/files/*":               open("/isos/" + v.ID + "/files/README.TXT"),
		"GET /unattended/:mac/:file":           open("/unattended/" + mac + "/ks.cfg"),
		"HEAD /unattended/:mac/:file":          open("/unattended/" + mac + "/ks.cfg"),
		"POST /boot/done/:mac":                 open("/boot/done/" + mac),
		"POST /boot/progress/:mac":             open("/boot/progress/" + mac + "?phase=x"),
		"POST /proxmox/answer":                 open("/proxmox/answer"),
		"GET /healthz":                         open("/healthz"),
		"HEAD /healthz":                        open("/healthz"),
		"GET /metrics":                         open("/metrics"),
		"HEAD /metrics":                        open("/metrics"),
		echo.RouteNotFound + " /api/v1":        tok("/api/v1", ""),
		"GET /api/v1/whoami":                   tok("/api/v1/whoami", ""),
		"GET /api/v1/audit":                    tok("/api/v1/audit", ""),
		echo.RouteNotFound + " /api/v1/*":      tok("/api/v1/no-such-thing", ""),
		"GET /api/v1/leases":                   tok("/api/v1/leases", ""),
		"GET /api/v1/isos":                     tok("/api/v1/isos", ""),
		"GET /api/v1/isos/:id":                 tok("/api/v1/isos/"+v.ID, ""),
		"PUT /api/v1/isos/:name":               tok("/api/v1/isos/x", "data"),
		"POST /api/v1/isos":                    tok("/api/v1/isos?name=x", "data"),
		"POST /api/v1/isos/register":           tok("/api/v1/isos/register", `{"path":"`+filepath.Join(e.data, "none.iso")+`"}`),
		"DELETE /api/v1/isos/:id":              tok("/api/v1/isos/"+v.ID, ""),
		"POST /api/v1/uploads":                 tok("/api/v1/uploads", `{"name":"x","size":10}`),
		"HEAD /api/v1/uploads/:id":             tok("/api/v1/uploads/abc", ""),
		"GET /api/v1/uploads/:id":              tok("/api/v1/uploads/abc", ""),
		"PATCH /api/v1/uploads/:id":            tok("/api/v1/uploads/abc", "data"),
		"POST /api/v1/uploads/:id/finish":      tok("/api/v1/uploads/abc/finish", ""),
		"DELETE /api/v1/uploads/:id":           tok("/api/v1/uploads/abc", ""),
		"GET /api/v1/machines":                 tok("/api/v1/machines", ""),
		"POST /api/v1/machines":                tok("/api/v1/machines", `{"mac":"`+mac+`"}`),
		"GET /api/v1/machines/:mac":            tok("/api/v1/machines/"+mac, ""),
		"PATCH /api/v1/machines/:mac":          tok("/api/v1/machines/"+mac, `{}`),
		"DELETE /api/v1/machines/:mac":         tok("/api/v1/machines/"+mac, ""),
		"POST /api/v1/machines/:mac/reinstall": tok("/api/v1/machines/"+mac+"/reinstall", ""),
		"GET /api/v1/machines/:mac/events":     tok("/api/v1/machines/"+mac+"/events", ""),
		"GET /api/v1/machines/:mac/boot":       tok("/api/v1/machines/"+mac+"/boot", ""),
		"GET /api/v1/events":                   tok("/api/v1/events", ""),
		"GET /api/v1/events/stream":            tok("/api/v1/events/stream?machine=x", ""), // 400 with the token: the open stream would never end
		"GET /api/v1/profiles":                 tok("/api/v1/profiles", ""),
		"POST /api/v1/profiles":                tok("/api/v1/profiles", `{"name":"p","iso":"g"}`),
		"GET /api/v1/profiles/:name":           tok("/api/v1/profiles/p", ""),
		"GET /api/v1/profiles/:name/boot":      tok("/api/v1/profiles/p/boot", ""),
		"PUT /api/v1/profiles/:name":           tok("/api/v1/profiles/p", `{"iso":"g"}`),
		"DELETE /api/v1/profiles/:name":        tok("/api/v1/profiles/p", ""),
		"GET /api/v1/rules":                    tok("/api/v1/rules", ""),
		"POST /api/v1/rules":                   tok("/api/v1/rules", `{"profile":"p"}`),
		"DELETE /api/v1/rules/:id":             tok("/api/v1/rules/1", ""),
		"POST /api/v1/profiles/check":          tok("/api/v1/profiles/check", `{"iso":"g"}`),
		// The web UI: the sign-in form, its static files and the redirects to it are open;
		// every page needs a session (README "Web UI").
		"GET /":                       uiOpen("/"),
		"GET /ui":                     uiOpen("/ui"),
		"GET /ui/login":               uiOpen("/ui/login"),
		"POST /ui/login":              uiOpen("/ui/login"),
		"POST /ui/logout":             uiOpen("/ui/logout"),
		"GET /ui/static/*":            uiOpen("/ui/static/app.css"),
		"HEAD /ui/static/*":           uiOpen("/ui/static/app.js"),
		"GET /ui/":                    page("/ui/"),
		echo.RouteNotFound + " /ui":   page("/ui/"),
		echo.RouteNotFound + " /ui/*": page("/ui/no-such-page"),
		"GET /ui/machines":            page("/ui/machines"),
		"GET /ui/machines/:mac":       page("/ui/machines/" + mac),
		"GET /ui/rules":               page("/ui/rules"),
		"GET /ui/leases":              page("/ui/leases"),
		"GET /ui/health":              page("/ui/health"),
		"GET /ui/isos":                page("/ui/isos"),
		"GET /ui/isos/:id":            page("/ui/isos/" + v.ID),
		"GET /ui/isos/:id/files/*":    page("/ui/isos/" + v.ID + "/files/"),
		"GET /ui/profiles":            page("/ui/profiles"),
		"GET /ui/profiles/new":        page("/ui/profiles/new"),
		"GET /ui/profiles/:name":      page("/ui/profiles/p"),
	}

	// Reads only the admin may make: the audit log says who did what from where.
	adminOnlyReads := map[string]bool{"GET /api/v1/audit": true}

	type call struct {
		key    string
		method string
		routeAccess
	}
	var calls []call
	seen := map[string]bool{}
	for _, r := range e.api.Routes() {
		key := r[0] + " " + r[1]
		if seen[key] {
			continue
		}
		seen[key] = true
		d, ok := table[key]
		if !ok {
			t.Errorf("route %s has no access decision: add it to this test's table (and to README's HTTP endpoints table)", key)
			continue
		}
		m := r[0]
		if m == echo.RouteNotFound {
			m = http.MethodGet
		}
		calls = append(calls, call{key, m, d})
	}
	for key := range table {
		if !seen[key] {
			t.Errorf("table entry %s matches no route: drop it", key)
		}
	}
	hdr := map[string]string{"Content-Type": "application/json"}
	// The open routes are exactly what stays on plain HTTP when the API moves to HTTPS.
	for _, c := range calls {
		boot := !c.token && !c.session && !c.ui
		if httpapi.IsBootPath(c.path) != boot {
			t.Errorf("%s (%s): a boot path = %v but IsBootPath = %v: the plain HTTP listener of --tls-cert would serve an operator path or refuse a boot path",
				c.key, c.path, boot, !boot)
		}
	}
	for _, c := range calls {
		if c.session {
			res, b := e.do(t, c.method, c.path, testToken, hdr, nil)
			if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login?next=") {
				t.Errorf("%s (%s %s) without a session, even with a token: %d %q, want 303 to the sign-in page: %s",
					c.key, c.method, c.path, res.StatusCode, res.Header.Get("Location"), b)
			}
			continue
		}
		if !c.token {
			res, b := e.do(t, c.method, c.path, "", hdr, strings.NewReader(c.body))
			if res.StatusCode == http.StatusUnauthorized {
				t.Errorf("%s (%s %s) must stay open for booting machines, got 401: %s", c.key, c.method, c.path, b)
			}
			continue
		}
		for _, token := range []string{"", "wrong-token-wrong-token"} {
			res, b := e.do(t, c.method, c.path, token, hdr, strings.NewReader(c.body))
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s (%s %s) with token %q: %d, want 401: %s", c.key, c.method, c.path, token, res.StatusCode, b)
			} else if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: 401 without WWW-Authenticate: Bearer", c.key)
			}
		}
	}
	// Nothing unauthenticated reached the store.
	if l := e.listISOs(t); len(l) != 1 || l[0].ID != v.ID {
		t.Fatalf("unauthenticated calls changed the ISOs: %+v", l)
	}
	if res, b := e.do(t, "GET", "/api/v1/machines", testToken, nil, nil); res.StatusCode != 200 || strings.TrimSpace(string(b)) != "[]" {
		t.Fatalf("unauthenticated calls changed the machines: %d %s", res.StatusCode, b)
	}
	// The read-only token reaches every read and no change: 403 before the handler runs.
	for _, c := range calls {
		if c.session {
			res, b := e.do(t, c.method, c.path, testToken, hdr, nil)
			if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login?next=") {
				t.Errorf("%s (%s %s) without a session, even with a token: %d %q, want 303 to the sign-in page: %s",
					c.key, c.method, c.path, res.StatusCode, res.Header.Get("Location"), b)
			}
			continue
		}
		if !c.token {
			continue
		}
		res, b := e.do(t, c.method, c.path, testReadOnlyToken, hdr, strings.NewReader(c.body))
		if adminOnlyReads[c.key] {
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("%s with the read-only token: %d, want 403: %s", c.key, res.StatusCode, b)
			}
		} else if auth.ForMethod(c.method) == auth.ScopeRead {
			if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
				t.Errorf("%s with the read-only token: %d: %s", c.key, res.StatusCode, b)
			}
		} else if res.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "admin token") {
			t.Errorf("%s with the read-only token: %d, want 403 naming the admin token: %s", c.key, res.StatusCode, b)
		}
	}
	if l := e.listISOs(t); len(l) != 1 || l[0].ID != v.ID {
		t.Fatalf("read-only calls changed the ISOs: %+v", l)
	}
	if res, b := e.do(t, "GET", "/api/v1/machines", testToken, nil, nil); res.StatusCode != 200 || strings.TrimSpace(string(b)) != "[]" {
		t.Fatalf("read-only calls changed the machines: %d %s", res.StatusCode, b)
	}
	// With the admin token every protected route is reached (its own answer, never 401/403).
	for _, c := range calls {
		if c.token {
			if res, b := e.do(t, c.method, c.path, testToken, hdr, strings.NewReader(c.body)); res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
				t.Errorf("%s with the admin token: %d: %s", c.key, res.StatusCode, b)
			}
		}
	}
}

// TestWhoamiNamesTheTokensScope: a UI signs in by asking which scope its token has.
func TestWhoamiNamesTheTokensScope(t *testing.T) {
	e := newISOEnv(t)
	for tok, want := range map[string]string{testToken: `{"scope":"admin"}`, testReadOnlyToken: `{"scope":"read"}`} {
		res, b := e.do(t, "GET", "/api/v1/whoami", tok, nil, nil)
		if res.StatusCode != 200 || strings.TrimSpace(string(b)) != want {
			t.Errorf("whoami: %d %s, want %s", res.StatusCode, b, want)
		}
	}
}

// TestFailedSignInsAreRateLimitedPerAddress: after the burst of failures an address gets 429
// with Retry-After, even with the right token (a blocked guesser learns nothing); the limit
// lifts as the bucket refills, and every denial is counted.
func TestFailedSignInsAreRateLimitedPerAddress(t *testing.T) {
	now := time.Unix(1e9, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newISOEnvWith(t, func(d *server.Deps) { d.AuthLimiter = auth.NewLimiter(3, 10*time.Second, 16, clock) })
	for i := 0; i < 3; i++ {
		if res, _ := e.do(t, "GET", "/api/v1/isos", "wrong-token-wrong-token", nil, nil); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i, res.StatusCode)
		}
	}
	for _, tok := range []string{"wrong-token-wrong-token", testToken} {
		res, b := e.do(t, "GET", "/api/v1/isos", tok, nil, nil)
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "10" || !strings.Contains(string(b), "too many failed sign-ins") {
			t.Fatalf("blocked address: %d Retry-After=%q %s", res.StatusCode, res.Header.Get("Retry-After"), b)
		}
	}
	mu.Lock()
	now = now.Add(10 * time.Second)
	mu.Unlock()
	if res, b := e.do(t, "GET", "/api/v1/isos", testToken, nil, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("after the refill the right token: %d %s", res.StatusCode, b)
	}
	// The success did not refill the bucket: one more failure blocks again.
	e.do(t, "GET", "/api/v1/isos", "wrong-token-wrong-token", nil, nil)
	if res, _ := e.do(t, "GET", "/api/v1/isos", testToken, nil, nil); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after another failure: %d, want 429", res.StatusCode)
	}
	_, m := e.do(t, "GET", "/metrics", "", nil, nil)
	for _, want := range []string{`fleetboot_api_denied_total{reason="unauthorized"} 4`, `fleetboot_api_denied_total{reason="rate_limited"} 3`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
