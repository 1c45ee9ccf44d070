package isostore

import (
	"container/list"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fleetboot/fleetboot/internal/iso9660"
	"github.com/fleetboot/fleetboot/internal/store"
)

// Store is the ISO catalog of a data directory:
//
//	<data>/isos/<sha256>.iso    uploaded images, content-addressed (the default ImageStore;
//	                            --images DIR puts them in DIR, shared by every instance)
//	<data>/isos/<sha256>.idx    persisted Index of every image (also of images added by path)
//	<data>/isos/verified/<sha256>  the image version this instance checked against the catalog's SHA-256
//	<data>/isos/tmp/            one-shot uploads and index files being written (emptied by Open)
//	<data>/isos/uploads/<id>    resumable uploads in progress
//
// plus the tables isos and iso_uploads in the shared database. An image becomes visible only
// when its row is committed, after the image and its index were fsync'd and renamed into
// place; a crash at any point leaves at worst unreferenced files, which Open removes. One
// Store per data directory (the server's data-dir lock guarantees it).
//
// The bytes of uploaded images live in an ImageStore (Config.Images); uploads are staged and
// indexes kept in the data directory whatever the ImageStore is.
type Store struct {
	inUse        func(ctx context.Context, id string) ([]string, error)
	registerDirs []registerDir
	maxPending   int
	createMu     sync.Mutex // serialises CreateUpload's count and insert (MaxPendingUploads)

	dir, tmpDir, uploadDir string
	images                 ImageStore
	db                     *store.Store
	log                    *slog.Logger
	cache                  *indexCache

	publishMu sync.Mutex // serialises publish and delete: dedupe and name checks, renames, row

	busyMu sync.Mutex
	busy   map[string]bool // resumable uploads being appended to or finished

	// checkpointBytes is how often a long AppendUpload makes its progress durable.
	checkpointBytes int64

	// metaMu guards meta, the ISO rows by id, name and sha256. Every file request looks its ISO
	// up; asking SQLite each time cost half the CPU of a 64 KiB Range request (benchmark in
	// scripts/bench-http.sh). Any write to the isos table drops the whole map.
	metaMu  sync.RWMutex
	meta    map[string]*ISO
	metaGen uint64 // bumped by forgetMeta, so a lookup racing a write does not cache a stale row

	// fds keeps descriptors of uploaded images open between file requests (openPooled).
	fds fdPools
	// ver remembers which image versions hash to their catalog SHA-256 (verify.go).
	ver *verifier
	// missingLogged holds the images (sha256 → where) whose absence was logged: missing logs
	// it once, not at every request and status check, until the image is found there again.
	missingLogged sync.Map
}

// ISO is the metadata of one stored image.
type ISO struct {
	ID         string             // first 16 hex digits of SHA256; stable, used in URLs
	Name       string             // unique, chosen by the user
	SHA256     string             // lower-case hex
	Size       int64              // bytes
	Label      string             // volume label
	FileCount  int                // regular files in the image
	Names      iso9660.NameSource // which naming layer the index uses
	UploadedAt time.Time
	// SourcePath is the absolute path of an image registered with AddPath (served in place,
	// never copied or deleted); empty for uploaded images.
	SourcePath string
	// Detected is the distribution detection result (JSON), empty until detection runs.
	Detected string
	// Existed is set by Upload, FinishUpload and AddPath when the same content was already
	// stored: the returned ISO is the existing one, under its existing name.
	Existed bool

	sourceMtime int64 // unix nanoseconds of SourcePath when it was indexed
}

// schema of the isos component, per backend; each list is append-only.
var schema = store.Schema{SQLite: migrations, Postgres: postgresMigrations}

// migrations of the isos component in SQLite; append only.
var migrations = []string{
	`CREATE TABLE isos (
		id              TEXT PRIMARY KEY,
		name            TEXT NOT NULL UNIQUE,
		sha256          TEXT NOT NULL UNIQUE,
		size            INTEGER NOT NULL,
		label           TEXT NOT NULL,
		file_count      INTEGER NOT NULL,
		names           TEXT NOT NULL,
		uploaded_at     TEXT NOT NULL,
		source_path     TEXT,
		source_mtime_ns INTEGER,
		detected        TEXT
	)`,
	`CREATE TABLE iso_uploads (
		id            TEXT PRIMARY KEY,
		name          TEXT NOT NULL,
		size          INTEGER NOT NULL,
		want_sha256   TEXT NOT NULL,
		offset        INTEGER NOT NULL,
		hash_state    BLOB NOT NULL,
		created_at    TEXT NOT NULL,
		updated_at_ns INTEGER NOT NULL
	)`,
}

