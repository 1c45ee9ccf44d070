package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/config"
)

// TestUploadLimits: uploads beyond --max-uploads running at once get 503 with Retry-After
// (and are counted); resumable uploads beyond --max-pending-uploads get 429 until one is
// aborted.
func TestUploadLimits(t *testing.T) {
	e := newISOEnvConfig(t, func(c *config.Config) { c.MaxUploads, c.MaxPendingUploads = 1, 2 }, nil)
	// One upload holds the only slot: its body never ends until the test says so.
	pr, pw := io.Pipe()
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("PUT", e.base+"/api/v1/isos/slow.iso", pr)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.ContentLength = 1 << 20
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		res.Body.Close()
		first <- res.StatusCode
	}()
	// Whatever happens below, the first upload ends with the test (a failure must not leave
	// it holding the server until go test's timeout).
	t.Cleanup(func() { pw.CloseWithError(fmt.Errorf("test over")) })
	if _, err := pw.Write(make([]byte, 4096)); err != nil { // the transport is sending it
		t.Fatal(err)
	}
	// The transport may hold those bytes before the handler runs and takes the slot: until
	// it has, a second upload gets the slot itself (and is refused for its content, 4xx, not
	// counted as limited). So ask until the slot is seen taken, within a bound.
	var res *http.Response
	var b []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		res, b = e.do(t, "PUT", "/api/v1/isos/second.iso", testToken, nil, strings.NewReader("data"))
		if res.StatusCode == http.StatusServiceUnavailable || res.StatusCode/100 != 4 || time.Now().After(deadline) {
			break
		}
	}
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "--max-uploads") {
		t.Fatalf("second upload while one runs: %d Retry-After=%q %s", res.StatusCode, res.Header.Get("Retry-After"), b)
	}
	pw.CloseWithError(fmt.Errorf("test ends the first upload"))
	select {
	case <-first:
	case <-time.After(time.Minute):
		t.Fatal("the first upload never ended")
	}
	_, m := e.do(t, "GET", "/metrics", "", nil, nil)
	if !strings.Contains(string(m), `fleetboot_http_limited_total{limit="uploads"} 1`) {
		t.Errorf("the refusal was not counted")
	}

	// Resumable uploads: two may be unfinished, the third is refused until one is aborted.
	a := e.createUpload(t, "a.iso", 10)
	e.createUpload(t, "b.iso", 10)
	res, b = e.do(t, "POST", "/api/v1/uploads", testToken, map[string]string{"Content-Type": "application/json"},
		strings.NewReader(`{"name":"c.iso","size":10}`))
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), "limit is 2") {
		t.Fatalf("third unfinished upload: %d %s", res.StatusCode, b)
	}
	if res, _ := e.do(t, "DELETE", "/api/v1/uploads/"+a, testToken, nil, nil); res.StatusCode/100 != 2 {
		t.Fatalf("abort: %d", res.StatusCode)
	}
	e.createUpload(t, "c.iso", 10)
}

// TestStalledUploadBodyIsCutOff: an upload whose body stops arriving is ended after
// --body-idle-timeout with an error that says so; its slot comes free.
func TestStalledUploadBodyIsCutOff(t *testing.T) {
	e := newISOEnvConfig(t, func(c *config.Config) { c.MaxUploads, c.BodyIdleTimeout = 1, 200*time.Millisecond }, nil)
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("PUT", e.base+"/api/v1/isos/stalled.iso", pr)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.ContentLength = 1 << 20
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		done <- fmt.Sprintf("%d %s", res.StatusCode, b)
	}()
	if _, err := pw.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	// Then nothing more: the server must give up on its own (bounded wait, not a timing check).
	select {
	case got := <-done:
		if !strings.HasPrefix(got, "400 ") || !strings.Contains(got, "nothing received for 200ms") {
			if !strings.HasPrefix(got, "error: ") { // the server may close before the client reads
				t.Fatalf("stalled upload: %s", got)
			}
		}
	case <-time.After(time.Minute):
		t.Fatal("a stalled upload body was never cut off")
	}
	// The slot is free again.
	if res, b := e.do(t, "PUT", "/api/v1/isos/next.iso", testToken, nil, strings.NewReader("data")); res.StatusCode == http.StatusServiceUnavailable {
		t.Fatalf("slot still taken: %s", b)
	}
}
