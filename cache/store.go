package cache

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Errors returned by the cache. Match them with errors.Is.
var (
	// ErrNotFound is returned by a Loader when the thing it loads does not
	// exist. The cache remembers that (negative caching, for
	// Config.NegativeTTL) and GetOrLoad returns an error matching
	// ErrNotFound until the entry expires or is invalidated.
	ErrNotFound = errors.New("cache: not found")
	// ErrInvalidTTL is returned when a TTL is not positive.
	ErrInvalidTTL = errors.New("cache: ttl must be positive")
	// ErrNoStore is returned by New when Config.Store is nil.
	ErrNoStore = errors.New("cache: no store configured")
)

// Store is where a Cache keeps its entries: the in-process otter cache
// (package cache/local), Redis or anything speaking its protocol (package
// cache/rediscache), or both (package cache/twolevel). Every Store passes the
// conformance suite in package cache/cachetest.
//
// A Store guarantees the ordering that keeps a slow loader from putting back a
// value that an invalidation already removed: Put stores an entry only if
// neither its key nor any of its tags was invalidated after the Reserve that
// made its Reservation (by generations, checked by Put or by every Get).
//
// Implementations must be safe for concurrent use. Entries passed to Put and
// returned by Get are shared and must not be modified.
type Store interface {
	// Get returns the live entry for key, or nil when there is none: never
	// an expired entry, nor one whose key or tags were invalidated after it
	// was reserved. An error means the store could not be asked.
	Get(ctx context.Context, key string) (*Entry, error)
	// Reserve records the current generations of key and tags before a
	// load, and tries to take the short cross-server lease that makes one
	// server load while the others wait (Reservation.Leased).
	Reserve(ctx context.Context, key string, tags []string) (*Reservation, error)
	// Put stores e under r.Key for ttl unless r is outdated, and gives the
	// lease back. An outdated reservation is not an error: the entry is
	// dropped, and the next Get loads anew.
	Put(ctx context.Context, r *Reservation, e *Entry, ttl time.Duration) error
	// Release gives back r's lease without storing anything, after a load
	// failed.
	Release(ctx context.Context, r *Reservation) error
	// Invalidate removes keys, and outdates every Reservation made for them
	// before the call.
	Invalidate(ctx context.Context, keys ...string) error
	// InvalidateTags makes every entry carrying one of tags invalid, and
	// outdates every Reservation made with one of them before the call.
	InvalidateTags(ctx context.Context, tags ...string) error
}

// Reservation is made by Store.Reserve before a load and handed back to
// Store.Put with the loaded entry.
type Reservation struct {
	// Key is the key reserved.
	Key string
	// Tags are the tags the entry will carry.
	Tags []string
	// Leased reports whether this reservation holds the cross-server load
	// lease. When false another server is loading the key; the caller
	// should wait for its entry (Config.LeaseWait) before loading itself.
	Leased bool
	// State is private to the Store that made the reservation.
	State any
}

// Entry is one cached value as a Store holds it. An Entry is immutable once
// given to Store.Put, except for the decoded value a Cache memoizes in it.
type Entry struct {
	// Value is the encoded value; empty for a negative entry.
	Value []byte
	// Negative marks an entry that records that the value does not exist.
	Negative bool
	// Expires is when the entry stops being served.
	Expires time.Time
	// Delta is how long the load that made the entry took; probabilistic
	// early refresh (XFetch) uses it.
	Delta time.Duration
	// Tags are the tags the entry was stored with.
	Tags []string

	// memo holds the decoded value, so an in-process hit does not decode.
	memo atomic.Pointer[memo]
}

// memo boxes a decoded value of any type: a Store may be shared by caches
// of different value types, and a type assertion tells them apart.
type memo struct{ v any }

// EvictionCounter is implemented by stores that evict entries to bound
// their memory; Cache.Stats reports the count.
type EvictionCounter interface {
	// Evictions returns how many entries were evicted for room so far.
	Evictions() uint64
}
