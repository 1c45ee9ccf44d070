package isostore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/iso9660/isotest"

	"github.com/fleetboot/fleetboot/internal/iso9660"
	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// pgForDir maps a test's database directory to the PostgreSQL database that stands for it
// when the test runs on that backend (backendDir).
var pgForDir sync.Map

// backendDir is a fresh directory for a test's data and database: on the postgres backend
// openStore opens a fresh PostgreSQL database for it instead of a SQLite file in it.
func backendDir(t testing.TB, be storetest.Backend) string {
	dir := t.TempDir()
	if be.Name == "postgres" {
		pgForDir.Store(dir, storetest.DSN(t))
	}
	return dir
}

// openStore opens an isostore on dataDir with its database in dbDir (SQLite), or in the
// PostgreSQL database backendDir made for dbDir.
func openStore(t testing.TB, dataDir, dbDir string) *Store {
	t.Helper()
	ctx := context.Background()
	var db *store.Store
	var err error
	if dsn, ok := pgForDir.Load(dbDir); ok {
		db, err = store.OpenPostgres(ctx, dsn.(string))
	} else {
		db, err = store.OpenPath(ctx, filepath.Join(dbDir, "fleetboot.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(ctx, Config{DataDir: dataDir, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newStoreRegisteringFrom is newStore whose AddPath accepts files below dirs.
func newStoreRegisteringFrom(t testing.TB, dirs ...string) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.OpenPath(context.Background(), filepath.Join(dir, "fleetboot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(context.Background(), Config{DataDir: dir, DB: db, RegisterDirs: dirs})
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	return openStore(t, dir, dir), dir
}

// newStoreOn is newStore on backend be. The catalog tests of this file (uploads, resumable
// uploads, names, deletes, leftovers) run on both backends: TestX/sqlite and TestX/postgres.
func newStoreOn(t testing.TB, be storetest.Backend) (*Store, string) {
	t.Helper()
	dir := backendDir(t, be)
	return openStore(t, dir, dir), dir
}

// fixture is a source tree and the image built from it.
type fixture struct {
	src, iso string
	sum      string
	size     int64
}

func makeFixture(t testing.TB, spec isotest.TreeSpec, args ...string) fixture {
	t.Helper()
	src := t.TempDir()
	isotest.WriteTree(t, src, spec)
	p := isotest.BuildISO(t, src, args...)
	return fixture{src: src, iso: p, sum: fileSHA(t, p), size: fileSize(t, p)}
}

func fileSHA(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSize(t testing.TB, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func uploadFile(t testing.TB, s *Store, name, p, want string) (*ISO, error) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return s.Upload(context.Background(), name, f, want)
}

// assertClean fails if the store's temporary area holds anything, and returns the names of
// the files published in <data>/isos.
func assertClean(t testing.TB, dataDir string) []string {
	t.Helper()
	tmp, err := os.ReadDir(filepath.Join(dataDir, "isos", "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tmp {
		t.Errorf("leftover temporary file %s", e.Name())
	}
	var published []string
	entries, _ := os.ReadDir(filepath.Join(dataDir, "isos"))
	for _, e := range entries {
		if !e.IsDir() {
			published = append(published, e.Name())
		}
	}
	return published
}

// serveAll reads every regular file of the source tree through Store.OpenFile and compares
// it with the source.
func serveAll(t *testing.T, s *Store, id, src string) {
	t.Helper()
	ctx := context.Background()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		f, err := s.OpenFile(ctx, id, filepath.ToSlash(rel))
		if err != nil {
			t.Errorf("OpenFile %s: %v", rel, err)
			return nil
		}
		defer f.Close()
		got, err := io.ReadAll(f)
		if err != nil {
			t.Errorf("read %s: %v", rel, err)
			return nil
		}
		want, _ := os.ReadFile(p)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: served %d bytes differing from the source's %d", rel, len(got), len(want))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestUploadPublishesAnImageThatServesEveryFile(t *testing.T) {
	storetest.Run(t, testUploadPublishesAnImageThatServesEveryFile)
}

func testUploadPublishesAnImageThatServesEveryFile(t *testing.T, be storetest.Backend) {
	s, dir := newStoreOn(t, be)
	fx := makeFixture(t, isotest.RichTree(), "-R", "-J", "-V", "RICH")
	iso, err := uploadFile(t, s, "rich 1.0", fx.iso, strings.ToUpper(fx.sum))
	if err != nil {
		t.Fatal(err)
	}
	if iso.SHA256 != fx.sum || iso.ID != fx.sum[:16] || iso.Size != fx.size || iso.Label != "RICH" ||
		iso.Existed || iso.Names != iso9660.NamesRockRidge || iso.FileCount < 300 {
		t.Fatalf("iso = %+v", iso)
	}
	published := assertClean(t, dir)
	want := []string{fx.sum + ".idx", fx.sum + ".iso"}
	if fmt.Sprint(published) != fmt.Sprint(want) {
		t.Fatalf("published files %v, want %v", published, want)
	}
	if fileSHA(t, filepath.Join(dir, "isos", fx.sum+".iso")) != fx.sum {
		t.Fatal("stored image differs from the upload")
	}
	for _, key := range []string{iso.ID, "rich 1.0", fx.sum, strings.ToUpper(iso.ID)} {
		got, err := s.Get(context.Background(), key)
		if err != nil || got.ID != iso.ID {
			t.Errorf("Get(%q) = %+v, %v", key, got, err)
		}
	}
	list, err := s.List(context.Background())
	if err != nil || len(list) != 1 || list[0].Name != "rich 1.0" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	serveAll(t, s, iso.ID, fx.src)

	// A second Store on the same data (a restart) serves from the persisted index.
	s2 := openStore(t, dir, dir)
	serveAll(t, s2, "rich 1.0", fx.src)
	e, err := s2.Lookup(context.Background(), iso.ID, "/dists/stable/Release")
	if err != nil || e.Path != "/dists/bookworm/Release" {
		t.Fatalf("Lookup through symlink = %+v, %v", e, err)
	}
	list2, err := s2.ReadDir(context.Background(), iso.ID, "/casper")
	if err != nil || len(list2) != 2 {
		t.Fatalf("ReadDir = %+v, %v", list2, err)
	}
}

func TestUploadSameContentReturnsTheExistingISO(t *testing.T) {
	storetest.Run(t, testUploadSameContentReturnsTheExistingISO)
}

func testUploadSameContentReturnsTheExistingISO(t *testing.T, be storetest.Backend) {
	s, dir := newStoreOn(t, be)
	fx := makeFixture(t, isotest.SmallTree(), "-R")
	first, err := uploadFile(t, s, "first", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	second, err := uploadFile(t, s, "second name", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	if !second.Existed || second.ID != first.ID || second.Name != "first" {
		t.Fatalf("second upload = %+v, want the existing ISO named first", second)
	}
	// Re-uploading under the same name is allowed (idempotent), with or without a checksum.
	for _, sum := range []string{fx.sum, ""} {
		again, err := uploadFile(t, s, "first", fx.iso, sum)
		if err != nil || !again.Existed || again.Name != "first" {
			t.Fatalf("same name, same content (checksum %q): %+v, %v", sum, again, err)
		}
	}
	// Resumable too: the announced size matches, so the upload goes ahead and its finish
	// answers with the stored ISO.
	ctx := context.Background()
	img, _ := os.ReadFile(fx.iso)
	u, err := s.CreateUpload(ctx, "first", int64(len(img)), "")
	if err != nil {
		t.Fatalf("resumable upload of the same file under its own name: %v", err)
	}
	if _, err := s.AppendUpload(ctx, u.ID, 0, bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	if again, err := s.FinishUpload(ctx, u.ID); err != nil || !again.Existed || again.Name != "first" {
		t.Fatalf("resumable, same name, same content: %+v, %v", again, err)
	}
	// A size that differs cannot be the same content: refused before any byte is sent.
	if _, err := s.CreateUpload(ctx, "first", int64(len(img))+2048, ""); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("resumable, same name, other size: %v, want ErrNameTaken", err)
	}
	if list, _ := s.List(context.Background()); len(list) != 1 {
		t.Fatalf("%d ISOs listed, want 1", len(list))
	}
	if got := assertClean(t, dir); len(got) != 2 {
		t.Fatalf("files %v", got)
	}
}

func TestUploadRefusesATakenNameForOtherContent(t *testing.T) {
	storetest.Run(t, testUploadRefusesATakenNameForOtherContent)
}

func testUploadRefusesATakenNameForOtherContent(t *testing.T, be storetest.Backend) {
	s, dir := newStoreOn(t, be)
	a := makeFixture(t, isotest.SmallTree(), "-R")
	b := makeFixture(t, isotest.PlainTree(), "-R")
	if _, err := uploadFile(t, s, "name", a.iso, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := uploadFile(t, s, "name", b.iso, ""); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("err = %v, want ErrNameTaken", err)
	}
	// The name is checked again at publish time: here it is taken while the body streams.
	var inner error
	body := io.MultiReader(
		io.LimitReader(mustOpen(t, b.iso), 10000),
		readerFunc(func([]byte) (int, error) {
			_, inner = uploadFile(t, s, "late", a.iso+".copy", "")
			return 0, io.EOF
		}),
		func() io.Reader { f := mustOpen(t, b.iso); f.Seek(10000, io.SeekStart); return f }(),
	)
	// A third content: a's image with another volume label.
	third, _ := os.ReadFile(a.iso)
	copy(third[16*isoSector+40:], "THIRD   ")
	if err := os.WriteFile(a.iso+".copy", third, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upload(context.Background(), "late", body, ""); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("err = %v, want ErrNameTaken", err)
	}
	if inner != nil {
		t.Fatalf("inner upload: %v", inner)
	}
	if got := assertClean(t, dir); len(got) != 4 {
		t.Fatalf("files %v", got)
	}
	if iso, err := s.Get(context.Background(), "late"); err != nil || iso.Label != "THIRD" {
		t.Fatalf("late = %+v, %v", iso, err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func mustOpen(t testing.TB, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestUploadRejectsBadNamesAndChecksums(t *testing.T) {
	storetest.Run(t, testUploadRejectsBadNamesAndChecksums)
}

func testUploadRejectsBadNamesAndChecksums(t *testing.T, be storetest.Backend) {
	s, _ := newStoreOn(t, be)
	for _, name := range []string{"", " x", "x ", "a/b", `a\b`, "..", "0123456789abcdef", strings.Repeat("a", 201), "tab\there", "bad\xffutf8"} {
		if _, err := s.Upload(context.Background(), name, strings.NewReader("x"), ""); !errors.Is(err, ErrBadName) {
			t.Errorf("name %q: err = %v, want ErrBadName", name, err)
		}
	}
	if _, err := s.Upload(context.Background(), "ok", strings.NewReader("x"), "abc"); !errors.Is(err, ErrBadChecksum) {
		t.Errorf("err = %v, want ErrBadChecksum", err)
	}
}

func TestUploadFailuresLeaveNothingBehind(t *testing.T) {
	storetest.Run(t, testUploadFailuresLeaveNothingBehind)
}

func testUploadFailuresLeaveNothingBehind(t *testing.T, be storetest.Backend) {
	fx := makeFixture(t, isotest.SmallTree(), "-R")
	img, err := os.ReadFile(fx.iso)
	if err != nil {
		t.Fatal(err)
	}
	udf := make([]byte, 64*isoSector)
	for i, id := range []string{"BEA01", "NSR02", "TEA01"} {
		copy(udf[(16+i)*isoSector+1:], id)
	}
	cases := []struct {
		name string
		body func(cancel context.CancelFunc) io.Reader
		want string
		is   error
	}{
		{"checksum mismatch", func(context.CancelFunc) io.Reader { return bytes.NewReader(img) }, strings.Repeat("0", 64), ErrChecksumMismatch},
		{"not an ISO", func(context.CancelFunc) io.Reader { return strings.NewReader(strings.Repeat("text ", 20000)) }, "", ErrBadISO},
		{"truncated ISO", func(context.CancelFunc) io.Reader { return bytes.NewReader(img[:len(img)/2]) }, "", ErrBadISO},
		{"UDF only", func(context.CancelFunc) io.Reader { return bytes.NewReader(udf) }, "", iso9660.ErrUDFOnly},
		{"client disconnects", func(context.CancelFunc) io.Reader {
			return io.MultiReader(bytes.NewReader(img[:len(img)/2]), &errReader{io.ErrUnexpectedEOF})
		}, "", io.ErrUnexpectedEOF},
		{"context cancelled", func(cancel context.CancelFunc) io.Reader {
			return io.MultiReader(bytes.NewReader(img[:len(img)/2]), &cancelReader{cancel}, bytes.NewReader(img[len(img)/2:]))
		}, "", context.Canceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, dir := newStoreOn(t, be)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			iso, err := s.Upload(ctx, "x", c.body(cancel), c.want)
			if !errors.Is(err, c.is) {
				t.Fatalf("Upload = %+v, %v; want %v", iso, err, c.is)
			}
			if got := assertClean(t, dir); len(got) != 0 {
				t.Fatalf("files left: %v", got)
			}
			if list, _ := s.List(context.Background()); len(list) != 0 {
				t.Fatalf("listed: %+v", list)
			}
		})
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// cancelReader cancels the upload's context when the copy reaches it.
type cancelReader struct{ cancel context.CancelFunc }

func (r *cancelReader) Read([]byte) (int, error) { r.cancel(); return 0, io.EOF }

func TestUploadOnAFullDiskFailsCleanly(t *testing.T) {
	storetest.Run(t, testUploadOnAFullDiskFailsCleanly)
}

func testUploadOnAFullDiskFailsCleanly(t *testing.T, be storetest.Backend) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	data := t.TempDir()
	if out, err := isotest.RunCmd("mount", "-t", "tmpfs", "-o", "size=2m", "fleetboot-isostore-test", data); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := isotest.RunCmd("umount", data); err != nil {
			t.Errorf("umount %s: %v %s", data, err, out)
		}
	})
	s := openStore(t, data, backendDir(t, be))
	fx := makeFixture(t, isotest.TreeSpec{Files: map[string]int{"big.bin": 3 << 20}}, "-R")
	_, err := uploadFile(t, s, "big", fx.iso, "")
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("err = %v, want ErrNoSpace", err)
	}
	if got := assertClean(t, data); len(got) != 0 {
		t.Fatalf("files left: %v", got)
	}
	// Nothing is left holding the space: a small image fits afterwards.
	small := makeFixture(t, isotest.SmallTree(), "-R", "-no-pad")
	if _, err := uploadFile(t, s, "small", small.iso, ""); err != nil {
		t.Fatalf("small upload after a full disk: %v", err)
	}
	// A resumable upload announcing more than the free space is refused up front.
	if _, err := s.CreateUpload(context.Background(), "huge", 10<<20, ""); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("CreateUpload err = %v, want ErrNoSpace", err)
	}
}

func TestConcurrentUploadsOfSameAndDifferentContent(t *testing.T) {
	storetest.Run(t, testConcurrentUploadsOfSameAndDifferentContent)
}

func testConcurrentUploadsOfSameAndDifferentContent(t *testing.T, be storetest.Backend) {
	s, dir := newStoreOn(t, be)
	fx := makeFixture(t, isotest.SmallTree(), "-R", "-no-pad")
	base, err := os.ReadFile(fx.iso)
	if err != nil {
		t.Fatal(err)
	}
	// Five distinct images (the volume label differs) and five copies of the first.
	images := make([][]byte, 10)
	for i := range images {
		if i >= 5 {
			images[i] = images[0]
			continue
		}
		images[i] = bytes.Clone(base)
		copy(images[i][16*isoSector+40:], fmt.Sprintf("VARIANT_%d", i))
	}
	type result struct {
		iso *ISO
		err error
	}
	results := make(chan result, len(images))
	for i, img := range images {
		go func() {
			iso, err := s.Upload(context.Background(), fmt.Sprintf("iso-%d", i), &slowReader{r: bytes.NewReader(img), n: 4096}, "")
			results <- result{iso, err}
		}()
	}
	ids := map[string]bool{}
	existed := 0
	for range images {
		r := <-results
		if r.err != nil {
			t.Fatalf("upload: %v", r.err)
		}
		ids[r.iso.ID] = true
		if r.iso.Existed {
			existed++
		}
	}
	if len(ids) != 5 || existed != 5 {
		t.Fatalf("%d distinct ISOs, %d reported as existing; want 5 and 5", len(ids), existed)
	}
	list, _ := s.List(context.Background())
	if len(list) != 5 {
		t.Fatalf("%d listed, want 5", len(list))
	}
	if got := assertClean(t, dir); len(got) != 10 {
		t.Fatalf("files %v, want 5 images and 5 indexes", got)
	}
	for _, iso := range list {
		serveAll(t, s, iso.ID, fx.src)
	}
}

// slowReader returns at most n bytes per Read, so that concurrent uploads interleave.
type slowReader struct {
	r io.Reader
	n int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}

func TestResumableUploadSurvivesCutsAndRestarts(t *testing.T) {
	storetest.Run(t, testResumableUploadSurvivesCutsAndRestarts)
}

func testResumableUploadSurvivesCutsAndRestarts(t *testing.T, be storetest.Backend) {
	dir := backendDir(t, be)
	s := openStore(t, dir, dir)
	s.checkpointBytes = 8192 // several checkpoints per chunk
	fx := makeFixture(t, isotest.RichTree(), "-R")
	img, err := os.ReadFile(fx.iso)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, err := s.CreateUpload(ctx, "resumed", int64(len(img)), fx.sum)
	if err != nil {
		t.Fatal(err)
	}
	third := int64(len(img) / 3)
	off, err := s.AppendUpload(ctx, u.ID, 0, bytes.NewReader(img[:third]))
	if err != nil || off != third {
		t.Fatalf("append 1 = %d, %v", off, err)
	}
	if _, err := s.FinishUpload(ctx, u.ID); !errors.Is(err, ErrUploadIncomplete) {
		t.Fatalf("early finish: %v, want ErrUploadIncomplete", err)
	}
	if _, err := s.AppendUpload(ctx, u.ID, 0, bytes.NewReader(img)); !errors.Is(err, ErrOffsetMismatch) {
		t.Fatalf("stale offset: %v, want ErrOffsetMismatch", err)
	}
	// A chunk cut off mid-way (client gone) keeps what arrived.
	cutAt := third + 12345
	off, err = s.AppendUpload(ctx, u.ID, third, io.MultiReader(bytes.NewReader(img[third:cutAt]), &errReader{io.ErrUnexpectedEOF}))
	if !errors.Is(err, io.ErrUnexpectedEOF) || off != cutAt {
		t.Fatalf("cut chunk = %d, %v; want %d and the read error", off, err, cutAt)
	}
	// Restart the store: the offset and hash state come back from the database.
	s = openStore(t, dir, dir)
	if got, err := uploadOffset(ctx, s, u.ID); err != nil || got != cutAt {
		t.Fatalf("offset after restart = %d, %v; want %d", got, err, cutAt)
	}
	// Bytes beyond the announced size are refused (the announced part is kept).
	off, err = s.AppendUpload(ctx, u.ID, cutAt, io.MultiReader(bytes.NewReader(img[cutAt:]), strings.NewReader("extra")))
	if !errors.Is(err, ErrTooLarge) || off != int64(len(img)) {
		t.Fatalf("oversized chunk = %d, %v", off, err)
	}
	iso, err := s.FinishUpload(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if iso.SHA256 != fx.sum || iso.Name != "resumed" {
		t.Fatalf("iso = %+v", iso)
	}
	serveAll(t, s, iso.ID, fx.src)
	if _, err := uploadOffset(ctx, s, u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("finished upload still there: %v", err)
	}
	if parts, _ := os.ReadDir(filepath.Join(dir, "isos", "uploads")); len(parts) != 0 {
		t.Fatalf("upload data left: %v", parts)
	}
	assertClean(t, dir)
}

func TestResumableUploadOfUnknownSizeAndBadContent(t *testing.T) {
	storetest.Run(t, testResumableUploadOfUnknownSizeAndBadContent)
}

func testResumableUploadOfUnknownSizeAndBadContent(t *testing.T, be storetest.Backend) {
	s, dir := newStoreOn(t, be)
	s.checkpointBytes = 4096
	fx := makeFixture(t, isotest.SmallTree(), "-R")
	img, _ := os.ReadFile(fx.iso)
	ctx := context.Background()

	u, err := s.CreateUpload(ctx, "unknown size", -1, "")
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for off < int64(len(img)) {
		end := min(off+50_000, int64(len(img)))
		if off, err = s.AppendUpload(ctx, u.ID, off, bytes.NewReader(img[off:end])); err != nil {
			t.Fatal(err)
		}
	}
	iso, err := s.FinishUpload(ctx, u.ID)
	if err != nil || iso.SHA256 != fx.sum {
		t.Fatalf("finish = %+v, %v", iso, err)
	}

	// Wrong checksum: discarded at finish, nothing published.
	bad, _ := s.CreateUpload(ctx, "bad sum", int64(len(img)), strings.Repeat("a", 64))
	if _, err := s.AppendUpload(ctx, bad.ID, 0, bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishUpload(ctx, bad.ID); !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("err = %v, want ErrChecksumMismatch", err)
	}
	// Not an ISO: discarded too.
	junk, _ := s.CreateUpload(ctx, "junk", 100_000, "")
	if _, err := s.AppendUpload(ctx, junk.ID, 0, bytes.NewReader(make([]byte, 100_000))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FinishUpload(ctx, junk.ID); !errors.Is(err, ErrBadISO) {
		t.Fatalf("err = %v, want ErrBadISO", err)
	}
	for _, id := range []string{bad.ID, junk.ID} {
		if _, err := uploadOffset(ctx, s, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("upload %s still there: %v", id, err)
		}
	}
	if list, _ := s.List(ctx); len(list) != 1 {
		t.Fatalf("%d ISOs, want 1", len(list))
	}
	if parts, _ := os.ReadDir(filepath.Join(dir, "isos", "uploads")); len(parts) != 0 {
		t.Fatalf("upload data left: %v", parts)
	}
}

func TestConcurrentAppendsToOneUploadAreRefused(t *testing.T) {
	storetest.Run(t, testConcurrentAppendsToOneUploadAreRefused)
}

func testConcurrentAppendsToOneUploadAreRefused(t *testing.T, be storetest.Backend) {
	s, _ := newStoreOn(t, be)
	ctx := context.Background()
	u, err := s.CreateUpload(ctx, "x", -1, "")
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := s.AppendUpload(ctx, u.ID, 0, &blockingReader{started: started, release: block})
		done <- err
	}()
	<-started
	if _, err := s.AppendUpload(ctx, u.ID, 0, strings.NewReader("x")); !errors.Is(err, ErrUploadBusy) {
		t.Fatalf("second writer: %v, want ErrUploadBusy", err)
	}
	close(block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if off, _ := uploadOffset(ctx, s, u.ID); off != 3 {
		t.Fatalf("offset %d, want 3", off)
	}
}

type blockingReader struct {
	started, release chan struct{}
	done             bool
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	close(r.started)
	<-r.release
	r.done = true
	return copy(p, "abc"), nil
}

func TestExpireUploadsDiscardsAbandonedOnes(t *testing.T) {
	storetest.Run(t, testExpireUploadsDiscardsAbandonedOnes)
}

func testExpireUploadsDiscardsAbandonedOnes(t *testing.T, be storetest.Backend) {
	s, dir := newStoreOn(t, be)
	ctx := context.Background()
	old, _ := s.CreateUpload(ctx, "old", -1, "")
	if _, err := s.AppendUpload(ctx, old.ID, 0, strings.NewReader("some bytes")); err != nil {
		t.Fatal(err)
	}
	// The old upload was last touched an hour ago (set in the database, not slept for: with a
	// window of milliseconds a busy machine let "fresh" age past it too and expired both).
	if _, err := s.db.DB().ExecContext(ctx, `UPDATE iso_uploads SET updated_at_ns = ? WHERE id = ?`,
		time.Now().Add(-time.Hour).UnixNano(), old.ID); err != nil {
		t.Fatal(err)
	}
	fresh, _ := s.CreateUpload(ctx, "fresh", -1, "")
	n, err := s.ExpireUploads(ctx, 30*time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("ExpireUploads = %d, %v; want 1", n, err)
	}
	if _, err := uploadOffset(ctx, s, old.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old upload: %v", err)
	}
	if _, err := uploadOffset(ctx, s, fresh.ID); err != nil {
		t.Fatalf("fresh upload: %v", err)
	}
	parts, _ := os.ReadDir(filepath.Join(dir, "isos", "uploads"))
	if len(parts) != 1 || parts[0].Name() != fresh.ID {
		t.Fatalf("upload data: %v", parts)
	}
	if err := s.AbortUpload(ctx, fresh.ID); err != nil {
		t.Fatal(err)
	}
	if parts, _ := os.ReadDir(filepath.Join(dir, "isos", "uploads")); len(parts) != 0 {
		t.Fatalf("upload data after abort: %v", parts)
	}
}

func TestAddPathServesInPlaceAndNoticesChanges(t *testing.T) {
	fx := makeFixture(t, isotest.RichTree(), "-R")
	s, dir := newStoreRegisteringFrom(t, filepath.Dir(fx.iso))
	ctx := context.Background()
	if _, err := s.AddPath(ctx, "nas", "relative/path.iso"); !errors.Is(err, ErrBadPath) {
		t.Fatalf("relative path: %v", err)
	}
	iso, err := s.AddPath(ctx, "nas", fx.iso)
	if err != nil {
		t.Fatal(err)
	}
	if iso.SourcePath != fx.iso || iso.SHA256 != fx.sum {
		t.Fatalf("iso = %+v", iso)
	}
	if got := assertClean(t, dir); len(got) != 1 || got[0] != fx.sum+".idx" {
		t.Fatalf("files %v, want only the index (no copy)", got)
	}
	serveAll(t, s, "nas", fx.src)
	img, got, err := s.OpenImage(ctx, "nas")
	if err != nil || got.ID != iso.ID {
		t.Fatal(err)
	}
	img.Close()

	// The same content uploaded later is the path ISO.
	up, err := uploadFile(t, s, "upload", fx.iso, "")
	if err != nil || !up.Existed || up.ID != iso.ID {
		t.Fatalf("upload of the same content = %+v, %v", up, err)
	}

	// Touching the file on the NAS invalidates it.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(fx.iso, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenFile(ctx, "nas", "/casper/vmlinuz"); !errors.Is(err, ErrChanged) {
		t.Fatalf("OpenFile after change: %v, want ErrChanged", err)
	}
	if _, _, err := s.OpenImage(ctx, "nas"); !errors.Is(err, ErrChanged) {
		t.Fatalf("OpenImage after change: %v, want ErrChanged", err)
	}
	if err := s.Delete(ctx, "nas", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fx.iso); err != nil {
		t.Fatalf("Delete removed the source file: %v", err)
	}
	if got := assertClean(t, dir); len(got) != 0 {
		t.Fatalf("files after delete %v", got)
	}
}

func TestDeleteHonoursInUseAndKeepsOpenFilesWorking(t *testing.T) {
	storetest.Run(t, testDeleteHonoursInUseAndKeepsOpenFilesWorking)
}

func testDeleteHonoursInUseAndKeepsOpenFilesWorking(t *testing.T, be storetest.Backend) {
	s, dir := newStoreOn(t, be)
	fx := makeFixture(t, isotest.RichTree(), "-R")
	iso, err := uploadFile(t, s, "rich", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var asked string
	s.inUse = func(_ context.Context, id string) ([]string, error) { asked = id; return []string{"p1", "p2"}, nil }
	if err := s.Delete(ctx, "rich", false); !errors.Is(err, ErrInUse) || asked != iso.ID ||
		!strings.Contains(err.Error(), "in use by profiles p1, p2") {
		t.Fatalf("Delete = %v (asked %q), want ErrInUse naming the profiles", err, asked)
	}
	f, err := s.OpenFile(ctx, iso.ID, "/casper/initrd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.Delete(ctx, "rich", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, iso.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
	if _, err := s.OpenFile(ctx, iso.ID, "/casper/initrd"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenFile after delete: %v", err)
	}
	if got := assertClean(t, dir); len(got) != 0 {
		t.Fatalf("files after delete %v", got)
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, isotest.FileContent("casper/initrd", 150_000)) {
		t.Fatalf("open file after delete: %d bytes, %v", len(got), err)
	}
	if err := s.Delete(ctx, "rich", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestOpenCleansLeftoversAndRebuildsDamagedIndexes(t *testing.T) {
	storetest.Run(t, testOpenCleansLeftoversAndRebuildsDamagedIndexes)
}

func testOpenCleansLeftoversAndRebuildsDamagedIndexes(t *testing.T, be storetest.Backend) {
	dir := backendDir(t, be)
	s := openStore(t, dir, dir)
	fx := makeFixture(t, isotest.SmallTree(), "-R")
	iso, err := uploadFile(t, s, "keep", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	orphan := strings.Repeat("b", 64)
	for _, p := range []string{"tmp/upload-123.part", "tmp/index-9.idx", orphan + ".iso", orphan + ".idx", "uploads/" + strings.Repeat("c", 32)} {
		if err := os.WriteFile(filepath.Join(dir, "isos", p), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An image without a row is removed once it is older than any publish takes; on a shared
	// (PostgreSQL) catalog a young one may be another instance's publish in progress.
	old := time.Now().Add(-2 * sharedGrace)
	if err := os.Chtimes(filepath.Join(dir, "isos", orphan+".iso"), old, old); err != nil {
		t.Fatal(err)
	}
	young := strings.Repeat("d", 64) + ".iso"
	if err := os.WriteFile(filepath.Join(dir, "isos", young), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Damage the index: the next Store must notice (CRC) and rebuild it from the image.
	idx := filepath.Join(dir, "isos", iso.SHA256+".idx")
	b, _ := os.ReadFile(idx)
	b[len(b)/2] ^= 0xFF
	os.WriteFile(idx, b, 0o644)

	s = openStore(t, dir, dir)
	got := assertClean(t, dir)
	want := []string{iso.SHA256 + ".idx", iso.SHA256 + ".iso"}
	if be.Name == "postgres" {
		want = append(want, young)
		sort.Strings(want)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files after Open: %v, want %v", got, want)
	}
	if parts, _ := os.ReadDir(filepath.Join(dir, "isos", "uploads")); len(parts) != 0 {
		t.Fatalf("upload data without row survived: %v", parts)
	}
	serveAll(t, s, "keep", fx.src)
	if _, err := readIndexFile(idx); err != nil {
		t.Fatalf("index not rewritten: %v", err)
	}
	// A missing index is rebuilt as well.
	os.Remove(idx)
	s = openStore(t, dir, dir)
	serveAll(t, s, "keep", fx.src)
}

func TestLookupErrorsThroughTheStore(t *testing.T) { storetest.Run(t, testLookupErrorsThroughTheStore) }

func testLookupErrorsThroughTheStore(t *testing.T, be storetest.Backend) {
	s, _ := newStoreOn(t, be)
	fx := makeFixture(t, isotest.RichTree(), "-R")
	iso, err := uploadFile(t, s, "rich", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := map[string]error{
		"/nope":               ErrNotFound,
		"../../etc/passwd":    ErrBadPath,
		"/casper/\x00":        ErrBadPath,
		"/links/escape":       ErrNotFound,
		"/casper":             ErrIsDir,
		"/casper/vmlinuz/sub": ErrNotFound,
	}
	for p, want := range cases {
		if _, err := s.OpenFile(ctx, iso.ID, p); !errors.Is(err, want) {
			t.Errorf("OpenFile(%q) = %v, want %v", p, err, want)
		}
	}
	if _, err := s.OpenFile(ctx, "no such iso", "/README"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown ISO: %v", err)
	}
	f, err := s.OpenFile(ctx, iso.ID, "/links/to-file")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Entry().Path != "/casper/vmlinuz" || f.ETag() != ETag(iso.SHA256, "/casper/vmlinuz") || f.ModTime().IsZero() {
		t.Fatalf("file %+v etag %s", f.Entry(), f.ETag())
	}
}

func TestResumableUploadThatLostDataStartsOver(t *testing.T) {
	storetest.Run(t, testResumableUploadThatLostDataStartsOver)
}

func testResumableUploadThatLostDataStartsOver(t *testing.T, be storetest.Backend) {
	s, dir := newStoreOn(t, be)
	ctx := context.Background()
	u, _ := s.CreateUpload(ctx, "x", -1, "")
	if _, err := s.AppendUpload(ctx, u.ID, 0, strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	// Someone truncates the data behind the store's back: resuming would hash a hole.
	if err := os.Truncate(filepath.Join(dir, "isos", "uploads", u.ID), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendUpload(ctx, u.ID, 10, strings.NewReader("more")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("append after data loss: %v, want ErrNotFound", err)
	}
	if _, err := uploadOffset(ctx, s, u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("upload still listed: %v", err)
	}
}

// isoSector is the ISO 9660 logical sector size, for tests that patch images by hand.
const isoSector = 2048

// uploadOffset is where a client resumes upload id: UploadStatus's Offset.
func uploadOffset(ctx context.Context, s *Store, id string) (int64, error) {
	u, err := s.UploadStatus(ctx, id)
	if err != nil {
		return 0, err
	}
	return u.Offset, nil
}

// Two instances on one PostgreSQL catalog, each with its own data directory: one starting up
// leaves the other's resumable upload alone (its data is on the other instance), and an ISO
// deleted through one is gone for the other at once (no stale cached row).
func TestSharedCatalogAcrossInstances(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	open := func(dataDir string) *Store {
		db, err := store.OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := Open(ctx, Config{DataDir: dataDir, DB: db})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := open(t.TempDir())
	up, err := a.CreateUpload(ctx, "half", 1<<20, "")
	if err != nil {
		t.Fatal(err)
	}
	b := open(t.TempDir())
	if _, err := a.AppendUpload(ctx, up.ID, 0, strings.NewReader("x")); err != nil {
		t.Fatalf("instance a's upload after instance b started: %v", err)
	}
	fx := makeFixture(t, isotest.SmallTree(), "-R")
	iso, err := uploadFile(t, a, "small", fx.iso, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, iso.ID); err != nil {
		t.Fatalf("instance b does not see a's ISO: %v", err)
	}
	if err := a.Delete(ctx, iso.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, iso.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("instance b still has the ISO a deleted: %v", err)
	}
}
