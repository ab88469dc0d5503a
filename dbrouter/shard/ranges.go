package shard

import (
	"fmt"
	"sort"
)

// Ranges places keys by value: shard i holds the keys from Bounds[i-1]
// (inclusive) up to Bounds[i] (exclusive); shard 0 everything below
// Bounds[0], the last shard everything from the last bound up. Ranges keep
// neighbouring keys together (time-ordered IDs, tenants by name), which
// makes range scans single-shard, at the price of hot spots at the growing
// end. It is safe for concurrent use.
type Ranges struct{ bounds []Key }

// NewRanges returns range sharding over len(bounds)+1 shards; bounds must be
// strictly increasing (Key.Compare).
func NewRanges(bounds []Key) (Ranges, error) {
	for i := 1; i < len(bounds); i++ {
		if bounds[i-1].Compare(bounds[i]) >= 0 {
			return Ranges{}, fmt.Errorf("%w: range bounds not increasing at %d (%v, %v)", ErrBadConfig, i, bounds[i-1], bounds[i])
		}
	}
	return Ranges{bounds: append([]Key(nil), bounds...)}, nil
}

// Shard implements Func: a binary search over the bounds.
func (r Ranges) Shard(k Key) int {
	return sort.Search(len(r.bounds), func(i int) bool { return k.Compare(r.bounds[i]) < 0 })
}

// Shards implements Func.
func (r Ranges) Shards() int { return len(r.bounds) + 1 }

// Bounds returns a copy of the range bounds.
func (r Ranges) Bounds() []Key { return append([]Key(nil), r.bounds...) }
