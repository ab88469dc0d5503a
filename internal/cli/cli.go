// Package cli is scaleout's command line: it parses flags and config files,
// builds the components from the root packages, and runs them. Flags and
// environment variables are read here and nowhere else.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one subcommand of scaleout. run parses its own flags from args;
// "-h" makes it print its usage and return nil.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// Env is what a subcommand may use of its process: its output streams.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
}

// commands lists every subcommand, in the order "scaleout help" shows them.
// Each command lives in a file of its own in this package.
func commands() []command {
	return []command{
		{"up", "run the whole stack on this machine: balancer, autoscaled app servers, dashboard", runUp},
		{"balance", "run the load balancer in front of a pool of app servers", runBalance},
		{"app", "run the example app server (the lecture's airline)", runApp},
		{"bench", "send HTTP load, open or closed loop, and measure latency and capacity", runBench},
		{"heartbeat", "announce an app server to balancers by heartbeat until SIGTERM, then leave", runHeartbeat},
		{"shard", "move a logical shard between PostgreSQL databases online (logical replication, fenced cutover)", runShard},
		{"version", "print the version", runVersion},
	}
}

// Version is scaleout's version, printed by "scaleout version".
const Version = "0.1.0-dev"

// UsageError is an error in the command line itself: an unknown command, a
// bad flag or flag value. It makes the process exit with status 2. Printed
// says whether the message already reached standard error (the flag package
// prints its own).
type UsageError struct {
	Err     error
	Printed bool
}

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// usageErrorf returns a UsageError with a formatted message.
func usageErrorf(format string, args ...any) error {
	return UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitCode is the process exit status for an error returned by Run: 0 for
// nil, 2 for a usage error, 1 for anything else.
func ExitCode(err error) int {
	var u UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		return 2
	default:
		return 1
	}
}

// Run runs the command line args (without the program name), writing to
// stdout and stderr, until the command finishes or ctx is done.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	env := &Env{Stdout: stdout, Stderr: stderr}
	if len(args) == 0 {
		printHelp(stderr)
		return UsageError{Err: errors.New("no command given"), Printed: false}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(rest) == 0 {
			printHelp(stdout)
			return nil
		}
		cmd, ok := lookup(rest[0])
		if !ok {
			return usageErrorf("unknown command %q (run \"scaleout help\" for the list)", rest[0])
		}
		return cmd.run(ctx, env, []string{"-h"})
	case "-version", "--version":
		return runVersion(ctx, env, nil)
	}
	cmd, ok := lookup(name)
	if !ok {
		return usageErrorf("unknown command %q (run \"scaleout help\" for the list)", name)
	}
	return cmd.run(ctx, env, rest)
}

func lookup(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func printHelp(w io.Writer) {
	var b strings.Builder
	b.WriteString("scaleout runs a horizontally scaled web application: load balancer, app servers,\n")
	b.WriteString("autoscaler, sessions, caches, database router and load generator, in one binary.\n\n")
	b.WriteString("Usage:\n  scaleout <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun \"scaleout help <command>\" for a command's flags.\n")
	io.WriteString(w, b.String())
}

// newFlagSet returns a flag set for the named subcommand whose usage message
// starts with synopsis and lists every flag.
func newFlagSet(env *Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("scaleout "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: scaleout %s\n\n", synopsis)
		fmt.Fprintf(out, "Flags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs. Asking for help prints the usage to
// standard output and returns errHelp; any other problem is a UsageError.
func parseFlags(env *Env, fs *flag.FlagSet, args []string) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(env.Stdout)
			fs.Usage()
			return errHelp
		}
		if a == "--" {
			break
		}
	}
	if err := fs.Parse(args); err != nil {
		return UsageError{Err: err, Printed: true}
	}
	return nil
}

// errHelp is returned by parseFlags when the usage was asked for and printed;
// commands return nil for it.
var errHelp = errors.New("help requested")

func runVersion(_ context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "version", "version")
	if err := parseFlags(env, fs, args); err != nil {
		return helpIsNil(err)
	}
	fmt.Fprintln(env.Stdout, "scaleout", Version)
	return nil
}

// helpIsNil turns errHelp into nil so "-h" exits 0.
func helpIsNil(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}
