package cli

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"time"

	"scaleout/health"
)

// heartbeatArgs are an app server's flags for announcing itself to
// balancers.
type heartbeatArgs struct {
	balancers stringList
	tokenFile string
	interval  time.Duration
	capacity  int
}

func (h *heartbeatArgs) register(fl *flag.FlagSet) {
	fl.Var(&h.balancers, "balancer", "admin `URL` of a balancer to send heartbeats to (repeatable)")
	fl.StringVar(&h.tokenFile, "token-file", "", "`file` with the balancers' heartbeat token")
	fl.DurationVar(&h.interval, "heartbeat-interval", time.Second, "time between heartbeats")
	fl.IntVar(&h.capacity, "capacity", 0, "requests this server can serve at once, reported in heartbeats (0: unknown)")
}

// wrap returns the handler to serve and, when balancers are given, the
// heartbeat loop to run beside it; the handler then counts in-flight
// requests for the heartbeats.
func (h *heartbeatArgs) wrap(id, self string, next http.Handler, log *slog.Logger) (http.Handler, func(context.Context) error, error) {
	if len(h.balancers) == 0 {
		return next, nil, nil
	}
	if h.tokenFile == "" {
		return nil, nil, usageErrorf("--balancer needs --token-file")
	}
	token, err := readToken(h.tokenFile)
	if err != nil {
		return nil, nil, UsageError{Err: err}
	}
	s, err := health.NewSender(health.SenderConfig{
		Balancers: h.balancers, Self: self, ID: id, Token: token,
		Interval: h.interval, Capacity: h.capacity, Logger: log,
	})
	if err != nil {
		return nil, nil, UsageError{Err: err}
	}
	return s.Middleware(next), s.Run, nil
}
