package dbrouter

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"sync"
	"time"
)

// heartbeats remembers when this router wrote its recent heartbeat
// sequence numbers. A replica's time lag is then the age of the oldest of
// our heartbeats it has not replayed: zero when it has replayed the newest,
// however idle the primary is. That is why the row exists: the built-in
// gauges (now() - pg_last_xact_replay_timestamp()) grow without bound on an
// idle primary although the replica is fully caught up.
type heartbeats struct {
	// mu guards ring, n and primaryPos.
	mu         sync.Mutex
	ring       [64]beat
	n          int // beats written so far; ring holds the last min(n, 64)
	primaryPos LSN // the primary's position at the newest beat
}

type beat struct {
	seq int64
	at  time.Time
}

func (h *heartbeats) add(seq int64, at time.Time, pos LSN) {
	h.mu.Lock()
	h.ring[h.n%len(h.ring)] = beat{seq, at}
	h.n++
	h.primaryPos = pos
	h.mu.Unlock()
}

// lag returns how long the oldest beat with a sequence number above seen
// has waited at now, and the primary's position.
func (h *heartbeats) lag(seen int64, now time.Time) (time.Duration, LSN, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0, 0, false
	}
	first := max(0, h.n-len(h.ring))
	for i := first; i < h.n; i++ {
		b := h.ring[i%len(h.ring)]
		if b.seq > seen {
			return max(0, now.Sub(b.at)), h.primaryPos, true
		}
	}
	return 0, h.primaryPos, true
}

// Run measures replication lag until ctx is done, then returns nil. Every
// HeartbeatInterval (the first tick jittered, so many routers do not beat in
// step) it bumps the heartbeat row on the primary, then asks each replica
// which beat and WAL position it has replayed: lag in bytes is the primary's
// position minus the replica's, lag in time the age of the oldest beat the
// replica has not replayed. Replicas beyond MaxLagBytes or MaxLagTime are
// skipped by reads. An ejected replica is probed here once its backoff
// ends and returns to rotation when it answers.
func (r *Router) Run(ctx context.Context) error {
	iv := r.cfg.HeartbeatInterval
	first := time.NewTimer(time.Duration(rand.Int64N(int64(iv)/4 + 1)))
	defer first.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-first.C:
	}
	tick := time.NewTicker(iv)
	defer tick.Stop()
	setup := false
	for {
		if !setup {
			setup = r.setupHeartbeat(ctx)
		}
		if setup {
			r.Beat(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (r *Router) setupHeartbeat(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.HeartbeatInterval)
	defer cancel()
	if err := r.dialect.SetupHeartbeat(cctx, r.primary); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("dbrouter: heartbeat setup failed; will retry", "err", err)
		}
		return false
	}
	return true
}

// Beat runs one heartbeat round now: what Run does each interval. It is
// exported for tests and for callers that drive their own loop. It blocks
// for at most about one HeartbeatInterval.
func (r *Router) Beat(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.HeartbeatInterval)
	defer cancel()
	err := r.onPrimary(cctx, func(c *sql.Conn) error {
		seq, pos, err := r.dialect.WriteHeartbeat(cctx, c)
		if err == nil {
			r.hb.add(seq, r.now(), pos.LSN)
		}
		return err
	})
	if err != nil && ctx.Err() == nil {
		r.st.heartbeatErrors.Add(1)
		r.log.Warn("dbrouter: heartbeat write failed", "err", err)
	}
	var wg sync.WaitGroup
	for _, rep := range r.replicas {
		if !rep.available(r.now().UnixNano()) {
			continue // ejected and still backing off
		}
		wg.Go(func() { r.probe(cctx, rep) })
	}
	wg.Wait()
}

// probe reads one replica's heartbeat and updates its lag and health.
func (r *Router) probe(ctx context.Context, rep *Replica) {
	var seq int64
	var pos Token
	err := r.onReplica(rep, func() error {
		var err error
		seq, pos, err = r.dialect.ReadHeartbeat(ctx, rep.db)
		return err
	})
	if err != nil {
		if !r.dialect.IsConnError(err) && ctx.Err() == nil {
			r.log.Warn("dbrouter: replica heartbeat read failed", "replica", rep.name, "err", err)
		}
		return
	}
	maxStore(&rep.replayed, uint64(pos.LSN))
	lag, primaryPos, ok := r.hb.lag(seq, r.now())
	if !ok {
		return
	}
	bytes := int64(0)
	if primaryPos > pos.LSN && pos.LSN != 0 {
		bytes = int64(primaryPos - pos.LSN)
	}
	rep.lagBytes.Store(bytes)
	rep.lagNanos.Store(int64(lag))
	rep.lagKnown.Store(true)
}
