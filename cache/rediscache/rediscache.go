// Package rediscache is the cache.Store kept in Redis, shared by app servers
// on any number of machines; it talks to real Redis and to the embedded
// server of package cache/respserver with the same commands: GET, MGET,
// SET with PX/EX and NX, DEL and PUBLISH, and SUBSCRIBE for cache/twolevel.
// It needs no Lua, so the embedded server need not run scripts.
//
// For a key k and a tag t, with the configured prefix p, it keeps:
//
//	p v:k  the entry: a header with the generation tokens it was filled
//	       under, then the encoded value; expires with the entry's TTL
//	p g:k  k's generation: a random token, made by Reserve when absent
//	       (SET NX), deleted by Invalidate
//	p t:t  t's generation, likewise; deleted by InvalidateTags
//	p l:k  k's load lease (SET NX PX LeaseTTL), deleted by Put and
//	       Release
//
// Get reads the entry and its key's generation in one MGET (plus one MGET
// of the tags' generations for a tagged entry) and serves it only while
// every token in its header is still live. A load that reserved before an
// invalidation carries a token that no longer exists, so its entry is
// never served, whatever order the fill and the invalidation reach Redis
// in; a token lost to expiry or eviction only causes a miss. So Redis may
// run with any maxmemory-policy.
//
// Put and Release delete the lease without checking that it is still
// theirs (that would need a script): if a load outlives LeaseTTL and
// another server took the lease meanwhile, that server's lease is dropped
// early, which costs at most one extra load, never a stale read.
//
// Invalidate and InvalidateTags publish "k:<key>" and "t:<tag>" on the
// channel p+"invalidate", which cache/twolevel near caches subscribe to.
package rediscache

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"scaleout/cache"
)

// Config configures a Store.
type Config struct {
	// Client talks to Redis or to a cache/respserver. Required; the caller
	// owns it and closes it after the Store is done.
	Client redis.UniversalClient
	// Prefix starts every key and the channel, so several caches can
	// share one Redis. If empty, "cache:" is used.
	Prefix string
	// LeaseTTL bounds how long one server may hold a key's load lease
	// before another may load it. If zero, 5s is used.
	LeaseTTL time.Duration
	// GenerationTTL is how long an untouched generation token lives. An
	// entry outliving its token is only reloaded early. If zero, 24h is
	// used.
	GenerationTTL time.Duration
	// Logger receives a line for each corrupt entry read. If nil, nothing
	// is logged.
	Logger *slog.Logger
}

// Store is a cache.Store in Redis. It is safe for concurrent use.
type Store struct {
	c        redis.UniversalClient
	prefix   string
	leaseTTL time.Duration
	genTTL   time.Duration
	log      *slog.Logger
}

// ErrNoClient is returned by New without a Config.Client.
var ErrNoClient = errors.New("rediscache: no client configured")

// New returns a Store over cfg.Client. It does not contact Redis.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, ErrNoClient
	}
	if cfg.LeaseTTL < 0 || cfg.GenerationTTL < 0 {
		return nil, fmt.Errorf("rediscache: lease ttl %v, generation ttl %v: %w", cfg.LeaseTTL, cfg.GenerationTTL, cache.ErrInvalidTTL)
	}
	s := &Store{c: cfg.Client, prefix: cfg.Prefix, leaseTTL: cfg.LeaseTTL, genTTL: cfg.GenerationTTL, log: cfg.Logger}
	if s.prefix == "" {
		s.prefix = "cache:"
	}
	if s.leaseTTL == 0 {
		s.leaseTTL = 5 * time.Second
	}
	if s.genTTL == 0 {
		s.genTTL = 24 * time.Hour
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return s, nil
}

func (s *Store) vkey(k string) string { return s.prefix + "v:" + k }
func (s *Store) gkey(k string) string { return s.prefix + "g:" + k }
func (s *Store) tkey(t string) string { return s.prefix + "t:" + t }
func (s *Store) lkey(k string) string { return s.prefix + "l:" + k }

// Channel is the pub/sub channel invalidations are published on.
func (s *Store) Channel() string { return s.prefix + "invalidate" }

// Subscribe subscribes to the invalidation channel on the Store's client.
// The caller closes the PubSub.
func (s *Store) Subscribe(ctx context.Context) *redis.PubSub {
	return s.c.Subscribe(ctx, s.Channel())
}

// ParseInvalidation parses a message from the invalidation channel: tag
// reports whether it names a tag rather than a key.
func ParseInvalidation(payload string) (name string, tag bool, err error) {
	switch {
	case strings.HasPrefix(payload, "k:"):
		return payload[2:], false, nil
	case strings.HasPrefix(payload, "t:"):
		return payload[2:], true, nil
	}
	return "", false, fmt.Errorf("rediscache: invalidation message %.40q has no k: or t: prefix", payload)
}

// reservation is the State of a Reservation made by a Store.
type reservation struct {
	lease     string // "" when not leased
	keyToken  string
	tagTokens []string
}

