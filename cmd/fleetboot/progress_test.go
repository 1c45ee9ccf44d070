package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestProgressRateCountsOnlyBytesSentInThisRun: a resumed upload starts with the server's
// offset as done; the rate is what this run transferred over the time it took.
func TestProgressRateCountsOnlyBytesSentInThisRun(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		name              string
		resumeAt, sentNow int64
		after             time.Duration
		wantRate, wantPct string
		wantResume        bool
	}{
		{"fresh", 0, 200 * MiB, 2 * time.Second, "100.0 MiB/s", " 20%", false},
		{"resumed at 60 %", 600 * MiB, 200 * MiB, 2 * time.Second, "100.0 MiB/s", " 80%", true},
		{"resumed at 99 %", 990 * MiB, 10 * MiB, 4 * time.Second, "2.5 MiB/s", "100%", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			clock := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
			p := newUploadProgress(&out, "big.iso", true)
			p.now = func() time.Time { return clock }
			const total = 1000 * MiB
			p.update(c.resumeAt, total)
			clock = clock.Add(c.after)
			p.update(c.resumeAt+c.sentNow, total)
			p.finish()
			s := out.String()
			last := s[strings.LastIndex(s, "\r")+1:]
			if !strings.Contains(last, c.wantRate) || !strings.Contains(last, c.wantPct) {
				t.Fatalf("progress line %q, want rate %s and %s", last, c.wantRate, c.wantPct)
			}
			if got := strings.Contains(s, "resuming at"); got != c.wantResume {
				t.Fatalf("resume note %v, want %v:\n%s", got, c.wantResume, s)
			}
		})
	}
}

func TestProgressQuietWritesNothing(t *testing.T) {
	var out bytes.Buffer
	p := newUploadProgress(&out, "x.iso", false)
	p.update(5, 10)
	p.update(10, 10)
	p.notice("server busy")
	p.finish()
	p.abort()
	if out.Len() != 0 {
		t.Fatalf("quiet progress wrote %q", out.String())
	}
}

// A busy server's notice gets a line of its own: the progress line is cleared first and drawn
// again at the next update, not glued to the notice.
func TestProgressNoticeOnItsOwnLine(t *testing.T) {
	var out bytes.Buffer
	p := newUploadProgress(&out, "x.iso", true)
	p.update(5, 10)
	p.notice("server busy (4 uploads are running); waiting 30s")
	p.update(6, 10)
	s := out.String()
	want := "\r\033[Kx.iso: server busy (4 uploads are running); waiting 30s\n\rx.iso  60%"
	if !strings.Contains(s, want) {
		t.Fatalf("output %q, want it to contain %q", s, want)
	}
}
