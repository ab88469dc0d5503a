// Package shard places rows on many database servers by a key, the
// lecture's sharding: many logical shards are mapped onto a few physical
// databases by a versioned Map, so a shard can move to another database
// later without rehashing any key.
//
// A shard function (one file each: jump hash, ranges, a directory for hot
// tenants) turns a Key into a logical shard number; the Map's placement
// turns that into a physical database; and the logical shard is a schema of
// its own on that database ("shard_0007" on PostgreSQL, the file's "main"
// database on SQLite), written {shard} in queries:
//
//	r.Exec(ctx, shard.IntKey(flightID), "INSERT INTO {shard}.passengers ...", ...)
//
// Tables that share the key (passengers and bookings of a flight) live in
// the same schema, so a transaction or a join over them stays on one shard
// (co-location). Reference tables (airports) are copied to every physical
// database and written through ExecReference.
//
// Single-shard reads and writes route by key and cost one lookup and a
// string substitution; cross-shard reads are an explicit Scatter with a
// bound on concurrency, a timeout per shard, a merge with ordering and limit,
// and explicit partial results. Writes are fenced: each database keeps a
// fence row per logical shard saying at which map epoch it got the shard and
// whether it still owns it, and every write checks it in its transaction,
// so a router holding an old map is refused (ErrStaleEpoch) by a database
// the shard has moved away from. MovePostgres moves a shard online with
// PostgreSQL's logical replication and bumps the epoch at cutover.
package shard

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Errors returned by the package, matched with errors.Is.
var (
	// ErrBadConfig: New, NewMap or a shard function was given invalid
	// settings.
	ErrBadConfig = errors.New("shard: invalid config")
	// ErrStaleEpoch: a write reached a database that does not own the
	// shard at the router's map epoch (the shard moved; reload the map).
	ErrStaleEpoch = errors.New("shard: stale shard map epoch")
	// ErrPartial: a scatter-gather read lost some shards and partial
	// results were not allowed.
	ErrPartial = errors.New("shard: partial result")
	// ErrVerify: a shard move found the copy different from the source.
	ErrVerify = errors.New("shard: verification failed")
)

// Key is a sharding key: an integer (a flight id) or a string (a tenant
// name). Keys are comparable and may be map keys. The zero Key is the
// integer 0.
type Key struct {
	s     string
	i     int64
	isStr bool
}

// IntKey returns the integer key v.
func IntKey(v int64) Key { return Key{i: v} }

// StringKey returns the string key s.
func StringKey(s string) Key { return Key{s: s, isStr: true} }

// Hash returns a 64-bit hash of k (xxHash64 of its bytes; an integer hashes
// as its 8 big-endian bytes), stable across processes and versions.
func (k Key) Hash() uint64 {
	if k.isStr {
		return xxhash.Sum64String(k.s)
	}
	var b [8]byte
	u := uint64(k.i)
	for j := 7; j >= 0; j-- {
		b[j] = byte(u)
		u >>= 8
	}
	return xxhash.Sum64(b[:])
}

// Compare orders keys: integers by value, then all strings, lexically.
// It returns -1, 0 or +1.
func (k Key) Compare(o Key) int {
	switch {
	case k.isStr != o.isStr:
		if k.isStr {
			return 1
		}
		return -1
	case k.isStr:
		if k.s < o.s {
			return -1
		} else if k.s > o.s {
			return 1
		}
		return 0
	case k.i < o.i:
		return -1
	case k.i > o.i:
		return 1
	}
	return 0
}

// String returns the key's value as text (an integer in decimal).
func (k Key) String() string {
	if k.isStr {
		return k.s
	}
	return strconv.FormatInt(k.i, 10)
}

// MarshalJSON encodes k as a JSON number or string.
func (k Key) MarshalJSON() ([]byte, error) {
	if k.isStr {
		return []byte(strconv.Quote(k.s)), nil
	}
	return []byte(strconv.FormatInt(k.i, 10)), nil
}

// UnmarshalJSON decodes a JSON integer or string.
func (k *Key) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		s, err := strconv.Unquote(string(b))
		if err != nil {
			return fmt.Errorf("shard key %s: %w", b, err)
		}
		*k = StringKey(s)
		return nil
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("shard key %s: want an integer or a string", b)
	}
	*k = IntKey(v)
	return nil
}

// Func maps a key to a logical shard in [0, Shards()). Implementations live
// in a file each and must be safe for concurrent use and deterministic: the
// same key always gives the same shard, in every process.
type Func interface {
	Shard(k Key) int
	Shards() int
}