// postgresMigrations is the same schema for PostgreSQL ("offset" is a reserved word there;
// the queries quote it on both backends).
var postgresMigrations = []string{
	`CREATE TABLE isos (
		id              TEXT PRIMARY KEY,
		name            TEXT NOT NULL UNIQUE,
		sha256          TEXT NOT NULL UNIQUE,
		size            BIGINT NOT NULL,
		label           TEXT NOT NULL,
		file_count      INTEGER NOT NULL,
		names           TEXT NOT NULL,
		uploaded_at     TEXT NOT NULL,
		source_path     TEXT,
		source_mtime_ns BIGINT,
		detected        TEXT
	);
	CREATE TABLE iso_uploads (
		id            TEXT PRIMARY KEY,
		name          TEXT NOT NULL,
		size          BIGINT NOT NULL,
		want_sha256   TEXT NOT NULL,
		"offset"      BIGINT NOT NULL,
		hash_state    BYTEA NOT NULL,
		created_at    TEXT NOT NULL,
		updated_at_ns BIGINT NOT NULL
	);`,
}

const timeFormat = "2006-01-02T15:04:05.000000000Z"

// Config is what Open needs.
type Config struct {
	// DataDir is the data directory; the store keeps indexes, staged and resumable uploads
	// under DataDir/isos.
	DataDir string
	// DB is the shared database (tables isos and iso_uploads).
	DB *store.Store
	// Images holds the bytes of uploaded images; nil means DirImages in ImagesDir.
	Images ImageStore
	// ImagesDir is the directory of uploaded images when Images is nil: "" means DataDir/isos.
	// Instances sharing a PostgreSQL catalog give it a directory they all mount.
	ImagesDir string
	// InUse, when set, names what still references an ISO (by ID), e.g. its boot profiles;
	// Delete refuses with an *InUseError (ErrInUse) while there is anything, unless forced.
	// Nil means never in use.
	InUse func(ctx context.Context, id string) ([]string, error)
	// RegisterDirs are the directories AddPath may register images from (below them, after
	// every symlink is resolved). None: AddPath refuses every path (ErrRegisterOff).
	RegisterDirs []string
	// MaxPendingUploads caps the unfinished resumable uploads (each holds a partial file and a
	// row until it is finished, aborted or expires); CreateUpload beyond it fails with
	// ErrTooManyUploads. Zero: no cap.
	MaxPendingUploads int
	Logger            *slog.Logger // nil: discard
}

// Open prepares the ISO store under DataDir/isos, applies its database migrations and
// removes what an interrupted run left behind: temporary files, resumable-upload data
// without a row (and rows without data), and images or indexes no row refers to.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	regDirs, err := resolveRegisterDirs(cfg.RegisterDirs)
	if err != nil {
		return nil, fmt.Errorf("open iso store: %w", err)
	}
	dir := filepath.Join(cfg.DataDir, "isos")
	images := cfg.Images
	if images == nil {
		imagesDir := cfg.ImagesDir
		if imagesDir == "" {
			imagesDir = dir
		}
		if err := os.MkdirAll(imagesDir, 0o750); err != nil {
			return nil, fmt.Errorf("open iso store: image directory: %w", err)
		}
		images = DirImages{Dir: imagesDir}
	}
	s := &Store{
		inUse:           cfg.InUse,
		registerDirs:    regDirs,
		maxPending:      cfg.MaxPendingUploads,
		dir:             dir,
		tmpDir:          filepath.Join(dir, "tmp"),
		uploadDir:       filepath.Join(dir, "uploads"),
		images:          images,
		db:              cfg.DB,
		log:             log,
		cache:           newIndexCache(16),
		busy:            map[string]bool{},
		checkpointBytes: 64 << 20,
		ver:             newVerifier(filepath.Join(dir, "verified")),
	}
	for _, d := range []string{dir, s.tmpDir, s.uploadDir, s.ver.dir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("open iso store: %w", err)
		}
	}
	if err := s.db.Apply(ctx, "isos", schema); err != nil {
		return nil, fmt.Errorf("open iso store: %w", err)
	}
	if err := s.cleanup(ctx); err != nil {
		return nil, fmt.Errorf("open iso store: cleanup: %w", err)
	}
	return s, nil
}

