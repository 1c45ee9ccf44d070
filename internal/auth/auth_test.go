package auth

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreateWritesOnceWith0600(t *testing.T) {
	dir := t.TempDir()
	tok, created, err := LoadOrCreate(dir, "")
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("first: %q %v %v", tok, created, err)
	}
	st, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v %v", st.Mode(), err)
	}
	again, created, err := LoadOrCreate(dir, "")
	if err != nil || created || again != tok {
		t.Fatalf("second: %q %v %v", again, created, err)
	}
	over, created, err := LoadOrCreate(dir, "operator-chosen-token")
	if err != nil || created || over != "operator-chosen-token" {
		t.Fatalf("override: %q %v %v", over, created, err)
	}
	if _, _, err := LoadOrCreate(dir, "short"); err == nil {
		t.Fatal("short override accepted")
	}
}

func TestCheck(t *testing.T) {
	const tok = "0123456789abcdef0123"
	for h, want := range map[string]bool{
		"Bearer " + tok:        true,
		"bearer " + tok:        true,
		"Bearer " + tok + "x":  false,
		"Bearer ":              false,
		"Basic " + tok:         false,
		tok:                    false,
		"":                     false,
		"Bearer " + tok[:10]:   false,
		"Bearer  " + tok + " ": true,
	} {
		r := httptest.NewRequest("POST", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		if got := Check(r, tok); got != want {
			t.Errorf("Check(%q) = %v, want %v", h, got, want)
		}
	}
}