func newToken() string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		u := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(u >> (8 * j))
		}
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Get returns the entry for key if it is live and every generation it was
// filled under still is.
func (s *Store) Get(ctx context.Context, key string) (*cache.Entry, error) {
	vals, err := s.c.MGet(ctx, s.vkey(key), s.gkey(key)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis get %q: %w", key, err)
	}
	raw, ok := vals[0].(string)
	if !ok {
		return nil, nil
	}
	h, err := decodeEntry([]byte(raw))
	if err != nil {
		s.log.Warn("ignoring corrupt cache entry", "key", key, "err", err)
		return nil, nil
	}
	if tok, _ := vals[1].(string); tok == "" || tok != h.keyToken {
		return nil, nil
	}
	if len(h.tagTokens) > 0 {
		keys := make([]string, len(h.entry.Tags))
		for i, t := range h.entry.Tags {
			keys[i] = s.tkey(t)
		}
		live, err := s.c.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("redis get tags of %q: %w", key, err)
		}
		for i, v := range live {
			if tok, _ := v.(string); tok == "" || tok != h.tagTokens[i] {
				return nil, nil
			}
		}
	}
	return h.entry, nil
}

// Reserve takes key's lease if free and reads (creating when absent) the
// generations of key and tags, in one round trip.
func (s *Store) Reserve(ctx context.Context, key string, tags []string) (*cache.Reservation, error) {
	lease := newToken()
	pipe := s.c.Pipeline()
	leased := pipe.SetNX(ctx, s.lkey(key), lease, s.leaseTTL)
	pipe.SetNX(ctx, s.gkey(key), newToken(), s.genTTL)
	keyGen := pipe.Get(ctx, s.gkey(key))
	tagGens := make([]*redis.StringCmd, len(tags))
	for i, t := range tags {
		pipe.SetNX(ctx, s.tkey(t), newToken(), s.genTTL)
		tagGens[i] = pipe.Get(ctx, s.tkey(t))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis reserve %q: %w", key, err)
	}
	// A generation deleted between SET NX and GET reads as "", which
	// never matches: the fill is dropped, as it should be.
	st := reservation{keyToken: keyGen.Val(), tagTokens: make([]string, len(tags))}
	for i, g := range tagGens {
		st.tagTokens[i] = g.Val()
	}
	if leased.Val() {
		st.lease = lease
	}
	return &cache.Reservation{Key: key, Tags: tags, Leased: leased.Val(), State: st}, nil
}

// ErrForeignReservation is returned for a reservation another store made.
var ErrForeignReservation = errors.New("rediscache: reservation was not made by this store")

// Put writes e with the generations r recorded, and drops r's lease.
func (s *Store) Put(ctx context.Context, r *cache.Reservation, e *cache.Entry, ttl time.Duration) error {
	st, ok := r.State.(reservation)
	if !ok {
		return ErrForeignReservation
	}
	if ttl <= 0 {
		return fmt.Errorf("redis put %q: %w", r.Key, cache.ErrInvalidTTL)
	}
	if len(e.Tags) != len(st.tagTokens) {
		return fmt.Errorf("redis put %q: entry has %d tags, reservation %d", r.Key, len(e.Tags), len(st.tagTokens))
	}
	pipe := s.c.Pipeline()
	pipe.Set(ctx, s.vkey(r.Key), encodeEntry(e, st.keyToken, st.tagTokens), ttl)
	if st.lease != "" {
		pipe.Del(ctx, s.lkey(r.Key))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis put %q: %w", r.Key, err)
	}
	return nil
}

// Release drops r's lease.
func (s *Store) Release(ctx context.Context, r *cache.Reservation) error {
	st, ok := r.State.(reservation)
	if !ok {
		return ErrForeignReservation
	}
	if st.lease == "" {
		return nil
	}
	if err := s.c.Del(ctx, s.lkey(r.Key)).Err(); err != nil {
		return fmt.Errorf("redis release %q: %w", r.Key, err)
	}
	return nil
}

// Invalidate deletes keys with their generations and leases, and
// publishes one message per key.
func (s *Store) Invalidate(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	pipe := s.c.Pipeline()
	for _, k := range keys {
		pipe.Del(ctx, s.vkey(k), s.gkey(k), s.lkey(k))
		pipe.Publish(ctx, s.Channel(), "k:"+k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis invalidate: %w", err)
	}
	return nil
}

// InvalidateTags deletes the tags' generations and publishes one message
// per tag.
func (s *Store) InvalidateTags(ctx context.Context, tags ...string) error {
	if len(tags) == 0 {
		return nil
	}
	pipe := s.c.Pipeline()
	for _, t := range tags {
		pipe.Del(ctx, s.tkey(t))
		pipe.Publish(ctx, s.Channel(), "t:"+t)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis invalidate tags: %w", err)
	}
	return nil
}
