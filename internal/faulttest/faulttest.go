// Package faulttest runs a test's own binary as a child process that reports what it has
// done, and SIGKILLs it: the kill -9 fault tests use it to check that what the child
// acknowledged before it died survives a restart.
package faulttest

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Ack is the prefix of the lines a child prints for each acknowledged step: "ACK field …".
const Ack = "ACK"

// KillAfterAcks re-runs the calling test (t.Name()) in a child process with env added, reads
// the lines it prints until it has printed n lines starting with "ACK", SIGKILLs it, and
// returns the fields after "ACK" of every such line (those written before it died included).
// A line starting with "ERR" fails the test. The wait is bounded by two minutes.
func KillAfterAcks(t *testing.T, n int, env ...string) [][]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var acks [][]string
	record := func(l string) {
		f := strings.Fields(l)
		switch {
		case len(f) > 0 && f[0] == Ack:
			acks = append(acks, f[1:])
		case len(f) > 0 && f[0] == "ERR":
			t.Errorf("child: %s", l)
		}
	}
	deadline := time.After(2 * time.Minute)
	for len(acks) < n {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("child ended after %d acknowledgements: %s", len(acks), stderr.String())
			}
			record(l)
		case <-deadline:
			t.Fatalf("only %d acknowledgements within 2 minutes: %s", len(acks), stderr.String())
		}
	}
	cmd.Process.Kill() // SIGKILL: nothing in the child runs any more
	for l := range lines {
		record(l)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child did not die by the signal: %v", err)
	}
	return acks
}
