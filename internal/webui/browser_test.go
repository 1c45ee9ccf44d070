package webui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/fleetboot/fleetboot/internal/client/clienttest"
	"github.com/fleetboot/fleetboot/internal/config"
	"github.com/fleetboot/fleetboot/internal/server"
)

// The browser test drives the web UI in a real headless Chromium (Debian's chromium) through
// the Chrome DevTools protocol: sign-in, an ISO uploaded through the page with the resumable
// upload API, a profile written in the editor with validation on the fly, a machine assigned,
// and a timeline event arriving live when a simulated machine fetches its boot script. It
// checks keyboard navigation and text contrast (WCAG AA) on the main pages and saves a
// screenshot of every page.

const adminToken = "browser-test-admin-token-0123456789"

// chromium finds the browser. Without one the test skips, except in CI (CI=true), where a
// missing browser is a failure: scripts/deps.sh installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not installed, and CI=true: the browser test must run in CI (scripts/deps.sh installs chromium)")
	}
	t.Skip("chromium not installed (apt-get install chromium): skipping the browser test")
	return ""
}

// artifacts is where screenshots go: $FLEETBOOT_ARTIFACTS, else a fresh directory under
// $TMPDIR that the test names in its log (and keeps).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FLEETBOOT_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "fleetboot-ui-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else {
		dir = filepath.Join(dir, "ui-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startServer runs the real server (server.Run: the same composition as `fleetboot serve`)
// on loopback with DHCP and TFTP off.
func startServer(t *testing.T) (base string, logs *syncBuf) {
	t.Helper()
	c := config.Default()
	c.DataDir = t.TempDir()
	c.Interface = "lo"
	c.AdvertiseIP = "127.0.0.1"
	c.HTTPAddr = freePort(t)
	c.TFTPAddr = "off"
	c.DHCPMode = config.DHCPOff
	c.Token = adminToken
	c.DrainTimeout = time.Second
	c.MaxUploads = 1 // so that one held upload makes the server busy for the page's upload
	// The held upload sends nothing after its first 64 KiB: the default minute would cut it
	// off, and free the slot, on a machine slow enough to take that long to the busy message.
	c.BodyIdleTimeout = 10 * time.Minute
	// Stand-in iPXE binaries keep the test independent of scripts/fetch-ipxe.sh.
	dir := t.TempDir()
	for _, n := range []string{"undionly.kpxe", "snponly.efi", "ipxe.efi"} {
		os.WriteFile(filepath.Join(dir, n), []byte("binary "+n), 0o644)
	}
	c.IPXEDir = dir
	logs = &syncBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, c, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("server did not stop within a minute")
		}
	})
	base = "http://" + c.HTTPAddr
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			return base, logs
		}
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not up within a minute: %v\n%s", err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fedoraISO builds a small Fedora Server DVD look-alike (real .treeinfo and grub.cfg from
// testdata/boot-configs, stand-in kernel and initrd) with xorriso, about 10 MiB so the page
// uploads it in two chunks.
func fedoraISO(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("xorriso"); err != nil && os.Getenv("CI") == "true" {
		t.Fatal("xorriso not installed, and CI=true (scripts/deps.sh installs it)")
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "boot-configs", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return clienttest.BuildISO(t, map[string][]byte{
		".treeinfo":                 read("fedora-41-server-dvd.treeinfo"),
		".discinfo":                 []byte("1729013212.512\n41\nx86_64\n"),
		"EFI/BOOT/grub.cfg":         read("fedora-41-server-dvd.grub.cfg"),
		"boot/grub2/grub.cfg":       read("fedora-41-server-dvd.grub.cfg"),
		"images/pxeboot/vmlinuz":    clienttest.Pattern(1, 3<<20),
		"images/pxeboot/initrd.img": clienttest.Pattern(2, 7<<20),
		"images/install.img":        clienttest.Pattern(3, 8192),
		"repodata/repomd.xml":       []byte("<repomd/>"),
	})
}

// contrastJS computes, for the page's visible text elements, the WCAG contrast ratio of the
// text colour against the background it is drawn on (the nearest ancestor with an opaque
// background) and returns the ones below 4.5 with how many were checked.
const contrastJS = `(() => {
  const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number); return {r:p[0], g:p[1], b:p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bg = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a >= 0.99) return c; } return {r:255, g:255, b:255, a:1}; };
  const bad = []; let checked = 0;
  document.querySelectorAll("h1, h2, p, a, button, label, th, td, dt, dd, legend, li, code, span, input, select, textarea, caption, pre").forEach((el) => {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === "hidden") return;
    if (el.classList.contains("sr-only") || el.closest(".sr-only")) return;
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim()) || ["INPUT","SELECT","TEXTAREA"].includes(el.tagName);
    if (!own) return;
    const fg = parse(getComputedStyle(el).color), b = bg(el);
    const l1 = lum(fg), l2 = lum(b);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    checked++;
    if (ratio < 4.5) bad.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " '" + (el.textContent || el.value || "").trim().slice(0, 30) + "' " + ratio.toFixed(2));
  });
  return {checked, bad};
})()`

type contrastResult struct {
	Checked int      `json:"checked"`
	Bad     []string `json:"bad"`
}

// focusJS describes the focused element and whether its focus is visible (an outline or a
// box-shadow ring drawn by :focus-visible).
const focusJS = `(() => {
  const e = document.activeElement; if (!e || e === document.body) return {id: "", visible: false};
  const s = getComputedStyle(e);
  const visible = (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2) || (s.boxShadow && s.boxShadow !== "none");
  return {id: e.id || (e.tagName.toLowerCase() + ":" + (e.getAttribute("href") || e.textContent.trim().slice(0, 20))), visible};
})()`

type focusResult struct {
	ID      string `json:"id"`
	Visible bool   `json:"visible"`
}

func TestWebUIInRealBrowser(t *testing.T) {
	browser := chromium(t)
	isoPath := fedoraISO(t)
	base, logs := startServer(t)
	shots := artifacts(t)
	start := time.Now()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox on; CI runs as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()
	// Every step below takes well under a second; the bound is for a loaded 2-core machine.
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()

	fail := func(step string, err error) {
		t.Helper()
		var buf []byte
		if chromedp.Run(ctx, chromedp.FullScreenshot(&buf, 100)) == nil {
			os.WriteFile(filepath.Join(shots, "failed.png"), buf, 0o644)
		}
		var page string
		chromedp.Run(ctx, chromedp.Evaluate(`location.href + " status: " + ((document.querySelector("#status") || {}).innerText || "")`, &page))
		t.Fatalf("%s: %v\npage: %s\nserver log:\n%s", step, err, page, logs)
	}
	run := func(step string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			fail(step, err)
		}
	}
	shot := func(name string) {
		t.Helper()
		var buf []byte
		run("screenshot "+name, chromedp.FullScreenshot(&buf, 100))
		p := filepath.Join(shots, name+".png")
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	contrast := func(page string) {
		t.Helper()
		var r contrastResult
		run("contrast "+page, chromedp.Evaluate(contrastJS, &r))
		if r.Checked < 5 {
			t.Errorf("%s: contrast checked only %d elements", page, r.Checked)
		}
		if len(r.Bad) > 0 {
			t.Errorf("%s: text below 4.5:1 contrast: %s", page, strings.Join(r.Bad, "; "))
		}
	}
	// tabTo presses Tab until the element with id has focus (at most max presses) and checks
	// that its focus is visible; it returns the ids focused on the way.
	tabTo := func(page, id string, max int) []string {
		t.Helper()
		var seen []string
		for i := 0; i < max; i++ {
			run("tab", chromedp.KeyEvent(kb.Tab))
			var f focusResult
			run("focus", chromedp.Evaluate(focusJS, &f))
			seen = append(seen, f.ID)
			if f.ID == id {
				if !f.Visible {
					t.Errorf("%s: #%s has focus but no visible focus indicator", page, id)
				}
				return seen
			}
		}
		t.Errorf("%s: Tab did not reach #%s in %d presses; focus went %v", page, id, max, seen)
		return seen
	}
	waitText := func(step, sel, want string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		var got string
		// Read by script, not by DOM node: a page reloading under the poll (the machines
		// page reloads after an action) is a retry, not an error.
		js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.innerText : ""; })()`, sel)
		for time.Now().Before(deadline) {
			if err := chromedp.Run(ctx, chromedp.Evaluate(js, &got)); err == nil && strings.Contains(got, want) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		fail(step, fmt.Errorf("%s never said %q; last: %q", sel, want, got))
	}

	// Sign-in: the UI sends a visitor without a session to the sign-in page.
	var url string
	run("open", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#token", chromedp.ByID), chromedp.Location(&url))
	if !strings.Contains(url, "/ui/login") {
		t.Fatalf("/ led to %s, want the sign-in page", url)
	}
	contrast("sign-in")
	tabTo("sign-in", "token", 4)
	tabTo("sign-in", "signin", 3)
	shot("01-sign-in")
	run("wrong token", chromedp.SendKeys("#token", "wrong-token-wrong-token", chromedp.ByID), chromedp.Click("#signin", chromedp.ByID),
		chromedp.WaitVisible(".error", chromedp.ByQuery))
	waitText("wrong token message", ".error", "Wrong token")
	run("sign in", chromedp.SendKeys("#token", adminToken, chromedp.ByID), chromedp.Click("#signin", chromedp.ByID),
		chromedp.WaitVisible("#machine-table", chromedp.ByID))

	// ISOs: upload through the page; the bar reaches 100 % and the ISO is published. The
	// server's only upload slot is taken first: the page says the server is busy and waits,
	// then finishes once the slot is free.
	run("isos page", chromedp.Navigate(base+"/ui/isos"), chromedp.WaitVisible("#upload-form", chromedp.ByID))
	releaseSlot := clienttest.HoldUploadSlot(t, base, adminToken)
	run("choose file", chromedp.SetUploadFiles("#iso-file", []string{isoPath}, chromedp.ByID),
		chromedp.SendKeys("#iso-name", "fedora-41", chromedp.ByID), chromedp.Click("#upload-start", chromedp.ByID))
	waitText("busy server", "#upload-text", "Server busy")
	time.Sleep(6 * time.Second) // past one wait: the page must still be waiting, not failed
	waitText("still waiting", "#upload-text", "Server busy")
	releaseSlot()
	waitText("upload", "#upload-text", "Published fedora-41")
	var pct string
	run("progress value", chromedp.Evaluate(`String(document.querySelector("#upload-bar").value)`, &pct))
	if pct != "100" {
		t.Errorf("progress bar at %s after the upload, want 100", pct)
	}
	waitText("new row", "#iso-table", "fedora-41")
	waitText("new row's delete button", "#iso-table tbody tr", "Delete")
	shot("02-isos-upload-done")
	run("isos reload", chromedp.Reload(), chromedp.WaitVisible("#iso-table", chromedp.ByID))
	waitText("detected", "#iso-table", "Fedora")
	contrast("isos")
	tabTo("isos", "iso-file", 15)
	shot("03-isos")
	run("iso page", chromedp.Click(`#iso-table a`, chromedp.ByQuery), chromedp.WaitVisible("#files-h", chromedp.ByID))
	waitText("recipes", "main", "images/pxeboot/vmlinuz")
	run("into a directory", chromedp.Click(`//a[text()="images/"]`, chromedp.BySearch), chromedp.WaitVisible(`//a[text()="pxeboot/"]`, chromedp.BySearch))
	shot("04-iso-detail-files")

	// A machine, added on the machines page.
	const mac = "52:54:00:ab:cd:01"
	run("machines", chromedp.Navigate(base+"/ui/machines"), chromedp.WaitVisible("#machine-add", chromedp.ByID),
		chromedp.SendKeys("#add-mac", mac, chromedp.ByID), chromedp.SendKeys("#add-host", "rack1-node1", chromedp.ByID),
		chromedp.Click("#add-btn", chromedp.ByID))
	waitText("machine added", "#machine-table", mac)

	// Profiles: the editor checks the template as it is typed, and previews the file.
	run("new profile", chromedp.Navigate(base+"/ui/profiles/new"), chromedp.WaitVisible("#p-name", chromedp.ByID),
		chromedp.SendKeys("#p-name", "fedora-ks", chromedp.ByID),
		chromedp.SetValue("#p-iso", isoID(t, base), chromedp.ByID),
		chromedp.SetValue("#p-kind", "kickstart", chromedp.ByID),
		chromedp.SendKeys("#p-template", "network --hostname={{.Hostnme}}\n", chromedp.ByID))
	waitText("validation refuses", "#p-check", "Hostnme is not a template field")
	shot("05-profile-editor-error")
	run("fix template", setField("#p-template", ""),
		chromedp.SendKeys("#p-template", "network --hostname={{.Hostname}}\n{{.ProgressHooks}}\n%post\n{{.DoneCommand}}\n%end\n", chromedp.ByID))
	waitText("validation accepts", "#p-check", "Profile is valid")
	run("preview", chromedp.SetValue("#preview-mac", mac, chromedp.ByID), chromedp.Click("#preview-btn", chromedp.ByID))
	waitText("preview", "#preview-out", "network --hostname=rack1-node1")
	contrast("profile editor")
	tabTo("profile editor", "p-name", 15)
	tabTo("profile editor", "p-template", 8)
	shot("06-profile-editor-preview")
	run("save", chromedp.Click("#profile-save", chromedp.ByID))
	deadline := time.Now().Add(time.Minute)
	for !strings.HasSuffix(strings.SplitN(url, "?", 2)[0], "/ui/profiles/fedora-ks") {
		if time.Now().After(deadline) {
			fail("save profile", fmt.Errorf("still at %s", url))
		}
		time.Sleep(100 * time.Millisecond)
		run("location", chromedp.Location(&url))
	}
	run("profiles", chromedp.Navigate(base+"/ui/profiles"), chromedp.WaitVisible("#profile-table", chromedp.ByID))
	waitText("profile listed", "#profile-table", "fedora-ks")
	shot("07-profiles")

	// Machines: select, bulk-assign the profile (and install).
	run("machines", chromedp.Navigate(base+"/ui/machines"), chromedp.WaitVisible("#machine-table", chromedp.ByID),
		chromedp.Click(`input.pick[value="`+mac+`"]`, chromedp.ByQuery),
		chromedp.SetValue("#bulk-profile", "fedora-ks", chromedp.ByID),
		chromedp.Click("#bulk-assign", chromedp.ByID))
	waitText("assigned", "#machine-table", "install-pending")
	waitText("assigned profile", "#machine-table", "fedora-ks")
	contrast("machines")
	tabTo("machines", "m-filter", 12)
	tabTo("machines", "bulk-assign", 12)
	shot("08-machines")
	run("filter", chromedp.SetValue("#m-filter", "no-such-machine", chromedp.ByID), chromedp.Click("#m-apply", chromedp.ByID))
	waitText("filtered", "#machine-table", "No machines match")
	run("filter clear", chromedp.SetValue("#m-filter", "rack1", chromedp.ByID), chromedp.Click("#m-apply", chromedp.ByID))
	waitText("filtered in", "#machine-table", mac)

	// One machine: its timeline is live. A simulated machine fetches its boot script; the
	// event appears without a reload.
	run("machine page", chromedp.Navigate(base+"/ui/machines/"+mac), chromedp.WaitVisible("#timeline", chromedp.ByID))
	waitText("boot script", "#boot-script", "initrd.img")
	run("stream connected", chromedp.WaitVisible("#live", chromedp.ByID))
	res, err := http.Get(base + "/boot.ipxe?mac=" + strings.ReplaceAll(mac, ":", "-") + "&arch=x86_64&platform=efi")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(script), "vmlinuz") {
		t.Fatalf("the simulated machine got no installer:\n%s", script)
	}
	waitText("live event", "#timeline tbody", "installer fedora-ks")
	// Then its kernel, as iPXE would: a download step with its size arrives live too.
	kernel := regexp.MustCompile(`kernel (http://\S+/vmlinuz)`).FindStringSubmatch(string(script))
	if kernel == nil {
		t.Fatalf("no kernel URL in the script:\n%s", script)
	}
	res, err = http.Get(kernel[1])
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	waitText("live download", "#timeline tbody", "vmlinuz: 3145728 bytes")
	waitText("download size", "#timeline tbody", "3.0 MiB")
	waitText("live state", "#m-state-now", "installing")
	var state string
	run("state text", chromedp.Evaluate(`document.querySelector("#m-state-now").textContent`, &state))
	if state != "installing" {
		t.Errorf("state badge says %q after the live state event, want installing", state)
	}
	// The installer reports its own phases through the hooks {{.ProgressHooks}} put into the
	// kickstart: run the rendered %pre and %onerror sections with sh, as anaconda would, and
	// see "installer started" and then the failure arrive live, the machine now failed.
	ks := regexp.MustCompile(`inst\.ks=(http://\S+)`).FindStringSubmatch(string(script))
	if ks == nil {
		t.Fatalf("no inst.ks= URL in the script:\n%s", script)
	}
	res, err = http.Get(ks[1])
	if err != nil {
		t.Fatal(err)
	}
	kickstart, _ := io.ReadAll(res.Body)
	res.Body.Close()
	runHook := func(section string) {
		t.Helper()
		m := regexp.MustCompile(`(?s)\n` + section + `[^\n]*\n(.*?)\n%end`).FindStringSubmatch("\n" + string(kickstart))
		if m == nil {
			t.Fatalf("no %s section in the rendered kickstart:\n%s", section, kickstart)
		}
		if out, err := exec.Command("sh", "-c", m[1]).CombinedOutput(); err != nil {
			t.Fatalf("the kickstart's %s hook: %v\n%s", section, err, out)
		}
	}
	runHook("%pre")
	waitText("hook: installer started", "#timeline tbody", "installer started")
	contrast("machine")
	shot("09-machine-timeline-live")
	runHook("%onerror")
	waitText("hook: failure", "#timeline tbody", "failed")
	waitText("hook: failed state", "#m-state-now", "failed")
	shot("09b-machine-install-failed")

	for _, p := range []struct{ path, name, sel string }{
		{"/ui/rules", "10-rules", "#rule-table"},
		{"/ui/leases", "11-leases", "main"},
		{"/ui/health", "12-health", "#listeners"},
	} {
		run(p.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible(p.sel, chromedp.ByQuery))
		contrast(p.name)
		shot(p.name)
	}
	waitText("health counters", "#counters", "fleetboot_boot_scripts_total")

	// Sign-out ends the session: the UI sends the browser back to the sign-in page.
	run("sign out", chromedp.Click("#signout", chromedp.ByID), chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.Navigate(base+"/ui/machines"), chromedp.WaitVisible("#token", chromedp.ByID))
	t.Logf("browser steps took %s", time.Since(start).Round(time.Millisecond))
}

// setField sets a form field's value as typing would: the page hears input and change.
func setField(sel, value string) chromedp.Action {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.value = %q;
		e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`, sel, value)
	var ok bool
	return chromedp.Evaluate(js, &ok)
}

// isoID asks the API for the uploaded ISO's id (the editor's ISO menu is keyed by id).
func isoID(t *testing.T, base string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v1/isos/fedora-41", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var iso struct{ ID string }
	if err := json.NewDecoder(res.Body).Decode(&iso); err != nil || iso.ID == "" {
		t.Fatalf("iso: %v %+v", err, iso)
	}
	return iso.ID
}
