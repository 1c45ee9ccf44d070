package isostore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
)

// Image is an ISO as a backup sees it: where its bytes are and how to check them.
type Image struct {
	ID, Name, SHA256 string
	Size             int64
	// SourcePath is set for an image registered by path (not stored in the data directory).
	SourcePath string
}

// Images lists the ISOs recorded in db, which may be a copy of a data directory's database
// (a backup's snapshot) rather than one a Store has open.
func Images(ctx context.Context, db *sql.DB) ([]Image, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, name, sha256, size, COALESCE(source_path, '') FROM isos ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list isos: %w", err)
	}
	defer rows.Close()
	var out []Image
	for rows.Next() {
		var im Image
		if err := rows.Scan(&im.ID, &im.Name, &im.SHA256, &im.Size, &im.SourcePath); err != nil {
			return nil, fmt.Errorf("list isos: %w", err)
		}
		out = append(out, im)
	}
	return out, rows.Err()
}

// ImageFiles are the files of image im below a data directory, relative to it: the stored
// image (none for an image registered by path) and its persisted index.
func ImageFiles(im Image) (image, index string) {
	if im.SourcePath == "" {
		image = filepath.Join("isos", im.SHA256+".iso")
	}
	return image, filepath.Join("isos", im.SHA256+".idx")
}

// ForgetUploads deletes the resumable uploads recorded in db: a backup holds finished ISOs
// only, not the partial data of uploads in progress.
func ForgetUploads(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, `DELETE FROM iso_uploads`)
	return err
}

// RecordSourceFile notes the modification time of an image registered by path, after a
// restore has checked that the file (perhaps copied anew) still has the recorded content:
// the store refuses to serve a registered file whose time differs from the recorded one.
func RecordSourceFile(ctx context.Context, db *sql.DB, id string, mtimeNS int64) error {
	_, err := db.ExecContext(ctx, `UPDATE isos SET source_mtime_ns = ? WHERE id = ?`, mtimeNS, id)
	return err
}
