package isostore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/fleetboot/fleetboot/internal/iso9660"
)

// Images are verified at open. With one instance and a local directory the bytes could only
// go wrong by disk or operator error; with a directory several instances mount (or a bucket),
// an instance serves bytes it never received, which another instance, a copy job or a broken
// mount may have written. So before an image is served, the store checks that its bytes hash
// to the catalog's SHA-256 — once per version of the file (ImageInfo.Version: inode, size,
// mtime, ctime for a file), not once per request: the result is kept in memory and in
// <data>/isos/verified/<sha256>, so neither a boot storm nor a restart hashes a multi-GB image
// again. An upload is recorded as verified when it is published (it was hashed on the way in).
//
// Hashing runs once at a time per image version (singleflight): the requests for that image
// wait for it (they cannot be answered with unverified bytes), every other request goes on.
// A request that gives up does not stop the hash; the next one finds it done. Mismatches are
// remembered per version, so a corrupt image is refused at once until its file changes.

// verifier holds the verification results of one Store.
type verifier struct {
	dir string // <data>/isos/verified/<sha256> records

	mu   sync.Mutex
	good map[string]string             // sha256 → verified version
	bad  map[string]*CorruptImageError // sha256 → mismatch, for version badV[sha256]
	badV map[string]string
	// looked lists the sums whose record file was read (hit or miss): read once per version.
	looked map[string]string

	flights singleflight.Group
	// hashes counts the hashes run; bytes the bytes hashed (tests, the log).
	hashes, bytes atomic.Int64
}

func newVerifier(dir string) *verifier {
	return &verifier{dir: dir, good: map[string]string{}, bad: map[string]*CorruptImageError{},
		badV: map[string]string{}, looked: map[string]string{}}
}

func (v *verifier) recordPath(sum string) string { return filepath.Join(v.dir, sum) }

// known returns the result recorded for version of image sum: verified (true, nil), a
// mismatch (false, the error), or not known (false, nil).
func (v *verifier) known(sum, version string) (bool, error) {
	v.mu.Lock()
	if v.good[sum] == version {
		v.mu.Unlock()
		return true, nil
	}
	if v.badV[sum] == version && v.bad[sum] != nil {
		e := *v.bad[sum]
		v.mu.Unlock()
		return false, &e
	}
	read := v.looked[sum] != version
	v.looked[sum] = version
	v.mu.Unlock()
	if !read {
		return false, nil
	}
	return v.recorded(sum, version), nil
}

// recorded reports whether the record file of image sum names version (and then remembers it
// as verified).
func (v *verifier) recorded(sum, version string) bool {
	b, err := os.ReadFile(v.recordPath(sum))
	if err != nil || strings.TrimSpace(string(b)) != version {
		return false
	}
	v.mu.Lock()
	v.good[sum] = version
	v.mu.Unlock()
	return true
}

// knownFile reports whether the local file st describes is the verified version of image sum:
// known() for the serving path, without allocating.
func (v *verifier) knownFile(sum string, st fs.FileInfo) bool {
	var buf [96]byte
	ver := appendFileVersion(buf[:0], st)
	v.mu.Lock()
	ok := v.good[sum] == string(ver)
	v.mu.Unlock()
	return ok
}

// verified records that version of image sum hashes to sum, in memory and on disk (losing the
// record costs one hash, so it is not fsync'd).
func (v *verifier) verified(sum, version string) {
	v.mu.Lock()
	v.good[sum] = version
	delete(v.bad, sum)
	delete(v.badV, sum)
	v.mu.Unlock()
	tmp, err := os.CreateTemp(v.dir, "tmp-*")
	if err != nil {
		return
	}
	_, err = tmp.WriteString(version + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), v.recordPath(sum))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}

// mismatch records that version of image sum does not hash to sum.
func (v *verifier) mismatch(sum, version string, e *CorruptImageError) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.good[sum] == version {
		delete(v.good, sum)
	}
	v.bad[sum], v.badV[sum] = e, version
	os.Remove(v.recordPath(sum))
}

// forget drops what is known of image sum (deleted).
func (v *verifier) forget(sum string) {
	v.mu.Lock()
	delete(v.good, sum)
	delete(v.bad, sum)
	delete(v.badV, sum)
	delete(v.looked, sum)
	v.mu.Unlock()
	os.Remove(v.recordPath(sum))
}

// imageOpener opens the bytes of one ISO, as openRaw does.
type imageOpener func(ctx context.Context) (iso9660.ReaderAt, ImageInfo, error)

