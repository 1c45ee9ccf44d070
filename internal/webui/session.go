package webui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/fleetboot/fleetboot/internal/auth"
)

// CookieName is the session cookie's name.
const CookieName = "fleetboot_session"

// CSRFHeader is the header a page's mutating fetches carry the session's CSRF token in; forms
// carry it in the field CSRFField.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf"
)

// Session is one signed-in browser.
type Session struct {
	ID   string
	CSRF string
	// Scope is the scope of the token the browser signed in with: a read-only session sees
	// everything and changes nothing.
	Scope auth.Scope
	// Created and Seen bound the session's life (Sessions.MaxAge, Sessions.Idle).
	Created, Seen time.Time
}

// Sessions are the signed-in browsers, in memory only: a restart signs everyone out, and
// nothing secret is written to disk. Bounded: beyond Limit the least recently used session
// is dropped.
type Sessions struct {
	// Idle ends a session not used for this long (default 8 hours).
	Idle time.Duration
	// MaxAge ends a session this long after sign-in, used or not (default 24 hours).
	MaxAge time.Duration
	// Limit is the most sessions kept (default 1000).
	Limit int
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time

	mu sync.Mutex
	m  map[string]*Session
}

func (s *Sessions) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sessions) limits() (idle, maxAge time.Duration, limit int) {
	idle, maxAge, limit = s.Idle, s.MaxAge, s.Limit
	if idle <= 0 {
		idle = 8 * time.Hour
	}
	if maxAge <= 0 {
		maxAge = 24 * time.Hour
	}
	if limit <= 0 {
		limit = 1000
	}
	return
}

// RandomToken returns 32 random bytes, base64url: session ids and CSRF tokens.
func RandomToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return short)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Create starts a session with scope.
func (s *Sessions) Create(scope auth.Scope) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*Session{}
	}
	now := s.now()
	s.expireLocked(now)
	_, _, limit := s.limits()
	for len(s.m) >= limit {
		var oldest *Session
		for _, x := range s.m {
			if oldest == nil || x.Seen.Before(oldest.Seen) {
				oldest = x
			}
		}
		delete(s.m, oldest.ID)
	}
	sess := &Session{ID: RandomToken(), CSRF: RandomToken(), Scope: scope, Created: now, Seen: now}
	s.m[sess.ID] = sess
	cp := *sess
	return &cp
}

func (s *Sessions) expireLocked(now time.Time) {
	idle, maxAge, _ := s.limits()
	for id, x := range s.m {
		if now.Sub(x.Seen) > idle || now.Sub(x.Created) > maxAge {
			delete(s.m, id)
		}
	}
}

// Get returns the live session with id and marks it used.
func (s *Sessions) Get(id string) (*Session, bool) {
	if s == nil || id == "" {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.m[id]
	if !ok {
		return nil, false
	}
	now := s.now()
	idle, maxAge, _ := s.limits()
	if now.Sub(x.Seen) > idle || now.Sub(x.Created) > maxAge {
		delete(s.m, id)
		return nil, false
	}
	x.Seen = now
	cp := *x
	return &cp, true
}

// FromRequest returns the session the request's cookie names.
func (s *Sessions) FromRequest(r *http.Request) (*Session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil, false
	}
	return s.Get(c.Value)
}

// Delete ends the session with id.
func (s *Sessions) Delete(id string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// Cookie is the session cookie for sess: HttpOnly (no script reads it), SameSite=Strict (no
// other site's page sends it) and Secure when the UI is served over TLS.
func Cookie(sess *Session, secure bool) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: sess.ID, Path: "/", HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}
}

// ClearCookie removes the session cookie from the browser.
func ClearCookie(secure bool) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode}
}

// ValidCSRF reports whether got is the session's CSRF token (constant time).
func ValidCSRF(sess *Session, got string) bool {
	return sess != nil && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) == 1
}

// RequestCSRF is the CSRF token a request carries: the header for fetches, else the form field.
func RequestCSRF(r *http.Request) string {
	if h := r.Header.Get(CSRFHeader); h != "" {
		return h
	}
	return r.PostFormValue(CSRFField)
}
