package balancer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// ErrUnknownPolicy is returned (wrapped) by NewSelector for a policy name it
// does not know; the message lists the valid names.
var ErrUnknownPolicy = errors.New("unknown policy")

// PolicyConfig chooses and tunes a load-balancing policy for NewSelector.
// The zero value selects p2c.
type PolicyConfig struct {
	// Name is the policy, one of PolicyNames(): "random", "round-robin",
	// "least-connections", "p2c", "peak-ewma" or "hash". If empty, "p2c"
	// is used.
	Name string

	// HashKey is what the hash policy hashes: "ip" (the client address),
	// "path" (the request-target without its query), "header:NAME" (the
	// first NAME header field) or "cookie:NAME". A request that lacks the
	// header or cookie is hashed by client address. If empty, "ip" is
	// used. Other policies ignore it.
	HashKey string

	// HashBalance is epsilon of consistent hashing with bounded loads: a
	// member takes a request only while its in-flight count stays within
	// (1+epsilon) times its weighted share of all in-flight requests,
	// else the next member clockwise on the ring takes it. If zero, 0.25
	// is used; it must not be negative; +Inf turns the bound off. Other
	// policies ignore it.
	HashBalance float64

	// VirtualNodes is the hash ring's number of points per unit of weight.
	// More points spread keys more evenly at the cost of a larger ring.
	// If zero, 100 is used; at most 10000. The ring is capped at
	// 2^18 points in all: beyond that every member's share is scaled down.
	// Other policies ignore it.
	VirtualNodes int
}

// PolicyNames returns the names NewSelector accepts, the default first.
// The caller owns the returned slice.
func PolicyNames() []string {
	return []string{"p2c", "random", "round-robin", "least-connections", "peak-ewma", "hash"}
}

// NewSelector returns the policy cfg names, validated. The returned
// Selector is safe for concurrent use and does not allocate per Select
// once it has seen a pool (derived data such as cumulative weights, a
// round-robin schedule or a hash ring is rebuilt only when the pool slice
// changes). Distinct selectors share no state.
func NewSelector(cfg PolicyConfig) (Selector, error) {
	switch cfg.Name {
	case "", "p2c":
		return &p2c{}, nil
	case "random":
		return &random{}, nil
	case "round-robin":
		return newRoundRobin(maxScheduleWork), nil
	case "least-connections":
		return &leastConn{}, nil
	case "peak-ewma":
		return &peakEWMA{}, nil
	case "hash":
		h, err := newHash(cfg)
		if err != nil {
			return nil, err
		}
		return h, nil
	}
	return nil, fmt.Errorf("policy %q: %w (valid: %s)", cfg.Name, ErrUnknownPolicy, strings.Join(PolicyNames(), ", "))
}

// poolCache holds data derived from one pool snapshot, keyed on the
// snapshot's identity: its backing array and length. The Selector contract
// makes a pool slice immutable, so identity implies content. The key is a
// real pointer, which keeps the array alive: a later pool cannot reuse its
// address while the entry refers to it. Lookups are one atomic load; a miss
// rebuilds under mu so that concurrent misses build once.
type poolCache[T any] struct {
	cur atomic.Pointer[derived[T]]
	mu  sync.Mutex // serializes rebuilds; never held by a lookup
}

type derived[T any] struct {
	base **Backend
	n    int
	v    T
}

// get returns the data derived from pool, building it with build on a miss.
func (c *poolCache[T]) get(pool []*Backend, build func([]*Backend) T) *T {
	if d := c.cur.Load(); d != nil && d.base == unsafe.SliceData(pool) && d.n == len(pool) {
		return &d.v
	}
	return c.rebuild(pool, build)
}

func (c *poolCache[T]) rebuild(pool []*Backend, build func([]*Backend) T) *T {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.cur.Load(); d != nil && d.base == unsafe.SliceData(pool) && d.n == len(pool) {
		return &d.v
	}
	d := &derived[T]{base: unsafe.SliceData(pool), n: len(pool), v: build(pool)}
	c.cur.Store(d)
	return &d.v
}

// weightTable is the per-pool data of the weighted random draws used by
// random, p2c and peak-ewma: Walker's alias method (as built by Vose), so
// that a weighted draw costs two random numbers and one comparison whatever
// the pool's size, plus cumulative weights for the rare exact fallback of
// drawPair. All in integers: the draws are exactly proportional to weight.
type weightTable struct {
	// uniform is set when all weights are equal: draws are then a plain
	// uniform index and the tables are nil.
	uniform bool
	total   uint64
	// Column k of the alias table is taken with probability 1/n; it keeps
	// k when a uniform draw below total is under keep[k], else it gives
	// alias[k].
	keep  []uint64
	alias []int32
	// cum[i] is the sum of the weights of pool[0..i].
	cum []uint64
}

