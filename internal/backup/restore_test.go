package backup

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/datadir"
)

func writeTar(t *testing.T, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "b.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: 0o600})
		tw.Write([]byte(body))
	}
	tw.Close()
	f.Close()
	return p
}

// A hostile or foreign archive is refused before anything is written outside the staging
// directory, and the data directory does not appear.
func TestRestoreRefusesBadArchives(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"path leaving the directory", map[string]string{"../evil": "x", ManifestName: `{"format":1}`}, "bad path"},
		{"absolute path", map[string]string{"/etc/evil": "x", ManifestName: `{"format":1}`}, "bad path"},
		{"no manifest", map[string]string{"fleetboot.db": "x"}, "no manifest.json"},
		{"unlisted file", map[string]string{"fleetboot.db": "x", ManifestName: `{"format":1}`}, "does not list"},
		{"other format", map[string]string{ManifestName: `{"format":7}`}, "backup format 7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			data := filepath.Join(parent, "data")
			_, err := Restore(context.Background(), writeTar(t, c.files), data, RestoreOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Restore: %v, want %q", err, c.want)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Fatalf("left behind: %v", entries)
			}
			if _, err := os.Stat(filepath.Join(parent, "..", "evil")); err == nil {
				t.Fatal("a file was written outside the target")
			}
		})
	}
}

// A data directory a server holds (its lock, internal/datadir) is refused even when empty,
// before the backup is read.
func TestRestoreRefusesADataDirAServerHolds(t *testing.T) {
	data := t.TempDir()
	held, err := datadir.Acquire(data)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, err = Restore(context.Background(), writeTar(t, map[string]string{ManifestName: `{"format":1}`}), data, RestoreOptions{})
	if !errors.Is(err, datadir.ErrLocked) || !strings.Contains(err.Error(), data) {
		t.Fatalf("Restore into a held data directory: %v", err)
	}
}
