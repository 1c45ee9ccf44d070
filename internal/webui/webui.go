// Package webui owns fleetboot's web UI assets and the browser session: the HTML templates and
// the CSS and JavaScript (embedded in the binary, no build step), the sign-in sessions created
// from an API token, and the CSRF tokens that every form and every mutating fetch carries.
// Routes and the data the pages show live in internal/httpapi, like every other route.
package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/fleetboot/fleetboot/internal/auth"
)

//go:embed templates/*.html static/*
var files embed.FS

// Prefix is where the UI is mounted.
const Prefix = "/ui/"

// Page is what every page template gets.
type Page struct {
	// Title is the page's <title> and <h1>.
	Title string
	// Nav names the navigation entry the page belongs to ("isos", "profiles" …).
	Nav string
	// Session is the signed-in session; nil on the sign-in page.
	Session *Session
	// Error is shown above the content (a failed sign-in, a missing object).
	Error string
	// Data is the page's own data.
	Data any
}

// CSRF is the session's CSRF token ("" without a session), for forms and the page's fetches.
func (p Page) CSRF() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.CSRF
}

// Admin reports whether the signed-in session may change things: read-only sessions get no
// mutating controls (and the API refuses their mutations anyway).
func (p Page) Admin() bool { return p.Session != nil && p.Session.Scope == auth.ScopeAdmin }

// Renderer renders the pages. Each page is its own template set: the layout plus the page's
// file, which defines "content".
type Renderer struct {
	pages map[string]*template.Template
	// assetVersion is a hash of the static files, appended to their URLs so a new binary's
	// CSS and JavaScript are never taken from a stale cache.
	assetVersion string
}

var funcs = template.FuncMap{
	"bytes": HumanBytes,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join": strings.Join,
}

// NewRenderer parses the embedded templates; an error is a bug in the binary.
func NewRenderer() (*Renderer, error) {
	h := sha256.New()
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	r := &Renderer{pages: map[string]*template.Template{}, assetVersion: hex.EncodeToString(h.Sum(nil))[:12]}
	base, err := template.New("layout.html").Funcs(funcs).Funcs(template.FuncMap{
		"asset": func(name string) string { return Prefix + "static/" + name + "?v=" + r.assetVersion },
	}).ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	pages, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(files, p)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		r.pages[name] = t
	}
	return r, nil
}

// Render writes page name with status code. The page is rendered into a buffer first so that
// a template error is a clean 500, not half a page.
func (r *Renderer) Render(w http.ResponseWriter, code int, name string, p Page) error {
	t, ok := r.pages[name]
	if !ok {
		return fmt.Errorf("no page template %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	SecurityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, err := w.Write(buf.Bytes())
	return err
}

// SecurityHeaders sets what every UI response carries: no inline script or style may run (the
// pages use none, so an injected one cannot either), no framing, no MIME sniffing.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

// Static serves the embedded CSS and JavaScript under Prefix+"static/". URLs carry the asset
// version, so the files may be cached for long.
func Static() http.Handler {
	sub, _ := fs.Sub(files, "static")
	fsrv := http.StripPrefix(Prefix+"static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SecurityHeaders(w.Header())
		w.Header().Set("Cache-Control", "public, max-age=86400")
		fsrv.ServeHTTP(w, r)
	})
}

// HumanBytes formats n as KiB, MiB, GiB (binary units, one decimal): sizes on the pages and in
// the CLI's output.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
