package isostore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fleetboot/fleetboot/internal/iso9660"
	"github.com/fleetboot/fleetboot/internal/store"
)

// copyBufSize is the size of each of the three buffers an upload streams through: memory stays flat whatever the
// image size.
const copyBufSize = 1 << 20

// Upload stores an image streamed in body under name. The bytes go to a temporary file in
// the data directory (same file system, so publishing is a rename), hashed in the same pass,
// fsync'd, indexed, then published: index and image renamed into place, then the row
// committed. Until the row exists nothing is visible, and on any failure — body read error
// (client gone), ctx cancelled, disk full, checksum mismatch, not an ISO — nothing is left
// behind.
//
// wantSHA256 (hex, optional) must match the content or the upload fails with
// ErrChecksumMismatch. If the same content is already stored, under whatever name, that ISO
// is returned with Existed set and nothing new is kept: uploading the same file under the
// same name again succeeds, and under another name returns the ISO under its one name — names
// are not aliases (an alias would be a second name for profiles to refer to, and deleting
// "one of them" would delete both). A name used by other content fails with ErrNameTaken:
// early, before the body is read, when wantSHA256 names other content; otherwise once the
// body is hashed.
// Malformed images fail with ErrBadISO (UDF-only ones also match ErrUDFOnly); a full disk
// with ErrNoSpace.
func (s *Store) Upload(ctx context.Context, name string, body io.Reader, wantSHA256 string) (*ISO, error) {
	want, err := s.checkNew(ctx, name, wantSHA256, -1)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	f, err := os.CreateTemp(s.tmpDir, "upload-*.part")
	if err != nil {
		return nil, fmt.Errorf("upload %q: %w", name, noSpace(err))
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once published (renamed away)
	h := sha256.New()
	n, err := copyUpload(ctx, f, h, body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("upload %q: %w", name, noSpace(err))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		return nil, fmt.Errorf("upload %q: %w: got %s, want %s", name, ErrChecksumMismatch, sum, want)
	}
	iso, err := s.ingest(ctx, ingestRequest{name: name, path: tmp, owned: true, sum: sum, size: n})
	if err != nil {
		return nil, fmt.Errorf("upload %q: %w", name, err)
	}
	s.log.Info("iso uploaded", "iso", iso.ID, "name", iso.Name, "bytes", n, "existed", iso.Existed, "dur", time.Since(start))
	return iso, nil
}

// checkNew validates the name and expected checksum of a new image of size bytes (-1:
// unknown) and fails early when the name is taken by content that cannot be this image: a
// checksum or a size that differs. The same image under its own name again is allowed (the
// upload then answers with the stored ISO); whether it is the same is otherwise known only
// once it is hashed, and ingest checks the name again then.
func (s *Store) checkNew(ctx context.Context, name, wantSHA256 string, size int64) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	want, err := normSHA256(wantSHA256)
	if err != nil {
		return "", err
	}
	if other, err := s.Get(ctx, name); err == nil &&
		((want != "" && other.SHA256 != want) || (size >= 0 && other.Size != size)) {
		return "", fmt.Errorf("%q: %w", name, ErrNameTaken)
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	return want, nil
}

// copyUpload copies body to f and into h. Reading the socket runs beside writing and hashing
// (two goroutines, three buffers in rotation): done one after the other they capped uploads
// at ~0.6× of dd to the same disk (scripts/bench-http.sh). Memory stays 3 × copyBufSize. It
// returns the bytes written; on error, the bytes written and hashed so far (a body error
// such as io.ErrUnexpectedEOF stays an error).
func copyUpload(ctx context.Context, f *os.File, h hash.Hash, body io.Reader) (int64, error) {
	type chunk struct {
		buf []byte
		n   int
	}
	const nbuf = 3
	free := make(chan []byte, nbuf)
	for i := 0; i < nbuf; i++ {
		free <- make([]byte, copyBufSize)
	}
	full := make(chan chunk, nbuf)
	var written int64
	var failed atomic.Bool // the writer hit an error: stop reading the body (e.g. disk full)
	writeErr := make(chan error, 1)
	go func() {
		var err error
		for c := range full {
			if err == nil {
				var w int
				w, err = f.Write(c.buf[:c.n])
				h.Write(c.buf[:w])
				written += int64(w)
				if err != nil {
					err = fmt.Errorf("write upload: %w", noSpace(err))
					failed.Store(true)
				}
			}
			free <- c.buf
		}
		writeErr <- err
	}()

	var rerr error
	for rerr == nil && !failed.Load() {
		if err := ctx.Err(); err != nil {
			rerr = fmt.Errorf("upload cancelled: %w", err)
			break
		}
		buf := <-free
		// One Read per buffer, not a full one: what arrived reaches the disk at once even when
		// the client stalls (a resumable upload keeps what it wrote).
		m, err := body.Read(buf)
		if m > 0 {
			full <- chunk{buf, m}
		} else {
			free <- buf
		}
		switch {
		case err == io.EOF:
			rerr = io.EOF
		case err != nil:
			rerr = fmt.Errorf("read upload body: %w", err)
		}
	}
	close(full)
	werr := <-writeErr // written is final once the writer has reported
	if werr != nil {
		return written, werr
	}
	if rerr != io.EOF {
		return written, rerr
	}
	return written, nil
}

// ingestRequest is an image file ready to be indexed and published.
type ingestRequest struct {
	name        string
	path        string // the image file
	owned       bool   // path is ours (temporary or upload data) and moves to <sha256>.iso
	sum         string
	size        int64
	sourceMtime int64  // AddPath: modification time of path
	uploadID    string // FinishUpload: the upload row to delete with the publish
}

// ingest indexes an image and publishes it, or returns the stored ISO with the same content.
// crashPoint, when set (by the kill tests only), is called at each step of a publish: the test
// kills the process there to prove that no step leaves partial state or loses an upload.
var crashPoint func(step string)

func atStep(step string) {
	if crashPoint != nil {
		crashPoint(step)
	}
}

func (s *Store) ingest(ctx context.Context, r ingestRequest) (*ISO, error) {
	if iso, ok, err := s.existing(ctx, r); ok || err != nil {
		return iso, err
	}
	img, err := os.Open(r.path)
	if err != nil {
		return nil, err
	}
	ix, err := iso9660.BuildIndex(img, r.size)
	img.Close()
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	idxTmp, err := s.writeIndexTemp(ix)
	if err != nil {
		return nil, err
	}
	defer os.Remove(idxTmp)
	atStep("index-written")

	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	if iso, ok, err := s.existing(ctx, r); ok || err != nil {
		return iso, err
	}
	if _, err := s.Get(ctx, r.name); err == nil {
		return nil, fmt.Errorf("%q: %w", r.name, ErrNameTaken)
	}
	iso := &ISO{
		ID: r.sum[:16], Name: r.name, SHA256: r.sum, Size: r.size, Label: ix.Label,
		FileCount: ix.FileCount(), Names: ix.Names, UploadedAt: time.Now().UTC(),
	}
	if !r.owned {
		iso.SourcePath, iso.sourceMtime = r.path, r.sourceMtime
	}
	idxPath := s.indexPath(r.sum)
	if err := os.Rename(idxTmp, idxPath); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		os.Remove(idxPath)
		return nil, fmt.Errorf("publish: %w", err)
	}
	atStep("index-published")
	if r.owned {
		if err := s.images.Put(ctx, r.sum, r.path); err != nil {
			os.Remove(idxPath)
			return nil, fmt.Errorf("publish: %w", noSpace(err))
		}
	}
	atStep("image-stored")
	if r.owned {
		// Hashed on the way in: no need to hash it again at its first open.
		if info, err := s.images.Stat(ctx, r.sum); err == nil && info.Size == r.size {
			s.ver.verified(r.sum, info.Version)
		}
	}
	undo := func() {
		os.Remove(idxPath)
		if r.owned {
			s.images.Delete(context.WithoutCancel(ctx), r.sum)
		}
	}
	if err := s.insert(ctx, iso, r.uploadID); err != nil {
		if store.IsUniqueViolation(err) {
			// Another instance sharing the catalog published the same content (or took the
			// name) between the check above and this insert. Its image is the one just
			// renamed over (same bytes, same key): keep it, answer with its row.
			if other, gerr := s.Get(ctx, r.sum); gerr == nil {
				other.Existed = true
				if r.owned {
					os.Remove(r.path)
				}
				return other, nil
			}
			undo()
			return nil, fmt.Errorf("%q: %w", r.name, ErrNameTaken)
		}
		undo()
		return nil, fmt.Errorf("publish: %w", err)
	}
	atStep("row-inserted")
	s.cache.put(r.sum, ix)
	return iso, nil
}

