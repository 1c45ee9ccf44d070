package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/client/clienttest"
)

// `fleetboot serve --images DIR` (SQLite, one instance) stores uploads in DIR, not in the data
// directory; `iso ls` shows whether the server can serve each image and, for one it lacks,
// why; `backup` needs the same --images (and says so without it), and its restore serves.
func TestServeWithImagesDirListsImageStateAndBacksUp(t *testing.T) {
	cliEnv(t)
	images := t.TempDir()
	p := startServe(t, "--images", images)
	tok, _ := os.ReadFile(filepath.Join(p.data, "api-token"))
	t.Setenv("FLEETBOOT_SERVER", "http://"+p.http)
	t.Setenv("FLEETBOOT_TOKEN", strings.TrimSpace(string(tok)))

	raw, _ := os.ReadFile(clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../..")))
	var iso struct{ ID, SHA256 string }
	json.Unmarshal(p.mustAPI(t, "PUT", "/api/v1/isos/fedora", string(raw), http.StatusCreated), &iso)
	stored := filepath.Join(images, iso.SHA256+".iso")
	if _, err := os.Stat(stored); err != nil {
		t.Fatalf("the upload is not in --images: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.data, "isos", iso.SHA256+".iso")); err == nil {
		t.Fatal("the upload is in the data directory too")
	}
	if out := mustCLI(t, "iso", "ls"); !strings.Contains(out, "IMAGE") || !strings.Contains(out, "verified") {
		t.Fatalf("iso ls:\n%s", out)
	}

	if _, _, err := runCLI(t, "backup", "--data", p.data, "--to", filepath.Join(t.TempDir(), "b1")); err == nil ||
		!strings.Contains(err.Error(), "--images") {
		t.Fatalf("backup without the server's --images: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "b2")
	mustCLI(t, "backup", "--data", p.data, "--images", images, "--to", dir)
	restored := filepath.Join(t.TempDir(), "restored")
	mustCLI(t, "restore", "--from", dir, "--data", restored)
	q := startServeOn(t, restored)
	res, err := http.Get("http://" + q.http + "/isos/fedora/image.iso")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ContentLength != int64(len(raw)) {
		t.Fatalf("restored image: %d, %d bytes", res.StatusCode, res.ContentLength)
	}
	// The restored server checked the image at start (a restore holds no verification
	// records) and counts it.
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := http.Get("http://" + q.http + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(m), `fleetboot_iso_images{state="verified"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fleetboot_iso_images{state=\"verified\"} 1 after start:\n%s", m)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The image gone from --images: iso ls says so, and what to do.
	if err := os.Remove(stored); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "iso", "ls")
	if !strings.Contains(out, "missing") || !strings.Contains(out, "is in the catalog but not at "+stored+": mount the shared image directory") {
		t.Fatalf("iso ls with the image gone:\n%s", out)
	}
	t.Logf("iso ls with the image gone:\n%s", out)
}