func buildWeightTable(pool []*Backend) weightTable {
	t := weightTable{uniform: true}
	for _, b := range pool {
		if weightOf(b) != weightOf(pool[0]) {
			t.uniform = false
		}
	}
	if t.uniform {
		return t
	}
	n := len(pool)
	t.cum = make([]uint64, n)
	for i, b := range pool {
		t.total += uint64(weightOf(b))
		t.cum[i] = t.total
	}
	// Scaled so that a column's capacity is total: member i brings
	// weight x n, and columns are filled small-first from the large.
	t.keep, t.alias = make([]uint64, n), make([]int32, n)
	scaled := make([]uint64, n)
	var small, large []int32
	for i, b := range pool {
		scaled[i] = uint64(weightOf(b)) * uint64(n)
		if scaled[i] < t.total {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		t.keep[s], t.alias[s] = scaled[s], l
		scaled[l] -= t.total - scaled[s]
		if scaled[l] < t.total {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What is left holds exactly total (integers leave no rounding).
	for _, i := range append(small, large...) {
		t.keep[i], t.alias[i] = t.total, i
	}
	return t
}

// weightOf is b's weight, at least 1 even for a hand-built Backend.
func weightOf(b *Backend) int64 {
	if b.Weight < 1 {
		return 1
	}
	return int64(b.Weight)
}

// draw returns one index of a pool of n, at random in proportion to weight.
func (t *weightTable) draw(n int) int {
	k := rand.IntN(n)
	if t.uniform || rand.Uint64N(t.total) < t.keep[k] {
		return k
	}
	return int(t.alias[k])
}

// drawPair returns two different indexes of a pool of n >= 2, each drawn at
// random in proportion to weight, the second among the members left once
// the first is taken out (sampling without replacement).
func (t *weightTable) drawPair(n int) (int, int) {
	if t.uniform {
		i := rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		return i, j
	}
	// In a large pool a second draw rarely hits i again, and redrawing
	// until it differs is sampling without replacement; in a small one (or
	// when i has most of the weight) the second is drawn exactly in the
	// total without i's interval, one binary search of cum.
	i := t.draw(n)
	if n > 16 {
		if j := t.draw(n); j != i {
			return i, j
		}
	}
	lo := uint64(0)
	if i > 0 {
		lo = t.cum[i-1]
	}
	x := rand.Uint64N(t.total - (t.cum[i] - lo))
	if x >= lo {
		x += t.cum[i] - lo
	}
	return i, t.index(x)
}

// index returns the member whose weight interval holds x < total: the
// smallest i with x < cum[i].
func (t *weightTable) index(x uint64) int {
	lo, hi := 0, len(t.cum)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x < t.cum[m] {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// lessLoaded reports whether a has fewer requests in flight than b relative
// to weight: a.inflight/a.weight < b.inflight/b.weight, compared as
// cross-products to stay in integers.
func lessLoaded(al, aw, bl, bw int64) bool {
	return al*bw < bl*aw
}

// hash64 is the 64-bit hash of the hash policy's keys and ring points:
// eight bytes at a time, each word folded in by xor, an odd multiply (a
// bijection, so inputs that differ in one word never collide) and a
// rotation, then the murmur3 finalizer so that every input bit reaches
// every output bit. It is fixed, unlike hash/maphash's per-process seed,
// so balancers that share a pool map keys alike; it does not allocate.
// Keys come from clients, but a client choosing keys that collide gains
// nothing the bounded load does not already take away.
func hash64(b []byte) uint64 {
	h := uint64(len(b))*hashK0 ^ hashSeed
	for len(b) >= 8 {
		h = bits.RotateLeft64((h^binary.LittleEndian.Uint64(b))*hashK1, 31)
		b = b[8:]
	}
	if len(b) > 0 {
		var w uint64
		for i, c := range b {
			w |= uint64(c) << (8 * i)
		}
		h = bits.RotateLeft64((h^w)*hashK1, 31)
	}
	return mix64(h)
}

// Constants of hash64: odd, with well-spread bits.
const (
	hashSeed = 0x243f6a8885a308d3 // pi's fraction
	hashK0   = 0x9e3779b97f4a7c15 // 2^64 / golden ratio
	hashK1   = 0xbf58476d1ce4e5b9
)

// mix64 is the 64-bit finalizer of murmur3.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
