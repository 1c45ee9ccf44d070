package isostore

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/iso9660/isotest"
)

// The tests below run an upload in a child process (this test binary re-executed with
// FLEETBOOT_ISOSTORE_CHILD set), SIGKILL it mid-upload, and check what a restarted store sees.

const childEnv = "FLEETBOOT_ISOSTORE_CHILD"

// stallingReader serves r, then blocks once stallAt bytes were read: the upload is in flight
// when the parent kills it. The block ends after 5 minutes only so that a child orphaned by a
// crashed parent still ends; it is long because a parent that kills later than that (a loaded
// machine) would see the child exit by itself and fail.
type stallingReader struct {
	r       io.Reader
	n       int64
	stallAt int64
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.n >= s.stallAt {
		time.Sleep(5 * time.Minute)
		return 0, errors.New("parent never killed the child")
	}
	if int64(len(p)) > s.stallAt-s.n {
		p = p[:s.stallAt-s.n]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	return n, err
}

// runChild is the child side: it uploads the image named by the environment and stalls.
func runChild(t *testing.T) {
	dir, img, mode := os.Getenv("FLEETBOOT_ISOSTORE_DIR"), os.Getenv("FLEETBOOT_ISOSTORE_ISO"), os.Getenv(childEnv)
	s := openStore(t, dir, dir)
	s.checkpointBytes = 64 << 10
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	body := &stallingReader{r: f, stallAt: st.Size() * 2 / 3}
	ctx := context.Background()
	switch mode {
	case "upload":
		_, err = s.Upload(ctx, "killed", body, "")
	case "resumable":
		_, err = s.AppendUpload(ctx, os.Getenv("FLEETBOOT_ISOSTORE_UPLOAD"), 0, body)
	case "finish":
		// Every byte was appended (acknowledged) by the parent; stop at one publish step.
		step := os.Getenv("FLEETBOOT_ISOSTORE_STEP")
		crashPoint = func(at string) {
			if at == step {
				os.WriteFile(filepath.Join(dir, "at-"+step), nil, 0o644)
				time.Sleep(5 * time.Minute)
			}
		}
		_, err = s.FinishUpload(ctx, os.Getenv("FLEETBOOT_ISOSTORE_UPLOAD"))
	}
	t.Fatalf("child upload returned: %v", err)
}

// startChild runs the child and returns it with a function that SIGKILLs and reaps it.
func startChild(t *testing.T, mode, dir, img, uploadID string, env ...string) func() {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), childEnv+"="+mode, "FLEETBOOT_ISOSTORE_DIR="+dir,
		"FLEETBOOT_ISOSTORE_ISO="+img, "FLEETBOOT_ISOSTORE_UPLOAD="+uploadID), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if killed {
			return
		}
		killed = true
		cmd.Process.Kill() // SIGKILL: no deferred cleanup runs in the child
		err := cmd.Wait()
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != -1 {
			t.Errorf("child did not die by the signal (%v); output:\n%s", err, out.String())
		}
	}
	t.Cleanup(kill)
	return kill
}

// waitFor polls cond every 10 ms for up to 2 minutes (the child, a -race test binary, starts,
// opens the store and copies megabytes first; on a loaded machine that can take a while).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestKillDuringUploadLeavesNoVisibleISO(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		runChild(t)
		return
	}
	fx := makeFixture(t, isotest.RichTree(), "-R")
	dir := t.TempDir()
	kill := startChild(t, "upload", dir, fx.iso, "")
	waitFor(t, "the child's upload to reach its temporary file", func() bool {
		parts, _ := filepath.Glob(filepath.Join(dir, "isos", "tmp", "upload-*"))
		if len(parts) != 1 {
			return false
		}
		st, err := os.Stat(parts[0])
		return err == nil && st.Size() >= fx.size/2
	})
	kill()

	s := openStore(t, dir, dir)
	if list, err := s.List(context.Background()); err != nil || len(list) != 0 {
		t.Fatalf("after the kill: %+v, %v", list, err)
	}
	if got := assertClean(t, dir); len(got) != 0 {
		t.Fatalf("files after the kill: %v", got)
	}
	// The store still works: the same upload now completes.
	iso, err := uploadFile(t, s, "killed", fx.iso, fx.sum)
	if err != nil {
		t.Fatal(err)
	}
	serveAll(t, s, iso.ID, fx.src)
}

