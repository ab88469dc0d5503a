package cache

import "sync/atomic"

// Stats is a snapshot of a Cache's counters since it was made, for metrics
// and the dashboard.
type Stats struct {
	// Hits counts reads answered from the cache, negative entries included.
	Hits uint64
	// Misses counts reads that found nothing cached.
	Misses uint64
	// NegativeHits counts hits on a remembered "not found".
	NegativeHits uint64
	// Loads counts loader calls.
	Loads uint64
	// LoadErrors counts loads that failed (ErrNotFound is not a failure).
	LoadErrors uint64
	// EarlyRefreshes counts hits that XFetch turned into a refresh.
	EarlyRefreshes uint64
	// LeaseWaits counts waits for another server's load of the same key.
	LeaseWaits uint64
	// Invalidations counts keys and tags invalidated through this Cache.
	Invalidations uint64
	// StoreErrors counts failed store calls; each one fell back to the
	// loader.
	StoreErrors uint64
	// Evictions counts entries the store evicted for room, when the store
	// implements EvictionCounter; otherwise zero.
	Evictions uint64
}

// counters are the live values behind Stats; hot ones are atomics.
type counters struct {
	hits, misses, negativeHits, loads, loadErrors atomic.Uint64
	earlyRefreshes, leaseWaits, invalidations     atomic.Uint64
	storeErrors                                   atomic.Uint64
}

// Stats returns a snapshot of the counters. It is safe for concurrent use.
func (c *Cache[V]) Stats() Stats {
	s := Stats{
		Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(),
		NegativeHits: c.stats.negativeHits.Load(), Loads: c.stats.loads.Load(),
		LoadErrors: c.stats.loadErrors.Load(), EarlyRefreshes: c.stats.earlyRefreshes.Load(),
		LeaseWaits: c.stats.leaseWaits.Load(), Invalidations: c.stats.invalidations.Load(),
		StoreErrors: c.stats.storeErrors.Load(),
	}
	if ec, ok := c.store.(EvictionCounter); ok {
		s.Evictions = ec.Evictions()
	}
	return s
}
