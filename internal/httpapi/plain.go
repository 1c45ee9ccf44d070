package httpapi

import (
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/fleetboot/fleetboot/internal/auth"
	"github.com/fleetboot/fleetboot/internal/grub"
	"github.com/fleetboot/fleetboot/internal/urls"
)

// bootPaths are the paths a booting machine fetches (and monitoring scrapes): everything that
// must stay reachable over plain HTTP when the API moves to HTTPS (--tls-cert). The firmware,
// iPXE, GRUB and installers speak plain HTTP to fleetboot (their TLS support is absent or
// needs a trust store they do not have), and nothing here carries a token. Prefixes end in
// "/"; the others are whole paths. TestBootPathsAreTheOpenRoutes keeps this list and the
// routes' access decisions in step.
var bootPaths = urls.BootPaths

// IsBootPath reports whether p is one of the paths booting machines use over plain HTTP.
func IsBootPath(p string) bool {
	if grub.MayBePair(p) {
		// An ISO's GRUB reads its config below its own prefix (/boot/grub/grub.cfg …): config
		// and module list names anywhere (answered only when a pair's GRUB reads them).
		return true
	}
	for _, b := range bootPaths {
		if p == b || strings.HasSuffix(b, "/") && strings.HasPrefix(p, b) {
			return true
		}
	}
	return false
}

// PlainHTTP is the handler of the plain HTTP listener when the API and UI are served over
// HTTPS on httpsPort: boot paths as usual; the API refused with 403 and where to go instead
// (no redirect: the token was already sent in clear, and a client that followed a redirect
// would never notice); other reads (the UI) redirected to HTTPS; anything else refused.
func (a *API) PlainHTTP(httpsPort int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsBootPath(r.URL.Path) {
			a.ServeHTTP(w, r)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			host = "SERVER"
		}
		target := "https://" + net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(httpsPort))
		if !strings.HasPrefix(r.URL.Path, "/api/") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusPermanentRedirect)
			return
		}
		msg := "the API is served over HTTPS only (--tls-cert): use " + target + r.URL.Path +
			"; a token sent over plain HTTP may have been seen on the network"
		a.log.Warn("API call over plain HTTP refused", "ip", auth.SourceAddr(r), "method", r.Method, "path", r.URL.Path,
			"token_sent", r.Header.Get("Authorization") != "")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			b, _ := json.Marshal(map[string]string{"error": msg})
			w.Write(append(b, '\n'))
			return
		}
		http.Error(w, msg, http.StatusForbidden)
	})
}
