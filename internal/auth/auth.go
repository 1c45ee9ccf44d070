// Package auth owns who may call the API: two bearer tokens with scopes (admin: everything;
// read-only: every GET an operator views), each generated on first start into the data
// directory (mode 0600) or given by the operator, compared in constant time; the rate limit on
// failed sign-ins per source address (limit.go); and the echo middleware that applies both
// (Guard, RequireScope).
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Scope is what a token may do. The zero value is no access.
type Scope uint8

// The scopes, ordered: a higher scope includes the lower ones.
const (
	// ScopeNone: no token, or a wrong one.
	ScopeNone Scope = iota
	// ScopeRead may GET (and HEAD) everything under /api/v1: what an operator views.
	ScopeRead
	// ScopeAdmin may also change things: every POST, PUT, PATCH and DELETE.
	ScopeAdmin
)

// String is the scope's name in the API, logs and the audit log: none, read or admin.
func (s Scope) String() string {
	switch s {
	case ScopeRead:
		return "read"
	case ScopeAdmin:
		return "admin"
	}
	return "none"
}

// Allows reports whether a caller with scope s may do what needs scope need.
func (s Scope) Allows(need Scope) bool { return s != ScopeNone && s >= need }

// ForMethod is the scope an API call with this HTTP method needs: reads (GET, HEAD, OPTIONS)
// need ScopeRead, everything else changes state and needs ScopeAdmin. One rule for every
// route, so a route added later cannot forget its decision.
func ForMethod(method string) Scope {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return ScopeRead
	}
	return ScopeAdmin
}

// Token file names inside the data directory.
const (
	// TokenFile holds the admin token (the only token before scopes existed, so an existing
	// api-token keeps all its rights).
	TokenFile = "api-token"
	// ReadOnlyTokenFile holds the read-only token.
	ReadOnlyTokenFile = "api-token.readonly"
)

// MinTokenLen is the shortest token accepted from an operator.
const MinTokenLen = 16

// Tokens are the two API tokens. An empty token never matches.
type Tokens struct {
	Admin    string
	ReadOnly string
}

// Created says which token files Load generated on this start (so the caller can say so).
type Created struct{ Admin, ReadOnly bool }

// Load returns the API tokens. A non-empty override wins for its token (and is not written to
// disk); otherwise the token is read from its file in dataDir, which is created with 32 random
// bytes (hex) and mode 0600 when absent. The two tokens must differ.
func Load(dataDir, adminOverride, readOnlyOverride string) (Tokens, Created, error) {
	var t Tokens
	var c Created
	var err error
	if t.Admin, c.Admin, err = loadOrCreate(dataDir, TokenFile, "--token", adminOverride); err != nil {
		return Tokens{}, Created{}, err
	}
	if t.ReadOnly, c.ReadOnly, err = loadOrCreate(dataDir, ReadOnlyTokenFile, "--readonly-token", readOnlyOverride); err != nil {
		return Tokens{}, Created{}, err
	}
	if subtle.ConstantTimeCompare([]byte(t.Admin), []byte(t.ReadOnly)) == 1 {
		return Tokens{}, Created{}, errors.New("the admin token (--token, api-token) and the read-only token (--readonly-token, api-token.readonly) are the same; they must differ")
	}
	return t, c, nil
}

func loadOrCreate(dataDir, file, flag, override string) (token string, created bool, err error) {
	if override != "" {
		if len(override) < MinTokenLen {
			return "", false, fmt.Errorf("%s must be at least %d characters", flag, MinTokenLen)
		}
		return override, false, nil
	}
	p := filepath.Join(dataDir, file)
	b, err := os.ReadFile(p)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) < MinTokenLen {
			return "", false, fmt.Errorf("API token in %s is too short; delete the file to get a new one", p)
		}
		return t, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read API token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, fmt.Errorf("generate API token: %w", err)
	}
	t := hex.EncodeToString(raw[:])
	// O_EXCL: two fleetboots starting on one data dir must not overwrite each other's token.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("write API token: %w", err)
	}
	if _, err := f.WriteString(t + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("write API token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("write API token: %w", err)
	}
	return t, true, nil
}

// Scope returns the scope of a presented token. Both tokens are always compared, in constant
// time, so the answer's timing says nothing about which (if any) token is near.
func (t Tokens) Scope(presented string) Scope {
	p := []byte(presented)
	admin := match(p, t.Admin)
	read := match(p, t.ReadOnly)
	switch {
	case admin:
		return ScopeAdmin
	case read:
		return ScopeRead
	}
	return ScopeNone
}

func match(presented []byte, token string) bool {
	// ConstantTimeCompare of two empty slices is 1: an unset token must never match.
	ok := subtle.ConstantTimeCompare(presented, []byte(token)) == 1
	return ok && token != ""
}

// Bearer returns the token of "Authorization: Bearer <token>", or "" without one.
func Bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return ""
	}
	return strings.TrimSpace(h[len(prefix):])
}

// ScopeOf returns the scope of the token a request carries.
func (t Tokens) ScopeOf(r *http.Request) Scope {
	b := Bearer(r)
	if b == "" {
		return ScopeNone
	}
	return t.Scope(b)
}
