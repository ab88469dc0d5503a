package keys

import (
	"fmt"
	"sync"
	"time"
)

// Layout of a Snowflake ID, most significant bit first: one zero sign bit
// (IDs stay positive in a signed BIGINT), 41 bits of milliseconds since
// Config.Epoch (about 69 years), 10 bits of node (1024 nodes or shards) and
// 12 bits of sequence (4096 IDs per millisecond per node). This is Twitter's
// original split; the node bits are where the shard number goes.
const (
	timeBits = 41
	nodeBits = 10
	seqBits  = 12

	// MaxNode is the largest node number an ID can carry.
	MaxNode = 1<<nodeBits - 1
	maxSeq  = 1<<seqBits - 1
	maxTime = 1<<timeBits - 1
)

// DefaultEpoch is the Snowflake epoch used when Config.Epoch is zero:
// 2024-01-01T00:00:00Z. IDs from generators with different epochs are not
// comparable, so a deployment picks one and keeps it.
var DefaultEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Config configures a Snowflake generator.
type Config struct {
	// Node is this generator's node or shard number, 0..MaxNode. Two
	// generators running at the same time must have different nodes; that
	// is the whole collision guarantee. Zero is a valid node.
	Node int
	// Epoch is the instant the ID's clock counts from. If zero,
	// DefaultEpoch is used. It must not be in the future.
	Epoch time.Time
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// Snowflake makes time-ordered 64-bit IDs that carry their node. IDs from
// one generator strictly increase, also when the wall clock steps back (an
// NTP correction, a VM migration): the generator never reuses a millisecond
// it has already issued from, it keeps counting from the newest one it
// issued, and when that millisecond's 4096 sequence numbers run out it moves
// on to the next millisecond ahead of the clock instead of waiting. The
// borrowed lead disappears as soon as the wall clock catches up. IDs of
// different generators are ordered by time to the millisecond (within the
// clocks' skew). It is safe for concurrent use.
type Snowflake struct {
	node  int64
	epoch time.Time
	now   func() time.Time

	// mu guards last and seq.
	mu   sync.Mutex
	last int64 // millisecond of the newest ID issued, since epoch
	seq  int64 // sequence number of the newest ID issued in last
}

// NewSnowflake validates cfg and returns a generator.
func NewSnowflake(cfg Config) (*Snowflake, error) {
	if cfg.Node < 0 || cfg.Node > MaxNode {
		return nil, fmt.Errorf("%w: node %d outside 0..%d", ErrBadConfig, cfg.Node, MaxNode)
	}
	if cfg.Epoch.IsZero() {
		cfg.Epoch = DefaultEpoch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Now().Before(cfg.Epoch) {
		return nil, fmt.Errorf("%w: epoch %v is in the future", ErrBadConfig, cfg.Epoch)
	}
	return &Snowflake{node: int64(cfg.Node), epoch: cfg.Epoch, now: cfg.Now, last: -1}, nil
}

// Next returns a new ID. It never blocks and never fails, until the year
// Epoch+69 (after which IDs would wrap; it panics rather than repeat).
func (g *Snowflake) Next() int64 {
	ms := g.now().Sub(g.epoch).Milliseconds()
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case ms > g.last:
		g.last, g.seq = ms, 0
	case g.seq < maxSeq:
		// Same millisecond, or the clock stepped back: keep counting on
		// the newest millisecond issued.
		g.seq++
	default:
		g.last, g.seq = g.last+1, 0
	}
	if g.last > maxTime {
		panic("keys: Snowflake time bits exhausted; choose a later Epoch")
	}
	return g.last<<(nodeBits+seqBits) | g.node<<seqBits | g.seq
}

// Node returns the node number carried by id: which node (or shard) made it.
func Node(id int64) int { return int(id >> seqBits & MaxNode) }

// Time returns when id was made, to the millisecond, given the epoch of the
// generator that made it (zero means DefaultEpoch).
func Time(id int64, epoch time.Time) time.Time {
	if epoch.IsZero() {
		epoch = DefaultEpoch
	}
	return epoch.Add(time.Duration(id>>(nodeBits+seqBits)) * time.Millisecond)
}
