package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Loader loads the value for a key from the source of truth, typically the
// database. It returns an error matching ErrNotFound when there is no value,
// which the cache remembers for Config.NegativeTTL.
type Loader[V any] func(ctx context.Context) (V, error)

// Config configures a Cache. The zero value of every field but Store is
// usable.
type Config[V any] struct {
	// Store keeps the entries. Required.
	Store Store
	// Codec encodes values for the Store. If nil, JSONCodec is used.
	Codec Codec[V]
	// NegativeTTL is how long a "not found" from a Loader is remembered.
	// If zero, 5s is used.
	NegativeTTL time.Duration
	// Jitter shortens each TTL by a random fraction up to Jitter, so
	// entries loaded together do not expire together. If zero, 0.1 is
	// used; a negative value disables jitter. Values above 1 are an error.
	Jitter float64
	// EarlyRefresh is the beta of probabilistic early refresh (XFetch,
	// Vattani et al., "Optimal Probabilistic Cache Stampede Prevention",
	// VLDB 2015): a hit reloads early with a probability that grows as the
	// entry nears expiry and with how long its load took, so a hot key is
	// refreshed by one caller before it expires. 1 is the paper's default;
	// larger refreshes earlier. If zero, early refresh is off.
	EarlyRefresh float64
	// LeaseWait is how long a miss waits for another server that holds the
	// key's load lease before loading itself. If zero, 3s is used.
	LeaseWait time.Duration
	// Logger receives a line when the store fails (at most one a second).
	// If nil, nothing is logged.
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// LoadOption changes one GetOrLoad call.
type LoadOption struct {
	tags []string
}

// WithTags tags the entry, so InvalidateTags with any of tags removes it.
// The slice is kept; the caller must not modify it afterwards.
func WithTags(tags ...string) LoadOption { return LoadOption{tags: tags} }

// Cache is a typed get-or-load cache over a Store: at most one load per key
// at a time in this process, and one across servers when the Store leases
// (Redis). It is safe for concurrent use. Values it returns are shared with
// other callers and must not be modified.
type Cache[V any] struct {
	store  Store
	codec  Codec[V]
	negTTL time.Duration
	jitter float64
	beta   float64
	wait   time.Duration
	log    *slog.Logger
	now    func() time.Time
	flight flight[V]

	lastLog atomic.Int64 // unix nanos of the last store-failure log line
	stats   counters
}

// New returns a Cache over cfg.Store.
func New[V any](cfg Config[V]) (*Cache[V], error) {
	if cfg.Store == nil {
		return nil, ErrNoStore
	}
	if cfg.Jitter > 1 || math.IsNaN(cfg.Jitter) {
		return nil, fmt.Errorf("cache: jitter %v must be at most 1", cfg.Jitter)
	}
	if cfg.EarlyRefresh < 0 || math.IsNaN(cfg.EarlyRefresh) {
		return nil, fmt.Errorf("cache: early refresh beta %v must not be negative", cfg.EarlyRefresh)
	}
	if cfg.NegativeTTL < 0 || cfg.LeaseWait < 0 {
		return nil, fmt.Errorf("cache: negative ttl %v and lease wait %v must not be negative: %w",
			cfg.NegativeTTL, cfg.LeaseWait, ErrInvalidTTL)
	}
	c := &Cache[V]{
		store: cfg.Store, codec: cfg.Codec, negTTL: cfg.NegativeTTL, jitter: cfg.Jitter,
		beta: cfg.EarlyRefresh, wait: cfg.LeaseWait, log: cfg.Logger, now: cfg.Now,
	}
	if c.codec == nil {
		c.codec = JSONCodec[V]{}
	}
	if c.negTTL == 0 {
		c.negTTL = 5 * time.Second
	}
	switch {
	case c.jitter == 0:
		c.jitter = 0.1
	case c.jitter < 0:
		c.jitter = 0
	}
	if c.wait == 0 {
		c.wait = 3 * time.Second
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Get returns the cached value for key without loading it. ok is false on a
// miss, on a negative entry and when the store cannot be reached.
func (c *Cache[V]) Get(ctx context.Context, key string) (v V, ok bool) {
	e, err := c.store.Get(ctx, key)
	if err != nil {
		c.storeFailed(err)
		return v, false
	}
	if e == nil || e.Negative {
		c.stats.misses.Add(1)
		return v, false
	}
	v, err = c.decode(e)
	if err != nil {
		c.stats.misses.Add(1)
		return v, false
	}
	c.stats.hits.Add(1)
	return v, true
}

// GetOrLoad returns the value for key from the cache, or loads it with load,
// caches it for ttl (less jitter) and returns it. Concurrent misses of one
// key share one load in this process, and across servers when the store
// leases. A loader's ErrNotFound is cached for Config.NegativeTTL and
// returned; other loader errors are returned wrapped and not cached. When
// the store fails, the value is loaded and returned without caching.
func (c *Cache[V]) GetOrLoad(ctx context.Context, key string, ttl time.Duration, load Loader[V], opts ...LoadOption) (V, error) {
	if ttl <= 0 {
		var zero V
		return zero, fmt.Errorf("get %q with ttl %v: %w", key, ttl, ErrInvalidTTL)
	}
	e, err := c.store.Get(ctx, key)
	if err != nil {
		c.storeFailed(err)
		e = nil
	}
	if e != nil {
		if c.beta == 0 || !c.refreshNow(e) || c.flight.busy(key) {
			c.stats.hits.Add(1)
			return c.hit(e)
		}
		c.stats.earlyRefreshes.Add(1)
	} else {
		c.stats.misses.Add(1)
	}
	return c.loadShared(ctx, key, ttl, load, tagsOf(opts), e)
}

// hit returns the value of a live entry.
func (c *Cache[V]) hit(e *Entry) (V, error) {
	if e.Negative {
		c.stats.negativeHits.Add(1)
		var zero V
		return zero, ErrNotFound
	}
	return c.decode(e)
}

// decode returns e's value, decoding it once per entry.
func (c *Cache[V]) decode(e *Entry) (V, error) {
	if m := e.memo.Load(); m != nil {
		if v, ok := m.v.(V); ok {
			return v, nil
		}
	}
	v, err := c.codec.Unmarshal(e.Value)
	if err != nil {
		return v, fmt.Errorf("decode cached value: %w", err)
	}
	e.memo.Store(&memo{v: v})
	return v, nil
}

// refreshNow is the XFetch test: refresh when
// now - delta*beta*ln(rand) >= expiry, rand uniform in (0, 1].
func (c *Cache[V]) refreshNow(e *Entry) bool {
	gap := float64(e.Delta) * c.beta * -math.Log(1-rand.Float64())
	return !c.now().Add(time.Duration(gap)).Before(e.Expires)
}

// loadShared runs one load of key per process; the other callers wait for
// its result. A follower whose leader was cancelled while the follower's own
// context is live tries again. cur is the live entry an early refresh
// replaces, nil on a miss.
func (c *Cache[V]) loadShared(ctx context.Context, key string, ttl time.Duration, load Loader[V], tags []string, cur *Entry) (V, error) {
	for {
		call, leader := c.flight.join(key, tags)
		if leader {
			return c.lead(ctx, call, key, ttl, load, tags, cur)
		}
		select {
		case <-call.done:
		case <-ctx.Done():
			var zero V
			return zero, fmt.Errorf("wait for load of %q: %w", key, ctx.Err())
		}
		leaderCancelled := errors.Is(call.err, context.Canceled) || errors.Is(call.err, context.DeadlineExceeded)
		if !leaderCancelled || ctx.Err() != nil {
			return call.v, call.err
		}
	}
}

// lead loads key as the flight's leader and always finishes the call, even
// if the loader panics.
func (c *Cache[V]) lead(ctx context.Context, call *call[V], key string, ttl time.Duration, load Loader[V], tags []string, cur *Entry) (v V, err error) {
	finished := false
	defer func() {
		if !finished {
			var zero V
			c.flight.finish(key, call, zero, fmt.Errorf("load %q: loader panicked", key))
		}
	}()
	v, err = c.fill(ctx, key, ttl, load, tags, cur)
	finished = true
	c.flight.finish(key, call, v, err)
	return v, err
}

// fill reserves key, waits while another server holds its lease (polling
// for that server's entry with backoff), then loads and stores the value.
// An early refresh (cur != nil) that finds the lease taken serves cur: the
// other server is refreshing already.
func (c *Cache[V]) fill(ctx context.Context, key string, ttl time.Duration, load Loader[V], tags []string, cur *Entry) (V, error) {
	deadline := c.now().Add(c.wait)
	backoff := time.Millisecond
	for {
		r, err := c.store.Reserve(ctx, key, tags)
		if err != nil {
			c.storeFailed(err)
			return c.loadOnly(ctx, key, load)
		}
		if r.Leased && cur == nil {
			// Another server may have filled the key between our miss
			// and our lease: look once more before loading.
			if e, err := c.store.Get(ctx, key); err == nil && e != nil {
				c.release(context.WithoutCancel(ctx), r)
				c.stats.hits.Add(1)
				return c.hit(e)
			}
		}
		if r.Leased || !c.now().Before(deadline) {
			return c.loadAndPut(ctx, r, ttl, load)
		}
		if cur != nil {
			return c.hit(cur)
		}
		c.stats.leaseWaits.Add(1)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			var zero V
			return zero, fmt.Errorf("wait for lease on %q: %w", key, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, 50*time.Millisecond)
		if e, err := c.store.Get(ctx, key); err == nil && e != nil {
			c.stats.hits.Add(1)
			return c.hit(e)
		}
	}
}

// loadOnly loads without the store, for when the store is down.
func (c *Cache[V]) loadOnly(ctx context.Context, key string, load Loader[V]) (V, error) {
	c.stats.loads.Add(1)
	v, err := load(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.stats.loadErrors.Add(1)
		return v, fmt.Errorf("load %q: %w", key, err)
	}
	return v, err
}

// loadAndPut runs the loader and hands its result to the store under r.
func (c *Cache[V]) loadAndPut(ctx context.Context, r *Reservation, ttl time.Duration, load Loader[V]) (V, error) {
	// The store must hear back even when the caller has gone or the
	// loader panicked, or the lease would hold the other servers up until
	// it expires.
	sctx := context.WithoutCancel(ctx)
	defer func() {
		if p := recover(); p != nil {
			c.release(sctx, r)
			panic(p)
		}
	}()
	start := c.now()
	c.stats.loads.Add(1)
	v, err := load(ctx)
	end := c.now()
	e := &Entry{Delta: end.Sub(start), Tags: r.Tags}
	switch {
	case err == nil:
		data, merr := c.codec.Marshal(v)
		if merr != nil {
			c.stats.loadErrors.Add(1)
			c.release(sctx, r)
			return v, fmt.Errorf("encode value of %q: %w", r.Key, merr)
		}
		e.Value = data
		e.memo.Store(&memo{v: v})
	case errors.Is(err, ErrNotFound):
		e.Negative = true
		ttl = c.negTTL
	default:
		c.stats.loadErrors.Add(1)
		c.release(sctx, r)
		return v, fmt.Errorf("load %q: %w", r.Key, err)
	}
	ttl = c.jittered(ttl)
	e.Expires = end.Add(ttl)
	if perr := c.store.Put(sctx, r, e, ttl); perr != nil {
		c.storeFailed(perr)
	}
	return v, err
}

func (c *Cache[V]) release(ctx context.Context, r *Reservation) {
	if err := c.store.Release(ctx, r); err != nil {
		c.storeFailed(err)
	}
}

// jittered shortens ttl by a random fraction up to the configured jitter,
// keeping at least a millisecond.
func (c *Cache[V]) jittered(ttl time.Duration) time.Duration {
	if c.jitter == 0 {
		return ttl
	}
	ttl -= time.Duration(rand.Float64() * c.jitter * float64(ttl))
	return max(ttl, time.Millisecond)
}

// Invalidate removes keys from the cache, on every server that shares the
// store. Call it after the write to the source of truth has committed: a
// load that read the old value before the write cannot put it back (its
// reservation is outdated), and reads that start after Invalidate returns
// load anew.
func (c *Cache[V]) Invalidate(ctx context.Context, keys ...string) error {
	c.flight.forget(keys)
	c.stats.invalidations.Add(uint64(len(keys)))
	if err := c.store.Invalidate(ctx, keys...); err != nil {
		c.storeFailed(err)
		return fmt.Errorf("invalidate %d keys: %w", len(keys), err)
	}
	return nil
}

// InvalidateTags removes every entry tagged with one of tags, with the same
// ordering guarantee as Invalidate.
func (c *Cache[V]) InvalidateTags(ctx context.Context, tags ...string) error {
	c.flight.forgetTags(tags)
	c.stats.invalidations.Add(uint64(len(tags)))
	if err := c.store.InvalidateTags(ctx, tags...); err != nil {
		c.storeFailed(err)
		return fmt.Errorf("invalidate %d tags: %w", len(tags), err)
	}
	return nil
}

// storeFailed counts a store failure and logs it, at most once a second.
func (c *Cache[V]) storeFailed(err error) {
	c.stats.storeErrors.Add(1)
	now := c.now().UnixNano()
	last := c.lastLog.Load()
	if now-last < int64(time.Second) || !c.lastLog.CompareAndSwap(last, now) {
		return
	}
	c.log.Warn("cache store unavailable; loading from the source and serving nothing cached",
		"err", err, "store_errors", c.stats.storeErrors.Load())
}

func tagsOf(opts []LoadOption) []string {
	var tags []string
	for _, o := range opts {
		tags = append(tags, o.tags...)
	}
	return tags
}
