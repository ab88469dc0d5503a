// Command scaleout runs the parts of a horizontally scaled web application:
// the load balancer, the example app, the autoscaler, the load generator and
// the whole stack at once. See "scaleout help".
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"scaleout/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var u cli.UsageError
		if !errors.As(err, &u) || !u.Printed {
			fmt.Fprintln(os.Stderr, "scaleout:", err)
		}
		os.Exit(cli.ExitCode(err))
	}
}
