package isostore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fleetboot/fleetboot/internal/iso9660"
	"github.com/fleetboot/fleetboot/internal/iso9660/isotest"
	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// openShared opens a Store with its own data directory on the PostgreSQL catalog dsn, storing
// images in the shared directory images, as `fleetboot serve --database dsn --images images`.
func openShared(t testing.TB, dsn, dataDir, images string) *Store {
	t.Helper()
	db, err := store.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(context.Background(), Config{DataDir: dataDir, DB: db, ImagesDir: images})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readImage reads the whole image of an ISO through OpenImage.
func readImage(s *Store, id string) ([]byte, error) {
	f, _, err := s.OpenImage(context.Background(), id)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// flipByte changes one byte of the file at p in place (size kept).
func flipByte(t testing.TB, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// Two instances on one PostgreSQL catalog and one image directory (--images): an image
// uploaded through one is served by the other, byte for byte, after the other checked its
// SHA-256 exactly once however many requests asked at once; a restart does not hash again;
// bytes changed on the shared directory are refused by both instances with the paths and
// both sums; a removed file is reported as missing from this instance, naming the directory.
func TestSharedImageDirServesEveryInstanceAndRefusesWrongBytes(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	images := t.TempDir()
	a := openShared(t, dsn, t.TempDir(), images)
	bDir := t.TempDir()
	b := openShared(t, dsn, bDir, images)

	fx := makeFixture(t, isotest.RichTree(), "-R")
	iso, err := uploadFile(t, a, "rich", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(images, iso.SHA256+".iso")
	if _, err := os.Stat(shared); err != nil {
		t.Fatalf("the upload through a is not in the shared directory: %v", err)
	}
	if st, err := b.ImageStatus(ctx, iso); st != ImageUnverified || err != nil {
		t.Fatalf("b's status before its first use: %s, %v", st, err)
	}
	want, _ := os.ReadFile(fx.iso)

	// A boot storm on b: one hash, every request served the verified bytes.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := readImage(b, iso.ID)
			if err == nil && !bytes.Equal(got, want) {
				err = errors.New("bytes differ from the upload")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("instance b serving a's upload: %v", err)
		}
	}
	serveAll(t, b, iso.ID, fx.src)
	if n := b.ver.hashes.Load(); n != 1 {
		t.Fatalf("instance b hashed the image %d times, want once", n)
	}
	if n := a.ver.hashes.Load(); n != 0 {
		t.Fatalf("instance a hashed its own upload %d times at open, want 0 (hashed on the way in)", n)
	}
	if st, err := b.ImageStatus(ctx, iso); st != ImageVerified || err != nil {
		t.Fatalf("b's status after use: %s, %v", st, err)
	}
	// b restarts: its record of the verified version spares the hash.
	b = openShared(t, dsn, bDir, images)
	if _, err := readImage(b, iso.ID); err != nil || b.ver.hashes.Load() != 0 {
		t.Fatalf("after a restart: %v, %d hashes, want none", err, b.ver.hashes.Load())
	}

	// One byte changed in place on the shared directory (same size).
	flipByte(t, shared, iso.Size/2)
	for name, s := range map[string]*Store{"a": a, "b": b} {
		_, err := readImage(s, iso.ID)
		var ce *CorruptImageError
		if !errors.As(err, &ce) || !errors.Is(err, ErrImageCorrupt) {
			t.Fatalf("instance %s serving a corrupted image: %v, want a CorruptImageError", name, err)
		}
		msg := err.Error()
		for _, part := range []string{"rich", shared, iso.SHA256, ce.Actual} {
			if !strings.Contains(msg, part) {
				t.Errorf("instance %s: error %q does not name %q", name, msg, part)
			}
		}
		if ce.Actual == iso.SHA256 || !isHex(ce.Actual, 64) {
			t.Errorf("instance %s: actual sha256 %q", name, ce.Actual)
		}
		if _, err := s.OpenFile(ctx, iso.ID, "/casper/vmlinuz"); !errors.Is(err, ErrImageCorrupt) {
			t.Errorf("instance %s: a file inside the corrupted image: %v", name, err)
		}
		if st, err := s.ImageStatus(ctx, iso); st != ImageCorrupt || !errors.Is(err, ErrImageCorrupt) {
			t.Errorf("instance %s: status %s, %v", name, st, err)
		}
	}
	before := b.ver.hashes.Load()
	if _, err := readImage(b, iso.ID); !errors.Is(err, ErrImageCorrupt) || b.ver.hashes.Load() != before {
		t.Fatalf("a known-bad version again: %v, hashed %d more times, want refused without a hash", err, b.ver.hashes.Load()-before)
	}
	// Put right (the file changes again): served again after one more check.
	flipByte(t, shared, iso.Size/2)
	if got, err := readImage(b, iso.ID); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("repaired image: %v", err)
	}

	// The file gone from the shared directory (or the directory not mounted on b).
	if err := os.Rename(shared, shared+".away"); err != nil {
		t.Fatal(err)
	}
	_, err = readImage(b, iso.ID)
	var me *MissingImageError
	if !errors.As(err, &me) || !errors.Is(err, ErrImageMissing) {
		t.Fatalf("serving an image missing on this instance: %v, want a MissingImageError", err)
	}
	for _, part := range []string{"rich", iso.SHA256, shared, "mount the shared image directory"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not name %q", err, part)
		}
	}
	if st, err := b.ImageStatus(ctx, iso); st != ImageMissing || !errors.Is(err, ErrImageMissing) {
		t.Errorf("status of a missing image: %s, %v", st, err)
	}
	if bad, err := b.VerifyAll(ctx); err != nil || !errors.Is(bad[iso.ID], ErrImageMissing) {
		t.Errorf("VerifyAll: %v, %v", bad, err)
	}
	// Deleted through a meanwhile: not found, not "missing".
	if err := os.Rename(shared+".away", shared); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, iso.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := readImage(b, iso.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the delete through a: %v", err)
	}
	if _, err := os.Stat(shared); !os.IsNotExist(err) {
		t.Fatalf("the deleted image is still in the shared directory: %v", err)
	}
	// b's kept descriptors of the image a deleted are closed by b's next catalog check.
	keptPools := func() int {
		b.fds.mu.Lock()
		defer b.fds.mu.Unlock()
		return len(b.fds.pools)
	}
	if n := keptPools(); n == 0 {
		t.Fatal("b kept no descriptors while serving: the check below proves nothing")
	}
	if _, err := b.VerifyAll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := keptPools(); n != 0 {
		t.Fatalf("b still keeps descriptors of %d images deleted through a", n)
	}
}

// One instance, its own data directory, either backend: bytes that change under a published
// image are never served, not even through a descriptor kept open from an earlier request.
func TestChangedImageBytesAreNeverServed(t *testing.T) {
	storetest.Run(t, testChangedImageBytesAreNeverServed)
}

func testChangedImageBytesAreNeverServed(t *testing.T, be storetest.Backend) {
	ctx := context.Background()
	s, dir := newStoreOn(t, be)
	fx := makeFixture(t, isotest.RichTree(), "-R")
	iso, err := uploadFile(t, s, "rich", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	serveAll(t, s, iso.ID, fx.src) // descriptors now pooled
	if n := s.ver.hashes.Load(); n != 0 {
		t.Fatalf("serving a fresh upload hashed it %d times", n)
	}
	p := filepath.Join(dir, "isos", iso.SHA256+".iso")
	flipByte(t, p, 0)
	if _, err := s.OpenFile(ctx, iso.ID, "/casper/vmlinuz"); !errors.Is(err, ErrImageCorrupt) {
		t.Fatalf("a file of a changed image through a pooled descriptor: %v, want ErrImageCorrupt", err)
	}
	if err := os.Truncate(p, iso.Size-isoSector); err != nil {
		t.Fatal(err)
	}
	_, err = readImage(s, iso.ID)
	var ce *CorruptImageError
	if !errors.As(err, &ce) || ce.ActualSize != iso.Size-isoSector || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("a truncated image: %v", err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenFile(ctx, iso.ID, "/casper/vmlinuz"); !errors.Is(err, ErrImageMissing) {
		t.Fatalf("a removed image: %v, want ErrImageMissing", err)
	}
	if err := s.Delete(ctx, iso.ID, false); err != nil {
		t.Fatalf("deleting an ISO whose image is gone: %v", err)
	}
}

// The per-request check of a pooled descriptor (fstat, then the verified version) allocates
// nothing: it sits on the serving hot path.
func TestPooledDescriptorCheckAllocatesNothing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t.TempDir())
	sum := strings.Repeat("a", 64)
	v.verified(sum, fileInfo(st).Version)
	if !v.knownFile(sum, st) {
		t.Fatal("the verified version is not known")
	}
	if n := testing.AllocsPerRun(100, func() { v.knownFile(sum, st) }); n != 0 {
		t.Fatalf("knownFile allocates %.0f times per call", n)
	}
}

// An image directory on another file system than the data directory (the usual shared
// mount): the upload is copied into <dir>/.staging and renamed into place, nothing is left in
// the staging directory, and the image serves. /dev/shm (tmpfs) stands for the mount.
func TestImagesOnAnotherFileSystemArePublishedByCopyAndRename(t *testing.T) {
	data := t.TempDir()
	dst, err := os.MkdirTemp("/dev/shm", "fleetboot-images-")
	if err != nil {
		t.Skipf("no /dev/shm to stand for another file system: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dst) })
	var a, b syscall.Statfs_t
	if syscall.Statfs(data, &a) != nil || syscall.Statfs(dst, &b) != nil || a.Fsid == b.Fsid {
		t.Skip("/dev/shm is on the same file system as the test's temporary directory")
	}
	db, err := store.OpenPath(context.Background(), filepath.Join(data, "fleetboot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(context.Background(), Config{DataDir: data, DB: db, ImagesDir: dst})
	if err != nil {
		t.Fatal(err)
	}
	fx := makeFixture(t, isotest.SmallTree(), "-R")
	iso, err := uploadFile(t, s, "small", fx.iso, "")
	if err != nil {
		t.Fatalf("upload into an image directory on another file system: %v", err)
	}
	if got := fileSHA(t, filepath.Join(dst, iso.SHA256+".iso")); got != fx.sum {
		t.Fatalf("published image has sha256 %s, want %s", got, fx.sum)
	}
	if left, _ := os.ReadDir(filepath.Join(dst, ".staging")); len(left) != 0 {
		t.Fatalf("left in the staging directory: %v", left)
	}
	if got := assertClean(t, data); len(got) != 1 || got[0] != iso.SHA256+".idx" {
		t.Fatalf("data directory holds %v, want only the index", got)
	}
	serveAll(t, s, iso.ID, fx.src)
	if n := s.ver.hashes.Load(); n != 0 {
		t.Fatalf("a copied upload was hashed %d times at open, want 0", n)
	}

	// Bytes that changed between the upload's hash and the copy are not published.
	staged := filepath.Join(data, "changed.iso")
	if err := os.WriteFile(staged, []byte("not the bytes that were hashed"), 0o640); err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("ab", 32)
	err = DirImages{Dir: dst}.Put(context.Background(), want, staged)
	if err == nil || !strings.Contains(err.Error(), "not published") || !strings.Contains(err.Error(), want) {
		t.Fatalf("copy of changed bytes: %v, want an error naming the expected sum", err)
	}
	if _, err := os.Stat(filepath.Join(dst, want+".iso")); !os.IsNotExist(err) {
		t.Fatalf("changed bytes were published: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(dst, ".staging")); len(left) != 0 {
		t.Fatalf("left in the staging directory: %v", left)
	}
}

// gatedImages is an ImageStore whose readers of one image block in ReadAt until the gate
// opens: a slow hash of that image, held open for as long as the test wants.
type gatedImages struct {
	DirImages
	slow    string        // sha256 of the gated image
	gate    chan struct{} // closed: reads go on
	reading chan struct{} // receives once a read of the gated image is waiting
}

type gatedReader struct {
	r       iso9660.ReaderAt
	gate    chan struct{}
	reading chan struct{}
}

func (g gatedReader) ReadAt(p []byte, off int64) (int, error) {
	select {
	case g.reading <- struct{}{}:
	default:
	}
	<-g.gate
	return g.r.ReadAt(p, off)
}
func (g gatedReader) Close() error { return g.r.Close() }

func (m gatedImages) Open(ctx context.Context, sum string) (iso9660.ReaderAt, ImageInfo, error) {
	r, info, err := m.DirImages.Open(ctx, sum)
	if err != nil || sum != m.slow {
		return r, info, err
	}
	return gatedReader{r, m.gate, m.reading}, info, nil
}

// While one image is being hashed, other images are served, a request for the image being
// hashed that gives up returns at once without stopping the hash, and the hash runs once for
// every request that waited on it.
func TestVerifyingOneImageHoldsUpNothingElse(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	db, err := store.OpenPath(ctx, filepath.Join(data, "fleetboot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	images := gatedImages{DirImages: DirImages{Dir: filepath.Join(data, "isos")}, gate: make(chan struct{}), reading: make(chan struct{}, 1)}
	s, err := Open(ctx, Config{DataDir: data, DB: db, Images: images})
	if err != nil {
		t.Fatal(err)
	}
	slow, err := uploadFile(t, s, "slow", makeFixture(t, isotest.RichTree(), "-R").iso, "")
	if err != nil {
		t.Fatal(err)
	}
	fast := makeFixture(t, isotest.SmallTree(), "-R")
	other, err := uploadFile(t, s, "fast", fast.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	images.slow = slow.SHA256
	// A restart: nothing is verified in memory, and the records are gone.
	os.RemoveAll(filepath.Join(data, "isos", "verified"))
	s, err = Open(ctx, Config{DataDir: data, DB: db, Images: images})
	if err != nil {
		t.Fatal(err)
	}

	waiters := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := readImage(s, slow.ID)
			waiters <- err
		}()
	}
	<-images.reading // the hash has started and is held

	// A request that gives up while it waits returns at once.
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.OpenImage(gaveUp, slow.ID); !errors.Is(err, context.Canceled) {
		t.Fatalf("a request that gave up: %v", err)
	}
	// Another image is served meanwhile, verified by a hash of its own.
	if got, err := readImage(s, other.ID); err != nil || fileSHAOf(got) != fast.sum {
		t.Fatalf("another image while one is being verified: %v", err)
	}
	serveAll(t, s, other.ID, fast.src)

	close(images.gate)
	for range 4 {
		if err := <-waiters; err != nil {
			t.Fatalf("a request that waited for the hash: %v", err)
		}
	}
	if n := s.ver.hashes.Load(); n != 2 {
		t.Fatalf("%d hashes, want 2: one per image, however many requests", n)
	}
}

// fileSHAOf is the hex SHA-256 of b.
func fileSHAOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// An image missing on this instance is logged once, not at every status check (the image
// check every minute, metrics, listings, every boot script's profile check) and request, and
// once more when it goes missing again after it was back.
func TestMissingImageIsLoggedOnce(t *testing.T) {
	ctx := context.Background()
	s, dir := newStore(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	s.log = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	fx := makeFixture(t, isotest.RichTree(), "-R")
	iso, err := uploadFile(t, s, "rich", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logs.String(), "image missing on this instance")
	}
	p := filepath.Join(dir, "isos", iso.SHA256+".iso")
	aside := p + ".aside"
	if err := os.Rename(p, aside); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if st, err := s.ImageStatus(ctx, iso); st != ImageMissing || !errors.Is(err, ErrImageMissing) {
			t.Fatalf("status of a removed image: %s, %v", st, err)
		}
		if _, err := readImage(s, iso.ID); !errors.Is(err, ErrImageMissing) {
			t.Fatalf("a removed image: %v, want ErrImageMissing", err)
		}
		if _, err := s.VerifyAll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n != 1 {
		t.Fatalf("a missing image was logged %d times, want once:\n%s", n, logs.String())
	}
	if err := os.Rename(aside, p); err != nil {
		t.Fatal(err)
	}
	if st, err := s.ImageStatus(ctx, iso); err != nil {
		t.Fatalf("status of the image put back: %s, %v", st, err)
	}
	if err := os.Rename(p, aside); err != nil {
		t.Fatal(err)
	}
	s.ImageStatus(ctx, iso)
	s.ImageStatus(ctx, iso)
	if n := count(); n != 2 {
		t.Fatalf("an image missing again was logged %d times in all, want 2:\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A request that finds an image's verification record being read by another request (both
// arriving together after a restart) does not hash the image: the hash reads the record
// itself first.
func TestConcurrentFirstOpensAfterARestartDoNotHash(t *testing.T) {
	ctx := context.Background()
	s, dir := newStore(t)
	fx := makeFixture(t, isotest.SmallTree(), "-R")
	iso, err := uploadFile(t, s, "small", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, dir) // a restart: the verified versions are only on disk
	info, err := s.images.Stat(ctx, iso.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	// Another request has claimed this version's record and is still reading it.
	s.ver.mu.Lock()
	s.ver.looked[iso.SHA256] = info.Version
	s.ver.mu.Unlock()
	if got, err := readImage(s, iso.ID); err != nil || fileSHAOf(got) != fx.sum {
		t.Fatalf("read: %v", err)
	}
	if n := s.ver.hashes.Load(); n != 0 {
		t.Fatalf("an image verified before the restart was hashed %d times", n)
	}
}
