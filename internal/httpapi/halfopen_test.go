package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/httpapi"
)

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("needs /proc/self/fd")
	}
	return len(fds)
}

// TestThousandHalfOpenUploadsAreBoundedAndCleanedUp starts 1000 resumable uploads of 1 MiB
// and sends each only its first 4 KiB, as clients that go away would. Every request is
// answered with 201 or a clear refusal (429 once a limit on unfinished uploads holds); the
// server holds no descriptor or goroutine per unfinished upload, only its bytes on disk; the
// expiry sweep removes every one, and a new upload works afterwards.
func TestThousandHalfOpenUploadsAreBoundedAndCleanedUp(t *testing.T) {
	e := newISOEnv(t)
	ctx := context.Background()
	http.DefaultClient.CloseIdleConnections()
	fdsBefore, goBefore := openFDs(t), runtime.NumGoroutine()
	chunk := make([]byte, 4<<10)
	start := time.Now()
	var ids []string
	refused := 0
	for i := range 1000 {
		res, b := e.do(t, "POST", "/api/v1/uploads", testToken, map[string]string{"Content-Type": "application/json"},
			strings.NewReader(fmt.Sprintf(`{"name":"half-%04d","size":%d}`, i, 1<<20)))
		switch res.StatusCode {
		case http.StatusCreated:
			var u httpapi.UploadInfo
			if err := json.Unmarshal(b, &u); err != nil || u.ID == "" {
				t.Fatalf("create upload %d: %v %s", i, err, b)
			}
			if res, b := e.patch(t, u.ID, 0, chunk); res.StatusCode != http.StatusNoContent || res.Header.Get("Upload-Offset") != "4096" {
				t.Fatalf("first chunk of upload %d: %d %s", i, res.StatusCode, b)
			}
			ids = append(ids, u.ID)
		case http.StatusTooManyRequests:
			if msg := apiError(t, b); !strings.Contains(msg, "upload") {
				t.Fatalf("refusal of upload %d does not say why: %q", i, msg)
			}
			refused++
		default:
			t.Fatalf("create upload %d: %d %s", i, res.StatusCode, b)
		}
	}
	elapsed := time.Since(start)
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond) // closed connections' goroutines end
	fdsOpen, goOpen := openFDs(t), runtime.NumGoroutine()
	if fdsOpen-fdsBefore > 32 {
		t.Errorf("%d half-open uploads hold %d more descriptors (%d → %d)", len(ids), fdsOpen-fdsBefore, fdsBefore, fdsOpen)
	}
	if goOpen-goBefore > 32 {
		t.Errorf("%d half-open uploads hold %d more goroutines (%d → %d)", len(ids), goOpen-goBefore, goBefore, goOpen)
	}
	parts, err := os.ReadDir(filepath.Join(e.data, "isos", "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != len(ids) {
		t.Errorf("%d partial files for %d unfinished uploads", len(parts), len(ids))
	}

	n, err := e.isos.ExpireUploads(ctx, 0)
	if err != nil || n != len(ids) {
		t.Fatalf("expiry removed %d of %d: %v", n, len(ids), err)
	}
	if parts, _ := os.ReadDir(filepath.Join(e.data, "isos", "uploads")); len(parts) != 0 {
		t.Errorf("%d partial files left after expiry", len(parts))
	}
	if res, _ := e.do(t, "HEAD", "/api/v1/uploads/"+ids[0], testToken, nil, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("expired upload: HEAD %d", res.StatusCode)
	}
	e.createUpload(t, "after-cleanup", 1<<20)
	t.Logf("1000 uploads started in %v: %d accepted with 4 KiB each, %d refused (429); descriptors %d → %d, goroutines %d → %d; expiry removed %d",
		elapsed.Round(time.Millisecond), len(ids), refused, fdsBefore, fdsOpen, goBefore, goOpen, n)
}