// existing returns the stored ISO with r's content, if any, discarding r's data.
func (s *Store) existing(ctx context.Context, r ingestRequest) (*ISO, bool, error) {
	iso, err := s.Get(ctx, r.sum)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if r.owned {
		os.Remove(r.path)
	}
	if r.uploadID != "" {
		if _, err := s.db.DB().ExecContext(ctx, `DELETE FROM iso_uploads WHERE id = ?`, r.uploadID); err != nil {
			return nil, false, err
		}
	}
	iso.Existed = true
	return iso, true, nil
}

func (s *Store) insert(ctx context.Context, iso *ISO, uploadID string) error {
	tx, err := s.db.DB().BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var src, mtime any
	if iso.SourcePath != "" {
		src, mtime = iso.SourcePath, iso.sourceMtime
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO isos (id, name, sha256, size, label, file_count, names,
		uploaded_at, source_path, source_mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		iso.ID, iso.Name, iso.SHA256, iso.Size, iso.Label, iso.FileCount, string(iso.Names),
		iso.UploadedAt.Format(timeFormat), src, mtime); err != nil {
		return err
	}
	if uploadID != "" {
		if _, err := tx.ExecContext(ctx, `DELETE FROM iso_uploads WHERE id = ?`, uploadID); err != nil {
			return err
		}
	}
	defer s.forgetMeta()
	return tx.Commit()
}

// AddPath registers an image that already lives on disk (e.g. on a NAS mount) at the
// absolute path p, without copying it: it is hashed once and indexed, and served from p.
// If the file is later replaced or modified (size or modification time differ), serving it
// fails with ErrChanged until it is deleted and added again. Deleting it never removes p.
// Only files below one of Config.RegisterDirs are accepted, symlinks resolved (ErrNotAllowed,
// ErrRegisterOff without any); the image is recorded under its resolved path.
func (s *Store) AddPath(ctx context.Context, name, p string) (*ISO, error) {
	if _, err := s.checkNew(ctx, name, "", -1); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return nil, fmt.Errorf("add %q: %w: %q is not a clean absolute path", name, ErrBadPath, p)
	}
	f, p, err := s.openRegistered(p)
	if err != nil {
		return nil, fmt.Errorf("add %q: %w", name, err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("add %q: %w", name, err)
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("add %q: %w: %s is not a regular file", name, ErrBadISO, p)
	}
	h := sha256.New()
	buf := make([]byte, copyBufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("add %q: %w", name, err)
		}
		m, err := f.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("add %q: read %s: %w", name, p, err)
		}
	}
	after, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("add %q: %w", name, err)
	}
	if n != before.Size() || after.Size() != n || !after.ModTime().Equal(before.ModTime()) {
		return nil, fmt.Errorf("add %q: %s changed while it was read: %w", name, p, ErrChanged)
	}
	iso, err := s.ingest(ctx, ingestRequest{
		name: name, path: p, sum: hex.EncodeToString(h.Sum(nil)), size: n,
		sourceMtime: after.ModTime().UnixNano(),
	})
	if err != nil {
		return nil, fmt.Errorf("add %q: %w", name, err)
	}
	if !iso.Existed {
		s.ver.verified(iso.SHA256, fileInfo(after).Version)
	}
	s.log.Info("iso added by path", "iso", iso.ID, "name", iso.Name, "path", p, "existed", iso.Existed)
	return iso, nil
}

