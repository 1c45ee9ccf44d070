package httpapi_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/webui"
)

// browser is an HTTP client with cookies that does not follow redirects, like a browser
// whose every step the test looks at.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, hdr map[string]string, body io.Reader) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res, string(out)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
var pageCSRF = regexp.MustCompile(`data-csrf="([^"]*)"`)

// signIn fills in the sign-in form with token and returns the answer to the POST.
func (b *browser) signIn(token, next string) *http.Response {
	b.t.Helper()
	res, page := b.do("GET", "/ui/login?next="+url.QueryEscape(next), nil, nil)
	m := csrfField.FindStringSubmatch(page)
	if res.StatusCode != 200 || m == nil {
		b.t.Fatalf("sign-in page: %d\n%s", res.StatusCode, page)
	}
	form := url.Values{"csrf": {m[1]}, "token": {token}, "next": {next}}
	res, _ = b.do("POST", "/ui/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader(form.Encode()))
	return res
}

// csrf is the CSRF token a signed-in page carries for its fetches.
func (b *browser) csrf() string {
	b.t.Helper()
	_, page := b.do("GET", "/ui/machines", nil, nil)
	m := pageCSRF.FindStringSubmatch(page)
	if m == nil || m[1] == "" {
		b.t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	return m[1]
}

func TestUISignInMakesAStrictHttpOnlySessionThatCallsTheAPIWithCSRF(t *testing.T) {
	e := newISOEnv(t)
	b := newBrowser(t, e.base)

	res, _ := b.do("GET", "/", nil, nil)
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/ui/" {
		t.Fatalf("/: %d %q, want a redirect to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	res, _ = b.do("GET", "/ui/machines", nil, nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/login?next=%2Fui%2Fmachines" {
		t.Fatalf("page without a session: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	// The API answers a browser without a session as it answers a client without a token.
	if res, _ := b.do("GET", "/api/v1/machines", nil, nil); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API without session: %d", res.StatusCode)
	}

	// The sign-in form's own CSRF token must match its cookie.
	form := url.Values{"csrf": {"forged"}, "token": {testToken}}
	res, page := b.do("POST", "/ui/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader(form.Encode()))
	if res.StatusCode != http.StatusForbidden || !strings.Contains(page, "expired") {
		t.Fatalf("sign-in without the form's token: %d\n%s", res.StatusCode, page)
	}
	if res := b.signIn("wrong-token-wrong-token", "/ui/isos"); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", res.StatusCode)
	}
	res = b.signIn(testToken, "/ui/isos")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/isos" {
		t.Fatalf("sign-in: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	var sess *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == webui.CookieName {
			sess = c
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Secure || sess.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP, Path=/", sess)
	}
	if res := b.signIn(testToken, "https://evil.example/"); res.Header.Get("Location") != "/ui/" {
		t.Fatalf("sign-in redirected out of the UI: %q", res.Header.Get("Location"))
	}

	// The session reads the API; changes need the page's CSRF token in the header.
	if res, body := b.do("GET", "/api/v1/machines", nil, nil); res.StatusCode != 200 {
		t.Fatalf("API read with the session: %d %s", res.StatusCode, body)
	}
	body := `{"mac":"52:54:00:00:00:aa"}`
	json := map[string]string{"Content-Type": "application/json"}
	if res, out := b.do("POST", "/api/v1/machines", json, strings.NewReader(body)); res.StatusCode != http.StatusForbidden || !strings.Contains(out, "CSRF") {
		t.Fatalf("change without CSRF token: %d %s", res.StatusCode, out)
	}
	if res, out := b.do("POST", "/api/v1/machines", map[string]string{"Content-Type": "application/json", webui.CSRFHeader: "forged"}, strings.NewReader(body)); res.StatusCode != http.StatusForbidden {
		t.Fatalf("change with a wrong CSRF token: %d %s", res.StatusCode, out)
	}
	csrf := b.csrf()
	if res, out := b.do("POST", "/api/v1/machines", map[string]string{"Content-Type": "application/json", webui.CSRFHeader: csrf}, strings.NewReader(body)); res.StatusCode != http.StatusCreated {
		t.Fatalf("change with the CSRF token: %d %s", res.StatusCode, out)
	}

	// Sign-out needs the token too, and ends the session for the API as well.
	u, _ := url.Parse(e.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == webui.CookieName {
			sess = c // the session of the last sign-in
		}
	}
	if res, _ := b.do("POST", "/ui/logout", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader("csrf=forged")); res.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out without the CSRF token: %d", res.StatusCode)
	}
	res, _ = b.do("POST", "/ui/logout", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader("csrf="+csrf))
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", res.StatusCode)
	}
	req, _ := http.NewRequest("GET", e.base+"/api/v1/machines", nil)
	req.AddCookie(sess)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the old session cookie after sign-out: %v %v", res.StatusCode, err)
	}
}

func TestUIReadOnlySessionHasNoMutatingControlsAndTheAPIRefusesIt(t *testing.T) {
	e := newISOEnv(t)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:00:00:bb"}`, http.StatusCreated, nil)
	admin, ro := newBrowser(t, e.base), newBrowser(t, e.base)
	admin.signIn(testToken, "/ui/")
	if res := ro.signIn(testReadOnlyToken, "/ui/"); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("read-only sign-in: %d", res.StatusCode)
	}
	controls := map[string][]string{
		"/ui/machines":                   {`id="bulk-assign"`, `id="machine-add"`, `class="pick"`},
		"/ui/isos":                       {`id="upload-form"`},
		"/ui/profiles":                   {`id="new-profile"`},
		"/ui/rules":                      {`id="rule-add"`},
		"/ui/profiles/new":               {`id="profile-save"`, `id="preview-btn"`},
		"/ui/machines/52:54:00:00:00:bb": {`id="machine-actions"`},
	}
	for path, ids := range controls {
		_, ap := admin.do("GET", path, nil, nil)
		res, rp := ro.do("GET", path, nil, nil)
		if res.StatusCode != 200 {
			t.Fatalf("read-only %s: %d", path, res.StatusCode)
		}
		for _, id := range ids {
			if !strings.Contains(ap, id) {
				t.Errorf("admin %s lacks %s", path, id)
			}
			if strings.Contains(rp, id) {
				t.Errorf("read-only %s shows %s", path, id)
			}
		}
	}
	res, out := ro.do("PATCH", "/api/v1/machines/52:54:00:00:00:bb", map[string]string{"Content-Type": "application/json", webui.CSRFHeader: ro.csrf()},
		strings.NewReader(`{"hostname":"x"}`))
	if res.StatusCode != http.StatusForbidden || !strings.Contains(out, "read") {
		t.Fatalf("read-only change with the CSRF token: %d %s", res.StatusCode, out)
	}
}

