package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"scaleout/health"
)

const heartbeatSynopsis = `heartbeat --balancer URL [--balancer URL...] --self URL --token-file FILE [flags]

Announces an app server that is not written in Go to one or more balancers:
sends a heartbeat to each balancer's admin listener (POST /api/heartbeat)
every interval, jittered, until SIGTERM or SIGINT, then sends "leaving" so the
balancers stop routing to it at once. Run it beside the app server; stop it
just before stopping the app. It reports no in-flight count (always 0).`

func runHeartbeat(ctx context.Context, env *Env, args []string) error {
	fl := newFlagSet(env, "heartbeat", heartbeatSynopsis)
	var balancers stringList
	fl.Var(&balancers, "balancer", "admin base `URL` of a balancer, like http://10.0.0.1:9090 (repeatable)")
	self := fl.String("self", "", "`URL` balancers reach the app server at: http://host:port")
	tokenFile := fl.String("token-file", "", "`file` holding the balancers' heartbeat token")
	id := fl.String("id", "", "member `id` (default: host:port of --self)")
	interval := fl.Duration("interval", time.Second, "time between heartbeats, 50ms to 1m (each wait jittered ±20%)")
	capacity := fl.Int("capacity", 0, "requests the app server can serve at once (0: unknown)")
	weight := fl.Int("weight", 0, "relative share 1 to 1000 (0: the balancer's default)")
	logLevel := fl.String("log-level", "info", "log `level`: debug, info, warn or error")
	if err := parseFlags(env, fl, args); err != nil {
		return helpIsNil(err)
	}
	if fl.NArg() > 0 {
		return usageErrorf("heartbeat: unexpected argument %q", fl.Arg(0))
	}
	switch {
	case len(balancers) == 0:
		return usageErrorf("heartbeat: --balancer is required")
	case *self == "":
		return usageErrorf("heartbeat: --self is required")
	case *tokenFile == "":
		return usageErrorf("heartbeat: --token-file is required")
	case *interval <= 0:
		return usageErrorf("heartbeat: --interval %v: want 50ms to 1m", *interval)
	}
	log, err := newLogger(env, *logLevel)
	if err != nil {
		return UsageError{Err: err}
	}
	s, err := newHeartbeatSender(balancers, *tokenFile, *id, *self, func(c *health.SenderConfig) {
		c.Interval, c.Capacity, c.Weight = *interval, *capacity, *weight
	}, log)
	if err != nil {
		return err
	}
	log.Info("sending heartbeats", "id", s.ID(), "self", *self, "balancers", len(balancers), "interval", *interval)
	return s.Run(ctx)
}

// newHeartbeatSender builds the heartbeat sender an app server runs: token
// read from tokenFile, id defaulting to self's host:port. edit, if not nil,
// sets further SenderConfig fields. Errors in the arguments are
// UsageErrors naming the flag.
func newHeartbeatSender(balancers []string, tokenFile, id, self string, edit func(*health.SenderConfig), log *slog.Logger) (*health.Sender, error) {
	token, err := readHeartbeatToken(tokenFile)
	if err != nil {
		return nil, UsageError{Err: fmt.Errorf("--token-file: %w", err)}
	}
	cfg := health.SenderConfig{Balancers: balancers, Self: self, ID: id, Token: token, Logger: log}
	if edit != nil {
		edit(&cfg)
	}
	s, err := health.NewSender(cfg)
	if err != nil {
		return nil, UsageError{Err: fmt.Errorf("heartbeat: %w", err)}
	}
	return s, nil
}

// readHeartbeatToken reads a heartbeat bearer token from path: one line of
// 16 to 4096 printable ASCII bytes without spaces, surrounding whitespace
// ignored.
func readHeartbeatToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s does not exist", path)
	}
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(data))
	switch {
	case token == "":
		return "", fmt.Errorf("%s is empty", path)
	case len(token) < 16:
		return "", fmt.Errorf("%s: token shorter than 16 characters (balancers refuse those)", path)
	case len(token) > 4096:
		return "", fmt.Errorf("%s: token longer than 4096 bytes", path)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return "", fmt.Errorf("%s: token has a space, control or non-ASCII byte at %d", path, i)
		}
	}
	return token, nil
}
