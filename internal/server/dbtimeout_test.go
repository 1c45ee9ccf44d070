package server

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/fleetboot/fleetboot/internal/config"
	"github.com/fleetboot/fleetboot/internal/store/storetest"
)

// An instance whose database sessions run without idle_in_transaction_session_timeout (a
// connection string that turns it off, or PgBouncer dropping the startup parameter) says so at
// start: a hung partner's locks would then be held until TCP gives up.
func TestBuildWarnsOfDatabaseSessionsWithoutIdleTimeout(t *testing.T) {
	dsn := storetest.DSN(t)
	for _, c := range []struct {
		query string
		warn  bool
	}{{"", false}, {"&idle_in_transaction_session_timeout=0", true}} {
		cfg := config.Default()
		cfg.DataDir, cfg.DHCPMode, cfg.Database = t.TempDir(), config.DHCPOff, dsn+c.query
		var logs lockedBuffer
		app, err := Build(context.Background(), cfg, &config.Resolved{HTTPBase: "http://127.0.0.1:1"},
			Deps{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatalf("%q: %v", c.query, err)
		}
		app.Close()
		if got := strings.Contains(logs.String(), "no idle_in_transaction_session_timeout"); got != c.warn {
			t.Errorf("connection string %q: warned %v, want %v; log:\n%s", c.query, got, c.warn, logs.String())
		}
	}
}