func TestUISessionCookieIsSecureOverTLS(t *testing.T) {
	e := newISOEnv(t)
	// httptest.NewRequest with an https URL sets r.TLS, as the TLS listener does.
	get := httptest.NewRequest("GET", "https://fleetboot.example/ui/login", nil)
	w := httptest.NewRecorder()
	e.api.ServeHTTP(w, get)
	m := csrfField.FindStringSubmatch(w.Body.String())
	var login *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "fleetboot_login" {
			login = c
		}
	}
	if m == nil || login == nil || !login.Secure {
		t.Fatalf("sign-in page over TLS: cookie %+v", login)
	}
	form := url.Values{"csrf": {m[1]}, "token": {testToken}}
	post := httptest.NewRequest("POST", "https://fleetboot.example/ui/login", strings.NewReader(form.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	post.AddCookie(login)
	w = httptest.NewRecorder()
	e.api.ServeHTTP(w, post)
	for _, c := range w.Result().Cookies() {
		if c.Name == webui.CookieName {
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Fatalf("session cookie over TLS: %+v", c)
			}
			return
		}
	}
	t.Fatalf("no session cookie: %d %v", w.Code, w.Result().Cookies())
}

func TestProfileCheckValidatesAndPreviewsWithoutSaving(t *testing.T) {
	e := newISOEnv(t)
	iso := e.putISO(t, "fedora", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:00:00:cc","hostname":"node-cc"}`, http.StatusCreated, nil)

	out := e.jsonCall(t, "POST", "/api/v1/profiles/check", `{"name":"ks","iso":"fedora","template_kind":"kickstart","template":"a\nnetwork --hostname={{.Hostnme}}\n"}`, 422, nil)
	if msg := apiError(t, out); !strings.Contains(msg, "line 2") || !strings.Contains(msg, ".Hostnme is not a template field") {
		t.Fatalf("bad template: %s", msg)
	}
	var ok struct {
		OK      bool   `json:"ok"`
		ISO     string `json:"iso"`
		Preview struct{ File, Body, MAC string }
	}
	e.jsonCall(t, "POST", "/api/v1/profiles/check?preview=1&mac=52-54-00-00-00-cc", `{"name":"ks","iso":"fedora","template_kind":"kickstart","template":"network --hostname={{.Hostname}}\n"}`, 200, &ok)
	if !ok.OK || ok.ISO != iso.ID || ok.Preview.File != "ks.cfg" || ok.Preview.Body != "network --hostname=node-cc\n" || ok.Preview.MAC != "52:54:00:00:00:cc" {
		t.Fatalf("check with preview: %+v", ok)
	}
	e.jsonCall(t, "POST", "/api/v1/profiles/check?preview=1", `{"iso":"fedora","template_kind":"kickstart","template":"network --hostname={{.Hostname}}\n"}`, 200, &ok)
	if ok.Preview.Body != "network --hostname=sample\n" {
		t.Fatalf("preview for the sample machine: %+v", ok)
	}
	e.jsonCall(t, "GET", "/api/v1/profiles/ks", "", 404, nil)
	e.jsonCall(t, "POST", "/api/v1/profiles/check?preview=1&mac=52:54:00:00:00:dd", `{"iso":"fedora","template_kind":"kickstart","template":"x"}`, 404, nil)
}

func TestUIPagesRenderEveryObject(t *testing.T) {
	e := newISOEnv(t)
	iso := e.putISO(t, "fedora", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	e.jsonCall(t, "PUT", "/api/v1/profiles/ks", `{"iso":"fedora","template_kind":"kickstart","template":"network --hostname={{.Hostname}}\n"}`, 201, nil)
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"52:54:00:00:00:ee","hostname":"node-ee","profile":"ks","state":"install-pending"}`, 201, nil)
	e.jsonCall(t, "POST", "/api/v1/rules", `{"mac_prefix":"52:54:00","profile":"ks"}`, 201, nil)
	b := newBrowser(t, e.base)
	b.signIn(testToken, "/ui/")
	for path, want := range map[string][]string{
		"/ui/machines":                                 {"node-ee", "install-pending", "ks"},
		"/ui/machines?q=node-ee":                       {"node-ee"},
		"/ui/machines?q=nothing-like-this":             {"No machines match"},
		"/ui/machines/52:54:00:00:00:ee":               {"Timeline", "images/pxeboot/vmlinuz", "initrd.img", "profile ks"},
		"/ui/isos":                                     {"fedora", "Fedora 41", "x86_64"},
		"/ui/isos/" + iso.ID:                           {"Recipes", "install", "images/"},
		"/ui/isos/" + iso.ID + "/files/images/pxeboot": {"vmlinuz", "initrd.img", "/isos/" + iso.ID + "/files/images/pxeboot/vmlinuz"},
		"/ui/profiles":                                 {"ks", "kickstart"},
		"/ui/profiles/ks":                              {"network --hostname={{.Hostname}}", "node-ee"},
		"/ui/rules":                                    {"52:54:00", "ks"},
		"/ui/leases":                                   {"hands out no addresses"},
		"/ui/health":                                   {"fleetboot_http_requests_total", "Machines by state"},
	} {
		res, page := b.do("GET", path, nil, nil)
		if res.StatusCode != 200 {
			t.Errorf("%s: %d\n%s", path, res.StatusCode, page)
			continue
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		for _, w := range want {
			if !strings.Contains(page, w) && !strings.Contains(page, strings.ReplaceAll(w, "{{", "{{")) {
				t.Errorf("%s does not show %q", path, w)
			}
		}
	}
	// The static files are served, and a page names them with a version for caching.
	_, page := b.do("GET", "/ui/health", nil, nil)
	m := regexp.MustCompile(`src="(/ui/static/app\.js\?v=[0-9a-f]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no versioned app.js in the page")
	}
	if res, js := b.do("GET", m[1], nil, nil); res.StatusCode != 200 || !strings.Contains(js, "X-CSRF-Token") {
		t.Fatalf("app.js: %d", res.StatusCode)
	}
}