// cleanup removes leftovers of interrupted uploads, publishes and deletes.
func (s *Store) cleanup(ctx context.Context) error {
	tmp, err := os.ReadDir(s.tmpDir)
	if err != nil {
		return err
	}
	for _, e := range tmp {
		s.removeLogged(filepath.Join(s.tmpDir, e.Name()), "stale temporary file")
	}

	uploads, err := s.stringSet(ctx, `SELECT id FROM iso_uploads`)
	if err != nil {
		return err
	}
	parts, err := os.ReadDir(s.uploadDir)
	if err != nil {
		return err
	}
	onDisk := map[string]bool{}
	for _, e := range parts {
		id := e.Name()
		if uploads[id] {
			onDisk[id] = true
			continue
		}
		s.removeLogged(filepath.Join(s.uploadDir, id), "upload data without upload")
	}
	for id := range uploads {
		if !onDisk[id] && s.db.Dialect() == store.Postgres {
			// A shared database holds the uploads of every instance, each with its data on
			// its own instance: one without data here is not ours to judge (--upload-expiry
			// removes abandoned ones).
			continue
		}
		if !onDisk[id] {
			if iso, err := s.finishInterrupted(ctx, id); err != nil {
				s.log.Warn("cannot finish the publish a crash interrupted", "upload", id, "err", err)
			} else if iso != nil {
				s.log.Info("finished the publish a crash interrupted", "upload", id, "iso", iso.ID, "name", iso.Name)
				continue
			}
			s.log.Warn("resumable upload lost its data; dropped", "upload", id)
			if _, err := s.db.DB().ExecContext(ctx, `DELETE FROM iso_uploads WHERE id = ?`, id); err != nil {
				return err
			}
		}
	}

	known, err := s.stringSet(ctx, `SELECT sha256 FROM isos`)
	if err != nil {
		return err
	}
	files, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range files {
		if sum, ok := strings.CutSuffix(e.Name(), ".idx"); ok && isHex(sum, 64) && !known[sum] {
			s.removeLogged(filepath.Join(s.dir, e.Name()), "index without a row")
		}
	}
	records, err := os.ReadDir(s.ver.dir)
	if err != nil {
		return err
	}
	for _, e := range records {
		if !known[e.Name()] {
			s.removeLogged(filepath.Join(s.ver.dir, e.Name()), "verification record without a row")
		}
	}
	shared := s.db.Dialect() == store.Postgres
	if d, ok := s.images.(DirImages); ok {
		d.sweepStaging(sharedGrace)
	}
	sums, err := s.images.List(ctx)
	if err != nil {
		return err
	}
	for _, sum := range sums {
		if known[sum] {
			continue
		}
		if shared {
			// Another instance publishes an image before it commits its row: leave young
			// images to it (Put sets the modification time to the publish time).
			if info, err := s.images.Stat(ctx, sum); err != nil || info.ModTime.IsZero() || time.Since(info.ModTime) < sharedGrace {
				continue
			}
		}
		if err := s.images.Delete(ctx, sum); err != nil {
			s.log.Warn("cannot remove image without a row", "sha256", sum, "err", err)
		} else {
			s.log.Info("removed image without a row", "sha256", sum)
		}
	}
	return nil
}