func TestKillDuringResumableUploadResumesFromTheLastCheckpoint(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		runChild(t)
		return
	}
	fx := makeFixture(t, isotest.RichTree(), "-R")
	dir := t.TempDir()
	s := openStore(t, dir, dir)
	ctx := context.Background()
	u, err := s.CreateUpload(ctx, "resumed after kill", fx.size, fx.sum)
	if err != nil {
		t.Fatal(err)
	}
	kill := startChild(t, "resumable", dir, fx.iso, u.ID)
	waitFor(t, "the child to checkpoint half the image", func() bool {
		off, err := uploadOffset(ctx, s, u.ID)
		return err == nil && off >= fx.size/2
	})
	kill()

	s = openStore(t, dir, dir)
	off, err := uploadOffset(ctx, s, u.ID)
	if err != nil || off < fx.size/2 || off > fx.size*2/3 {
		t.Fatalf("offset after the kill = %d, %v; want a checkpoint between %d and %d", off, err, fx.size/2, fx.size*2/3)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("a partial upload is visible: %+v", list)
	}
	f, err := os.Open(fx.iso)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if end, err := s.AppendUpload(ctx, u.ID, off, f); err != nil || end != fx.size {
		t.Fatalf("resume = %d, %v", end, err)
	}
	iso, err := s.FinishUpload(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	serveAll(t, s, iso.ID, fx.src)
}

// TestKillAtEachPublishStepLosesNothingAcknowledged completes a resumable upload (every byte
// acknowledged), then SIGKILLs the process finishing it at each step of the publish: index
// written, index in place, image in place, catalog row committed. After a restart the ISO is
// either published or its upload can still be finished; nothing else is left on disk, and the
// ISO serves its files.
func TestKillAtEachPublishStepLosesNothingAcknowledged(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		runChild(t)
		return
	}
	fx := makeFixture(t, isotest.SmallTree(), "-R", "-no-pad")
	for _, step := range []string{"index-written", "index-published", "image-stored", "row-inserted"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			s := openStore(t, dir, dir)
			u := appendAll(t, s, "published", fx)
			s.db.Close()
			start := time.Now()
			kill := startChild(t, "finish", dir, fx.iso, u.ID, "FLEETBOOT_ISOSTORE_STEP="+step, "FLEETBOOT_ISOSTORE_DIR="+dir)
			waitFor(t, "the child to reach "+step, func() bool {
				_, err := os.Stat(filepath.Join(dir, "at-"+step))
				return err == nil
			})
			kill()
			os.Remove(filepath.Join(dir, "at-"+step))

			s = openStore(t, dir, dir)
			list, err := s.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var iso *ISO
			switch {
			case len(list) == 1:
				iso = list[0]
				if _, err := s.UploadStatus(ctx, u.ID); !errors.Is(err, ErrNotFound) {
					t.Errorf("published, and the upload is still there: %v", err)
				}
			case len(list) == 0:
				if iso, err = s.FinishUpload(ctx, u.ID); err != nil {
					t.Fatalf("killed at %s: the acknowledged upload cannot be finished after a restart: %v", step, err)
				}
			default:
				t.Fatalf("after the kill: %+v", list)
			}
			if iso.SHA256 != fx.sum || iso.Name != "published" {
				t.Fatalf("published %+v", iso)
			}
			serveAll(t, s, iso.ID, fx.src)
			if got := assertClean(t, dir); len(got) != 2 {
				t.Errorf("files after recovery: %v, want the image and its index", got)
			}
			t.Logf("killed at %s, recovered in %v (child start included)", step, time.Since(start).Round(time.Millisecond))
		})
	}
}

// appendAll creates a resumable upload of fx and appends all of it (every byte acknowledged),
// without finishing it.
func appendAll(t *testing.T, s *Store, name string, fx fixture) *Upload {
	t.Helper()
	ctx := context.Background()
	u, err := s.CreateUpload(ctx, name, fx.size, fx.sum)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fx.iso)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if end, err := s.AppendUpload(ctx, u.ID, 0, f); err != nil || end != fx.size {
		t.Fatalf("append = %d, %v", end, err)
	}
	return u
}
