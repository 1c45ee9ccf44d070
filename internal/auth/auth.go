// Package auth owns the API bearer token: generated on first start into the data directory
// (mode 0600), or given by the operator, and checked in constant time on every mutating call.
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

// TokenFile is the token's file name inside the data directory.
const TokenFile = "api-token"

// LoadOrCreate returns the API token. A non-empty override wins (and is not written to disk).
// Otherwise the token in <dataDir>/api-token is used, created with 32 random bytes and mode
// 0600 when absent; created reports that, so the caller can print it once.
func LoadOrCreate(dataDir, override string) (token string, created bool, err error) {
	if override != "" {
		if len(override) < 16 {
			return "", false, errors.New("--token must be at least 16 characters")
		}
		return override, false, nil
	}
	p := filepath.Join(dataDir, TokenFile)
	b, err := os.ReadFile(p)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) < 16 {
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

// Check reports whether the request carries "Authorization: Bearer <token>".
func Check(r *http.Request, token string) bool {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[len(prefix):])), []byte(token)) == 1
}
