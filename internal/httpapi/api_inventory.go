package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/distro"
	"github.com/fleetboot/fleetboot/internal/inventory"
	"github.com/fleetboot/fleetboot/internal/ipxe"
	"github.com/fleetboot/fleetboot/internal/provision"
)

// Provisioner is what the API needs of internal/provision.
type Provisioner interface {
	// CheckProfile validates a profile before it is saved: its ISO exists, the boot entry is one
	// of the ISO's, the template parses and renders. What is wrong with the profile matches
	// provision.ErrInvalidProfile (422); other errors could not check it (500).
	CheckProfile(ctx context.Context, p *inventory.Profile) error
	// SecureBootStatus says whether machines with Secure Boot on can boot profile p.
	SecureBootStatus(ctx context.Context, p *inventory.Profile) *inventory.SecureBootStatus
	// Unattended renders the unattended-install file name for machine m ("" file: the kind's
	// main file).
	Unattended(ctx context.Context, m *inventory.Machine, file string) ([]byte, error)
	// BootEntry resolves profile name for the machine with MAC mac ("" for any machine): the
	// kernel, initrds, final command line and the fate of each of the ISO's own arguments.
	BootEntry(ctx context.Context, name, mac string) (distro.Entry, error)
	// Problem says why a profile cannot boot ("" when nothing stops it).
	Problem(ctx context.Context, p *inventory.Profile) string
	// Answer finds the machine a Proxmox installer's system information describes and
	// renders its answer file.
	Answer(ctx context.Context, si provision.SysInfo) (*inventory.Machine, []byte, error)
	// Target resolves profile p for machine m into what its boot script loads.
	Target(ctx context.Context, p *inventory.Profile, m *inventory.Machine) (ipxe.BootTarget, error)
	// Preview renders an unsaved profile's main unattended file for machine m and names it.
	Preview(ctx context.Context, p *inventory.Profile, m *inventory.Machine) (string, []byte, error)
}

// macFormat is what a bad MAC address is told to look like.
const macFormat = "want six hex pairs like 52:54:00:12:34:56 (':', '-' or '.' between them, or none)"

// withProblem marks a profile that cannot boot, for listings.
func (a *API) withProblem(ctx context.Context, p *inventory.Profile) {
	if a.cfg.Provision == nil {
		return
	}
	if p.Problem = a.cfg.Provision.Problem(ctx, p); p.Problem != "" {
		p.Broken = true
	}
}

func (a *API) routesInventory(api *echo.Group) {
	api.GET("/machines", a.listMachines)
	api.POST("/machines", a.createMachine)
	api.GET("/machines/:mac", a.getMachine)
	api.PATCH("/machines/:mac", a.updateMachine)
	api.DELETE("/machines/:mac", a.deleteMachine)
	api.POST("/machines/:mac/reinstall", a.reinstallMachine)
	api.GET("/machines/:mac/events", a.machineEvents)
	api.GET("/machines/:mac/boot", a.machineBoot)
	api.GET("/events", a.recentEvents)
	api.GET("/events/stream", a.eventStream)

	api.GET("/profiles", a.listProfiles)
	api.POST("/profiles", a.putProfile)
	api.POST("/profiles/check", a.checkProfile)
	api.GET("/profiles/:name", a.getProfile)
	api.GET("/profiles/:name/boot", a.profileBoot)
	api.PUT("/profiles/:name", a.putProfile)
	api.DELETE("/profiles/:name", a.deleteProfile)

	api.GET("/rules", a.listRules)
	api.POST("/rules", a.addRule)
	api.DELETE("/rules/:id", a.deleteRule)
}

func macParam(c echo.Context) (string, error) {
	mac := ipxe.NormalizeMAC(c.Param("mac"))
	if mac == "" {
		return "", httpError(http.StatusBadRequest, fmt.Sprintf("%q is not a MAC address: %s", c.Param("mac"), macFormat))
	}
	return mac, nil
}

// machineParam is the machine named by the route's {mac}: 400 for a malformed MAC, the
// inventory's not-found error for an unknown one.
func (a *API) machineParam(c echo.Context) (*inventory.Machine, error) {
	mac, err := macParam(c)
	if err != nil {
		return nil, err
	}
	return a.cfg.Inventory.Machine(c.Request().Context(), mac)
}

