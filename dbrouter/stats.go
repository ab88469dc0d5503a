package dbrouter

import (
	"sync/atomic"
	"time"
)

// counters are the router's hot counters, kept as atomics.
type counters struct {
	writes, primaryReads, replicaReads atomic.Uint64
	fallbacks, overBudget              atomic.Uint64
	waits                              atomic.Uint64
	waitNanos                          atomic.Int64
	tokenErrors, heartbeatErrors       atomic.Uint64
	failoverRetries                    atomic.Uint64
}

// Stats is a snapshot of the router's counters, for dashboards, metrics and
// tests.
type Stats struct {
	Writes          uint64        // ExecContext calls and read-write BeginTx calls
	PrimaryReads    uint64        // queries served by the primary (unmarked, fallback, or no replicas)
	ReplicaReads    uint64        // read-only queries and transactions served by a replica
	Fallbacks       uint64        // read-only queries sent to the primary because no replica qualified
	OverBudget      uint64        // read-only queries refused the primary by the fallback budget
	Waits           uint64        // reads that polled replicas for their token
	WaitTime        time.Duration // total time spent in those waits
	TokenErrors     uint64        // writes whose position could not be read
	HeartbeatErrors uint64        // failed heartbeat writes
	FailoverRetries uint64        // write attempts retried because they were provably not applied
	Newest          Token         // the global scope
	Replicas        []ReplicaStats
}

// Stats returns a snapshot of the counters. It is safe for concurrent use.
func (r *Router) Stats() Stats {
	now := r.now()
	s := Stats{
		Writes:          r.st.writes.Load(),
		PrimaryReads:    r.st.primaryReads.Load(),
		ReplicaReads:    r.st.replicaReads.Load(),
		Fallbacks:       r.st.fallbacks.Load(),
		OverBudget:      r.st.overBudget.Load(),
		Waits:           r.st.waits.Load(),
		WaitTime:        time.Duration(r.st.waitNanos.Load()),
		TokenErrors:     r.st.tokenErrors.Load(),
		HeartbeatErrors: r.st.heartbeatErrors.Load(),
		FailoverRetries: r.st.failoverRetries.Load(),
		Newest:          r.Newest(),
	}
	for _, rep := range r.replicas {
		s.Replicas = append(s.Replicas, rep.stats(now))
	}
	return s
}
