package provision

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"github.com/fleetboot/fleetboot/internal/urls"
)

// Progress statuses a report may carry (?status=).
const (
	ProgressStart  = "start"  // a phase began (the default)
	ProgressOK     = "ok"     // a phase finished
	ProgressFailed = "failed" // the install failed: the machine becomes failed
)

// ProgressReport is one installer phase as fleetboot records it.
type ProgressReport struct {
	// Phase names the step ("started", "partitioning", "post-install", a curtin/subiquity
	// event name such as "cmd-install/stage-partitioning").
	Phase  string
	Status string // ProgressStart, ProgressOK or ProgressFailed
	// Message is what the installer said: a curtin event's description, a log tail posted by
	// %onerror. Cleaned to one line and cut to maxProgressMessage.
	Message string
}

// Detail is the report's line in the machine's timeline.
func (r ProgressReport) Detail() string {
	var s string
	switch {
	case r.Status == ProgressFailed:
		s = "failed: " + r.Phase
	case r.Phase == "started" && r.Status == ProgressStart:
		s = "installer started"
	case r.Status == ProgressOK:
		s = r.Phase + " done"
	default:
		s = r.Phase
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

const (
	maxProgressMessage = 300
	maxProgressPhase   = 80
)

// curtinEvent is a curtin/subiquity reporting event as the webhook reporter POSTs it (curtin
// doc "Reporting": event_type start|finish, name, description, level, result SUCCESS|WARN|FAIL
// on finish, origin "curtin", timestamp; finish events may carry "files").
type curtinEvent struct {
	EventType   string  `json:"event_type"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Result      string  `json:"result"`
	Origin      string  `json:"origin"`
	Level       string  `json:"level"`
	Timestamp   float64 `json:"timestamp"`
}

// ParseProgress reads one progress POST: a curtin/subiquity webhook event (JSON body), or a
// hook's ?phase=&status= with an optional plain-text body as the message. ok is false for a
// report not worth a timeline line (curtin's many fine-grained steps).
func ParseProgress(query url.Values, body []byte) (r ProgressReport, ok bool, err error) {
	if b := strings.TrimSpace(string(body)); strings.HasPrefix(b, "{") && query.Get("phase") == "" {
		var ev curtinEvent
		if err := json.Unmarshal([]byte(b), &ev); err != nil {
			return r, false, fmt.Errorf("progress: body is not a curtin event: %v", err)
		}
		return fromCurtin(ev)
	}
	r = ProgressReport{Phase: cleanLine(query.Get("phase"), maxProgressPhase), Status: query.Get("status"), Message: tail(cleanLine(string(body), 4096), maxProgressMessage)}
	if r.Status == "" {
		r.Status = ProgressStart
	}
	switch r.Status {
	case ProgressStart, ProgressOK, ProgressFailed:
	default:
		return r, false, fmt.Errorf("progress: status %q: want start, ok or failed", r.Status)
	}
	if r.Phase == "" {
		return r, false, fmt.Errorf("progress: ?phase= is missing (e.g. ?phase=partitioning&status=start)")
	}
	return r, true, nil
}

// fromCurtin keeps the events an operator wants in a timeline: the start of each step up to
// three levels deep (subiquity/Install/install, cmd-install/stage-partitioning), the end of
// the top two levels, and every WARN or FAIL. The deeper steps (hundreds per install) stay in
// the installer's own log.
func fromCurtin(ev curtinEvent) (ProgressReport, bool, error) {
	if ev.Name == "" || (ev.EventType != "start" && ev.EventType != "finish") {
		return ProgressReport{}, false, fmt.Errorf("progress: a curtin event needs name and event_type start or finish")
	}
	depth := strings.Count(strings.Trim(ev.Name, "/"), "/") + 1
	r := ProgressReport{Phase: cleanLine(ev.Name, maxProgressPhase), Message: cleanLine(ev.Description, maxProgressMessage)}
	switch {
	case ev.EventType == "start":
		r.Status = ProgressStart
		return r, depth <= 3, nil
	case strings.EqualFold(ev.Result, "FAIL"):
		// curtin: "A result of FAIL is fatal".
		r.Status = ProgressFailed
		return r, true, nil
	case strings.EqualFold(ev.Result, "WARN"):
		r.Status, r.Message = ProgressOK, "warning: "+r.Message
		return r, true, nil
	}
	r.Status = ProgressOK
	r.Message = ""
	return r, depth <= 2, nil
}

// cleanLine makes s one printable line of at most max bytes (cut on a rune boundary).
func cleanLine(s string, max int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// tail keeps the end of s (a log tail's last lines say what failed).
func tail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := len(s) - max
	for cut < len(s) && !utf8Start(s[cut]) {
		cut++
	}
	return "…" + s[cut:]
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// progressURL is machine mac's progress endpoint.
func progressURL(base, mac string) string {
	return urls.Base(base).Progress(mac)
}

// progressCommand is a shell line that reports a phase with curl or wget (busybox wget in
// d-i's initrd has --post-data but no --data-urlencode, so the phase goes in the URL; phases
// are plain words). With status failed and a log file, the log's last lines are the message.
// It never fails: a report that cannot be sent must not stop an install.
func progressCommand(endpoint, phase, status, logFile string) string {
	u := endpoint + "?" + url.Values{"phase": {phase}, "status": {status}}.Encode()
	q := "'" + u + "'"
	if logFile == "" {
		return fmt.Sprintf("curl -fsS -m 10 -X POST %s || wget -q -T 10 -O- --post-data= %s || true", q, q)
	}
	return fmt.Sprintf("tail -n 5 %s 2>/dev/null | curl -fsS -m 10 -X POST -H 'Content-Type: text/plain' --data-binary @- %s || "+
		"wget -q -T 10 -O- --post-data= %s || true", logFile, q, q)
}

// ProgressCommand is a shell line reporting that the install reached phase (status start),
// for an operator's own hooks: {{.ProgressCommand "partitioning"}}.
func (v Vars) ProgressCommand(phase string) string {
	return progressCommand(v.ProgressURL, phase, ProgressStart, "")
}

// ProgressFailedCommand is a shell line reporting that the install failed in phase, with the
// last lines of logFile ("" for none) as the reason: the machine becomes failed.
func (v Vars) ProgressFailedCommand(phase, logFile string) string {
	return progressCommand(v.ProgressURL, phase, ProgressFailed, logFile)
}

// progressHooks is the block {{.ProgressHooks}} inserts for a template kind: ready-made hooks
// with which the installer reports its own phases. Where it goes in the file is in the
// README ("Install progress").
func progressHooks(kind, endpoint string) string {
	cmd := func(phase string) string { return progressCommand(endpoint, phase, ProgressStart, "") }
	switch kind {
	case KindKickstart:
		// %pre and %onerror run in the installer's environment (curl is there); %post
		// --nochroot too, so it does not depend on curl in the installed system. %onerror
		// runs when anaconda hits a fatal error (kickstart error, traceback, failed %pre/%post
		// with --erroronfail).
		return "%pre\n" + cmd("started") + "\n%end\n" +
			"%post --nochroot\n" + progressCommand(endpoint, "post-install", ProgressStart, "") + "\n%end\n" +
			"%onerror\n" + progressCommand(endpoint, "anaconda", ProgressFailed, "/tmp/anaconda.log") + "\n%end"
	case KindPreseed:
		// d-i has no failure hook: a failed install stops at a dialog, and the timeline shows
		// the last phase reached. The late phase goes into the template's own late_command
		// (one per file): {{.ProgressCommand "late"}}.
		return "d-i preseed/early_command string " + cmd("started") + "\n" +
			"d-i partman/early_command string " + cmd("partitioning")
	case KindAutoinstall:
		// Subiquity (and curtin below it) POST their events as JSON to a webhook reporter;
		// "builtin: print" keeps the console output a reporting section otherwise replaces.
		// error-commands run when the install failed. Indented for the autoinstall: mapping.
		return "  reporting:\n" +
			"    builtin:\n      type: print\n" +
			"    fleetboot:\n      type: webhook\n      endpoint: " + strconvQuote(endpoint) + "\n      level: INFO\n" +
			"  early-commands:\n    - " + strconvQuote(cmd("started")) + "\n" +
			"  error-commands:\n    - " + strconvQuote(progressCommand(endpoint, "subiquity", ProgressFailed, "/var/log/installer/subiquity-server-debug.log"))
	case KindAutoYaST:
		// pre-scripts run before anything is installed; the rest is reported from the
		// template's own chroot-scripts ({{.ProgressCommand "…"}}).
		return `<pre-scripts config:type="list">
      <script>
        <filename>fleetboot-progress.sh</filename>
        <source><![CDATA[
` + cmd("started") + `
]]></source>
      </script>
    </pre-scripts>`
	}
	return ""
}

// strconvQuote is a YAML double-quoted string (Go's quoting is valid YAML for these ASCII
// lines).
func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }
