// Package storetest runs tests against both database backends: a fresh SQLite file, and a
// fresh database on a real PostgreSQL server.
//
// The server is started outside the test binary by scripts/with-postgres.sh (scripts/test.sh
// wraps the Go tests in it), which exports its connection string as FLEETBOOT_TEST_POSTGRES.
// Each call of DSN creates a new, empty schema there and drops it when the test ends, so
// tests and packages running in parallel never see each other's rows.
//
// Without FLEETBOOT_TEST_POSTGRES a test that needs PostgreSQL is skipped with a message saying
// how to run it — except in CI (CI=true), where it fails: CI must run both backends.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetboot/fleetboot/internal/store"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
)

// EnvVar names the variable holding the test server's connection string.
const EnvVar = "FLEETBOOT_TEST_POSTGRES"

// Server returns the test server's connection string, or skips (fails in CI) without one.
func Server(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvVar)
	if dsn != "" {
		return dsn
	}
	msg := EnvVar + " is not set: this test needs a PostgreSQL server; run it as " +
		"`bash scripts/with-postgres.sh go test ./...` (Debian package postgresql)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " — CI runs both backends, so this is a failure here")
	}
	t.Skip(msg)
	return ""
}

// DSN creates an empty schema on the test server's database and returns a connection string
// whose search_path is that schema, so everything a test creates lands there. A schema costs
// milliseconds where CREATE DATABASE costs a second on a loaded machine. The schema is dropped
// when t ends. (Advisory locks are per database, so parallel tests share their key space;
// they only serialise, which changes no result.)
func DSN(t testing.TB) string {
	t.Helper()
	base := Server(t)
	var b [6]byte
	rand.Read(b[:])
	name := "fbtest_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("storetest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		admin, err := sql.Open("pgx", base)
		if err != nil {
			t.Errorf("storetest: %v", err)
			return
		}
		defer admin.Close()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Errorf("storetest: drop schema %s: %v", name, err)
		}
	})
	cfg, err := pgconn.ParseConfig(base)
	if err != nil {
		t.Fatalf("storetest: %s: %v", EnvVar, err)
	}
	// A URL works for both pgx and fleetboot's --database flag; host may be a socket
	// directory, which goes into the query string.
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable&search_path=%s",
		url.QueryEscape(cfg.User), url.PathEscape(cfg.Database), url.QueryEscape(cfg.Host), cfg.Port, name)
}

// Backend is one database engine a suite runs against.
type Backend struct {
	Name string
	// Fresh makes a new, empty database for t and returns how to open it. Calling open again
	// opens the same database once more: a second fleetboot instance, or a restart.
	Fresh func(t testing.TB) (open func(ctx context.Context) (*store.Store, error))
}

// Backends are SQLite and PostgreSQL, in that order. Suites run as subtests named by
// Backend.Name, e.g. TestX/sqlite and TestX/postgres.
var Backends = []Backend{
	{Name: "sqlite", Fresh: func(t testing.TB) func(context.Context) (*store.Store, error) {
		p := filepath.Join(t.TempDir(), "fleetboot.db")
		return func(ctx context.Context) (*store.Store, error) { return store.OpenPath(ctx, p) }
	}},
	{Name: "postgres", Fresh: func(t testing.TB) func(context.Context) (*store.Store, error) {
		dsn := DSN(t)
		return func(ctx context.Context) (*store.Store, error) { return store.OpenPostgres(ctx, dsn) }
	}},
}

// Open makes a fresh database of backend b and opens it; it is closed when t ends.
func (b Backend) Open(t testing.TB) *store.Store {
	t.Helper()
	st, err := b.Fresh(t)(context.Background())
	if err != nil {
		t.Fatalf("open %s store: %v", b.Name, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Run runs fn as a subtest per backend.
func Run(t *testing.T, fn func(t *testing.T, b Backend)) {
	for _, b := range Backends {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}