// Upload is a resumable upload in progress.
type Upload struct {
	ID         string
	Name       string
	Size       int64 // announced size, -1 if unknown
	Offset     int64 // bytes received and durable
	WantSHA256 string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// CreateUpload starts a resumable upload of size bytes (-1: unknown until FinishUpload).
// Data arrives with AppendUpload; FinishUpload verifies, indexes and publishes it like
// Upload. A size larger than the free space fails at once with ErrNoSpace; beyond
// Config.MaxPendingUploads unfinished uploads it fails with ErrTooManyUploads.
func (s *Store) CreateUpload(ctx context.Context, name string, size int64, wantSHA256 string) (*Upload, error) {
	want, err := s.checkNew(ctx, name, wantSHA256, size)
	if err != nil {
		return nil, err
	}
	if size < -1 {
		return nil, fmt.Errorf("create upload %q: %w: size %d", name, ErrTooLarge, size)
	}
	if size > 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(s.uploadDir, &st); err == nil && uint64(size) > st.Bavail*uint64(st.Bsize) {
			return nil, fmt.Errorf("create upload %q: %w: %d bytes wanted, %d free", name, ErrNoSpace, size, st.Bavail*uint64(st.Bsize))
		}
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if s.maxPending > 0 {
		var n int
		if err := s.db.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM iso_uploads`).Scan(&n); err != nil {
			return nil, fmt.Errorf("create upload %q: %w", name, err)
		}
		if n >= s.maxPending {
			return nil, fmt.Errorf("create upload %q: %w: %d are open, the limit is %d: finish or abort one (DELETE /api/v1/uploads/{id}), "+
				"or wait until idle ones expire", name, ErrTooManyUploads, n, s.maxPending)
		}
	}
	var rb [16]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, err
	}
	u := &Upload{ID: hex.EncodeToString(rb[:]), Name: name, Size: size, WantSHA256: want,
		CreatedAt: time.Now().UTC()}
	u.UpdatedAt = u.CreatedAt
	f, err := os.OpenFile(s.partPath(u.ID), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create upload %q: %w", name, noSpace(err))
	}
	f.Close()
	state, _ := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	if _, err := s.db.DB().ExecContext(ctx, `INSERT INTO iso_uploads (id, name, size, want_sha256, "offset",
		hash_state, created_at, updated_at_ns) VALUES (?, ?, ?, ?, 0, ?, ?, ?)`,
		u.ID, name, size, want, state, u.CreatedAt.Format(timeFormat), u.CreatedAt.UnixNano()); err != nil {
		os.Remove(s.partPath(u.ID))
		return nil, fmt.Errorf("create upload %q: %w", name, err)
	}
	s.log.Info("upload created", "upload", u.ID, "name", name, "bytes", size)
	return u, nil
}

func (s *Store) partPath(id string) string { return filepath.Join(s.uploadDir, id) }

// uploadRow is an iso_uploads row.
type uploadRow struct {
	Upload
	state []byte // sha256 state after Offset bytes (encoding.BinaryMarshaler form)
}

func (s *Store) loadUpload(ctx context.Context, id string) (*uploadRow, error) {
	if !isHex(id, 32) {
		return nil, fmt.Errorf("upload %q: %w", id, ErrNotFound)
	}
	var u uploadRow
	var created string
	var updated int64
	err := s.db.DB().QueryRowContext(ctx, `SELECT id, name, size, want_sha256, "offset", hash_state,
		created_at, updated_at_ns FROM iso_uploads WHERE id = ?`, id).Scan(
		&u.ID, &u.Name, &u.Size, &u.WantSHA256, &u.Offset, &u.state, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("upload %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	u.CreatedAt, _ = time.Parse(timeFormat, created)
	u.UpdatedAt = time.Unix(0, updated).UTC()
	return &u, nil
}

// UploadStatus returns a resumable upload's state (ErrNotFound once finished or expired).
func (s *Store) UploadStatus(ctx context.Context, id string) (*Upload, error) {
	u, err := s.loadUpload(ctx, id)
	if err != nil {
		return nil, err
	}
	return &u.Upload, nil
}

// claim marks an upload busy so that two requests never write it at once.
func (s *Store) claim(id string) (release func(), err error) {
	s.busyMu.Lock()
	defer s.busyMu.Unlock()
	if s.busy[id] {
		return nil, fmt.Errorf("upload %s: %w", id, ErrUploadBusy)
	}
	s.busy[id] = true
	return func() {
		s.busyMu.Lock()
		delete(s.busy, id)
		s.busyMu.Unlock()
	}, nil
}

// AppendUpload adds the bytes of chunk to a resumable upload at offset, which must equal the
// upload's current offset (else ErrOffsetMismatch). Progress is made durable (data fsync'd,
// then offset and hash state saved) every 64 MiB and when the chunk ends, also when it ends
// with an error: a chunk cut off by a disconnect keeps what arrived, and the client resumes
// from the returned offset. Bytes beyond an announced size fail with ErrTooLarge.
func (s *Store) AppendUpload(ctx context.Context, id string, offset int64, chunk io.Reader) (int64, error) {
	release, err := s.claim(id)
	if err != nil {
		return 0, err
	}
	defer release()
	u, err := s.loadUpload(ctx, id)
	if err != nil {
		return 0, err
	}
	if offset != u.Offset {
		return u.Offset, fmt.Errorf("upload %s: %w: got %d, stored %d", id, ErrOffsetMismatch, offset, u.Offset)
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(u.state); err != nil {
		return u.Offset, fmt.Errorf("upload %s: hash state: %w", id, err)
	}
	f, err := os.OpenFile(s.partPath(id), os.O_WRONLY, 0)
	if err != nil {
		return u.Offset, fmt.Errorf("upload %s: %w", id, err)
	}
	defer f.Close()
	if err := s.checkPart(ctx, f, u); err != nil {
		return 0, err
	}
	// Bytes past the saved offset (written before a crash, never checkpointed) are not in
	// the hash state: drop them, the client sends them again.
	if err := f.Truncate(u.Offset); err != nil {
		return u.Offset, fmt.Errorf("upload %s: %w", id, err)
	}
	if _, err := f.Seek(u.Offset, io.SeekStart); err != nil {
		return u.Offset, fmt.Errorf("upload %s: %w", id, err)
	}
	cur := u.Offset
	checkpoint := func() error {
		if err := f.Sync(); err != nil {
			return err
		}
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return err
		}
		// Not ctx: progress must be saved even when the request was cancelled.
		if _, err := s.db.DB().ExecContext(context.WithoutCancel(ctx), `UPDATE iso_uploads SET "offset" = ?, hash_state = ?,
			updated_at_ns = ? WHERE id = ?`, cur, state, time.Now().UnixNano(), id); err != nil {
			return err
		}
		u.Offset = cur
		return nil
	}
	for {
		limit := s.checkpointBytes
		if u.Size >= 0 {
			limit = min(limit, u.Size-cur)
		}
		n, cerr := copyUpload(ctx, f, h, io.LimitReader(chunk, limit))
		cur += n
		if cerr == nil && n == limit && u.Size >= 0 && cur == u.Size {
			// The announced size is reached: one more byte in the chunk is too many.
			var one [1]byte
			if m, _ := io.ReadFull(chunk, one[:]); m > 0 {
				cerr = fmt.Errorf("%w: more than the announced %d bytes", ErrTooLarge, u.Size)
			}
		}
		if n > 0 || cerr != nil {
			if err := checkpoint(); err != nil {
				return u.Offset, fmt.Errorf("upload %s: save progress: %w", id, noSpace(err))
			}
		}
		if cerr != nil {
			return u.Offset, fmt.Errorf("upload %s: %w", id, cerr)
		}
		if n < limit || limit == 0 {
			return u.Offset, nil // the chunk ended
		}
	}
}

// checkPart makes sure the upload's data holds at least the bytes its row vouches for
// (fsync precedes every row update, so only outside interference makes it shorter). An
// upload that lost data cannot be resumed: it is discarded and reported as not found, so
// that the client starts over.
func (s *Store) checkPart(ctx context.Context, f *os.File, u *uploadRow) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("upload %s: %w", u.ID, err)
	}
	if st.Size() < u.Offset {
		s.discardUpload(ctx, u.ID)
		return fmt.Errorf("upload %s: data lost (%d of %d bytes on disk), start over: %w", u.ID, st.Size(), u.Offset, ErrNotFound)
	}
	return nil
}

// FinishUpload completes a resumable upload: the hash is finished from the saved state (no
// re-read of the data), checked against the expected checksum, and the data indexed and
// published as Upload does. An upload with fewer bytes than announced fails with
// ErrUploadIncomplete and stays resumable; one that fails the checksum or is not a usable
// ISO is discarded (its data cannot be repaired by resuming).
func (s *Store) FinishUpload(ctx context.Context, id string) (*ISO, error) {
	release, err := s.claim(id)
	if err != nil {
		return nil, err
	}
	defer release()
	u, err := s.loadUpload(ctx, id)
	if err != nil {
		return nil, err
	}
	if u.Size >= 0 && u.Offset != u.Size {
		return nil, fmt.Errorf("upload %s: %w: %d of %d bytes", id, ErrUploadIncomplete, u.Offset, u.Size)
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(u.state); err != nil {
		return nil, fmt.Errorf("upload %s: hash state: %w", id, err)
	}
	part := s.partPath(id)
	f, err := os.OpenFile(part, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	err = s.checkPart(ctx, f, u)
	if err == nil {
		err = f.Truncate(u.Offset)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if u.WantSHA256 != "" && sum != u.WantSHA256 {
		s.discardUpload(ctx, id)
		return nil, fmt.Errorf("upload %s: %w: got %s, want %s", id, ErrChecksumMismatch, sum, u.WantSHA256)
	}
	iso, err := s.ingest(ctx, ingestRequest{name: u.Name, path: part, owned: true, sum: sum, size: u.Offset, uploadID: id})
	if err != nil {
		if errors.Is(err, ErrBadISO) {
			s.discardUpload(ctx, id)
		}
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	s.log.Info("iso uploaded (resumable)", "iso", iso.ID, "name", iso.Name, "bytes", iso.Size, "existed", iso.Existed)
	return iso, nil
}

// AbortUpload discards a resumable upload.
func (s *Store) AbortUpload(ctx context.Context, id string) error {
	release, err := s.claim(id)
	if err != nil {
		return err
	}
	defer release()
	if _, err := s.loadUpload(ctx, id); err != nil {
		return err
	}
	return s.discardUpload(ctx, id)
}

func (s *Store) discardUpload(ctx context.Context, id string) error {
	if _, err := s.db.DB().ExecContext(context.WithoutCancel(ctx), `DELETE FROM iso_uploads WHERE id = ?`, id); err != nil {
		return fmt.Errorf("discard upload %s: %w", id, err)
	}
	if err := os.Remove(s.partPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("discard upload %s: %w", id, err)
	}
	return nil
}

// ExpireUploads discards resumable uploads that received no data for olderThan and returns
// how many. Uploads being written right now are left alone.
func (s *Store) ExpireUploads(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan).UnixNano()
	rows, err := s.db.DB().QueryContext(ctx, `SELECT id FROM iso_uploads WHERE updated_at_ns < ?`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("expire uploads: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("expire uploads: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("expire uploads: %w", err)
	}
	n := 0
	for _, id := range ids {
		release, err := s.claim(id)
		if err != nil {
			continue // busy: not abandoned after all
		}
		err = s.discardUpload(ctx, id)
		release()
		if err != nil {
			return n, fmt.Errorf("expire uploads: %w", err)
		}
		s.log.Info("abandoned upload expired", "upload", id)
		n++
	}
	return n, nil
}
