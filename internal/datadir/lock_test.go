package datadir

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// A second lock on the same directory (another open file description, as another process
// would have) is refused with the directory and the holder's pid; after Close it is free.
func TestSecondLockIsRefusedNamingDirAndHolder(t *testing.T) {
	dir := t.TempDir()
	first, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) ||
		!strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again.Close()
	if _, err := Acquire(dir + "/missing"); err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("missing directory: %v", err)
	}
}
