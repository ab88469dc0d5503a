package shard

import "fmt"

// Directory is a lookup table for the few keys that need a place of their
// own (a hot tenant on a shard it does not share), in front of another Func
// for every other key. The table is read-only after construction, so
// lookups take no lock; changing it means a new Map (and a new epoch). It is
// safe for concurrent use.
type Directory struct {
	entries  map[Key]int
	fallback Func
}

// NewDirectory returns a directory placing each key of entries on its
// shard and every other key by fallback. Entries must name shards of the
// fallback's range. The map is copied.
func NewDirectory(entries map[Key]int, fallback Func) (Directory, error) {
	if fallback == nil {
		return Directory{}, fmt.Errorf("%w: directory without a fallback function", ErrBadConfig)
	}
	m := make(map[Key]int, len(entries))
	for k, s := range entries {
		if s < 0 || s >= fallback.Shards() {
			return Directory{}, fmt.Errorf("%w: directory entry %v -> shard %d outside 0..%d", ErrBadConfig, k, s, fallback.Shards()-1)
		}
		m[k] = s
	}
	return Directory{entries: m, fallback: fallback}, nil
}

// Shard implements Func.
func (d Directory) Shard(k Key) int {
	if s, ok := d.entries[k]; ok {
		return s
	}
	return d.fallback.Shard(k)
}

// Shards implements Func.
func (d Directory) Shards() int { return d.fallback.Shards() }

// Entries returns a copy of the directory's table.
func (d Directory) Entries() map[Key]int {
	m := make(map[Key]int, len(d.entries))
	for k, s := range d.entries {
		m[k] = s
	}
	return m
}
