// Command fleetboot is a network boot server: DHCP/TFTP hand firmware an embedded iPXE, and
// everything after that comes over HTTP.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fleetboot:", err)
		os.Exit(1)
	}
}
