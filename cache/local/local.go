// Package local is the in-process cache.Store: entries live in this
// process's memory, in an otter v2 cache (W-TinyLFU admission and eviction,
// bounded by bytes), and are shared by every cache.Cache built on the same
// Store. It is also the near cache of package cache/twolevel.
//
// Invalidation is exact and cheap. Every key hashes to one of a fixed set of
// key generations and every tag to one of a fixed set of tag generations
// (striped counters: memory stays bounded however many keys and tags pass
// through). Invalidate bumps the key's generation and deletes the entry;
// InvalidateTags only bumps the tag's generation, and an entry remembers its
// tags' generations from the moment it was stored, so a Get that sees one of
// them changed treats the entry as gone. Put refuses an entry whose key
// generation changed since Reserve, or, for a tagged entry, if any tag was
// invalidated since Reserve: a load that read the old value cannot put it
// back after a write invalidated it. Two keys sharing a stripe only cost an
// occasional refused Put, never a stale read.
package local

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"

	"scaleout/cache"
)

// stripes is the number of key generations and of tag generations.
const stripes = 4096

// entryOverhead approximates the bytes an entry costs beyond its key,
// value and tags: otter's node, the item and the cache.Entry.
const entryOverhead = 160

// Config configures a Store.
type Config struct {
	// LeaseTTL bounds how long a load lease is held, should its holder
	// never come back. If zero, 5s is used.
	LeaseTTL time.Duration
	// Clock is the time source of expiry. If nil, the precise time is read
	// on every operation, which is about a third of a hit's cost; an
	// otter.NewCoarseClock(time.Millisecond), owned and stopped by the
	// caller, makes hits cheaper and lets entries live up to its
	// resolution past their TTL (invalidation does not depend on it).
	Clock otter.Clock
	// MaxBytes bounds the memory the entries take, approximately (keys,
	// values, tags and a fixed overhead per entry). If zero, 64 MiB is
	// used.
	MaxBytes uint64
}

// Store is an in-process cache.Store. It is safe for concurrent use. Close
// stops otter's maintenance goroutine.
type Store struct {
	c         *otter.Cache[string, *item]
	evictions *stats.Counter
	seed      maphash.Seed

	// mu orders Put against Invalidate, InvalidateTags and Clear, so the
	// generation check and the insert in Put are one step.
	mu       sync.Mutex
	keyGens  [stripes]atomic.Uint64
	tagGens  [stripes]atomic.Uint64
	tagEpoch atomic.Uint64 // bumped by every tag invalidation
	epoch    atomic.Uint64 // bumped by Clear

	leaseTTL time.Duration
	// leaseMu guards leases and lastLease: the load leases of keys, by
	// which one Cache among several sharing the Store loads a key.
	leaseMu   sync.Mutex
	leases    map[string]lease
	lastLease uint64
}

// lease is a load lease held on a key.
type lease struct {
	id      uint64
	expires time.Time
}

// item is what the otter cache holds for a key.
type item struct {
	e    *cache.Entry
	ttl  time.Duration
	deps []dep
}

// dep is a tag generation an entry was stored under.
type dep struct {
	stripe uint32
	gen    uint64
}

// stamp is the State of a Reservation made by a Store.
type stamp struct {
	keyGen, tagEpoch, epoch uint64
	lease                   uint64 // 0 when not leased
}

// New returns an empty Store.
func New(cfg Config) (*Store, error) {
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 64 << 20
	}
	if cfg.LeaseTTL < 0 {
		return nil, fmt.Errorf("local store: lease ttl %v: %w", cfg.LeaseTTL, cache.ErrInvalidTTL)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 5 * time.Second
	}
	s := &Store{evictions: stats.NewCounter(), seed: maphash.MakeSeed(),
		leaseTTL: cfg.LeaseTTL, leases: make(map[string]lease)}
	c, err := otter.New(&otter.Options[string, *item]{
		MaximumWeight: cfg.MaxBytes,
		Weigher:       weigh,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *item]) time.Duration {
			return e.Value.ttl
		}),
		StatsRecorder: s.evictions,
		Clock:         cfg.Clock,
	})
	if err != nil {
		return nil, fmt.Errorf("local store: %w", err)
	}
	s.c = c
	return s, nil
}

func weigh(key string, it *item) uint32 {
	n := uint64(len(key)+len(it.e.Value)) + entryOverhead
	for _, t := range it.e.Tags {
		n += uint64(len(t)) + 16
	}
	return uint32(min(n, 1<<31))
}

func (s *Store) stripe(k string) uint32 {
	return uint32(maphash.String(s.seed, k) % stripes)
}