// verify makes sure that the image version info describes hashes to iso.SHA256, hashing it
// unless that is already known. open opens the image again for the hash, which outlives the
// caller's request.
func (s *Store) verify(ctx context.Context, iso *ISO, info ImageInfo, where string, open imageOpener) error {
	if info.Size != iso.Size {
		return &CorruptImageError{ID: iso.ID, Name: iso.Name, SHA256: iso.SHA256, Where: where, Size: iso.Size, ActualSize: info.Size}
	}
	if ok, err := s.ver.known(iso.SHA256, info.Version); ok || err != nil {
		return err
	}
	ch := s.ver.flights.DoChan(iso.SHA256+" "+info.Version, func() (any, error) {
		return nil, s.hashImage(iso, info.Version, where, open)
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return fmt.Errorf("iso %s: waiting for the sha256 check of %s: %w", iso.ID, where, ctx.Err())
	}
}

// hashImage hashes the image and records the result for its version.
func (s *Store) hashImage(iso *ISO, version, where string, open imageOpener) error {
	ctx := context.Background()
	// The hash may just have finished in a flight that ended as this one began. And the
	// record file is read here whatever known remembers: a request that found the record
	// unread may have come here while the first reader of that version was still reading it
	// (at start-up, with requests arriving together), and hashing a multi-GB image again
	// would keep every request for it waiting.
	if ok, err := s.ver.known(iso.SHA256, version); ok || err != nil {
		return err
	}
	if s.ver.recorded(iso.SHA256, version) {
		return nil
	}
	r, info, err := open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	if info.Version != version {
		return fmt.Errorf("iso %s: %s changed while it was opened; try again", iso.ID, where)
	}
	start := time.Now()
	s.log.Info("verifying image sha256", "iso", iso.ID, "name", iso.Name, "path", where, "bytes", info.Size)
	h := sha256.New()
	buf := make([]byte, copyBufSize)
	n, err := io.CopyBuffer(h, io.NewSectionReader(r, 0, info.Size), buf)
	s.ver.hashes.Add(1)
	s.ver.bytes.Add(n)
	if err != nil {
		return fmt.Errorf("iso %s: verify %s: %w", iso.ID, where, err)
	}
	if f, ok := r.(*os.File); ok {
		// Written to while it was read: what was hashed is neither the old nor the new bytes.
		if st, err := f.Stat(); err != nil || fileInfo(st).Version != version {
			return fmt.Errorf("iso %s: %s changed while it was verified; try again", iso.ID, where)
		}
	}
	dur := time.Since(start)
	actual := hex.EncodeToString(h.Sum(nil))
	if actual != iso.SHA256 {
		e := &CorruptImageError{ID: iso.ID, Name: iso.Name, SHA256: iso.SHA256, Where: where, Actual: actual, Size: iso.Size, ActualSize: n}
		s.ver.mismatch(iso.SHA256, version, e)
		s.log.Error("image does not match the catalog; it will not be served", "iso", iso.ID, "name", iso.Name, "path", where,
			"want_sha256", iso.SHA256, "got_sha256", actual, "dur", dur)
		return e
	}
	s.ver.verified(iso.SHA256, version)
	s.log.Info("image sha256 verified", "iso", iso.ID, "name", iso.Name, "path", where, "bytes", n, "dur", dur,
		"mb_per_s", fmt.Sprintf("%.0f", float64(n)/dur.Seconds()/1e6))
	return nil
}

// ImageState is what an instance knows of the bytes of one ISO, without hashing them.
type ImageState string

// Image states; ImageStatus returns them.
const (
	ImageVerified   ImageState = "verified"   // present and known to match the catalog
	ImageUnverified ImageState = "unverified" // present, checked at its first use (or by VerifyAll)
	ImageMissing    ImageState = "missing"    // not on this instance (ErrImageMissing)
	ImageCorrupt    ImageState = "corrupt"    // does not match the catalog (ErrImageCorrupt)
	ImageChanged    ImageState = "changed"    // registered file modified since it was indexed (ErrChanged)
)

// ImageStates lists every ImageState (metrics label values).
var ImageStates = []ImageState{ImageVerified, ImageUnverified, ImageMissing, ImageCorrupt, ImageChanged}

// ImageStatus says whether this instance can serve the bytes of iso, from a stat and what it
// has verified (it never hashes): the state and, unless the image is usable, the error a
// request for it would get.
func (s *Store) ImageStatus(ctx context.Context, iso *ISO) (ImageState, error) {
	info, where, err := s.statRaw(ctx, iso)
	if err != nil {
		switch {
		case errors.Is(err, ErrImageMissing):
			return ImageMissing, err
		case errors.Is(err, ErrChanged):
			return ImageChanged, err
		case errors.Is(err, ErrImageCorrupt):
			return ImageCorrupt, err
		}
		return ImageUnverified, err
	}
	if info.Size != iso.Size {
		return ImageCorrupt, &CorruptImageError{ID: iso.ID, Name: iso.Name, SHA256: iso.SHA256, Where: where, Size: iso.Size, ActualSize: info.Size}
	}
	ok, err := s.ver.known(iso.SHA256, info.Version)
	switch {
	case err != nil:
		return ImageCorrupt, err
	case ok:
		return ImageVerified, nil
	}
	return ImageUnverified, nil
}

// VerifyAll checks every image of the catalog this instance has not verified yet, one after
// the other, so that the first machines to boot do not wait for a hash. It returns the images
// that cannot be served (missing, corrupt, changed), with why; it stops early when ctx ends.
// It also closes the kept descriptors of images no longer in the catalog (deleted through
// another instance).
func (s *Store) VerifyAll(ctx context.Context) (map[string]error, error) {
	isos, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, iso := range isos {
		keep[iso.SHA256] = true
	}
	s.fds.retain(keep)
	bad := map[string]error{}
	for _, iso := range isos {
		if err := ctx.Err(); err != nil {
			return bad, err
		}
		r, err := s.openImage(ctx, iso)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // deleted meanwhile
			}
			bad[iso.ID] = err
			continue
		}
		r.Close()
	}
	return bad, nil
}

// CountImageStates counts the catalog's ISOs by ImageStatus (a stat each, no hash).
func (s *Store) CountImageStates(ctx context.Context) (map[ImageState]int, error) {
	isos, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	n := map[ImageState]int{}
	for _, iso := range isos {
		st, _ := s.ImageStatus(ctx, iso)
		n[st]++
	}
	return n, nil
}

// errNotExist reports whether err says a file or object is not there.
func errNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
