// Package loadgen generates HTTP load and measures it honestly.
//
// Two models of load are offered. Open loop (Config.Rate > 0, the default of
// `scaleout bench`) sends requests at a constant arrival rate: request i is
// scheduled at start + i/Rate whatever the server does, and its latency is
// measured from that scheduled start, so a server that stalls cannot hide
// the wait of the requests it held back (the "coordinated omission" of
// closed-loop tools). Closed loop (Rate == 0) keeps Connections requests in
// flight and sends the next as soon as an answer comes, like wrk; it finds
// the throughput ceiling but under-reports latency when the server stalls.
//
// A Generator runs one measurement; a Search raises the rate in steps to
// find the highest rate a server sustains within a latency objective.
package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"time"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrBadConfig is returned by New for a Config that cannot run.
	ErrBadConfig = errors.New("bad load generator config")
	// ErrUnreachable is returned by Run when a target cannot be connected
	// to; no request has been sent.
	ErrUnreachable = errors.New("target unreachable")
)

// Config describes one load run. The zero value of every field but Targets
// has a documented default.
type Config struct {
	// Targets are the requests to send, used in turn (request i goes to
	// Targets[i % len(Targets)]). At least one is required. The generator
	// keeps its own copy of what it needs.
	Targets []Target

	// Rate is the open-loop arrival rate in requests per second. If zero,
	// the run is closed loop. Negative is an error.
	Rate float64

	// Connections is, in closed loop, the number of requests kept in
	// flight, each on its own keep-alive connection; if zero, 10 is used.
	// In open loop it caps the connections, hence the requests in flight:
	// a run starts with enough for 5ms answers (Rate/200, at least 16)
	// and adds one, at most every millisecond, whenever a request starts
	// more than 5ms late while all the others wait for answers. Once the
	// cap is reached, requests start late and the Result says so. If zero
	// in open loop, 256 is used: on a machine shared with the server, a
	// thousand connections slow the server more than they help (measured:
	// 1024 connections achieved 38% of an 8000 req/s schedule that 50
	// connections kept).
	Connections int

	// Duration bounds the run in time: no request is started after it.
	// If zero, 10s is used when Requests is zero, else 1h.
	Duration time.Duration

	// Requests bounds the run in count. If zero, only Duration bounds it.
	Requests int64

	// Timeout bounds connecting and each request's round trip; a request
	// on a busy keep-alive connection may time out up to 1/16 of it
	// sooner, which saves moving its deadline on every request. If zero,
	// 10s is used.
	Timeout time.Duration

	// DisableKeepAlive sends "Connection: close" and opens a new
	// connection for every request.
	DisableKeepAlive bool

	// TLS is the client TLS configuration for https targets. If nil, the
	// default configuration is used, with ServerName taken from the URL.
	TLS *tls.Config

	// Progress, if not nil, is called every ProgressInterval from Run's
	// goroutine with the figures so far. It must not block for long.
	Progress func(Progress)

	// ProgressInterval is how often Progress is called. If zero, 1s.
	ProgressInterval time.Duration

	// Logger receives debug messages about connections. If nil, nothing
	// is logged.
	Logger *slog.Logger
}

// Generator runs one load measurement described by a Config. A Generator is
// meant to be Run once; Run may be called again for a new measurement but
// not concurrently.
type Generator struct {
	cfg       Config
	endpoints []*endpoint
	requests  []request
	log       *slog.Logger
}

// New validates cfg and returns a Generator for it. It sends nothing and
// opens no connection; errors wrap ErrBadConfig and name the field.
func New(cfg Config) (*Generator, error) {
	if len(cfg.Targets) == 0 {
		return nil, fmt.Errorf("%w: no target", ErrBadConfig)
	}
	switch {
	case cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0):
		return nil, fmt.Errorf("%w: rate %v: must be a positive number of requests per second, or 0 for closed loop", ErrBadConfig, cfg.Rate)
	case cfg.Connections < 0:
		return nil, fmt.Errorf("%w: connections %d: must not be negative", ErrBadConfig, cfg.Connections)
	case cfg.Duration < 0:
		return nil, fmt.Errorf("%w: duration %v: must not be negative", ErrBadConfig, cfg.Duration)
	case cfg.Requests < 0:
		return nil, fmt.Errorf("%w: requests %d: must not be negative", ErrBadConfig, cfg.Requests)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("%w: timeout %v: must not be negative", ErrBadConfig, cfg.Timeout)
	case cfg.ProgressInterval < 0:
		return nil, fmt.Errorf("%w: progress interval %v: must not be negative", ErrBadConfig, cfg.ProgressInterval)
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
		if cfg.Requests > 0 {
			cfg.Duration = time.Hour
		}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = time.Second
	}
	if cfg.Connections == 0 {
		cfg.Connections = 10
		if cfg.Rate > 0 {
			cfg.Connections = 256
		}
	}
	if cfg.Requests > 0 && int64(cfg.Connections) > cfg.Requests {
		cfg.Connections = int(cfg.Requests)
	}
	g := &Generator{cfg: cfg, log: cfg.Logger}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	byAddr := map[string]int{}
	for i, t := range cfg.Targets {
		ep, req, err := t.compile(!cfg.DisableKeepAlive)
		if err != nil {
			return nil, fmt.Errorf("%w: target %d: %w", ErrBadConfig, i+1, err)
		}
		key := fmt.Sprint(ep.tls, ep.addr)
		idx, ok := byAddr[key]
		if !ok {
			idx = len(g.endpoints)
			byAddr[key] = idx
			g.endpoints = append(g.endpoints, ep)
		}
		req.endpoint = idx
		g.requests = append(g.requests, req)
	}
	return g, nil
}

// Config returns the configuration the Generator runs, defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// Check connects once to every distinct target address and closes the
// connection, sending nothing. Run calls it first; an error wraps
// ErrUnreachable.
func (g *Generator) Check(ctx context.Context) error {
	for _, ep := range g.endpoints {
		c, err := dial(ctx, ep, g.cfg.Timeout, g.cfg.TLS)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrUnreachable, ep.addr, err)
		}
		c.close()
	}
	return nil
}

// Run checks that the targets are reachable, sends the load and returns the
// measurement. When ctx is cancelled mid-run, no new request is started and
// Run returns the figures so far together with ctx's error.
func (g *Generator) Run(ctx context.Context) (*Result, error) {
	if err := g.Check(ctx); err != nil {
		return nil, err
	}
	return g.run(ctx)
}

// endpoint is one distinct server address that targets point at.
type endpoint struct {
	addr     string // host:port to dial
	hostname string // for TLS server name
	tls      bool
}

// dialTimeoutErr tells whether err is a timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
