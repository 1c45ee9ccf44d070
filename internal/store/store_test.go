package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestMigrateAppliesOnceAndSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	steps := []string{
		`CREATE TABLE a (x INTEGER)`,
		`ALTER TABLE a ADD COLUMN y TEXT`,
	}
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx, "t", steps); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec(`INSERT INTO a(x, y) VALUES (1, 'one')`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Running again must not re-apply step 1 (CREATE TABLE would fail).
	if err := s.Migrate(ctx, "t", steps); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	var n int
	if err := s.DB().QueryRow(`SELECT COUNT(*) FROM a`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows after reopen = %d, %v; want 1", n, err)
	}
	if got := filepath.Base(s.Path()); got != "fleetboot.db" {
		t.Fatalf("db file %q", got)
	}
}

func TestMigrateRefusesNewerDatabase(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx, "t", []string{`CREATE TABLE a (x)`, `CREATE TABLE b (x)`}); err != nil {
		t.Fatal(err)
	}
	err = s.Migrate(ctx, "t", []string{`CREATE TABLE a (x)`})
	if err == nil || !strings.Contains(err.Error(), "newer fleetboot") {
		t.Fatalf("want newer-fleetboot error, got %v", err)
	}
}

func TestMigrateFailedStepRollsBack(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Migrate(ctx, "t", []string{`CREATE TABLE a (x)`, `THIS IS NOT SQL`})
	if err == nil {
		t.Fatal("want error")
	}
	var v int
	s.DB().QueryRow(`SELECT MAX(version) FROM schema_migrations WHERE component='t'`).Scan(&v)
	if v != 1 {
		t.Fatalf("version after failed step = %d, want 1", v)
	}
}
