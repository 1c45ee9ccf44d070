package client

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/client/clienttest"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// httpGet fetches url without a token (a machine's request) and returns status and body.
func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// Two instances (server.Build, as `fleetboot serve`) on one PostgreSQL database and one image
// directory (--images): an ISO uploaded through a is served by b byte for byte, whole and file
// by file. Changed bytes on the shared directory are refused by b with 503 naming the image,
// its path and both sums, in the API listing too; a file b cannot find is reported as missing
// from b, naming the directory to mount, in the download, the API listing and the boot script
// of a machine that would install it (the console message instead of a kernel 404).
func TestInstancesShareImageBytesThroughTheAPI(t *testing.T) {
	dsn := storetest.DSN(t)
	images := t.TempDir()
	a := clienttest.StartSharedImages(t, dsn, "rack-a", images)
	b := clienttest.StartSharedImages(t, dsn, "rack-b", images)
	ca, cb := newClient(a), newClient(b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	p := clienttest.BuildISO(t, clienttest.FedoraFiles(t, "../.."))
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	iso, err := ca.UploadISO(ctx, p, "fedora", nil)
	if err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(images, iso.SHA256+".iso")
	code, got := httpGet(t, b.URL+"/isos/"+iso.ID+"/image.iso")
	if code != http.StatusOK || !bytes.Equal(got, want) {
		t.Fatalf("image through b: %d, %d bytes (identical: %v), want 200 and the %d bytes uploaded through a", code, len(got), bytes.Equal(got, want), len(want))
	}
	code, got = httpGet(t, b.URL+"/isos/"+iso.ID+"/files/images/pxeboot/vmlinuz")
	if code != http.StatusOK || len(got) == 0 {
		t.Fatalf("a file inside the image through b: %d %q", code, got)
	}
	list, err := cb.ListISOs(ctx)
	if err != nil || len(list) != 1 || list[0].Image != "verified" || list[0].ImageError != "" {
		t.Fatalf("b's listing: %+v, %v", list, err)
	}

	// A profile of that ISO and a machine that installs it, for the boot script below.
	if _, err := ca.PutProfile(ctx, Profile{Name: "fed", ISO: "fedora"}); err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:00:0c:01"
	prof, pending := "fed", "install-pending"
	if _, err := ca.CreateMachine(ctx, mac, MachineChange{Profile: &prof, State: &pending}); err != nil {
		t.Fatal(err)
	}

	// One byte changed in place on the shared directory.
	f, err := os.OpenFile(shared, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{want[len(want)/3] ^ 0xff}, int64(len(want)/3)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, got = httpGet(t, b.URL+"/isos/"+iso.ID+"/image.iso")
	msg := string(got)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("corrupted image through b: %d %q, want 503", code, msg)
	}
	for _, part := range []string{"fedora", shared, "the catalog says sha256 " + iso.SHA256, "refusing to serve it"} {
		if !strings.Contains(msg, part) {
			t.Errorf("corrupted image: %q does not say %q", msg, part)
		}
	}
	if strings.Contains(msg, "has sha256 "+iso.SHA256) {
		t.Errorf("corrupted image: %q gives the expected sum as the actual one", msg)
	}
	list, err = cb.ListISOs(ctx)
	if err != nil || len(list) != 1 || list[0].Image != "corrupt" || !strings.Contains(list[0].ImageError, shared) {
		t.Fatalf("b's listing of a corrupted image: %+v, %v", list, err)
	}
	// Put back: served again.
	if err := os.WriteFile(shared+".tmp", want, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(shared+".tmp", shared); err != nil {
		t.Fatal(err)
	}
	if code, got = httpGet(t, b.URL+"/isos/"+iso.ID+"/image.iso"); code != http.StatusOK || !bytes.Equal(got, want) {
		t.Fatalf("repaired image through b: %d", code)
	}

	// The file gone (the directory not mounted on b, say).
	if err := os.Remove(shared); err != nil {
		t.Fatal(err)
	}
	code, got = httpGet(t, b.URL+"/isos/"+iso.ID+"/files/images/pxeboot/vmlinuz")
	msg = string(got)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("missing image through b: %d %q, want 503", code, msg)
	}
	lacks := "is in the catalog but not at " + shared + ": mount the shared image directory on this instance"
	if !strings.Contains(msg, lacks) || !strings.Contains(msg, iso.SHA256) {
		t.Errorf("missing image: %q does not say %q", msg, lacks)
	}
	list, err = cb.ListISOs(ctx)
	if err != nil || len(list) != 1 || list[0].Image != "missing" || !strings.Contains(list[0].ImageError, lacks) {
		t.Fatalf("b's listing of a missing image: %+v, %v", list, err)
	}
	if one, err := cb.GetISO(ctx, iso.ID); err != nil || one.Image != "missing" {
		t.Fatalf("GetISO of a missing image (the row is there): %+v, %v", one, err)
	}
	_, script := httpGet(t, b.URL+"/boot.ipxe?mac="+mac+"&arch=x86_64&platform=efi")
	if !strings.Contains(string(script), lacks) {
		t.Fatalf("boot script through b for a machine installing the missing image does not say why:\n%s", script)
	}
	ev, err := cb.MachineEvents(ctx, mac, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ev {
		found = found || (e.Kind == "error" && strings.Contains(e.Detail, lacks) && e.Site == "rack-b")
	}
	if !found {
		t.Errorf("no error event from rack-b naming the missing image: %+v", ev)
	}
}
