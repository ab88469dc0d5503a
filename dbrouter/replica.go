package dbrouter

import (
	"database/sql"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// ReplicaConfig names one read-only node for Config.Replicas.
type ReplicaConfig struct {
	// Name identifies the replica in Stats and logs. If empty, "replica-N"
	// (its index) is used.
	Name string
	// DB is the replica's pool; required. The caller owns it and closes it
	// after the router is no longer used.
	DB *sql.DB
}

// Replica is the router's view of one read-only node: its queries in flight,
// its health and its replication lag. Policies read it through its methods;
// it is safe for concurrent use.
type Replica struct {
	name string
	db   *sql.DB

	inflight atomic.Int64
	queries  atomic.Uint64
	errs     atomic.Uint64

	// replayed is the newest WAL position this replica was seen to have
	// replayed; positions only grow, so a cached value is a safe lower bound.
	replayed atomic.Uint64
	// lagKnown, lagBytes and lagNanos come from the heartbeat loop.
	lagKnown atomic.Bool
	lagBytes atomic.Int64
	lagNanos atomic.Int64

	// failures counts consecutive connection failures; downUntil (unix
	// nanoseconds) is when an ejected replica may be tried again.
	failures  atomic.Int64
	downUntil atomic.Int64
}

// Name returns the replica's name.
func (r *Replica) Name() string { return r.name }

// InFlight returns the number of queries the router has running on r now.
func (r *Replica) InFlight() int64 { return r.inflight.Load() }

// available reports whether r is not ejected at now.
func (r *Replica) available(now int64) bool { return now >= r.downUntil.Load() }

// lagOK reports whether r's measured lag is within the bounds. An unknown
// lag (no heartbeat yet, or Run not started) counts as within bounds: the
// tokens still guard read-your-writes.
func (r *Replica) lagOK(maxBytes int64, maxLag time.Duration) bool {
	if !r.lagKnown.Load() {
		return true
	}
	return r.lagBytes.Load() <= maxBytes && time.Duration(r.lagNanos.Load()) <= maxLag
}

// markFailure ejects r after a connection failure, for base doubled per
// consecutive failure up to max, with up to 25% jitter so many routers do not
// probe a recovering replica in lockstep. It returns the ejection time.
func (r *Replica) markFailure(now time.Time, base, max time.Duration) time.Duration {
	r.errs.Add(1)
	n := r.failures.Add(1)
	d := base
	for i := int64(1); i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	d += time.Duration(rand.Int64N(int64(d)/4 + 1))
	r.downUntil.Store(now.Add(d).UnixNano())
	return d
}

// markSuccess puts r back in rotation after a successful probe or query.
func (r *Replica) markSuccess() {
	if r.failures.Load() != 0 {
		r.failures.Store(0)
		r.downUntil.Store(0)
	}
}

// ReplicaStats is a snapshot of one replica for Stats.
type ReplicaStats struct {
	Name     string        // ReplicaConfig.Name
	InFlight int64         // queries and read-only transactions running on it now
	Queries  uint64        // queries started on it, including position checks and heartbeat reads
	Errors   uint64        // connection failures, each of which ejected it
	Down     bool          // ejected at the time of the snapshot
	Replayed LSN           // newest WAL position seen replayed
	LagKnown bool          // whether Run has measured its lag yet
	LagBytes int64         // WAL bytes behind the primary at the last heartbeat
	LagTime  time.Duration // age of the oldest heartbeat it had not replayed
}

func (r *Replica) stats(now time.Time) ReplicaStats {
	return ReplicaStats{
		Name:     r.name,
		InFlight: r.inflight.Load(),
		Queries:  r.queries.Load(),
		Errors:   r.errs.Load(),
		Down:     !r.available(now.UnixNano()),
		Replayed: LSN(r.replayed.Load()),
		LagKnown: r.lagKnown.Load(),
		LagBytes: r.lagBytes.Load(),
		LagTime:  time.Duration(r.lagNanos.Load()),
	}
}
