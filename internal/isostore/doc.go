// Package isostore owns the ISO catalog fleetboot serves from: streaming uploads (one-shot and
// resumable) hashed with SHA-256 on the way in and published atomically under their content
// hash, images registered in place by path, the metadata rows in the shared SQLite database,
// and the file table (iso9660.Index) of every image, built once at upload and persisted next
// to the image (<sha256>.idx), with an in-memory cache of the most used ones.
//
// The bytes of uploaded images live in an ImageStore: DirImages (<data>/isos, or a directory
// every instance sharing a PostgreSQL catalog mounts) by default, any other backend with
// random access behind the same methods (docs/design-storage.md). Whatever the backend, an
// image's bytes are checked against the catalog's SHA-256 before they are first served
// (verify.go). Reading images is internal/iso9660's job; this package decides where they are.
//
// Nothing is ever extracted: a file inside an image is a list of byte extents of the image,
// and OpenFile returns an iso9660.File that serves those bytes so that net/http can hand them
// to sendfile(2) when the image is a local file (through ReadAt otherwise). HTTP itself stays
// out of this package; its errors are sentinels the HTTP layer maps to status codes with
// errors.Is.
package isostore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fleetboot/fleetboot/internal/iso9660"
)

// Errors returned by this package; test for them with errors.Is. The first five are
// iso9660's, so one errors.Is covers an ISO missing from the catalog and a path missing from
// an image. The comment says the HTTP
// status each one suggests.
var (
	ErrNotFound         = iso9660.ErrNotFound                                                                                                              // 404
	ErrBadPath          = iso9660.ErrBadPath                                                                                                               // 400
	ErrNotDir           = iso9660.ErrNotDir                                                                                                                // 404 (or 400)
	ErrIsDir            = iso9660.ErrIsDir                                                                                                                 // 404, or render a listing
	ErrBadISO           = iso9660.ErrBadISO                                                                                                                // 422
	ErrChecksumMismatch = errors.New("sha256 mismatch")                                                                                                    // 422
	ErrBadChecksum      = errors.New("expected sha256 must be 64 hex digits")                                                                              // 400
	ErrBadName          = errors.New("invalid ISO name")                                                                                                   // 400
	ErrNameTaken        = errors.New("name already used by another ISO")                                                                                   // 409
	ErrInUse            = errors.New("ISO is in use")                                                                                                      // 409
	ErrOffsetMismatch   = errors.New("upload offset does not match")                                                                                       // 409
	ErrUploadBusy       = errors.New("upload is being written by another request")                                                                         // 409 (423)
	ErrUploadIncomplete = errors.New("upload is incomplete")                                                                                               // 409
	ErrTooLarge         = errors.New("upload exceeds its size")                                                                                            // 413
	ErrNoSpace          = errors.New("no space left for the upload")                                                                                       // 507
	ErrChanged          = errors.New("ISO file changed on disk since it was indexed")                                                                      // 409 (re-add it)
	ErrRegisterOff      = errors.New("registering ISOs by path is off: start fleetboot with --register-dir DIR (repeatable) to allow the files below DIR") // 403
	ErrNotAllowed       = errors.New("path is not below a --register-dir")                                                                                 // 403
	ErrTooManyUploads   = errors.New("too many unfinished resumable uploads")                                                                              // 429
	// ErrImageMissing: the catalog has the ISO but this instance cannot find its bytes (the
	// shared image directory is not mounted here, or the file was removed). *MissingImageError.
	ErrImageMissing = errors.New("image is in the catalog but not on this instance") // 503
	// ErrImageCorrupt: the bytes found do not hash to the catalog's SHA-256; they are never
	// served. *CorruptImageError.
	ErrImageCorrupt = errors.New("image does not match the catalog's sha256") // 503
)

// MissingImageError says that an instance lacks the bytes of an ISO the catalog has.
// errors.Is(err, ErrImageMissing) holds.
type MissingImageError struct {
	ID, Name, SHA256 string
	// Where is where the bytes were looked for (a path, a bucket URL).
	Where string
	// Registered is set for an image registered by path (Where is that path).
	Registered bool
}

func (e *MissingImageError) Error() string {
	if e.Registered {
		return fmt.Sprintf("image %s (%s, sha256 %s) is in the catalog, registered from %s, but that file is not on this instance: "+
			"mount the directory it is in at the same path on every instance, or delete the ISO and upload it", e.Name, e.ID, e.SHA256, e.Where)
	}
	return fmt.Sprintf("image %s (%s, sha256 %s) is in the catalog but not at %s: mount the shared image directory on this instance "+
		"(fleetboot serve --images DIR, the same directory on every instance)", e.Name, e.ID, e.SHA256, e.Where)
}

// Is makes errors.Is(err, ErrImageMissing) true.
func (e *MissingImageError) Is(target error) bool { return target == ErrImageMissing }

// CorruptImageError says that the bytes of an ISO do not match the catalog: another size, or
// another SHA-256. errors.Is(err, ErrImageCorrupt) holds.
type CorruptImageError struct {
	ID, Name, SHA256 string
	Where            string
	// Actual is the SHA-256 the bytes have ("" when the size already differs).
	Actual string
	// Size is the catalog's size, ActualSize the stored image's.
	Size, ActualSize int64
}

func (e *CorruptImageError) Error() string {
	got := "sha256 " + e.Actual
	if e.Actual == "" {
		got = fmt.Sprintf("%d bytes (the catalog says %d)", e.ActualSize, e.Size)
	}
	return fmt.Sprintf("image %s (%s) at %s has %s, the catalog says sha256 %s: refusing to serve it; "+
		"put the right file there, or delete the ISO and upload it again", e.Name, e.ID, e.Where, got, e.SHA256)
}

// Is makes errors.Is(err, ErrImageCorrupt) true.
func (e *CorruptImageError) Is(target error) bool { return target == ErrImageCorrupt }

// InUseError is Delete's refusal of an ISO that profiles still use; it names them.
// errors.Is(err, ErrInUse) holds.
type InUseError struct {
	ID, Name string
	// Users are the names of the profiles using the ISO.
	Users []string
}

func (e *InUseError) Error() string {
	what, it := "profile", "it"
	if len(e.Users) > 1 {
		what, it = "profiles", "them"
	}
	return fmt.Sprintf("ISO %s (%s) is in use by %s %s: point %s at another ISO or delete %s first, "+
		"or delete the ISO anyway with force (fleetboot iso rm --force; the %s then show as broken)",
		e.Name, e.ID, what, strings.Join(e.Users, ", "), it, it, what)
}

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }
