// Package twolevel is a cache.Store with a near cache in each app server
// (cache/local) in front of Redis (cache/rediscache): a hit on a hot key
// costs what an in-process hit costs, and every server still shares one
// cache. Invalidations reach the other servers by Redis pub/sub: rediscache
// publishes "k:<key>" or "t:<tag>" on its channel as part of every
// Invalidate, and Run, subscribed to it, drops the near copies.
//
// Pub/sub (rather than Redis client-side caching with CLIENT TRACKING) was
// chosen because the embedded cache/respserver supports it with no extra
// machinery and it carries tag invalidations as well as keys.
//
// The near cache never holds a value Redis would not serve: it is filled
// only from a Redis read that passed the generation check, under a near
// reservation taken before that read, so an invalidation message handled
// in between makes the fill void. It is bypassed until Run has subscribed,
// and bypassed and cleared whenever the subscription drops (invalidations
// may have been missed); it serves again after the subscription is back.
// An entry stays near at most Config.NearTTL, a bound on staleness should a
// message be lost in a way the connection does not show.
package twolevel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/cache"
	"scaleout/cache/local"
	"scaleout/cache/rediscache"
)

// Config configures a Store.
type Config struct {
	// Remote is the shared Redis store. Required.
	Remote *rediscache.Store
	// Near is the in-process near cache. If nil, New makes one of
	// NearMaxBytes, and the Store closes it in Close.
	Near *local.Store
	// NearMaxBytes bounds a near cache that New makes. If zero, 32 MiB.
	NearMaxBytes uint64
	// NearTTL is the longest an entry is served from the near cache. If
	// zero, 1m is used.
	NearTTL time.Duration
	// PingInterval is how often Run checks an idle subscription. If zero,
	// 5s is used.
	PingInterval time.Duration
	// Logger receives subscription errors and recoveries. If nil, nothing
	// is logged.
	Logger *slog.Logger
}

// Store is a two-level cache.Store. It is safe for concurrent use; Run must
// be running for the near cache to be used.
type Store struct {
	remote   *rediscache.Store
	near     *local.Store
	ownNear  bool
	nearTTL  time.Duration
	interval time.Duration
	log      *slog.Logger

	live          atomic.Bool   // subscribed: the near cache may serve
	invalidations atomic.Uint64 // messages applied
}

// ErrNoRemote is returned by New without Config.Remote.
var ErrNoRemote = errors.New("twolevel: no remote store configured")

// New returns a Store. It starts nothing: call Run.
func New(cfg Config) (*Store, error) {
	if cfg.Remote == nil {
		return nil, ErrNoRemote
	}
	if cfg.NearTTL < 0 || cfg.PingInterval < 0 {
		return nil, fmt.Errorf("twolevel: near ttl %v, ping interval %v: %w", cfg.NearTTL, cfg.PingInterval, cache.ErrInvalidTTL)
	}
	s := &Store{remote: cfg.Remote, near: cfg.Near, nearTTL: cfg.NearTTL, interval: cfg.PingInterval, log: cfg.Logger}
	if s.near == nil {
		n, err := local.New(local.Config{MaxBytes: cmp(cfg.NearMaxBytes, 32<<20)})
		if err != nil {
			return nil, fmt.Errorf("twolevel: %w", err)
		}
		s.near, s.ownNear = n, true
	}
	if s.nearTTL == 0 {
		s.nearTTL = time.Minute
	}
	if s.interval == 0 {
		s.interval = 5 * time.Second
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s, nil
}

func cmp(v, def uint64) uint64 {
	if v == 0 {
		return def
	}
	return v
}

// Live reports whether the invalidation subscription is up, so the near
// cache serves.
func (s *Store) Live() bool { return s.live.Load() }

// Invalidations returns how many invalidation messages Run has applied.
func (s *Store) Invalidations() uint64 { return s.invalidations.Load() }

// Get answers from the near cache when live, else from Redis, filling the
// near cache with what Redis validated.
func (s *Store) Get(ctx context.Context, key string) (*cache.Entry, error) {
	live := s.live.Load()
	if live {
		if e, _ := s.near.Get(ctx, key); e != nil {
			return e, nil
		}
	}
	nr, _ := s.near.Reserve(ctx, key, nil)
	e, err := s.remote.Get(ctx, key)
	if err != nil || e == nil {
		_ = s.near.Release(ctx, nr)
		return nil, err
	}
	if live && s.live.Load() {
		if ttl := min(time.Until(e.Expires), s.nearTTL); ttl > 0 {
			_ = s.near.Put(ctx, nr, e, ttl)
			return e, nil
		}
	}
	_ = s.near.Release(ctx, nr)
	return e, nil
}

// Reserve reserves key in Redis (lease and generations).
func (s *Store) Reserve(ctx context.Context, key string, tags []string) (*cache.Reservation, error) {
	return s.remote.Reserve(ctx, key, tags)
}

// Put stores e in Redis only: the near cache is filled by the next Get,
// from a validated read, so a fill made void by another server's write
// never reaches it.
func (s *Store) Put(ctx context.Context, r *cache.Reservation, e *cache.Entry, ttl time.Duration) error {
	return s.remote.Put(ctx, r, e, ttl)
}

// Release gives back r's lease in Redis.
func (s *Store) Release(ctx context.Context, r *cache.Reservation) error {
	return s.remote.Release(ctx, r)
}

// Invalidate removes keys from Redis (which tells every server) and from
// this server's near cache at once.
func (s *Store) Invalidate(ctx context.Context, keys ...string) error {
	err := s.remote.Invalidate(ctx, keys...)
	_ = s.near.Invalidate(ctx, keys...)
	return err
}

// InvalidateTags invalidates tags in Redis and in this server's near cache.
func (s *Store) InvalidateTags(ctx context.Context, tags ...string) error {
	err := s.remote.InvalidateTags(ctx, tags...)
	_ = s.near.InvalidateTags(ctx, tags...)
	return err
}

// Evictions returns the near cache's evictions.
func (s *Store) Evictions() uint64 { return s.near.Evictions() }

// Close closes a near cache that New made. Call it after Run returned.
func (s *Store) Close() error {
	if s.ownNear {
		return s.near.Close()
	}
	return nil
}

// Run keeps the invalidation subscription and applies its messages until
// ctx is done, then returns nil. The near cache serves only while Run is
// subscribed.
func (s *Store) Run(ctx context.Context) error {
	ps := s.remote.Subscribe(ctx)
	defer ps.Close()
	defer s.down()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, s.interval)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() && s.live.Load() {
				if perr := ps.Ping(ctx); perr == nil {
					continue
				}
			}
			if s.live.Load() {
				s.log.Warn("cache invalidation subscription lost; near cache off", "err", err)
			}
			s.down()
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		s.apply(ctx, msg)
	}
	return nil
}

// down stops the near cache from serving and empties it.
func (s *Store) down() {
	s.live.Store(false)
	s.near.Clear()
}

func (s *Store) apply(ctx context.Context, msg any) {
	switch m := msg.(type) {
	case *redis.Subscription:
		if m.Kind == "subscribe" {
			// Messages may have been missed while unsubscribed.
			s.near.Clear()
			s.live.Store(true)
			s.log.Info("cache invalidation subscription up; near cache on", "channel", m.Channel)
		}
	case *redis.Message:
		name, tag, err := rediscache.ParseInvalidation(m.Payload)
		if err != nil {
			s.log.Warn("ignoring invalidation message", "err", err)
			return
		}
		if tag {
			_ = s.near.InvalidateTags(ctx, name)
		} else {
			_ = s.near.Invalidate(ctx, name)
		}
		s.invalidations.Add(1)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
