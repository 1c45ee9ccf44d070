// Command fleetboot is a network boot server: DHCP/TFTP hand firmware an embedded iPXE, and
// everything after that comes over HTTP.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		if !errors.As(err, new(errLogged)) {
			fmt.Fprintln(os.Stderr, "fleetboot:", err)
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			os.Exit(130) // stopped by Ctrl-C or SIGTERM, as shells report a SIGINT
		}
		os.Exit(1)
	}
}