func (a *API) listMachines(c echo.Context) error {
	state := inventory.State(c.QueryParam("state"))
	if state != "" && !inventory.ValidState(state) {
		return httpError(http.StatusBadRequest, "unknown state "+string(state))
	}
	ms, err := a.cfg.Inventory.Machines(c.Request().Context(), state)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ms)
}

func (a *API) getMachine(c echo.Context) error {
	m, err := a.machineParam(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

// machineBody is the JSON a client sends to create or change a machine.
type machineBody struct {
	MAC      string            `json:"mac"`
	Hostname *string           `json:"hostname"`
	Labels   map[string]string `json:"labels"`
	Profile  *string           `json:"profile"`
	State    *inventory.State  `json:"state"`
}

func (b machineBody) update() inventory.MachineUpdate {
	return inventory.MachineUpdate{Hostname: b.Hostname, Labels: b.Labels, Profile: b.Profile, State: b.State}
}

func (a *API) createMachine(c echo.Context) error {
	var b machineBody
	if err := bindJSON(c, &b); err != nil {
		return err
	}
	mac := ipxe.NormalizeMAC(b.MAC)
	if mac == "" {
		return httpError(http.StatusBadRequest, fmt.Sprintf("mac %q is not a MAC address: %s", b.MAC, macFormat))
	}
	m, err := a.cfg.Inventory.CreateMachine(c.Request().Context(), mac, b.update())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, m)
}

func (a *API) updateMachine(c echo.Context) error {
	mac, err := macParam(c)
	if err != nil {
		return err
	}
	var b machineBody
	if err := bindJSON(c, &b); err != nil {
		return err
	}
	m, err := a.cfg.Inventory.UpdateMachine(c.Request().Context(), mac, b.update())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

func (a *API) reinstallMachine(c echo.Context) error {
	mac, err := macParam(c)
	if err != nil {
		return err
	}
	s := inventory.InstallPending
	m, err := a.cfg.Inventory.UpdateMachine(c.Request().Context(), mac, inventory.MachineUpdate{State: &s})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

func (a *API) deleteMachine(c echo.Context) error {
	mac, err := macParam(c)
	if err != nil {
		return err
	}
	if err := a.cfg.Inventory.DeleteMachine(c.Request().Context(), mac); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *API) machineEvents(c echo.Context) error {
	mac, err := macParam(c)
	if err != nil {
		return err
	}
	if _, err := a.cfg.Inventory.Machine(c.Request().Context(), mac); err != nil {
		return err
	}
	limit, _ := strconv.Atoi(c.QueryParam("limit"))
	ev, err := a.cfg.Inventory.Events(c.Request().Context(), mac, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ev)
}

// bootEntry answers what a profile boots: 422 with the reason when it resolves to nothing.
func (a *API) bootEntry(c echo.Context, profile, mac string) error {
	if a.cfg.Provision == nil {
		return httpError(http.StatusNotFound, "no provisioning configured")
	}
	e, err := a.cfg.Provision.BootEntry(c.Request().Context(), profile, mac)
	if errors.Is(err, inventory.ErrNotFound) {
		return err
	}
	if err != nil {
		return httpError(http.StatusUnprocessableEntity, err.Error())
	}
	return c.JSON(http.StatusOK, e)
}

func (a *API) profileBoot(c echo.Context) error {
	mac := ""
	if q := c.QueryParam("mac"); q != "" {
		if mac = ipxe.NormalizeMAC(q); mac == "" {
			return httpError(http.StatusBadRequest, fmt.Sprintf("mac %q is not a MAC address: %s", q, macFormat))
		}
	}
	return a.bootEntry(c, c.Param("name"), mac)
}

func (a *API) machineBoot(c echo.Context) error {
	m, err := a.machineParam(c)
	if err != nil {
		return err
	}
	mac := m.MAC
	if m.Profile == "" {
		return httpError(http.StatusNotFound, "machine "+mac+" has no profile")
	}
	return a.bootEntry(c, m.Profile, mac)
}

func (a *API) listProfiles(c echo.Context) error {
	ps, err := a.cfg.Inventory.Profiles(c.Request().Context())
	if err != nil {
		return err
	}
	for _, p := range ps {
		a.withSecureBoot(c.Request().Context(), p)
		a.withProblem(c.Request().Context(), p)
	}
	return c.JSON(http.StatusOK, ps)
}

func (a *API) getProfile(c echo.Context) error {
	p, err := a.cfg.Inventory.Profile(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	a.withSecureBoot(c.Request().Context(), p)
	a.withProblem(c.Request().Context(), p)
	return c.JSON(http.StatusOK, p)
}

// withSecureBoot fills in the profile's computed Secure Boot verdict.
func (a *API) withSecureBoot(ctx context.Context, p *inventory.Profile) {
	if a.cfg.Provision != nil {
		p.SecureBoot = a.cfg.Provision.SecureBootStatus(ctx, p)
	}
}

func (a *API) putProfile(c echo.Context) error {
	var p inventory.Profile
	if err := bindJSON(c, &p); err != nil {
		return err
	}
	if name := c.Param("name"); name != "" {
		if p.Name != "" && p.Name != name {
			return httpError(http.StatusBadRequest, "name in the body differs from the URL")
		}
		p.Name = name
	}
	if !inventory.ValidName(p.Name) {
		return httpError(http.StatusBadRequest, "name: use letters, digits, '.', '_', '-' (at most 63)")
	}
	if a.cfg.Provision != nil {
		if err := a.cfg.Provision.CheckProfile(c.Request().Context(), &p); errors.Is(err, provision.ErrInvalidProfile) {
			return httpError(http.StatusUnprocessableEntity, err.Error())
		} else if err != nil {
			return err // the database or the ISO could not be read: 500, logged
		}
	}
	out, created, err := a.cfg.Inventory.PutProfile(c.Request().Context(), &p)
	if err != nil {
		return err
	}
	// Saved either way (machines without Secure Boot boot it); the verdict in the answer is
	// how the CLI warns before any machine with Secure Boot on tries.
	a.withSecureBoot(c.Request().Context(), out)
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	return c.JSON(code, out)
}

func (a *API) deleteProfile(c echo.Context) error {
	if err := a.cfg.Inventory.DeleteProfile(c.Request().Context(), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *API) listRules(c echo.Context) error {
	rs, err := a.cfg.Inventory.Rules(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rs)
}

func (a *API) addRule(c echo.Context) error {
	var r inventory.Rule
	if err := bindJSON(c, &r); err != nil {
		return err
	}
	out, applied, err := a.cfg.Inventory.AddRule(c.Request().Context(), r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"rule": out, "applied_to": applied})
}

func (a *API) deleteRule(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return httpError(http.StatusBadRequest, "rule id must be a number")
	}
	if err := a.cfg.Inventory.DeleteRule(c.Request().Context(), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// fromMachine is what every callback without a token must prove: the request comes from the
// address the machine last booted with. It returns the request's address, or a 403 (logged,
// with what was asked) when anyone else asks.
func (a *API) fromMachine(c echo.Context, m *inventory.Machine, what string) (netip.Addr, error) {
	from := remoteIP(c)
	if m.IP != "" && from.IsValid() && from.String() == m.IP {
		return from, nil
	}
	a.log.Warn(what+" from a foreign address refused", "mac", m.MAC, "ip", from, "machine_ip", m.IP)
	return from, httpError(http.StatusForbidden, "only the machine itself ("+m.IP+") may "+what)
}

// done is the installer's one-shot callback: POST /boot/done/{mac}. It carries no token (an
// installer has none) but only the machine itself may call it: the request must come from the
// address the machine last booted with.
func (a *API) done(c echo.Context) error {
	m, err := a.machineParam(c)
	if err != nil {
		return err
	}
	mac := m.MAC
	ctx := c.Request().Context()
	from, err := a.fromMachine(c, m, "report its install done")
	if err != nil {
		return err
	}
	m, err = a.cfg.Inventory.Transition(ctx, mac, []inventory.State{inventory.Installing}, inventory.Installed, "installer reported done from "+from.String())
	if err != nil {
		return err
	}
	a.log.Info("install done", "mac", mac, "ip", from, "profile", m.Profile)
	return c.JSON(http.StatusOK, m)
}

// unattended serves GET /unattended/{mac}/{file}: the machine's rendered kickstart, preseed,
// user-data, meta-data or AutoYaST file.
func (a *API) unattended(c echo.Context) error {
	m, err := a.machineParam(c)
	if err != nil {
		return err
	}
	mac := m.MAC
	ctx := c.Request().Context()
	body, err := a.cfg.Provision.Unattended(ctx, m, c.Param("file"))
	if err != nil {
		return err
	}
	a.event(ctx, mac, "unattended", c.Param("file")+" fetched from "+remoteIP(c).String())
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", body)
}

// proxmoxAnswer serves POST /proxmox/answer (urls.ProxmoxAnswer): the Proxmox VE automated
// installer (proxmox-fetch-answer, ISO prepared with --fetch-from http) POSTs its system
// information as JSON and takes the body of the reply as answer.toml. One URL serves every
// machine (a prepared ISO carries one URL); the MACs in the JSON say which machine it is. Like
// the done callback it carries no token, so only the machine itself may fetch its answer
// (root password hash, SSH keys): the request must come from the address it last booted with.
func (a *API) proxmoxAnswer(c echo.Context) error {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 1<<20+1))
	if err != nil {
		return httpError(http.StatusBadRequest, "reading the system information: "+err.Error())
	}
	si, err := provision.ParseSysInfo(body)
	if err != nil {
		return httpError(http.StatusBadRequest, err.Error())
	}
	ctx := c.Request().Context()
	m, answer, err := a.cfg.Provision.Answer(ctx, si)
	if err != nil {
		a.log.Warn("proxmox answer refused", "macs", strings.Join(si.MACs, " "), "ip", remoteIP(c), "serial", si.Serial, "err", err)
		return err
	}
	from, err := a.fromMachine(c, m, "fetch its answer file")
	if err != nil {
		return err
	}
	a.event(ctx, m.MAC, "unattended", fmt.Sprintf("answer.toml fetched by the Proxmox installer (%s %s, interface %s) from %s",
		si.Product, si.Release, si.Links[m.MAC], from))
	a.log.Info("proxmox answer", "mac", m.MAC, "ip", from, "profile", m.Profile, "product", si.Product, "release", si.Release)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "application/toml; charset=utf-8", answer)
}

// guard authenticates /api/v1 calls (internal/auth): the token's scope, 401 without one, 429
// for an address with too many failed sign-ins.
func (a *API) guard() echo.MiddlewareFunc {
	g := &auth.Guard{Tokens: a.cfg.Tokens, Limiter: a.limiter, OnDeny: a.denied, Session: a.sessionScope}
	return g.Authenticate
}

// denied logs and counts an API call turned away.
func (a *API) denied(c echo.Context, why auth.Denial, addr netip.Addr) {
	a.m.APIDenied.WithLabelValues(string(why)).Inc()
	a.log.Warn("API call denied", "reason", string(why), "ip", addr, "method", c.Request().Method, "path", c.Request().URL.Path)
}

// whoami answers GET /api/v1/whoami: the scope of the token sent (a UI signs in with it).
func (a *API) whoami(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"scope": auth.ScopeFrom(c).String()})
}

func bindJSON(c echo.Context, v any) error {
	if err := c.Bind(v); err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return httpError(http.StatusBadRequest, "bad JSON body: "+errString(he.Message))
		}
		return httpError(http.StatusBadRequest, "bad JSON body: "+err.Error())
	}
	return nil
}

func errString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if e, ok := v.(error); ok {
		return e.Error()
	}
	return "unreadable"
}

// event adds a step to a machine's timeline for a request that succeeds anyway (an installer
// fetching its answer file must get it): a failed write is logged, not returned.
func (a *API) event(ctx context.Context, mac, kind, detail string) {
	if err := a.cfg.Inventory.AddEvent(ctx, mac, kind, detail); err != nil {
		a.log.Warn("cannot record a step in the machine's timeline", "mac", mac, "kind", kind, "detail", detail, "err", err)
	}
}
