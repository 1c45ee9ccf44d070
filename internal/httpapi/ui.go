package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	dto "github.com/prometheus/client_model/go"

	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/provision"
	"github.com/fleetboot/fleetboot/internal/urls"
	"github.com/fleetboot/fleetboot/internal/webui"
)

// ServerInfo describes the running server for the web UI's health page.
type ServerInfo struct {
	// Listeners are the services and the addresses they listen on.
	Listeners []Listener
	// DHCPMode is off, proxy or full.
	DHCPMode string
	// DataDir is the data directory, whose free space the page shows.
	DataDir string
}

// Listener is one listening service.
type Listener struct{ Name, Addr, Note string }

// loginCookie carries the sign-in form's CSRF token before a session exists (double submit):
// another site cannot make a browser sign in with the attacker's token.
const loginCookie = "fleetboot_login"

// routesUI mounts the web UI at /ui/ and sends / there. The UI's handlers run only for /ui/
// requests: the boot paths machines fetch pass no UI middleware.
func (a *API) routesUI(e *echo.Echo) {
	toUI := func(c echo.Context) error { return c.Redirect(http.StatusFound, webui.Prefix) }
	e.GET("/", toUI)
	e.GET("/ui", toUI)
	ui := e.Group("/ui")
	ui.Match([]string{http.MethodGet, http.MethodHead}, "/static/*", echo.WrapHandler(webui.Static()))
	ui.GET("/login", a.uiLoginPage)
	ui.POST("/login", a.uiLogin)
	ui.POST("/logout", a.uiLogout)

	p := ui.Group("", a.uiSession)
	p.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/ui/machines") })
	p.GET("/machines", a.uiMachines)
	p.GET("/machines/:mac", a.uiMachine)
	p.GET("/rules", a.uiRules)
	p.GET("/leases", a.uiLeases)
	p.GET("/health", a.uiHealth)
	if a.cfg.ISOs != nil {
		p.GET("/isos", a.uiISOs)
		p.GET("/isos/:id", a.uiISO)
		p.GET("/isos/:id/files/*", a.uiISO)
	}
	p.GET("/profiles", a.uiProfiles)
	p.GET("/profiles/new", a.uiProfile)
	p.GET("/profiles/:name", a.uiProfile)
}

// secure says whether cookies must be Secure: the request came over TLS.
func secure(c echo.Context) bool { return c.Request().TLS != nil }

// uiSession lets signed-in browsers through and sends everyone else to the sign-in page.
func (a *API) uiSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, ok := a.sessions.FromRequest(c.Request())
		if !ok {
			return c.Redirect(http.StatusSeeOther, "/ui/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
		}
		c.Set("session", sess)
		return next(c)
	}
}

func (a *API) render(c echo.Context, code int, name string, p webui.Page) error {
	if s, ok := c.Get("session").(*webui.Session); ok {
		p.Session = s
	}
	return a.ui.Render(c.Response(), code, name, p)
}

// sessionScope authenticates an /api/v1 call a signed-in browser makes with its session
// cookie instead of a token (auth.Guard.Session): the session's scope, which RequireMethodScope
// then checks like a token's. Every call that changes something must also carry the page's
// CSRF token: the cookie alone would be sent by any form that another page submits here.
func (a *API) sessionScope(c echo.Context) (auth.Scope, bool, error) {
	sess, ok := a.sessions.FromRequest(c.Request())
	if !ok {
		return auth.ScopeNone, false, nil
	}
	if auth.ForMethod(c.Request().Method) != auth.ScopeRead && !webui.ValidCSRF(sess, c.Request().Header.Get(webui.CSRFHeader)) {
		return auth.ScopeNone, false, httpError(http.StatusForbidden, "missing or wrong CSRF token: send the page's token in "+webui.CSRFHeader)
	}
	return sess.Scope, true, nil
}

