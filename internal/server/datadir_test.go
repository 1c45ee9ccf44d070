package server

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSecondServerOnOneDataDirIsRefused starts two servers on one --data (different HTTP
// ports, no DHCP, so nothing else stops the second): the second fails at once, naming the
// data directory and the holder's pid, and leaves the first one's files alone.
func TestSecondServerOnOneDataDirIsRefused(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, nil) }()
	if _, body := getWhenUp(t, "http://"+cfg.HTTPAddr+"/healthz", done, nil); body != "ok\n" {
		t.Fatalf("healthz: %q", body)
	}
	before, _ := os.ReadDir(cfg.DataDir)

	second := cfg
	second.HTTPAddr = freePort(t)
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	err := Run(sctx, second, nil)
	abs, _ := filepath.Abs(cfg.DataDir)
	if err == nil || !strings.Contains(err.Error(), abs) || !strings.Contains(err.Error(), "in use by another fleetboot") ||
		!strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second server on the same --data: %v", err)
	}
	after, _ := os.ReadDir(cfg.DataDir)
	if len(after) != len(before) {
		t.Errorf("the refused start changed the data directory: %d entries before, %d after", len(before), len(after))
	}
	if _, body := getWhenUp(t, "http://"+cfg.HTTPAddr+"/healthz", done, nil); body != "ok\n" {
		t.Fatalf("first server after the refused second: %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Stopped: the directory is free again.
	third := cfg
	third.HTTPAddr = freePort(t)
	tctx, tcancel := context.WithCancel(context.Background())
	tdone := make(chan error, 1)
	go func() { tdone <- Run(tctx, third, nil) }()
	if _, body := getWhenUp(t, "http://"+third.HTTPAddr+"/healthz", tdone, nil); body != "ok\n" {
		t.Fatalf("restart: %q", body)
	}
	tcancel()
	if err := <-tdone; err != nil {
		t.Fatal(err)
	}
}
