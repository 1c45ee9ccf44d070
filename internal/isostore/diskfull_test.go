package isostore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fleetboot/fleetboot/internal/iso9660/isotest"
)

// TestIndexWriteOnAFullDiskFailsCleanlyAndResumes fills a small tmpfs data directory after a
// resumable upload completed, so that the disk runs full while the finish writes the ISO's
// index (an image of 1000 files: its index is larger than what is left). The finish fails with
// ErrNoSpace (507), leaves no temporary file, keeps the upload; once space is freed the same
// upload finishes and serves its files.
func TestIndexWriteOnAFullDiskFailsCleanlyAndResumes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	spec := isotest.TreeSpec{Files: map[string]int{}}
	for i := range 1000 {
		spec.Files[fmt.Sprintf("d%02d/file-with-a-long-name-%04d.txt", i%30, i)] = 1
	}
	fx := makeFixture(t, spec, "-R", "-no-pad")

	data := t.TempDir()
	if out, err := isotest.RunCmd("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", fx.size+(4<<20)), "fleetboot-isostore-idx", data); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		// Lazy: the store keeps image descriptors open for reuse (fdpool) and has no Close;
		// the tmpfs goes away with the last of them.
		if out, err := isotest.RunCmd("umount", "-l", data); err != nil {
			t.Errorf("umount %s: %v %s", data, err, out)
		}
	})
	ctx := context.Background()
	s := openStore(t, data, t.TempDir())
	u := appendAll(t, s, "many-files", fx)

	// Fill the disk but for 8 KiB: less than the index needs.
	var st syscall.Statfs_t
	if err := syscall.Statfs(data, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	filler := filepath.Join(data, "filler")
	if err := os.WriteFile(filler, make([]byte, free-8<<10), 0o644); err != nil {
		t.Fatalf("fill the disk: %v", err)
	}
	_, err := s.FinishUpload(ctx, u.ID)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("finish on a full disk: %v, want ErrNoSpace", err)
	}
	if got := assertClean(t, data); len(got) != 0 {
		t.Errorf("published files after the failed finish: %v", got)
	}
	if list, _ := s.List(ctx); len(list) != 0 {
		t.Fatalf("listed after the failed finish: %+v", list)
	}
	if off, err := uploadOffset(ctx, s, u.ID); err != nil || off != fx.size {
		t.Fatalf("the acknowledged upload after the failed finish: offset %d, %v", off, err)
	}

	os.Remove(filler)
	iso, err := s.FinishUpload(ctx, u.ID)
	if err != nil {
		t.Fatalf("finish once space is free: %v", err)
	}
	serveAll(t, s, iso.ID, fx.src)
	t.Logf("image %d bytes, %d files: the index write ran out of space with 8 KiB free; finished after freeing space", fx.size, iso.FileCount)
}
