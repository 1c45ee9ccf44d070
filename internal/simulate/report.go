package simulate

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Report is the outcome of a run (also written as JSON).
type Report struct {
	Machines   int                   `json:"machines"`
	Mode       string                `json:"dhcp_mode"`
	Mix        map[Firmware]int      `json:"firmware_mix"`
	Spread     Duration              `json:"power_on_spread"`
	Wall       Duration              `json:"wall"`
	Succeeded  int                   `json:"succeeded"`
	Failed     int                   `json:"failed"`
	FailedBy   map[string]int        `json:"failed_by_phase"`
	Examples   []string              `json:"failure_examples,omitempty"`
	Bytes      int64                 `json:"bytes"`
	Throughput float64               `json:"throughput_mb_s"` // bytes / wall, MB/s
	Phases     map[string]PhaseStats `json:"phases"`
	// ServerInstalled is how many simulated machines the server's API lists as installed at
	// the end (it must equal Succeeded); ServerCPU is the server's user+system CPU time.
	ServerInstalled int      `json:"server_installed"`
	ServerCPU       Duration `json:"server_cpu"`
	DHCPDrops       int      `json:"dhcp_replies_unclaimed"`
	// AcksByServer counts the DHCPACKs seen on the wire per server address (full mode), and
	// DuplicateAddresses the addresses ACKed to more than one machine — an error, whether
	// one server or two instances of an HA pair gave them out.
	AcksByServer       map[string]int `json:"dhcp_acks_by_server,omitempty"`
	DuplicateAddresses int            `json:"dhcp_duplicate_addresses"`
}

// PhaseStats sums one phase over all machines that went through it.
type PhaseStats struct {
	Count   int      `json:"count"`
	P50     Duration `json:"p50"`
	P95     Duration `json:"p95"`
	P99     Duration `json:"p99"`
	Max     Duration `json:"max"`
	Bytes   int64    `json:"bytes"`
	Retries int      `json:"retries"`
	Failed  int      `json:"failed"`
}

// Duration marshals as seconds.
type Duration time.Duration

// MarshalJSON writes the duration in seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%.4f", time.Duration(d).Seconds())), nil
}

func (d Duration) String() string { return fmtDur(time.Duration(d)) }

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

func summarize(results []machineResult, wall time.Duration) *Report {
	r := &Report{Machines: len(results), Mix: map[Firmware]int{}, FailedBy: map[string]int{}, Phases: map[string]PhaseStats{}, Wall: Duration(wall)}
	durs := map[string][]time.Duration{}
	for _, m := range results {
		r.Mix[m.Firmware]++
		if m.Failed != "" {
			r.Failed++
			r.FailedBy[m.Failed]++
			if len(r.Examples) < 10 {
				r.Examples = append(r.Examples, fmt.Sprintf("%s (%s) %s: %s", m.MAC, m.Firmware, m.Failed, m.Err))
			}
		} else {
			r.Succeeded++
		}
		for _, p := range m.Phases {
			st := r.Phases[p.Phase]
			st.Count++
			st.Bytes += p.Bytes
			st.Retries += p.Retries
			if p.Phase == m.Failed {
				st.Failed++
			}
			r.Phases[p.Phase] = st
			r.Bytes += p.Bytes
			durs[p.Phase] = append(durs[p.Phase], p.Dur)
		}
	}
	for ph, d := range durs {
		slices.Sort(d)
		st := r.Phases[ph]
		st.P50, st.P95, st.P99, st.Max = Duration(pct(d, 50)), Duration(pct(d, 95)), Duration(pct(d, 99)), Duration(d[len(d)-1])
		r.Phases[ph] = st
	}
	if wall > 0 {
		r.Throughput = float64(r.Bytes) / wall.Seconds() / 1e6
	}
	return r
}

// pct is the nearest-rank percentile of sorted durations.
func pct(d []time.Duration, p int) time.Duration {
	i := (len(d)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return d[i-1]
}

// WriteTable prints the report for people.
func (r *Report) WriteTable(w io.Writer) {
	var mix []string
	for _, f := range Firmwares {
		if n := r.Mix[f]; n > 0 {
			mix = append(mix, fmt.Sprintf("%s %d", f, n))
		}
	}
	fmt.Fprintf(w, "\n%d machines (%s), DHCP %s, power-on spread %s: %d installed, %d failed, wall %s\n",
		r.Machines, strings.Join(mix, ", "), r.Mode, r.Spread, r.Succeeded, r.Failed, r.Wall)
	fmt.Fprintf(w, "%.1f MB sent to machines, %.1f MB/s aggregate; server CPU %s (%.1f ms per machine); server lists %d installed\n\n",
		float64(r.Bytes)/1e6, r.Throughput, r.ServerCPU, time.Duration(r.ServerCPU).Seconds()*1000/float64(max(r.Machines, 1)), r.ServerInstalled)
	if r.Mode == "full" {
		var by []string
		for _, s := range slices.Sorted(maps.Keys(r.AcksByServer)) {
			by = append(by, fmt.Sprintf("%s %d", s, r.AcksByServer[s]))
		}
		fmt.Fprintf(w, "DHCPACKs by server: %s; addresses ACKed to two machines: %d\n\n", orNone(strings.Join(by, ", ")), r.DuplicateAddresses)
	}
	fmt.Fprintf(w, "%-11s %6s %10s %10s %10s %10s %11s %7s %6s\n", "phase", "count", "p50", "p95", "p99", "max", "MB", "retries", "failed")
	for _, ph := range Phases {
		st, ok := r.Phases[ph]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "%-11s %6d %10s %10s %10s %10s %11.1f %7d %6d\n", ph, st.Count, st.P50, st.P95, st.P99, st.Max,
			float64(st.Bytes)/1e6, st.Retries, st.Failed)
	}
	if len(r.Examples) > 0 {
		fmt.Fprintf(w, "\nfailures (first %d):\n", len(r.Examples))
		for _, e := range r.Examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

// progress counts machines per phase for the live line.
type progress struct {
	mu       sync.Mutex
	in       map[string]int
	started  atomic.Int64
	finished atomic.Int64
	failed   atomic.Int64
	bytes    atomic.Int64
}

func newProgress() *progress { return &progress{in: map[string]int{}} }

func (p *progress) enter(ph string) {
	p.mu.Lock()
	p.in[ph]++
	p.mu.Unlock()
}

func (p *progress) leave(ph string) {
	p.mu.Lock()
	p.in[ph]--
	p.mu.Unlock()
}

// line is the live progress line.
func (p *progress) line(total int, elapsed time.Duration, lastBytes int64, dt time.Duration) string {
	p.mu.Lock()
	var parts []string
	for _, ph := range Phases {
		if n := p.in[ph]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", ph, n))
		}
	}
	p.mu.Unlock()
	rate := float64(p.bytes.Load()-lastBytes) / dt.Seconds() / 1e6
	return fmt.Sprintf("[%6.1fs] powered on %d/%d, finished %d (failed %d); now in %s; %.0f MB/s",
		elapsed.Seconds(), p.started.Load(), total, p.finished.Load(), p.failed.Load(), orNone(strings.Join(parts, ", ")), rate)
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