// finishInterrupted completes the publish of upload id when a crash stopped it after the
// complete image was moved into the image store and before the catalog row was committed
// (the upload's data is gone from the uploads directory, its bytes were all acknowledged): the
// image is indexed again and recorded, as FinishUpload would have. It returns nil, nil when
// that is not what happened (an incomplete upload, no such image).
func (s *Store) finishInterrupted(ctx context.Context, id string) (*ISO, error) {
	u, err := s.loadUpload(ctx, id)
	if err != nil {
		return nil, err
	}
	if u.Size >= 0 && u.Offset != u.Size {
		return nil, nil
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(u.state); err != nil {
		return nil, nil
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if u.WantSHA256 != "" && sum != u.WantSHA256 {
		return nil, nil
	}
	img, info, err := s.images.Open(ctx, sum)
	if err != nil || info.Size != u.Offset {
		if err == nil {
			img.Close()
		}
		return nil, nil // not stored: the data is lost
	}
	ix, err := iso9660.BuildIndex(img, u.Offset)
	if c, ok := img.(io.Closer); ok {
		c.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if _, err := s.Get(ctx, u.Name); err == nil {
		return nil, fmt.Errorf("%q: %w", u.Name, ErrNameTaken)
	}
	idxTmp, err := s.writeIndexTemp(ix)
	if err != nil {
		return nil, err
	}
	defer os.Remove(idxTmp)
	if err := os.Rename(idxTmp, s.indexPath(sum)); err != nil {
		return nil, err
	}
	if err := syncDir(s.dir); err != nil {
		return nil, err
	}
	iso := &ISO{ID: sum[:16], Name: u.Name, SHA256: sum, Size: u.Offset, Label: ix.Label,
		FileCount: ix.FileCount(), Names: ix.Names, UploadedAt: time.Now().UTC()}
	if err := s.insert(ctx, iso, id); err != nil {
		return nil, err
	}
	return iso, nil
}

// sharedGrace is how old an image without a row in a shared catalog, or a copy left in the
// staging directory, must be before an instance starting up removes it: far longer than any
// publish takes between storing the image and committing its row.
const sharedGrace = time.Hour

func (s *Store) removeLogged(p, why string) {
	if err := os.RemoveAll(p); err != nil {
		s.log.Warn("cannot remove "+why, "path", p, "err", err)
		return
	}
	s.log.Info("removed "+why, "path", p)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidateName checks an ISO name: 1–200 bytes of printable UTF-8 without "/" or "\",
// without leading or trailing space, and not shaped like an ID or a SHA-256 (16 or 64 hex
// digits), so that "idOrName" arguments are never ambiguous.
func ValidateName(name string) error {
	switch {
	case name == "" || len(name) > 200:
		return fmt.Errorf("%w: must be 1 to 200 bytes", ErrBadName)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not UTF-8", ErrBadName)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: leading or trailing space", ErrBadName)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrBadName, name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("%w: contains a slash", ErrBadName)
	case isHex(strings.ToLower(name), 16) || isHex(strings.ToLower(name), 64):
		return fmt.Errorf("%w: looks like an ISO ID or a SHA-256", ErrBadName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("%w: contains a control character", ErrBadName)
		}
	}
	return nil
}

// normSHA256 validates an expected checksum ("" means none) and returns it in lower case.
func normSHA256(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	l := strings.ToLower(s)
	if !isHex(l, 64) {
		return "", fmt.Errorf("%w: got %q", ErrBadChecksum, s)
	}
	return l, nil
}

const isoColumns = `id, name, sha256, size, label, file_count, names, uploaded_at,
	COALESCE(source_path, ''), COALESCE(source_mtime_ns, 0), COALESCE(detected, '')`

type rowScanner interface{ Scan(...any) error }

func scanISO(r rowScanner) (*ISO, error) {
	var iso ISO
	var uploaded, names string
	if err := r.Scan(&iso.ID, &iso.Name, &iso.SHA256, &iso.Size, &iso.Label, &iso.FileCount, &names,
		&uploaded, &iso.SourcePath, &iso.sourceMtime, &iso.Detected); err != nil {
		return nil, err
	}
	iso.Names = iso9660.NameSource(names)
	iso.UploadedAt, _ = time.Parse(timeFormat, uploaded)
	return &iso, nil
}

// Get returns the ISO with the given ID, name or full SHA-256.
func (s *Store) Get(ctx context.Context, idOrName string) (*ISO, error) {
	key := idOrName
	if isHex(strings.ToLower(key), 16) || isHex(strings.ToLower(key), 64) {
		key = strings.ToLower(key)
	}
	s.metaMu.RLock()
	cached, ok := s.meta[key]
	s.metaMu.RUnlock()
	if ok {
		c := *cached // callers may modify what they get
		return &c, nil
	}
	s.metaMu.RLock()
	gen := s.metaGen
	s.metaMu.RUnlock()
	iso, err := scanISO(s.db.DB().QueryRowContext(ctx,
		`SELECT `+isoColumns+` FROM isos WHERE id = ? OR name = ? OR sha256 = ?`, key, key, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("iso %q: %w", idOrName, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get iso %q: %w", idOrName, err)
	}
	c := *iso
	s.metaMu.Lock()
	// A shared (PostgreSQL) catalog is written by other instances too, whose writes do not
	// reach forgetMeta here: ask the database every time.
	if s.metaGen == gen && s.db.Dialect() != store.Postgres {
		if s.meta == nil {
			s.meta = map[string]*ISO{}
		}
		s.meta[key] = &c
	}
	s.metaMu.Unlock()
	return iso, nil
}

// forgetMeta drops the cached ISO rows; called after every write to the isos table.
func (s *Store) forgetMeta() {
	s.metaMu.Lock()
	s.meta = nil
	s.metaGen++
	s.metaMu.Unlock()
}

// List returns all ISOs sorted by name.
func (s *Store) List(ctx context.Context) ([]*ISO, error) {
	rows, err := s.db.DB().QueryContext(ctx, `SELECT `+isoColumns+` FROM isos ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list isos: %w", err)
	}
	defer rows.Close()
	var out []*ISO
	for rows.Next() {
		iso, err := scanISO(rows)
		if err != nil {
			return nil, fmt.Errorf("list isos: %w", err)
		}
		out = append(out, iso)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list isos: %w", err)
	}
	return out, nil
}

// SetDetected records the distribution detection result of an ISO.
func (s *Store) SetDetected(ctx context.Context, id, detected string) error {
	res, err := s.db.DB().ExecContext(ctx, `UPDATE isos SET detected = ? WHERE id = ?`, detected, id)
	s.forgetMeta()
	if err != nil {
		return fmt.Errorf("set detected of iso %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("iso %s: %w", id, ErrNotFound)
	}
	return nil
}

// Delete removes an ISO: its row first (it disappears at once), then its index and, for
// uploaded images, the image file; an image added by path is left on disk. Files still
// open keep working until closed. Unless force is set, an ISO that InUse reports as in use
// is refused with ErrInUse.
func (s *Store) Delete(ctx context.Context, idOrName string, force bool) error {
	iso, err := s.Get(ctx, idOrName)
	if err != nil {
		return err
	}
	if !force && s.inUse != nil {
		users, err := s.inUse(ctx, iso.ID)
		if err != nil {
			return fmt.Errorf("delete iso %s: in-use check: %w", iso.ID, err)
		}
		if len(users) > 0 {
			return &InUseError{ID: iso.ID, Name: iso.Name, Users: users}
		}
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	_, err = s.db.DB().ExecContext(ctx, `DELETE FROM isos WHERE id = ?`, iso.ID)
	s.forgetMeta()
	if err != nil {
		return fmt.Errorf("delete iso %s: %w", iso.ID, err)
	}
	s.cache.drop(iso.SHA256)
	s.fds.drop(iso.SHA256)
	s.ver.forget(iso.SHA256)
	// A failure below leaves files without a row; Open removes them on the next start.
	if err := os.Remove(s.indexPath(iso.SHA256)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("delete iso: cannot remove index", "iso", iso.ID, "err", err)
	}
	if iso.SourcePath == "" {
		if err := s.images.Delete(ctx, iso.SHA256); err != nil {
			s.log.Warn("delete iso: cannot remove image", "iso", iso.ID, "err", err)
		}
	}
	s.log.Info("iso deleted", "iso", iso.ID, "name", iso.Name, "forced", force)
	return nil
}

func (s *Store) indexPath(sum string) string { return filepath.Join(s.dir, sum+".idx") }

// openRaw opens the bytes of iso without verifying them: an uploaded one from the
// ImageStore, one added by path from that path after checking that it is still the file that
// was indexed (same size and modification time): serving extents of a replaced file would send
// garbage. It returns what it opened and where that is, for messages. A missing image is a
// *MissingImageError, unless its row was deleted meanwhile (ErrNotFound).
func (s *Store) openRaw(ctx context.Context, iso *ISO) (iso9660.ReaderAt, ImageInfo, string, error) {
	if iso.SourcePath == "" {
		where := s.images.Where(iso.SHA256)
		r, info, err := s.images.Open(ctx, iso.SHA256)
		switch {
		case errNotExist(err):
			return nil, ImageInfo{}, where, s.missing(ctx, iso, where)
		case err != nil:
			return nil, ImageInfo{}, where, fmt.Errorf("open iso %s: %w", iso.ID, err)
		}
		s.missingLogged.Delete(iso.SHA256)
		return r, info, where, nil
	}
	f, err := os.Open(iso.SourcePath)
	if err != nil {
		if errNotExist(err) {
			return nil, ImageInfo{}, iso.SourcePath, s.missing(ctx, iso, iso.SourcePath)
		}
		return nil, ImageInfo{}, iso.SourcePath, fmt.Errorf("open iso %s: %w", iso.ID, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ImageInfo{}, iso.SourcePath, fmt.Errorf("open iso %s: %w", iso.ID, err)
	}
	if err := checkSource(iso, st); err != nil {
		f.Close()
		return nil, ImageInfo{}, iso.SourcePath, err
	}
	s.missingLogged.Delete(iso.SHA256)
	return f, fileInfo(st), iso.SourcePath, nil
}

// statRaw is openRaw without opening: for status checks.
func (s *Store) statRaw(ctx context.Context, iso *ISO) (ImageInfo, string, error) {
	if iso.SourcePath == "" {
		where := s.images.Where(iso.SHA256)
		info, err := s.images.Stat(ctx, iso.SHA256)
		switch {
		case errNotExist(err):
			return ImageInfo{}, where, s.missing(ctx, iso, where)
		case err != nil:
			return ImageInfo{}, where, fmt.Errorf("iso %s: %w", iso.ID, err)
		}
		s.missingLogged.Delete(iso.SHA256)
		return info, where, nil
	}
	st, err := os.Stat(iso.SourcePath)
	if err != nil {
		if errNotExist(err) {
			return ImageInfo{}, iso.SourcePath, s.missing(ctx, iso, iso.SourcePath)
		}
		return ImageInfo{}, iso.SourcePath, fmt.Errorf("iso %s: %w", iso.ID, err)
	}
	if err := checkSource(iso, st); err != nil {
		return ImageInfo{}, iso.SourcePath, err
	}
	s.missingLogged.Delete(iso.SHA256)
	return fileInfo(st), iso.SourcePath, nil
}

// checkSource refuses a registered file that is not the one that was indexed.
func checkSource(iso *ISO, st fs.FileInfo) error {
	if st.Size() != iso.Size || st.ModTime().UnixNano() != iso.sourceMtime {
		return fmt.Errorf("iso %s: %s: %w", iso.ID, iso.SourcePath, ErrChanged)
	}
	return nil
}

// missing is the error for an image whose bytes are not where they should be: gone with its
// row (deleted meanwhile), or lacking on this instance.
func (s *Store) missing(ctx context.Context, iso *ISO, where string) error {
	if _, err := s.Get(ctx, iso.SHA256); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("iso %s: %w (deleted)", iso.ID, ErrNotFound)
	}
	// Status checks (the image check every minute, metrics, the ISO list, the web UI, every
	// boot script's profile check) and requests all come here while the image stays missing:
	// one line says so, another once it is back and missing again.
	if prev, logged := s.missingLogged.Swap(iso.SHA256, where); !logged || prev != where {
		s.log.Warn("image missing on this instance", "iso", iso.ID, "name", iso.Name, "path", where)
	}
	return &MissingImageError{ID: iso.ID, Name: iso.Name, SHA256: iso.SHA256, Where: where, Registered: iso.SourcePath != ""}
}

// openImage opens the image of iso for reading, once its bytes are known to match the
// catalog's SHA-256 (verify.go).
func (s *Store) openImage(ctx context.Context, iso *ISO) (iso9660.ReaderAt, error) {
	r, info, where, err := s.openRaw(ctx, iso)
	if err != nil {
		return nil, err
	}
	open := func(ctx context.Context) (iso9660.ReaderAt, ImageInfo, error) {
		r, info, _, err := s.openRaw(ctx, iso)
		return r, info, err
	}
	if err := s.verify(ctx, iso, info, where, open); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// OpenImage opens the whole image of an ISO, for serving the .iso itself: a File over the
// image, so a local image goes out with sendfile. The caller closes it.
func (s *Store) OpenImage(ctx context.Context, idOrName string) (*iso9660.File, *ISO, error) {
	iso, err := s.Get(ctx, idOrName)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.openImage(ctx, iso)
	if err != nil {
		return nil, nil, err
	}
	whole := iso9660.Entry{Path: "/" + iso.Name, Size: iso.Size, ModTime: iso.UploadedAt}
	if iso.Size > 0 {
		whole.Extents = []iso9660.Extent{{Offset: 0, Length: iso.Size}}
	}
	f, err := iso9660.OpenFile(r, whole, `"`+iso.SHA256+`"`, nil)
	if err != nil {
		return nil, nil, err
	}
	return f, iso, nil
}

// Index returns the file table of an ISO, from the in-memory cache or its index file; a
// missing or damaged index file is rebuilt from the image.
func (s *Store) Index(ctx context.Context, idOrName string) (*iso9660.Index, *ISO, error) {
	iso, err := s.Get(ctx, idOrName)
	if err != nil {
		return nil, nil, err
	}
	ix, err := s.cache.get(iso.SHA256, func() (*iso9660.Index, error) { return s.loadIndex(ctx, iso) })
	if err != nil {
		return nil, nil, err
	}
	return ix, iso, nil
}

func (s *Store) loadIndex(ctx context.Context, iso *ISO) (*iso9660.Index, error) {
	start := time.Now()
	ix, err := readIndexFile(s.indexPath(iso.SHA256))
	if err == nil && ix.ImageSize == iso.Size {
		s.log.Debug("iso index loaded", "iso", iso.ID, "entries", len(ix.Entries), "dur", time.Since(start))
		return ix, nil
	}
	s.log.Warn("iso index unusable; rebuilding from the image", "iso", iso.ID, "err", err)
	f, err := s.openImage(ctx, iso)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ix, err = iso9660.BuildIndex(f, iso.Size)
	if err != nil {
		return nil, fmt.Errorf("rebuild index of iso %s: %w", iso.ID, err)
	}
	if err := s.writeIndexFile(ix, s.indexPath(iso.SHA256)); err != nil {
		s.log.Warn("cannot persist rebuilt index", "iso", iso.ID, "err", err)
	}
	return ix, nil
}

func readIndexFile(p string) (*iso9660.Index, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return iso9660.ReadIndex(f, st.Size())
}

// writeIndexFile writes ix durably to dst (through a temporary file and a rename).
func (s *Store) writeIndexFile(ix *iso9660.Index, dst string) error {
	tmp, err := s.writeIndexTemp(ix)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func (s *Store) writeIndexTemp(ix *iso9660.Index) (string, error) {
	f, err := os.CreateTemp(s.tmpDir, "index-*.idx")
	if err != nil {
		return "", fmt.Errorf("write index: %w", noSpace(err))
	}
	_, err = ix.WriteTo(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write index: %w", noSpace(err))
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// noSpace marks disk-full and quota errors with ErrNoSpace.
func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// Lookup returns the entry at path p inside an ISO (symlinks followed). See Index.Lookup.
func (s *Store) Lookup(ctx context.Context, idOrName, p string) (*iso9660.Entry, error) {
	ix, iso, err := s.Index(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	e, err := ix.Lookup(p)
	if err != nil {
		return nil, fmt.Errorf("iso %s: %w", iso.ID, err)
	}
	return e, nil
}

// ReadDir lists a directory inside an ISO. See Index.ReadDir.
func (s *Store) ReadDir(ctx context.Context, idOrName, dirPath string) ([]iso9660.Entry, error) {
	ix, iso, err := s.Index(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	list, err := ix.ReadDir(dirPath)
	if err != nil {
		return nil, fmt.Errorf("iso %s: %w", iso.ID, err)
	}
	return list, nil
}

// OpenFile opens the regular file at p inside an ISO for serving (symlinks followed). A
// directory fails with ErrIsDir. The caller closes the File.
func (s *Store) OpenFile(ctx context.Context, idOrName, p string) (*iso9660.File, error) {
	ix, iso, err := s.Index(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	e, err := ix.Lookup(p)
	if err != nil {
		return nil, fmt.Errorf("iso %s: %w", iso.ID, err)
	}
	if e.IsDir() {
		return nil, fmt.Errorf("iso %s: %s: %w", iso.ID, e.Path, ErrIsDir)
	}
	r, release, err := s.openPooled(ctx, iso)
	if err != nil {
		return nil, err
	}
	return iso9660.OpenFile(r, *e, ETag(iso.SHA256, e.Path), release)
}

// openPooled is openImage for the serving path. An uploaded image's bytes never change under
// its name (it is stored under its SHA-256 and only ever removed), so a local image's
// descriptors are reused from one request to the next instead of opened and closed each time:
// open(2) with its path walk was a tenth of a 64 KiB Range request's CPU. The size is still
// checked with fstat(2) on every reuse. An image added by path can be replaced behind our
// back (a new inode under the same name), so it is opened afresh each time, as openImage
// checks it; so is an image whose store is not local files. release takes the reader back
// (File.Close calls it).
func (s *Store) openPooled(ctx context.Context, iso *ISO) (iso9660.ReaderAt, func(iso9660.ReaderAt) error, error) {
	if iso.SourcePath != "" {
		r, err := s.openImage(ctx, iso)
		return r, iso9660.ReaderAt.Close, err
	}
	p := s.fds.pool(iso.SHA256)
	if f := p.get(); f != nil {
		// A descriptor is pooled only once its version was verified; a write to the file
		// since (in place, on a shared directory) changes the version and sends it through
		// openImage's check again. Known versions are a map lookup: no hash on this path.
		// A file removed or replaced since (nlink 0: another instance, or an operator on the
		// shared directory) is opened anew, so that this instance reports what the directory
		// holds now rather than serving the old file for as long as it keeps a descriptor.
		st, err := f.Stat()
		if err == nil && st.Size() == iso.Size && linked(st) && s.ver.knownFile(iso.SHA256, st) {
			return f, p.put, nil
		}
		f.Close()
	}
	r, err := s.openImage(ctx, iso)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := r.(*os.File); !ok {
		return r, iso9660.ReaderAt.Close, nil
	}
	return r, p.put, nil
}

// linked reports whether a file still has a name (false once it was removed or renamed over).
func linked(st fs.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	return !ok || sys.Nlink > 0
}

// ETag is the strong entity tag of the file at path p of the image with SHA-256 sum: the
// bytes at a path of a given image never change.
func ETag(sum, p string) string {
	h := sha256.Sum256([]byte(p))
	return `"` + sum[:min(16, len(sum))] + "-" + hex.EncodeToString(h[:8]) + `"`
}

// indexCache keeps the most recently used indexes in memory and loads each at most once at
// a time, however many requests ask for it together.
type indexCache struct {
	mu    sync.Mutex
	max   int
	slots map[string]*cacheSlot
	lru   *list.List // of *cacheSlot, most recent first
}

type cacheSlot struct {
	key   string
	ready chan struct{}
	ix    *iso9660.Index
	err   error
	elem  *list.Element
}

func newIndexCache(max int) *indexCache {
	return &indexCache{max: max, slots: map[string]*cacheSlot{}, lru: list.New()}
}

func (c *indexCache) get(key string, load func() (*iso9660.Index, error)) (*iso9660.Index, error) {
	c.mu.Lock()
	if sl, ok := c.slots[key]; ok {
		c.lru.MoveToFront(sl.elem)
		c.mu.Unlock()
		<-sl.ready
		if sl.err != nil {
			return nil, sl.err
		}
		return sl.ix, nil
	}
	sl := &cacheSlot{key: key, ready: make(chan struct{})}
	sl.elem = c.lru.PushFront(sl)
	c.slots[key] = sl
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*cacheSlot)
		delete(c.slots, old.key)
	}
	c.mu.Unlock()

	sl.ix, sl.err = load()
	close(sl.ready)
	if sl.err != nil {
		c.mu.Lock()
		if c.slots[key] == sl {
			c.lru.Remove(sl.elem)
			delete(c.slots, key)
		}
		c.mu.Unlock()
		return nil, sl.err
	}
	return sl.ix, nil
}

// put stores an index just built, sparing the first request a load.
func (c *indexCache) put(key string, ix *iso9660.Index) {
	sl := &cacheSlot{key: key, ready: make(chan struct{}), ix: ix}
	close(sl.ready)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.slots[key]; ok {
		c.lru.Remove(old.elem)
	}
	sl.elem = c.lru.PushFront(sl)
	c.slots[key] = sl
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*cacheSlot)
		delete(c.slots, old.key)
	}
}

func (c *indexCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sl, ok := c.slots[key]; ok {
		c.lru.Remove(sl.elem)
		delete(c.slots, key)
	}
}

// stringSet runs a one-column query and returns its values as a set.
func (s *Store) stringSet(ctx context.Context, query string) (map[string]bool, error) {
	rows, err := s.db.DB().QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	set := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		set[v] = true
	}
	return set, rows.Err()
}