// Get returns the live entry for key, or nil.
func (s *Store) Get(_ context.Context, key string) (*cache.Entry, error) {
	it, ok := s.c.GetIfPresent(key)
	if !ok {
		return nil, nil
	}
	for _, d := range it.deps {
		if s.tagGens[d.stripe].Load() != d.gen {
			return nil, nil
		}
	}
	return it.e, nil
}

// Reserve stamps key's generation and takes key's load lease if it is free,
// so that of several Caches sharing the Store one loads a key at a time.
func (s *Store) Reserve(_ context.Context, key string, tags []string) (*cache.Reservation, error) {
	st := stamp{
		keyGen:   s.keyGens[s.stripe(key)].Load(),
		tagEpoch: s.tagEpoch.Load(),
		epoch:    s.epoch.Load(),
		lease:    s.takeLease(key),
	}
	return &cache.Reservation{Key: key, Tags: tags, Leased: st.lease != 0, State: st}, nil
}

// takeLease returns the id of a new lease on key, or 0 if a live one is
// held. Expired leases are swept when many have piled up.
func (s *Store) takeLease(key string) uint64 {
	now := time.Now()
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if l, ok := s.leases[key]; ok && now.Before(l.expires) {
		return 0
	}
	if len(s.leases) > 4096 {
		for k, l := range s.leases {
			if !now.Before(l.expires) {
				delete(s.leases, k)
			}
		}
	}
	s.lastLease++
	s.leases[key] = lease{id: s.lastLease, expires: now.Add(s.leaseTTL)}
	return s.lastLease
}

// dropLease removes key's lease if it is still lease id (or any lease, for
// id 0 and all).
func (s *Store) dropLease(key string, id uint64, all bool) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if l, ok := s.leases[key]; ok && (all || (id != 0 && l.id == id)) {
		delete(s.leases, key)
	}
}

// ErrForeignReservation is returned by Put for a reservation another store
// made.
var ErrForeignReservation = errors.New("local store: reservation was not made by this store")

// Put stores e under r.Key for ttl unless r is outdated.
func (s *Store) Put(_ context.Context, r *cache.Reservation, e *cache.Entry, ttl time.Duration) error {
	st, ok := r.State.(stamp)
	if !ok {
		return ErrForeignReservation
	}
	if ttl <= 0 {
		return fmt.Errorf("local store put %q: %w", r.Key, cache.ErrInvalidTTL)
	}
	defer s.dropLease(r.Key, st.lease, false)
	k := s.stripe(r.Key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keyGens[k].Load() != st.keyGen || s.epoch.Load() != st.epoch {
		return nil
	}
	if len(e.Tags) > 0 && s.tagEpoch.Load() != st.tagEpoch {
		return nil
	}
	it := &item{e: e, ttl: ttl}
	if len(e.Tags) > 0 {
		it.deps = make([]dep, len(e.Tags))
		for i, t := range e.Tags {
			ts := s.stripe(t)
			it.deps[i] = dep{stripe: ts, gen: s.tagGens[ts].Load()}
		}
	}
	s.c.Set(r.Key, it)
	return nil
}

// Release gives back r's lease.
func (s *Store) Release(_ context.Context, r *cache.Reservation) error {
	st, ok := r.State.(stamp)
	if !ok {
		return ErrForeignReservation
	}
	s.dropLease(r.Key, st.lease, false)
	return nil
}

// Invalidate removes keys and outdates their reservations.
func (s *Store) Invalidate(_ context.Context, keys ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.keyGens[s.stripe(k)].Add(1)
		s.c.Invalidate(k)
		s.dropLease(k, 0, true)
	}
	return nil
}

// InvalidateTags makes every entry tagged with one of tags invalid.
func (s *Store) InvalidateTags(_ context.Context, tags ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range tags {
		s.tagGens[s.stripe(t)].Add(1)
	}
	s.tagEpoch.Add(1)
	return nil
}

// Clear removes every entry and outdates every reservation. The two-level
// store calls it when it may have missed invalidations.
func (s *Store) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch.Add(1)
	s.c.InvalidateAll()
}

// Evictions returns how many entries were evicted to bound memory.
func (s *Store) Evictions() uint64 { return s.evictions.Snapshot().Evictions }

// Len returns the number of entries held, expired ones not yet swept
// included.
func (s *Store) Len() int { return s.c.EstimatedSize() }

// Close stops the otter cache's background maintenance. The Store must not
// be used afterwards.
func (s *Store) Close() error {
	s.c.StopAllGoroutines()
	return nil
}
