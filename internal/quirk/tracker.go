package quirk

import (
	"fmt"
	"sync"
	"time"
)

// Tracker follows each machine's HTTP boot chain to spot boot loops and incomplete downloads.
// A cycle starts when the machine asks for its boot script saying who it is (/boot.ipxe?mac=);
// the files it then fetches from fleetboot come in the order the script loads them: the kernel
// first, then the initrds, then whatever the installer fetches. Files are matched to machines
// by the client address the script request came from. Pure state: the caller passes the time
// and turns the returned reports into log lines, metrics and events (Reporter).
type Tracker struct {
	// LoopCycles is how many cycles in a row ending at the same step make a boot loop,
	// default 3; LoopWindow is the time they must fall in, default 10 minutes.
	LoopCycles int
	LoopWindow time.Duration

	mu    sync.Mutex
	byMAC map[string]*machineTrack
	byIP  map[string]string
}

type machineTrack struct {
	ip     string
	script string // the script's kind: target, menu, local …
	start  time.Time
	files  int    // completed files this cycle
	first  string // the first file (the kernel when the script boots one)
	ends   []cycleEnd
}

type cycleEnd struct {
	step string
	at   time.Time
}

// maxTracked bounds the tables; they are cleared when full (a fleet of thousands of machines
// booting at once only loses loop history).
const maxTracked = 8192

func (t *Tracker) init() {
	if t.byMAC == nil || len(t.byMAC) >= maxTracked || len(t.byIP) >= maxTracked {
		t.byMAC = map[string]*machineTrack{}
		t.byIP = map[string]string{}
	}
}

// step names where a cycle ended, for people.
func (m *machineTrack) step() string {
	switch {
	case m.files == 0:
		return "after the " + m.script + " boot script, before fetching any file"
	case m.files == 1:
		return "after fetching the kernel " + m.first + " (no initrd)"
	default:
		return fmt.Sprintf("after fetching the kernel and %d more file(s) (the kernel, initrd or installer failed, or the machine rebooted)", m.files-1)
	}
}

// Script records that mac, at ip, fetched its boot script of kind (target boots a kernel) and
// returns what the cycle that ended here shows: a kernel without initrd, or a loop.
func (t *Tracker) Script(mac, ip, kind string, now time.Time) []Report {
	if mac == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	var out []Report
	m := t.byMAC[mac]
	if m != nil {
		if m.script == "target" && m.files == 1 {
			out = append(out, Report{Kind: IncompleteFetch, MAC: mac,
				Detail: "fetched the kernel " + m.first + " but never its initrd, then asked for its boot script again"})
		}
		m.ends = append(m.ends, cycleEnd{step: m.step(), at: now})
		if loop := t.loop(m, now); loop != "" {
			out = append(out, Report{Kind: BootLoop, MAC: mac, Detail: loop})
			m.ends = nil // one report per episode
		}
		if m.ip != ip {
			delete(t.byIP, m.ip)
		}
	} else {
		m = &machineTrack{}
		t.byMAC[mac] = m
	}
	m.ip, m.script, m.start, m.files, m.first = ip, kind, now, 0, ""
	if ip != "" {
		t.byIP[ip] = mac
	}
	return out
}

// loop reports the last LoopCycles cycles when they all ended at the same step within
// LoopWindow.
func (t *Tracker) loop(m *machineTrack, now time.Time) string {
	n := t.LoopCycles
	if n <= 0 {
		n = 3
	}
	window := t.LoopWindow
	if window <= 0 {
		window = 10 * time.Minute
	}
	if len(m.ends) > n {
		m.ends = m.ends[len(m.ends)-n:]
	}
	if len(m.ends) < n || now.Sub(m.ends[0].at) > window {
		return ""
	}
	for _, e := range m.ends {
		if e.step != m.ends[0].step {
			return ""
		}
	}
	return fmt.Sprintf("started the boot chain over %d times in %s, each time %s", n, now.Sub(m.ends[0].at).Round(time.Second), m.ends[0].step)
}

// Fetched records a GET of file (a URL path) by the client at ip: sent of want bytes. It
// returns a report when the download stopped before its end.
func (t *Tracker) Fetched(ip, file string, sent, want int64, now time.Time) []Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	mac := t.byIP[ip]
	var m *machineTrack
	if mac != "" {
		m = t.byMAC[mac]
	}
	if want > 0 && sent < want {
		return []Report{{Kind: IncompleteFetch, MAC: mac,
			Detail: fmt.Sprintf("stopped mid-transfer: %s, %d of %d bytes sent to %s", file, sent, want, ip)}}
	}
	if m != nil {
		if m.files == 0 {
			m.first = file
		}
		m.files++
	}
	return nil
}

// BootFiles is how many files fetched after a script that boots a kernel are steps of the
// machine's own timeline: the kernel and its initrds. What follows is the installer's own
// fetching (a repository's thousands of packages), which would drown the timeline.
const BootFiles = 4

// BootFile reports whether the file just completed by the client at ip (Fetched counted it) is
// one of the first BootFiles files after a script that boots a kernel, and for which machine;
// n is its place (1: the kernel).
func (t *Tracker) BootFile(ip string) (mac string, n int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	mac = t.byIP[ip]
	m := t.byMAC[mac]
	if m == nil || m.script != "target" || m.files < 1 || m.files > BootFiles {
		return "", 0, false
	}
	return mac, m.files, true
}
