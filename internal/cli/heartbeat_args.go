package cli

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
)

// heartbeatArgs are an app server's flags for announcing itself to
// balancers.
type heartbeatArgs struct {
	balancers stringList
	tokenFile string
}

func (h *heartbeatArgs) register(fl *flag.FlagSet) {
	fl.Var(&h.balancers, "balancer", "admin `URL` of a balancer to send heartbeats to (repeatable)")
	fl.StringVar(&h.tokenFile, "token-file", "", "`file` with the balancers' heartbeat token")
}

// wrap returns the handler to serve and, when balancers are given, the
// heartbeat loop to run beside it.
func (h *heartbeatArgs) wrap(id, self string, next http.Handler, log *slog.Logger) (http.Handler, func(context.Context) error, error) {
	if len(h.balancers) == 0 {
		return next, nil, nil
	}
	return next, nil, usageErrorf("--balancer: heartbeats are not available in this build yet")
}
