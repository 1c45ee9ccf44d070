package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/client/clienttest"
)

// api calls a running serveProc with its token.
func (p *serveProc) api(t *testing.T, method, path string, body io.Reader) (int, []byte) {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(p.data, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, "http://"+p.http+path, body)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (p *serveProc) mustAPI(t *testing.T, method, path, body string, want int) []byte {
	t.Helper()
	code, b := p.api(t, method, path, strings.NewReader(body))
	if code != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	return b
}

// A backup taken while the server runs and machines are being added restores into an empty
// directory, and a server started on it has everything: ISOs (uploaded and registered by
// path), their files, profiles, machines, the token.
func TestBackupWhileServingThenRestore(t *testing.T) {
	cliEnv(t)
	p := startServe(t, "--register-dir", filepath.Dir(t.TempDir())) // BuildISO writes below it
	fedora := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	raw, _ := os.ReadFile(fedora)
	p.mustAPI(t, "PUT", "/api/v1/isos/fedora", string(raw), http.StatusCreated)
	external := clienttest.BuildISO(t, map[string][]byte{"README.TXT": []byte("registered by path\n")})
	p.mustAPI(t, "POST", "/api/v1/isos/register", `{"name":"nas","path":"`+external+`"}`, http.StatusCreated)
	p.mustAPI(t, "PUT", "/api/v1/profiles/fed", `{"iso":"fedora","extra_args":"console=ttyS0"}`, http.StatusCreated)
	p.mustAPI(t, "PUT", "/api/v1/profiles/nas", `{"iso":"nas"}`, http.StatusCreated)

	// Machines keep being added, through the API, while the backup runs.
	var created atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	tok, _ := os.ReadFile(filepath.Join(p.data, "api-token"))
	go func() {
		defer wg.Done()
		for i := 0; i < 100000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf(`{"mac":"52:54:00:%02x:%02x:%02x","profile":"fed"}`, i>>16&0xff, i>>8&0xff, i&0xff)
			req, _ := http.NewRequest("POST", "http://"+p.http+"/api/v1/machines", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
			req.Header.Set("Content-Type", "application/json")
			if res, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == http.StatusCreated {
					created.Add(1)
				}
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for created.Load() < 20 { // writes are under way
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("the writer created %d machines in 2 minutes:\n%s", created.Load(), p.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := created.Load()
	tarPath := filepath.Join(t.TempDir(), "fleetboot.tar")
	out, errOut, err := runCLI(t, "backup", "--data", p.data, "--to", tarPath)
	after := created.Load()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "backed up") || !strings.Contains(out, "not copied (registered by path): ISO nas at "+external) {
		t.Fatalf("backup output:\n%s", out)
	}
	if _, err := os.Stat(tarPath + ".partial"); err == nil {
		t.Error("the partial file was left behind")
	}

	restored := filepath.Join(t.TempDir(), "restored")
	out, errOut, err = runCLI(t, "restore", "--from", tarPath, "--data", restored)
	if err != nil || !strings.Contains(out, "restored "+tarPath) || !strings.Contains(out, "ISO nas (registered by path) is there") || errOut != "" {
		t.Fatalf("restore: %v\n%s\n%s", err, out, errOut)
	}
	tok1, _ := os.ReadFile(filepath.Join(p.data, "api-token"))
	tok2, _ := os.ReadFile(filepath.Join(restored, "api-token"))
	if !bytes.Equal(tok1, tok2) {
		t.Error("the API token was not restored")
	}

	q := startServeOn(t, restored)
	var isos []struct{ Name, ID string }
	json.Unmarshal(q.mustAPI(t, "GET", "/api/v1/isos", "", 200), &isos)
	if len(isos) != 2 {
		t.Fatalf("restored ISOs: %+v", isos)
	}
	for _, f := range []struct{ iso, path string }{{"fedora", "images/pxeboot/vmlinuz"}, {"nas", "README.TXT"}} {
		res, err := http.Get("http://" + q.http + "/isos/" + f.iso + "/files/" + f.path)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		want, _ := http.Get("http://" + p.http + "/isos/" + f.iso + "/files/" + f.path)
		wantBody, _ := io.ReadAll(want.Body)
		want.Body.Close()
		if res.StatusCode != 200 || !bytes.Equal(got, wantBody) {
			t.Errorf("restored %s/%s: %d, %d bytes (want %d)", f.iso, f.path, res.StatusCode, len(got), len(wantBody))
		}
	}
	var profiles []struct {
		Name   string
		Broken bool
	}
	json.Unmarshal(q.mustAPI(t, "GET", "/api/v1/profiles", "", 200), &profiles)
	if len(profiles) != 2 || profiles[0].Broken || profiles[1].Broken {
		t.Fatalf("restored profiles: %+v", profiles)
	}
	var machines []struct{ MAC string }
	json.Unmarshal(q.mustAPI(t, "GET", "/api/v1/machines", "", 200), &machines)
	if n := int64(len(machines)); n < before || n > after {
		t.Fatalf("restored %d machines; %d existed when the backup started, %d when it ended", n, before, after)
	}
	t.Logf("backup during writes: %d machines before, %d after, %d restored", before, after, len(machines))
}

// A restore says which ISOs registered by path are missing, refuses a damaged backup or a
// non-empty target, and leaves nothing behind when it refuses.
func TestRestoreChecksBackupAndExternalISOs(t *testing.T) {
	cliEnv(t)
	p := startServe(t, "--register-dir", filepath.Dir(t.TempDir()))
	external := clienttest.BuildISO(t, map[string][]byte{"README.TXT": []byte("on the NAS\n")})
	p.mustAPI(t, "POST", "/api/v1/isos/register", `{"name":"nas","path":"`+external+`"}`, http.StatusCreated)
	dir := filepath.Join(t.TempDir(), "backup")
	if _, errOut, err := runCLI(t, "backup", "--data", p.data, "--to", dir); err != nil {
		t.Fatalf("backup to a directory: %v %s", err, errOut)
	}
	if _, _, err := runCLI(t, "backup", "--data", p.data, "--to", dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("backup into a used directory: %v", err)
	}

	os.Remove(external)
	target := filepath.Join(t.TempDir(), "data")
	out, errOut, err := runCLI(t, "restore", "--from", dir, "--data", target)
	if err != nil || !strings.Contains(errOut, "WARNING: ISO nas registered by path "+external+": missing") ||
		!strings.Contains(errOut, "1 ISO(s) registered by path are not usable") {
		t.Fatalf("restore with a missing external ISO: %v\n%s\n%s", err, out, errOut)
	}
	if _, _, err := runCLI(t, "restore", "--from", dir, "--data", target); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a used directory: %v", err)
	}

	// One byte changed in the backed-up database: refused, nothing written.
	db := filepath.Join(dir, "fleetboot.db")
	b, _ := os.ReadFile(db)
	b[len(b)/2] ^= 0xff
	os.WriteFile(db, b, 0o600)
	target2 := filepath.Join(t.TempDir(), "data")
	if _, _, err := runCLI(t, "restore", "--from", dir, "--data", target2); err == nil || !strings.Contains(err.Error(), "backup is damaged: fleetboot.db") {
		t.Fatalf("restore of a damaged backup: %v", err)
	}
	if _, err := os.Stat(target2); err == nil {
		t.Fatal("a refused restore created the data directory")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(target2), ".data.restoring-*")); len(left) != 0 {
		t.Fatalf("staging left: %v", left)
	}
}