// The health page lists the ISOs whose bytes this instance cannot serve, with why; none when
// all can be.
func TestUIHealthListsISOsThisInstanceCannotServe(t *testing.T) {
	e := newISOEnv(t)
	iso := e.putISO(t, "fedora", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	b := newBrowser(t, e.base)
	b.signIn(testToken, "/ui/")
	if _, page := b.do("GET", "/ui/health", nil, nil); strings.Contains(page, "cannot serve") {
		t.Fatalf("health lists a problem while the image is there:\n%s", page)
	}
	stored := filepath.Join(e.data, "isos", iso.SHA256+".iso")
	if err := os.Remove(stored); err != nil {
		t.Fatal(err)
	}
	_, page := b.do("GET", "/ui/health", nil, nil)
	for _, want := range []string{"ISO images this instance cannot serve", "fedora (missing)", "is in the catalog but not at " + stored} {
		if !strings.Contains(page, want) {
			t.Errorf("health does not show %q", want)
		}
	}
}

// A machine's kernel and initrd downloads are steps of its timeline, with bytes and duration,
// and the machine page shows them; what the installer fetches afterwards is not.
func TestKernelAndInitrdDownloadsAreTimelineStepsWithBytes(t *testing.T) {
	e := newISOEnv(t)
	e.putISO(t, "fedora", buildISO(t, fedoraFiles(t), nil), http.StatusCreated)
	e.jsonCall(t, "PUT", "/api/v1/profiles/ks", `{"iso":"fedora"}`, 201, nil)
	const mac = "52:54:00:00:00:f1"
	e.jsonCall(t, "POST", "/api/v1/machines", `{"mac":"`+mac+`","profile":"ks","state":"install-pending"}`, 201, nil)
	_, script := e.do(t, "GET", "/boot.ipxe?mac=52-54-00-00-00-f1&arch=x86_64&platform=efi", "", nil, nil)
	urls := regexp.MustCompile(`http://\S+/isos/\S+/files/images/pxeboot/(?:vmlinuz|initrd\.img)`).FindAllString(string(script), -1)
	if len(urls) != 2 {
		t.Fatalf("kernel and initrd URLs in the script: %v\n%s", urls, script)
	}
	for _, u := range urls {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	// The installer's own fetches after the boot files are not steps.
	for i := 0; i < 4; i++ {
		e.do(t, "GET", strings.TrimPrefix(urls[0], e.base), "", nil, nil)
	}
	var events []struct{ Kind, Detail string }
	e.jsonCall(t, "GET", "/api/v1/machines/"+mac+"/events", "", 200, &events)
	var downloads []string
	for _, ev := range events {
		if ev.Kind == "download" {
			downloads = append(downloads, ev.Detail)
		}
	}
	wantRE := regexp.MustCompile(`^/isos/[0-9a-f]+/files/images/pxeboot/(vmlinuz: 200000|initrd\.img: 150000|vmlinuz: 200000|vmlinuz: 200000) bytes in [0-9.]+ s$`)
	if len(downloads) != 4 {
		t.Fatalf("download steps %q: want the kernel, the initrd and two more up to the bound of 4", downloads)
	}
	for _, d := range downloads {
		if !wantRE.MatchString(d) {
			t.Errorf("download step %q", d)
		}
	}
	b := newBrowser(t, e.base)
	b.signIn(testToken, "/ui/")
	_, page := b.do("GET", "/ui/machines/"+mac, nil, nil)
	if !strings.Contains(page, "<td>195.3 KiB</td>") || !strings.Contains(page, "<td>146.5 KiB</td>") || !strings.Contains(page, `data-fixed-duration="1"`) {
		t.Errorf("machine page does not show the download sizes:\n%s", page)
	}
}
