// Package cache is the server-side cache of scaleout's app servers: a typed
// get-or-load cache in front of the database that every app server shares,
// invalidated on write, with expiry, stampede protection and no stale read
// after a write.
//
// # Use
//
//	c, err := cache.New(cache.Config[Flight]{Store: store})
//	f, err := c.GetOrLoad(ctx, "flight:42", time.Minute, loadFlight42, cache.WithTags("flight:42"))
//	// after the UPDATE has committed:
//	err = c.Invalidate(ctx, "flight:42")        // or c.InvalidateTags(ctx, "flight:42")
//
// A Cache is typed (Cache[V], values encoded by a Codec, JSON by default)
// and sits over a Store, chosen by where the app servers run:
//
//   - cache/local: in this process (otter v2, bounded by bytes). One app
//     process, or tests.
//   - cache/rediscache: Redis, or anything speaking its protocol. App
//     servers on several machines share it.
//   - cache/twolevel: a near cache in each server (cache/local) in front of
//     cache/rediscache, invalidated by Redis pub/sub, so a hit costs what an
//     in-process hit costs and a write on one server drops every server's
//     copy within milliseconds.
//   - cache/respserver is not a Store but the embedded default: a small
//     server speaking the subset of the Redis protocol that rediscache uses,
//     over an in-process otter cache. See "The embedded default" below.
//
// Every Store passes the same conformance suite, cache/cachetest.
//
// # Stampedes
//
// Concurrent misses of one key share one load inside a process (single
// flight). Across servers, Store.Reserve takes a short lease on the key
// (SET NX PX in Redis): one server loads, the others poll for its entry
// with backoff for up to Config.LeaseWait, then load themselves. N servers
// missing together cause one database query. Entries expire after their TTL
// shortened by a random jitter (Config.Jitter), so keys loaded together do
// not expire together, and optionally a hit refreshes the entry early with
// the XFetch probability (Config.EarlyRefresh) so a hot key never expires
// under load. A loader's ErrNotFound is remembered for Config.NegativeTTL.
//
// # No stale read after a write
//
// The ordering is: write the database, let it commit, then Invalidate (or
// InvalidateTags). The classic race is a reader that missed, read the old
// row before the write, and fills the cache after the invalidation,
// leaving the old value cached until it expires. It is closed by
// generations: Reserve records the key's (and tags') generation before the
// load; Invalidate changes it; an entry filled under an outdated
// generation is never served. The in-process store checks the generation in
// Put, under the lock that Invalidate takes. Redis cannot check and set
// atomically without Lua, which the embedded server does not run, so
// rediscache stores the generation tokens in the entry's header and every
// Get compares them with the live ones (one MGET): a key's generation is a
// random token created by Reserve when absent and deleted by Invalidate,
// and a missing token never matches, so eviction or expiry of a token can
// only cause a miss, never a stale hit. Invalidate also detaches loads in
// flight in this process, so a read that starts after Invalidate returns
// never joins a load that may have read the old row. A read on another
// server may still join that server's load in flight, begun before the
// write, and get its result: that load's entry is never stored, so the
// window closes when the load returns.
//
// Other servers' near caches (cache/twolevel) drop their copies when the
// invalidation message arrives, within milliseconds; a near cache is filled
// only from a validated Redis read, taken under a near generation stamped
// before that read, and it is bypassed and cleared whenever its pub/sub
// connection is down, since invalidations may have been missed.
//
// # Store failures
//
// When the store fails (Redis down), GetOrLoad loads from the Loader and
// returns the value without caching it, counts Stats.StoreErrors and logs
// one line a second at most. Nothing known to be stale is served.
//
// # The embedded default
//
// Under `scaleout up` the app processes on one machine share one cache with
// no Redis installed. The simplest honest design is to run
// cache/respserver (in the balancer process, or any one process) and point
// every app process's rediscache at it: the same client code, the same
// lease and generation protocol, and the same conformance suite run against
// real Redis and against the embedded server; moving past one machine means
// changing an address, not a code path. Sharing memory between processes
// (mmap, a SQLite file) would need a second implementation of leases,
// generations and invalidation push, and would not be what runs at scale.
// The server implements only what rediscache sends (GET, MGET, SET with
// EX/PX/NX, DEL, PUBLISH, SUBSCRIBE and a few connection commands); it does
// not persist, replicate or run scripts.
package cache
