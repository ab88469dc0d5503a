package balancer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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
	// header or cookie, or has it empty, is hashed by client address. If empty, "ip" is
	// used. Other policies ignore it.
	HashKey string

	// HashBalance is epsilon of consistent hashing with bounded loads: a
	// member takes a request only while its in-flight count stays within
	// (1+epsilon) times its weighted share of all in-flight requests,
	// else the next member clockwise on the ring takes it. If zero, 0.25
	// is used; it must not be negative; +Inf turns the bound off. Other
	// policies ignore it.
	HashBalance float64

	// SlowStart is how long a member that has just become ready (added,
	// or back from ejection or down) takes to reach its full weight in the
	// p2c and peak-ewma comparisons: it counts with 10% of its weight at
	// first, rising linearly in steps of 1/16. Under p2c this holds a cold
	// member to about that share of its peers' in-flight requests (an idle
	// pool still shares evenly); under peak-ewma its cost is divided by
	// it, so it wins fewer pairs even when idle. Members that became ready
	// together compare as usual. If zero, 10s is used; negative turns slow
	// start off. Other policies ignore it.
	SlowStart time.Duration

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
		return &p2c{ramp: newRamp(cfg.SlowStart)}, nil
	case "random":
		return &random{}, nil
	case "round-robin":
		return newRoundRobin(maxScheduleWork), nil
	case "least-connections":
		return &leastConn{}, nil
	case "peak-ewma":
		return &peakEWMA{ramp: newRamp(cfg.SlowStart)}, nil
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

// drawPair is the two-choice policies' draw: for a pool of one it returns
// that member alone (b nil); otherwise two different members, drawn by
// weight from the pool's cached table. ok is false for an empty pool.
func drawPair(weights *poolCache[weightTable], pool []*Backend) (a, b *Backend, ok bool) {
	switch len(pool) {
	case 0:
		return nil, nil, false
	case 1:
		return pool[0], nil, true
	}
	i, j := weights.get(pool, buildWeightTable).drawPair(len(pool))
	return pool[i], pool[j], true
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

// ramp is slow start: the share of its weight a member that became ready
// at readySince counts with at a request's time now.
type ramp struct {
	window int64 // ns; 0 when off
}

// minRamp is the share of its weight a member counts with when it has just
// become ready.
const minRamp = 0.1

func newRamp(d time.Duration) ramp {
	switch {
	case d == 0:
		return ramp{window: int64(10 * time.Second)}
	case d < 0:
		return ramp{}
	}
	return ramp{window: int64(d)}
}

// requestNow is r.Now, or 0 for a nil request.
func requestNow(r *Request) int64 {
	if r == nil {
		return 0
	}
	return r.Now
}

// factor is b's share of its weight at now: 1 once the window has passed
// since it became ready, else from minRamp rising linearly in steps of
// 1/16, so that members that became ready at nearly the same time get the
// same factor and compare exactly as without slow start.
func (r ramp) factor(b *Backend, now int64) float64 {
	up := now - b.readySince.Load()
	if up >= r.window {
		return 1
	}
	return max(minRamp, float64(up*16/r.window)/16)
}
