package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fleetboot/fleetboot/internal/webui"
)

// uploadProgress draws one progress line for `iso upload`. Its rate counts only the bytes sent
// in this run: bytes a resumed upload skips (the server already has them) are shown as done
// but never as transferred, so a resume at 60 % does not show 137 TB/s.
type uploadProgress struct {
	w       io.Writer
	label   string
	visible bool
	now     func() time.Time // the clock; tests set it
	every   time.Duration    // at most one redraw per interval

	mu       sync.Mutex
	started  bool
	base     int64 // bytes the server held when this run started
	start    time.Time
	done     int64
	total    int64
	lastDraw time.Time
	drawn    bool
}

func newUploadProgress(w io.Writer, label string, visible bool) *uploadProgress {
	return &uploadProgress{w: w, label: label, visible: visible, now: time.Now, every: 200 * time.Millisecond}
}

// update is the client.Progress callback: done of total bytes are on (or on their way to)
// the server.
func (p *uploadProgress) update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if !p.started {
		p.started, p.base, p.start, p.total = true, done, now, total
		if done > 0 && p.visible {
			fmt.Fprintf(p.w, "%s: resuming at %s of %s (%d %%): the server already has those bytes\n",
				p.label, webui.HumanBytes(done), webui.HumanBytes(total), percent(done, total))
		}
	}
	if done < p.base {
		// After a failed chunk the server may hold less than the run started with.
		p.base = done
	}
	complete := done == total && p.done != total // the first time it gets there
	p.done, p.total = done, total
	if p.visible && (now.Sub(p.lastDraw) >= p.every || complete) {
		p.lastDraw = now
		p.drawn = true
		fmt.Fprintf(p.w, "\r%s\033[K", p.line(now))
	}
}

// rate is the average transfer rate of this run in bytes per second; 0 before a second
// measurable interval.
func (p *uploadProgress) rate(now time.Time) float64 {
	el := now.Sub(p.start).Seconds()
	if el <= 0 {
		return 0
	}
	return float64(p.done-p.base) / el
}

func (p *uploadProgress) line(now time.Time) string {
	const width = 30
	pct := percent(p.done, p.total)
	fill := int(pct) * width / 100
	var b strings.Builder
	fmt.Fprintf(&b, "%s %3d%% [%s%s] %s / %s", p.label, pct, strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		webui.HumanBytes(p.done), webui.HumanBytes(p.total))
	if r := p.rate(now); r > 0 {
		fmt.Fprintf(&b, "  %s/s", webui.HumanBytes(int64(r)))
		if left := p.total - p.done; left > 0 {
			fmt.Fprintf(&b, "  %s left", time.Duration(float64(left)/r*float64(time.Second)).Round(time.Second))
		}
	}
	return b.String()
}

// notice shows why the upload is waiting (a busy server) on a line of its own; the progress
// line is drawn again below it at the next update.
func (p *uploadProgress) notice(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.visible {
		return
	}
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "%s: %s\n", p.label, msg)
	p.lastDraw = time.Time{}
}

// finish ends the progress line once the upload is done (its last state stays on screen).
func (p *uploadProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// abort ends a progress line cut short, so that the error starts on a line of its own.
func (p *uploadProgress) abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

func percent(done, total int64) int64 {
	if total <= 0 {
		return 100
	}
	return done * 100 / total
}