// safeNext keeps the post-sign-in redirect inside the UI (no open redirect).
func safeNext(s string) string {
	if !strings.HasPrefix(s, webui.Prefix) || strings.HasPrefix(s, "//") || strings.Contains(s, "\\") {
		return webui.Prefix
	}
	return s
}

type loginData struct{ CSRF, Next string }

func (a *API) uiLoginPage(c echo.Context) error {
	return a.loginForm(c, http.StatusOK, "")
}

func (a *API) loginForm(c echo.Context, code int, msg string) error {
	tok := webui.RandomToken()
	c.SetCookie(&http.Cookie{Name: loginCookie, Value: tok, Path: "/ui/login", HttpOnly: true, Secure: secure(c), SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	next := c.QueryParam("next")
	if next == "" {
		next = c.FormValue("next")
	}
	return a.render(c, code, "login", webui.Page{Title: "Sign in", Error: msg, Data: loginData{CSRF: tok, Next: safeNext(next)}})
}

func (a *API) uiLogin(c echo.Context) error {
	ck, err := c.Cookie(loginCookie)
	if err != nil || !constantTimeEqual(ck.Value, c.FormValue(webui.CSRFField)) {
		return a.loginForm(c, http.StatusForbidden, "The sign-in form expired; please try again.")
	}
	addr := auth.SourceAddr(c.Request())
	if blocked, retry := a.limiter.Blocked(addr); blocked {
		c.Response().Header().Set("Retry-After", auth.RetryAfter(retry))
		a.denied(c, auth.DeniedRateLimited, addr)
		return a.loginForm(c, http.StatusTooManyRequests, "Too many failed sign-ins from "+addr.String()+": try again in "+auth.RetryAfter(retry)+" s.")
	}
	scope := a.cfg.Tokens.Scope(strings.TrimSpace(c.FormValue("token")))
	if scope == auth.ScopeNone {
		a.limiter.Fail(addr)
		a.denied(c, auth.DeniedNoToken, addr)
		return a.loginForm(c, http.StatusUnauthorized, "Wrong token.")
	}
	sess := a.sessions.Create(scope)
	c.SetCookie(webui.Cookie(sess, secure(c)))
	c.SetCookie(&http.Cookie{Name: loginCookie, Value: "", Path: "/ui/login", MaxAge: -1, HttpOnly: true, Secure: secure(c), SameSite: http.SameSiteStrictMode})
	a.log.Info("web UI sign-in", "ip", addr, "scope", scope)
	return c.Redirect(http.StatusSeeOther, safeNext(c.FormValue("next")))
}

func (a *API) uiLogout(c echo.Context) error {
	if sess, ok := a.sessions.FromRequest(c.Request()); ok {
		if !webui.ValidCSRF(sess, c.FormValue(webui.CSRFField)) {
			return httpError(http.StatusForbidden, "missing or wrong CSRF token")
		}
		a.sessions.Delete(sess.ID)
	}
	c.SetCookie(webui.ClearCookie(secure(c)))
	return c.Redirect(http.StatusSeeOther, "/ui/login")
}

// ---- machines ----

type machineRow struct {
	*inventory.Machine
	LastStep string
}

type machinesData struct {
	Machines []machineRow
	Query    string
	State    string
	States   []inventory.State
	Profiles []string
}

// machineMatches is the machines page's filter: every word must occur in the MAC, hostname,
// IP, profile, state, firmware, arch or a label (case ignored).
func machineMatches(m *inventory.Machine, q string) bool {
	hay := strings.ToLower(strings.Join([]string{m.MAC, m.Hostname, m.IP, m.Profile, string(m.State), m.Firmware, m.Arch, m.Platform}, " "))
	for k, v := range m.Labels {
		hay += " " + strings.ToLower(k+"="+v)
	}
	for _, w := range strings.Fields(strings.ToLower(q)) {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}

func (a *API) profileNames(ctx context.Context) []string {
	if a.cfg.Inventory == nil {
		return nil
	}
	ps, err := a.cfg.Inventory.Profiles(ctx)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func (a *API) uiMachines(c echo.Context) error {
	if a.cfg.Inventory == nil {
		return httpError(http.StatusNotFound, "no inventory")
	}
	ctx := c.Request().Context()
	state := inventory.State(c.QueryParam("state"))
	if state != "" && !inventory.ValidState(state) {
		state = ""
	}
	ms, err := a.cfg.Inventory.Machines(ctx, state)
	if err != nil {
		return err
	}
	d := machinesData{Query: c.QueryParam("q"), State: string(state), States: inventory.States, Profiles: a.profileNames(ctx)}
	for _, m := range ms {
		if !machineMatches(m, d.Query) {
			continue
		}
		row := machineRow{Machine: m}
		if ev, err := a.cfg.Inventory.Events(ctx, m.MAC, 1); err == nil && len(ev) == 1 {
			row.LastStep = ev[0].Kind + ": " + ev[0].Detail
		}
		d.Machines = append(d.Machines, row)
	}
	return a.render(c, http.StatusOK, "machines", webui.Page{Title: "Machines", Nav: "machines", Data: d})
}

type kv struct{ K, V string }

type timelineRow struct {
	inventory.Event
	Bytes, Duration string
	// Fixed: the duration is the step's own (a download), not the time until the next step.
	Fixed bool
}

// downloadRE reads a download step's detail (bootFileStep writes it).
var downloadRE = regexp.MustCompile(`: (\d+) bytes in ([0-9.]+) s$`)

// downloadStep is the size and duration of a kernel or initrd download event.
func downloadStep(ev inventory.Event) (int64, time.Duration, bool) {
	if ev.Kind != EventDownload {
		return 0, 0, false
	}
	m := downloadRE.FindStringSubmatch(ev.Detail)
	if m == nil {
		return 0, 0, false
	}
	n, err1 := strconv.ParseInt(m[1], 10, 64)
	secs, err2 := strconv.ParseFloat(m[2], 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return n, time.Duration(secs * float64(time.Second)), true
}

// Unix is the event's time in seconds, for the page's duration arithmetic.
func (r timelineRow) Unix() float64 { return float64(r.Time.UnixMilli()) / 1000 }

type machineData struct {
	M          *inventory.Machine
	Hardware   []kv
	Events     []timelineRow
	Profiles   []string
	StreamURL  string
	Script     string
	ScriptNote string
}

func (a *API) uiMachine(c echo.Context) error {
	m, err := a.machineParam(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	d := machineData{M: m, Profiles: a.profileNames(ctx)}
	for k, v := range m.Hardware {
		d.Hardware = append(d.Hardware, kv{k, v})
	}
	sort.Slice(d.Hardware, func(i, j int) bool { return d.Hardware[i].K < d.Hardware[j].K })
	evs, err := a.cfg.Inventory.Events(ctx, m.MAC, 0)
	if err != nil {
		return err
	}
	var last int64
	if len(evs) > 0 {
		last = evs[len(evs)-1].ID
	}
	d.StreamURL = a.eventStreamURL(m.MAC, last)
	for i, ev := range evs {
		r := timelineRow{Event: ev, Duration: "—"}
		if i+1 < len(evs) {
			r.Duration = humanDuration(evs[i+1].Time.Sub(ev.Time))
		}
		if n, d, ok := downloadStep(ev); ok {
			r.Bytes, r.Duration, r.Fixed = webui.HumanBytes(n), humanDuration(d), true
		}
		d.Events = append(d.Events, r)
	}
	d.Script, d.ScriptNote = a.bootScriptPreview(ctx, m)
	return a.render(c, http.StatusOK, "machine", webui.Page{Title: "Machine " + m.MAC, Nav: "machines", Data: d})
}

// eventStreamURL is where the machine page's timeline listens for new events: the live event
// stream (server-sent events) of this machine, from the last event the page rendered on, so
// nothing between the render and the connection is missed.
func (a *API) eventStreamURL(mac string, last int64) string {
	return "/api/v1/events/stream?machine=" + url.QueryEscape(mac) + "&after=" + strconv.FormatInt(last, 10)
}

// bootScriptPreview renders the iPXE script the machine gets for its profile, without
// recording anything (a real fetch of /boot.ipxe is a boot step and moves the state).
func (a *API) bootScriptPreview(ctx context.Context, m *inventory.Machine) (script, note string) {
	switch {
	case m.Profile == "":
		return "", "No profile: the machine gets the boot menu (or the --unassigned default)."
	case a.cfg.Provision == nil:
		return "", "Provisioning is not configured."
	}
	p, err := a.cfg.Inventory.Profile(ctx, m.Profile)
	if err != nil {
		return "", "Profile " + m.Profile + ": " + err.Error()
	}
	if problem := a.cfg.Provision.Problem(ctx, p); problem != "" {
		return "", "Profile " + p.Name + " cannot boot: " + problem + "; the machine gets the menu."
	}
	t, err := a.cfg.Provision.Target(ctx, p, m)
	if err != nil {
		return "", "Profile " + p.Name + " cannot boot this machine: " + err.Error()
	}
	note = "The installer script of profile " + p.Name + " (iPXE), as the machine gets it while install-pending or installing."
	if m.State == inventory.Installed && p.Mode != inventory.ModeAlways {
		note = "Installed: the machine now boots its local disk. Reinstalling hands out this installer script (iPXE) again."
	}
	return string(ipxe.Boot(a.cfg.Scripts, t)), note
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
}

// ---- rules and leases ----

type ruleRow struct {
	*inventory.Rule
}

func (a *API) uiRules(c echo.Context) error {
	if a.cfg.Inventory == nil {
		return httpError(http.StatusNotFound, "no inventory")
	}
	ctx := c.Request().Context()
	rs, err := a.cfg.Inventory.Rules(ctx)
	if err != nil {
		return err
	}
	return a.render(c, http.StatusOK, "rules", webui.Page{Title: "Rules", Nav: "rules",
		Data: map[string]any{"Rules": rs, "Profiles": a.profileNames(ctx)}})
}

type leasesData struct {
	Note               string
	Leases             []LeaseInfo
	Active, Free, Size int
}

func (a *API) uiLeases(c echo.Context) error {
	var d leasesData
	if a.cfg.Leases == nil {
		d.Note = "fleetboot hands out no addresses (--dhcp=" + orDefault(a.cfg.Server.DHCPMode, "off") + "): the site's DHCP server owns the leases."
		return a.render(c, http.StatusOK, "leases", webui.Page{Title: "DHCP leases", Nav: "leases", Data: d})
	}
	ctx := c.Request().Context()
	ls, err := a.cfg.Leases.Leases(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, l := range ls {
		d.Leases = append(d.Leases, LeaseInfo{IP: l.IP.String(), MAC: l.MAC.String(), State: string(l.State), Active: l.Active(now),
			Expires: l.Expires, Hostname: l.Hostname, Updated: l.Updated})
	}
	if u, err := a.cfg.Leases.PoolUsage(ctx); err == nil {
		d.Active, d.Free, d.Size = u.Active, u.Free, u.Size
	}
	return a.render(c, http.StatusOK, "leases", webui.Page{Title: "DHCP leases", Nav: "leases", Data: d})
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ---- ISOs ----

type isoRow struct {
	ISOInfo
	Distro, Arch string
	Recipes      []recipeRow
	RecipeError  string
	Evidence     []string
	Pairs        []string
}

type recipeRow struct {
	ID, Label, Arch, Firmware, Kernel, Cmdline, SecureBoot string
	Notes                                                  []string
}

// isoRow reads the detection stored with the ISO for the pages.
func (a *API) isoRow(info ISOInfo) isoRow {
	r := isoRow{ISOInfo: info, Distro: "not recognised"}
	if len(info.Detected) == 0 {
		return r
	}
	var d provision.Detection
	if err := json.Unmarshal(info.Detected, &d); err != nil {
		return r
	}
	r.Distro = strings.TrimSpace(orDefault(d.Name, string(d.Family)) + " " + d.Version)
	r.Arch, r.RecipeError, r.Evidence = d.Arch, d.RecipeError, d.Evidence
	for _, e := range d.Recipes {
		rr := recipeRow{ID: e.ID, Label: e.Label, Arch: e.Arch, Firmware: string(e.Firmware), Kernel: e.Kernel, Cmdline: e.Cmdline, Notes: e.Notes, SecureBoot: "—"}
		if e.Sanboot {
			rr.Kernel = "(whole image, sanboot)"
		}
		if d.SecureBoot != nil {
			if v, ok := d.SecureBoot.Entry(e.ID); ok {
				if v.Trusted {
					rr.SecureBoot = "ready (" + v.By + ")"
				} else {
					rr.SecureBoot = "no: " + v.Reason
				}
			}
		}
		r.Recipes = append(r.Recipes, rr)
	}
	if d.SecureBoot != nil {
		for _, p := range d.SecureBoot.Pairs {
			r.Pairs = append(r.Pairs, p.Arch+": "+p.Shim+" + "+p.GRUB)
		}
	}
	return r
}

func (a *API) uiISOs(c echo.Context) error {
	isos, err := a.cfg.ISOs.List(c.Request().Context())
	if err != nil {
		return err
	}
	var rows []isoRow
	for _, iso := range isos {
		rows = append(rows, a.isoRow(a.isoView(iso)))
	}
	return a.render(c, http.StatusOK, "isos", webui.Page{Title: "ISOs", Nav: "isos", Data: map[string]any{"ISOs": rows}})
}

type fileRow struct {
	Name, URL string
	Dir       bool
	Size      int64
	ModTime   time.Time
}

type crumb struct{ Name, URL string }

type isoData struct {
	isoRow
	ISO    ISOInfo
	Dir    string
	Crumbs []crumb
	Files  []fileRow
}

// uiISO shows one ISO: what was detected, its recipes with their Secure Boot verdicts, and a
// browser of its files (directories in the UI; files open from the ISO's file URL).
func (a *API) uiISO(c echo.Context) error {
	ctx := c.Request().Context()
	iso, err := a.cfg.ISOs.Get(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	info := a.isoView(iso)
	dir := path.Clean("/" + c.Param("*"))
	entries, err := a.cfg.ISOs.ReadDir(ctx, iso.ID, dir)
	if err != nil {
		return err
	}
	d := isoData{isoRow: a.isoRow(info), ISO: info, Dir: dir}
	base := "/ui/isos/" + url.PathEscape(iso.ID) + "/files"
	d.Crumbs = append(d.Crumbs, crumb{Name: iso.Name, URL: base + "/"})
	acc := ""
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		acc += "/" + part
		d.Crumbs = append(d.Crumbs, crumb{Name: part, URL: base + escapePath(acc) + "/"})
	}
	for _, e := range entries {
		name := path.Base(e.Path)
		fr := fileRow{Name: name, Dir: e.Mode.IsDir(), Size: e.Size, ModTime: e.ModTime}
		if fr.Dir {
			fr.URL = base + escapePath(e.Path) + "/"
		} else {
			fr.URL = urls.ISOFile(urls.ISOsDir+url.PathEscape(iso.ID), e.Path)
		}
		d.Files = append(d.Files, fr)
	}
	sort.Slice(d.Files, func(i, j int) bool {
		if d.Files[i].Dir != d.Files[j].Dir {
			return d.Files[i].Dir
		}
		return d.Files[i].Name < d.Files[j].Name
	})
	return a.render(c, http.StatusOK, "iso", webui.Page{Title: "ISO " + iso.Name, Nav: "isos", Data: d})
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// ---- profiles ----

type profileRow struct {
	*inventory.Profile
	ISOName, SecureBoot string
}

func (a *API) isoNames(ctx context.Context) map[string]string {
	names := map[string]string{}
	if a.cfg.ISOs == nil {
		return names
	}
	if isos, err := a.cfg.ISOs.List(ctx); err == nil {
		for _, iso := range isos {
			names[iso.ID] = iso.Name
		}
	}
	return names
}

func (a *API) uiProfiles(c echo.Context) error {
	ctx := c.Request().Context()
	ps, err := a.cfg.Inventory.Profiles(ctx)
	if err != nil {
		return err
	}
	names := a.isoNames(ctx)
	var rows []profileRow
	for _, p := range ps {
		a.withSecureBoot(ctx, p)
		a.withProblem(ctx, p)
		r := profileRow{Profile: p, ISOName: orDefault(names[p.ISO], p.ISO), SecureBoot: "—"}
		if sb := p.SecureBoot; sb != nil {
			r.SecureBoot = "ready"
			if !sb.Ready {
				r.SecureBoot = "no: " + sb.Reason
			}
		}
		rows = append(rows, r)
	}
	return a.render(c, http.StatusOK, "profiles", webui.Page{Title: "Profiles", Nav: "profiles", Data: map[string]any{"Profiles": rows}})
}

type profileData struct {
	P        *inventory.Profile
	New      bool
	Mode     string
	Modes    []string
	Kinds    []string
	ISOs     []isoRow
	Machines []*inventory.Machine
	Vars     string
	Keys     string
}

func (a *API) uiProfile(c echo.Context) error {
	ctx := c.Request().Context()
	d := profileData{P: &inventory.Profile{}, New: true, Modes: []string{inventory.ModeInstallOnce, inventory.ModeBootOnce, inventory.ModeAlways}}
	title := "New profile"
	if name := c.Param("name"); name != "" {
		p, err := a.cfg.Inventory.Profile(ctx, name)
		if err != nil {
			return err
		}
		d.P, d.New, title = p, false, "Profile "+p.Name
	}
	d.Mode = orDefault(d.P.Mode, inventory.ModeInstallOnce)
	for k := range provision.Kinds {
		d.Kinds = append(d.Kinds, k)
	}
	sort.Strings(d.Kinds)
	if a.cfg.ISOs != nil {
		if isos, err := a.cfg.ISOs.List(ctx); err == nil {
			for _, iso := range isos {
				d.ISOs = append(d.ISOs, a.isoRow(a.isoView(iso)))
			}
		}
	}
	d.Machines, _ = a.cfg.Inventory.Machines(ctx, "")
	var vars []string
	for k, v := range d.P.Vars {
		vars = append(vars, k+"="+v)
	}
	sort.Strings(vars)
	d.Vars = strings.Join(vars, "\n")
	d.Keys = strings.Join(d.P.SSHKeys, "\n")
	p := webui.Page{Title: title, Nav: "profiles", Data: d}
	if c.QueryParam("saved") != "" {
		// Shown in the status line by the page; the profile was saved by the editor's fetch.
		p.Error = ""
	}
	return a.render(c, http.StatusOK, "profile", p)
}

// checkProfile answers POST /api/v1/profiles/check[?mac=M&preview=1]: the profile in the body
// is validated as a save would (ISO, entry, template parses and renders) without saving it;
// 200 {"ok": true, "secure_boot", "preview"?: {"file","body"}} or 422 with the problem. The
// preview renders the unattended file for machine M (a sample machine without one): the web
// UI's editor checks as the operator types.
func (a *API) checkProfile(c echo.Context) error {
	var p inventory.Profile
	if err := bindJSON(c, &p); err != nil {
		return err
	}
	if p.Name == "" {
		p.Name = "unsaved"
	}
	if !inventory.ValidName(p.Name) {
		return httpError(http.StatusUnprocessableEntity, "name: use letters, digits, '.', '_', '-' (at most 63)")
	}
	if a.cfg.Provision == nil {
		return httpError(http.StatusNotFound, "no provisioning configured")
	}
	ctx := c.Request().Context()
	if err := a.cfg.Provision.CheckProfile(ctx, &p); err != nil {
		return httpError(http.StatusUnprocessableEntity, err.Error())
	}
	out := map[string]any{"ok": true, "iso": p.ISO, "secure_boot": a.cfg.Provision.SecureBootStatus(ctx, &p)}
	if c.QueryParam("preview") != "" && p.Template != "" {
		m := &inventory.Machine{MAC: "52:54:00:00:00:01", Hostname: "sample", IP: "192.0.2.10", State: inventory.InstallPending, Labels: map[string]string{}}
		if q := c.QueryParam("mac"); q != "" {
			mac := ipxe.NormalizeMAC(q)
			if mac == "" {
				return httpError(http.StatusBadRequest, fmt.Sprintf("mac %q is not a MAC address: %s", q, macFormat))
			}
			known, err := a.cfg.Inventory.Machine(ctx, mac)
			if err != nil {
				return err
			}
			m = known
		}
		file, body, err := a.cfg.Provision.Preview(ctx, &p, m)
		if err != nil {
			return httpError(http.StatusUnprocessableEntity, err.Error())
		}
		out["preview"] = map[string]string{"file": file, "body": string(body), "mac": m.MAC}
	}
	return c.JSON(http.StatusOK, out)
}

// ---- health ----

type counterRow struct {
	Name, Help string
	Value      string
}

type healthData struct {
	Listeners          []Listener
	DHCPMode, BootURL  string
	InFlight           int
	DataDir, DiskError string
	DiskFree, DiskSize int64
	DiskUsedPct        int
	States             []kv
	Counters           []counterRow
	// ImageProblems are the ISOs whose bytes this instance cannot serve, with why.
	ImageProblems []kv
}

func (a *API) uiHealth(c echo.Context) error {
	ctx := c.Request().Context()
	s := a.cfg.Server
	d := healthData{Listeners: s.Listeners, DHCPMode: orDefault(s.DHCPMode, "off"), BootURL: urls.Base(a.cfg.Scripts.HTTPBase).BootScript(),
		InFlight: a.InFlight(), DataDir: s.DataDir}
	if s.DataDir == "" {
		d.DiskError = "unknown data directory"
	} else {
		var st syscall.Statfs_t
		if err := syscall.Statfs(s.DataDir, &st); err != nil {
			d.DiskError = err.Error()
		} else {
			d.DiskSize = int64(st.Blocks) * int64(st.Bsize)
			d.DiskFree = int64(st.Bavail) * int64(st.Bsize)
			if d.DiskSize > 0 {
				d.DiskUsedPct = int(100 - d.DiskFree*100/d.DiskSize)
			}
		}
	}
	if a.cfg.Inventory != nil {
		if by, err := a.cfg.Inventory.CountByState(ctx); err == nil {
			for _, st := range inventory.States {
				d.States = append(d.States, kv{string(st), fmt.Sprint(by[st])})
			}
		}
	}
	if isos, err := a.cfg.ISOs.List(ctx); err == nil {
		for _, iso := range isos {
			if st, err := a.cfg.ISOs.ImageStatus(ctx, iso); err != nil {
				d.ImageProblems = append(d.ImageProblems, kv{iso.Name + " (" + string(st) + ")", err.Error()})
			}
		}
	}
	if fams, err := a.m.Gather(); err == nil {
		for _, f := range fams {
			if !strings.HasPrefix(f.GetName(), "fleetboot_") || (f.GetType() != dto.MetricType_COUNTER && f.GetType() != dto.MetricType_GAUGE) {
				continue
			}
			var sum float64
			for _, m := range f.GetMetric() {
				if f.GetType() == dto.MetricType_COUNTER {
					sum += m.GetCounter().GetValue()
				} else {
					sum += m.GetGauge().GetValue()
				}
			}
			d.Counters = append(d.Counters, counterRow{Name: f.GetName(), Help: f.GetHelp(), Value: fmt.Sprintf("%g", sum)})
		}
	}
	return a.render(c, http.StatusOK, "health", webui.Page{Title: "Server health", Nav: "health", Data: d})
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
