package auth

import (
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadCreatesBothTokensOnceWith0600(t *testing.T) {
	dir := t.TempDir()
	tok, created, err := Load(dir, "", "")
	if err != nil || !created.Admin || !created.ReadOnly || len(tok.Admin) != 64 || len(tok.ReadOnly) != 64 || tok.Admin == tok.ReadOnly {
		t.Fatalf("first: %+v %+v %v", tok, created, err)
	}
	for _, f := range []string{TokenFile, ReadOnlyTokenFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v %v", f, st, err)
		}
	}
	again, created, err := Load(dir, "", "")
	if err != nil || created.Admin || created.ReadOnly || again != tok {
		t.Fatalf("second: %+v %+v %v", again, created, err)
	}
	over, _, err := Load(dir, "operator-chosen-token", "operator-readonly-token")
	if err != nil || over.Admin != "operator-chosen-token" || over.ReadOnly != "operator-readonly-token" {
		t.Fatalf("override: %+v %v", over, err)
	}
	for _, bad := range [][2]string{{"short", ""}, {"", "short"}, {"same-token-0123456789", "same-token-0123456789"}} {
		if _, _, err := Load(dir, bad[0], bad[1]); err == nil {
			t.Errorf("Load(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// TestExistingTokenFileKeepsAdminRights: a data directory from before scopes has only
// api-token; it stays the admin token and a read-only token is added beside it.
func TestExistingTokenFileKeepsAdminRights(t *testing.T) {
	dir := t.TempDir()
	const old = "token-from-an-older-fleetboot"
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte(old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok, created, err := Load(dir, "", "")
	if err != nil || created.Admin || !created.ReadOnly || tok.Admin != old {
		t.Fatalf("%+v %+v %v", tok, created, err)
	}
	if tok.Scope(old) != ScopeAdmin || tok.Scope(tok.ReadOnly) != ScopeRead {
		t.Fatal("scopes")
	}
}

func TestScopeOf(t *testing.T) {
	toks := Tokens{Admin: "0123456789abcdef0123", ReadOnly: "readonly-0123456789"}
	for h, want := range map[string]Scope{
		"Bearer " + toks.Admin:        ScopeAdmin,
		"bearer " + toks.Admin:        ScopeAdmin,
		"Bearer " + toks.ReadOnly:     ScopeRead,
		"Bearer " + toks.Admin + "x":  ScopeNone,
		"Bearer ":                     ScopeNone,
		"Basic " + toks.Admin:         ScopeNone,
		toks.Admin:                    ScopeNone,
		"":                            ScopeNone,
		"Bearer " + toks.Admin[:10]:   ScopeNone,
		"Bearer  " + toks.Admin + " ": ScopeAdmin,
	} {
		r := httptest.NewRequest("POST", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		if got := toks.ScopeOf(r); got != want {
			t.Errorf("ScopeOf(%q) = %v, want %v", h, got, want)
		}
	}
	// An unset token never matches, not even an empty presented one.
	if (Tokens{Admin: "0123456789abcdef0123"}).Scope("") != ScopeNone {
		t.Error("empty read-only token matched an empty presented token")
	}
}

func TestScopeAllowsAndMethods(t *testing.T) {
	if !ScopeAdmin.Allows(ScopeRead) || !ScopeAdmin.Allows(ScopeAdmin) || !ScopeRead.Allows(ScopeRead) ||
		ScopeRead.Allows(ScopeAdmin) || ScopeNone.Allows(ScopeNone) || ScopeNone.Allows(ScopeRead) {
		t.Fatal("Allows")
	}
	for m, want := range map[string]Scope{"GET": ScopeRead, "HEAD": ScopeRead, "OPTIONS": ScopeRead,
		"POST": ScopeAdmin, "PUT": ScopeAdmin, "PATCH": ScopeAdmin, "DELETE": ScopeAdmin, "BREW": ScopeAdmin} {
		if got := ForMethod(m); got != want {
			t.Errorf("ForMethod(%s) = %v", m, got)
		}
	}
	if ScopeAdmin.String() != "admin" || ScopeRead.String() != "read" || ScopeNone.String() != "none" {
		t.Fatal("String")
	}
}

func TestLimiterBucketPerAddress(t *testing.T) {
	now := time.Unix(0, 0)
	l := NewLimiter(2, time.Minute, 100, func() time.Time { return now })
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	l.Fail(a)
	if blocked, _ := l.Blocked(a); blocked {
		t.Fatal("blocked after one of two")
	}
	l.Fail(a)
	blocked, retry := l.Blocked(a)
	if !blocked || retry != time.Minute {
		t.Fatalf("after two: %v %v", blocked, retry)
	}
	if blocked, _ := l.Blocked(b); blocked {
		t.Fatal("another address blocked")
	}
	now = now.Add(30 * time.Second)
	if _, retry := l.Blocked(a); retry != 30*time.Second {
		t.Fatalf("retry after 30 s: %v", retry)
	}
	now = now.Add(30 * time.Second)
	if blocked, _ := l.Blocked(a); blocked {
		t.Fatal("still blocked after the refill")
	}
	// Full buckets are forgotten.
	now = now.Add(time.Hour)
	l.Blocked(a)
	if l.Tracked() != 0 {
		t.Fatalf("tracked %d after everything refilled", l.Tracked())
	}
	// IPv6 counts per /64.
	l.Fail(netip.MustParseAddr("2001:db8::1"))
	l.Fail(netip.MustParseAddr("2001:db8::2"))
	if blocked, _ := l.Blocked(netip.MustParseAddr("2001:db8::ffff")); !blocked {
		t.Fatal("a /64 spread its failures over several buckets")
	}
	if blocked, _ := l.Blocked(netip.MustParseAddr("2001:db8:0:1::1")); blocked {
		t.Fatal("the next /64 is blocked")
	}
}

// TestLimiterMemoryIsBounded: a flood from many addresses never holds more than Max buckets;
// the least recently failing address is forgotten first.
func TestLimiterMemoryIsBounded(t *testing.T) {
	l := NewLimiter(1, time.Hour, 64, nil)
	first := netip.MustParseAddr("10.0.0.1")
	l.Fail(first)
	a := netip.MustParseAddr("10.1.0.0")
	for i := 0; i < 10000; i++ {
		l.Fail(a)
		a = a.Next()
		if n := l.Tracked(); n > 64 {
			t.Fatalf("tracked %d > 64", n)
		}
	}
	if blocked, _ := l.Blocked(first); blocked {
		t.Fatal("the oldest address was not evicted")
	}
	if blocked, _ := l.Blocked(a.Prev()); !blocked {
		t.Fatal("the newest address was evicted")
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", 1500 * time.Millisecond: "2", 6 * time.Second: "6"} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %s, want %s", d, got, want)
		}
	}
}
