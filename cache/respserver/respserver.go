// Package respserver is scaleout's embedded shared cache: a small server
// speaking the subset of the Redis protocol (RESP2) that cache/rediscache
// uses, over an in-process otter v2 cache bounded by bytes. Under
// `scaleout up` one process runs it and every app process on the machine
// points its rediscache at it, so the app code, the lease and generation
// protocol and the conformance suite are the same as with real Redis, and
// going past one machine means giving the app servers a Redis address
// instead. The protocol is parsed by github.com/tidwall/redcon, which also
// provides the pub/sub fan-out.
//
// Commands: PING, ECHO, QUIT, SELECT 0, CLIENT (accepted, ignored), GET,
// MGET, SET with EX/PX and NX/XX, DEL, EXISTS, PTTL, DBSIZE, FLUSHALL,
// FLUSHDB, PUBLISH, SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE. HELLO is answered
// with an error, which makes clients fall back to RESP2. There is no
// persistence, replication, scripting or transaction: keys may be evicted
// when memory is short, which rediscache tolerates by design (a lost
// generation token reads as a miss).
package respserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
	"github.com/tidwall/redcon"
)

// Config configures a Server.
type Config struct {
	// MaxBytes bounds the memory the keys and values take, approximately.
	// If zero, 256 MiB is used.
	MaxBytes uint64
	// Logger receives connection errors. If nil, nothing is logged.
	Logger *slog.Logger
}

// Server is an embedded RESP cache server. Serve it on a listener; it is
// safe for concurrent use.
type Server struct {
	kv        *otter.Cache[string, *value]
	evictions *stats.Counter
	ps        redcon.PubSub
	log       *slog.Logger

	// mu guards conns, the network connections being served (subscribers
	// included, which redcon stops tracking), so Serve can close them all.
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// value is a stored string with its expiry (unix nanos, 0 for none).
type value struct {
	data      []byte
	expiresAt int64
}

// forever is the otter expiry of keys set without a TTL.
const forever = 100 * 365 * 24 * time.Hour

// New returns a Server with an empty keyspace.
func New(cfg Config) (*Server, error) {
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 256 << 20
	}
	s := &Server{evictions: stats.NewCounter(), log: cfg.Logger, conns: make(map[net.Conn]struct{})}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	kv, err := otter.New(&otter.Options[string, *value]{
		MaximumWeight: cfg.MaxBytes,
		Weigher: func(k string, v *value) uint32 {
			return uint32(min(uint64(len(k)+len(v.data))+96, 1<<31))
		},
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *value]) time.Duration {
			if e.Value.expiresAt == 0 {
				return forever
			}
			return max(time.Until(time.Unix(0, e.Value.expiresAt)), time.Nanosecond)
		}),
		StatsRecorder: s.evictions,
	})
	if err != nil {
		return nil, fmt.Errorf("respserver: %w", err)
	}
	s.kv = kv
	return s, nil
}

// Serve answers RESP clients on ln until ctx is done, then closes ln and
// every connection and returns nil; it returns an error only if serving
// failed. The caller owns ln only until Serve is called. A Server serves
// one listener at a time.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := redcon.NewServer("", s.handle, nil, nil)
	srv.AcceptError = func(err error) { s.log.Warn("respserver accept", "err", err) }
	stop := context.AfterFunc(ctx, func() {
		_ = ln.Close()
		s.mu.Lock()
		conns := make([]net.Conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	defer stop()
	err := srv.Serve(&trackingListener{Listener: ln, s: s})
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("respserver: serve %s: %w", ln.Addr(), err)
	}
	return nil
}

// trackingListener records every connection it accepts in its Server, so
// Serve can close them all at shutdown: redcon forgets the connections it
// hands over to its pub/sub.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.conns[tc] = struct{}{}
	l.s.mu.Unlock()
	return tc, nil
}

// trackedConn leaves its Server's set when closed.
type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// Len returns the number of keys held, expired ones not yet swept included.
func (s *Server) Len() int { return s.kv.EstimatedSize() }

// Evictions returns how many keys were evicted to bound memory.
func (s *Server) Evictions() uint64 { return s.evictions.Snapshot().Evictions }

// Close stops the keyspace's background maintenance; call it after Serve
// has returned.
func (s *Server) Close() error {
	s.kv.StopAllGoroutines()
	return nil
}
