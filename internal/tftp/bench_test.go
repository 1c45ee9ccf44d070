package tftp

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	embedded "github.com/fleetboot/fleetboot/embed"
)

// TestServeForBench is not a test: scripts/bench-tftp.sh runs it to get a fleetboot TFTP
// server serving the embedded iPXE binaries, the way `fleetboot serve` does. It runs only when
// FLEETBOOT_TFTP_BENCH_ADDR is set, and serves until SIGTERM/SIGINT or until
// FLEETBOOT_TFTP_BENCH_SECONDS (default 600) have passed. When FLEETBOOT_TFTP_BENCH_READY
// names a file, the bound address is written there once the server listens.
func TestServeForBench(t *testing.T) {
	addr := os.Getenv("FLEETBOOT_TFTP_BENCH_ADDR")
	if addr == "" {
		t.Skip("set FLEETBOOT_TFTP_BENCH_ADDR to run the benchmark server (scripts/bench-tftp.sh does)")
	}
	limit := 600 * time.Second
	if s := os.Getenv("FLEETBOOT_TFTP_BENCH_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("FLEETBOOT_TFTP_BENCH_SECONDS=%q: want a positive number of seconds", s)
		}
		limit = time.Duration(n) * time.Second
	}
	sub, err := fs.Sub(embedded.IPXE, "ipxe")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	entries, err := fs.ReadDir(sub, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := fs.ReadFile(sub, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	if len(files["ipxe.efi"]) == 0 {
		t.Fatal("embed/ipxe has no ipxe.efi: run scripts/fetch-ipxe.sh first")
	}

	// Info per transfer, to stderr, as the real server logs.
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := New(Config{Addr: addr, Files: StaticFiles(files), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	if srv.Addr() == nil {
		t.Fatal(<-done)
	}
	if ready := os.Getenv("FLEETBOOT_TFTP_BENCH_READY"); ready != "" {
		if err := os.WriteFile(ready, []byte(srv.Addr().String()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
