package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/fleetboot/fleetboot/internal/audit"
	"github.com/fleetboot/fleetboot/internal/distro"
	"github.com/fleetboot/fleetboot/internal/httpapi"
	"github.com/fleetboot/fleetboot/internal/inventory"
)

// The server's own types describe machines, profiles, rules and events on the wire; the
// client uses them as they are.
type (
	// Machine is a machine as the server describes it.
	Machine = inventory.Machine
	// Event is one entry of a machine's timeline.
	Event = inventory.Event
	// Profile is what to install: an ISO's boot entry, extra kernel arguments and an optional
	// unattended-install template.
	Profile = inventory.Profile
	// SecureBootStatus is a profile's Secure Boot verdict (computed by the server).
	SecureBootStatus = inventory.SecureBootStatus
	// Rule assigns a profile to machines matching a MAC prefix and/or labels.
	Rule = inventory.Rule
	// Lease is a full-mode DHCP lease.
	Lease = httpapi.LeaseInfo
	// AuditEntry is one change made through the API.
	AuditEntry = audit.Entry
)

// MachineChange is what CreateMachine and UpdateMachine send; nil fields stay unchanged.
type MachineChange struct {
	Hostname *string `json:"hostname,omitempty"`
	// Labels replaces all labels when non-nil (an empty map removes them all).
	Labels map[string]string `json:"labels"`
	// Profile assigns a profile; "" unassigns.
	Profile *string `json:"profile,omitempty"`
	// State is discovered, install-pending, installing, installed or failed.
	State *string `json:"state,omitempty"`
}

func (c *Client) sendJSON(ctx context.Context, method, path string, in, out any) error {
	var body *bytes.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	} else {
		body = bytes.NewReader(nil)
	}
	_, err := c.do(ctx, method, path, jsonHeader(), body, out)
	return err
}

func machinePath(mac string) string { return "/api/v1/machines/" + url.PathEscape(mac) }

// Machines lists machines, only those in state when it is not "".
func (c *Client) Machines(ctx context.Context, state string) ([]Machine, error) {
	p := "/api/v1/machines"
	if state != "" {
		p += "?state=" + url.QueryEscape(state)
	}
	var out []Machine
	err := c.sendJSON(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// Machine returns one machine.
func (c *Client) Machine(ctx context.Context, mac string) (*Machine, error) {
	var out Machine
	if err := c.sendJSON(ctx, http.MethodGet, machinePath(mac), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateMachine adds a machine before it ever boots.
func (c *Client) CreateMachine(ctx context.Context, mac string, ch MachineChange) (*Machine, error) {
	body := struct {
		MAC string `json:"mac"`
		MachineChange
	}{mac, ch}
	var out Machine
	if err := c.sendJSON(ctx, http.MethodPost, "/api/v1/machines", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateMachine changes a machine's hostname, labels, profile or state.
func (c *Client) UpdateMachine(ctx context.Context, mac string, ch MachineChange) (*Machine, error) {
	var out Machine
	if err := c.sendJSON(ctx, http.MethodPatch, machinePath(mac), ch, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReinstallMachine sets a machine to install-pending: its next network boot installs its
// profile again.
func (c *Client) ReinstallMachine(ctx context.Context, mac string) (*Machine, error) {
	var out Machine
	if err := c.sendJSON(ctx, http.MethodPost, machinePath(mac)+"/reinstall", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteMachine forgets a machine.
func (c *Client) DeleteMachine(ctx context.Context, mac string) error {
	return c.sendJSON(ctx, http.MethodDelete, machinePath(mac), nil, nil)
}

// MachineEvents returns a machine's timeline, newest first as the server orders it; limit 0
// is the server's default.
func (c *Client) MachineEvents(ctx context.Context, mac string, limit int) ([]Event, error) {
	p := machinePath(mac) + "/events"
	if limit > 0 {
		p += "?limit=" + strconv.Itoa(limit)
	}
	var out []Event
	err := c.sendJSON(ctx, http.MethodGet, p, nil, &out)
	return out, err
}

// Profiles lists the profiles.
func (c *Client) Profiles(ctx context.Context) ([]Profile, error) {
	var out []Profile
	err := c.sendJSON(ctx, http.MethodGet, "/api/v1/profiles", nil, &out)
	return out, err
}

// Profile returns one profile.
func (c *Client) Profile(ctx context.Context, name string) (*Profile, error) {
	var out Profile
	if err := c.sendJSON(ctx, http.MethodGet, "/api/v1/profiles/"+url.PathEscape(name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ProfileBoot returns what profile name boots for the machine with that MAC ("" for any
// machine): kernel, initrds, the final command line and the fate of each of the ISO's own
// arguments.
func (c *Client) ProfileBoot(ctx context.Context, name, mac string) (*distro.Entry, error) {
	p := "/api/v1/profiles/" + url.PathEscape(name) + "/boot"
	if mac != "" {
		p += "?mac=" + url.QueryEscape(mac)
	}
	var out distro.Entry
	if err := c.sendJSON(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutProfile creates or replaces the profile p.Name. The server checks the ISO, entry and
// template first (422 with the reason otherwise).
func (c *Client) PutProfile(ctx context.Context, p Profile) (*Profile, error) {
	var out Profile
	if err := c.sendJSON(ctx, http.MethodPut, "/api/v1/profiles/"+url.PathEscape(p.Name), p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteProfile deletes a profile no machine or rule uses.
func (c *Client) DeleteProfile(ctx context.Context, name string) error {
	return c.sendJSON(ctx, http.MethodDelete, "/api/v1/profiles/"+url.PathEscape(name), nil, nil)
}

// Rules lists the assignment rules.
func (c *Client) Rules(ctx context.Context) ([]Rule, error) {
	var out []Rule
	err := c.sendJSON(ctx, http.MethodGet, "/api/v1/rules", nil, &out)
	return out, err
}

// AddRule adds a rule; applied is how many existing machines it assigned at once.
func (c *Client) AddRule(ctx context.Context, r Rule) (rule *Rule, applied int, err error) {
	var out struct {
		Rule      Rule `json:"rule"`
		AppliedTo int  `json:"applied_to"`
	}
	if err := c.sendJSON(ctx, http.MethodPost, "/api/v1/rules", r, &out); err != nil {
		return nil, 0, err
	}
	return &out.Rule, out.AppliedTo, nil
}

// DeleteRule deletes a rule by id.
func (c *Client) DeleteRule(ctx context.Context, id int64) error {
	return c.sendJSON(ctx, http.MethodDelete, "/api/v1/rules/"+strconv.FormatInt(id, 10), nil, nil)
}

// Leases lists the full-mode DHCP leases; the server answers 404 when it hands out no
// addresses (--dhcp=proxy or off).
func (c *Client) Leases(ctx context.Context) ([]Lease, error) {
	var out []Lease
	err := c.sendJSON(ctx, http.MethodGet, "/api/v1/leases", nil, &out)
	return out, err
}

// Audit lists the audit log, newest first: at most limit entries (0: the server's default),
// older than the entry with id before when before > 0. It needs the admin token.
func (c *Client) Audit(ctx context.Context, limit int, before int64) ([]AuditEntry, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	p := "/api/v1/audit"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out []AuditEntry
	err := c.sendJSON(ctx, http.MethodGet, p, nil, &out)
	return out, err
}
