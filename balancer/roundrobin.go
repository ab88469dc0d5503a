package balancer

import (
	"sync"
	"sync/atomic"
)

// maxScheduleWork bounds the work of precomputing a round-robin schedule:
// its length times the pool size (about a millisecond per million steps).
// Pools past it run the same algorithm live under a mutex instead.
const maxScheduleWork = 1 << 22

// roundRobin is smooth weighted round robin, nginx's algorithm: every
// member's current weight grows by its weight at each step, the member with
// the largest current weight (the first of equals, in pool order) is picked
// and loses the total. Over total/gcd picks each member is picked exactly
// weight/gcd times, interleaved rather than in bursts: weights 5,1,1 give
// a a b a c a a.
//
// The sequence depends only on the pool, so it is computed once per pool
// snapshot into a schedule, and a pick is one atomic increment and an index:
// no lock. A pool whose schedule would be too costly to compute (large
// co-prime weights over many members) runs the algorithm live under a
// mutex. The position survives pool changes; the interleaving restarts.
type roundRobin struct {
	next     atomic.Uint64
	maxWork  int
	schedule poolCache[rrSchedule]
}

func newRoundRobin(maxWork int) *roundRobin {
	return &roundRobin{maxWork: maxWork}
}

// rrSchedule is one pool's round-robin sequence.
type rrSchedule struct {
	// plain is set when all weights are equal: pick i is i mod n.
	plain bool
	// order is the precomputed sequence of pool indexes, when used.
	order []uint32
	// live is the algorithm's state when order is too costly to compute.
	live *rrLive
}

// rrLive is nginx's smooth weighted round robin state.
type rrLive struct {
	mu      sync.Mutex // guards current
	current []int64
	weights []int64
	total   int64
}

// Select implements Selector.
func (s *roundRobin) Select(pool []*Backend, _ *Request) (*Backend, bool) {
	switch len(pool) {
	case 0:
		return nil, false
	case 1:
		return pool[0], true
	}
	sc := s.schedule.get(pool, s.build)
	switch {
	case sc.plain:
		return pool[(s.next.Add(1)-1)%uint64(len(pool))], true
	case sc.order != nil:
		return pool[sc.order[(s.next.Add(1)-1)%uint64(len(sc.order))]], true
	}
	return pool[sc.live.step()], true
}

func (s *roundRobin) build(pool []*Backend) rrSchedule {
	l := newRRLive(pool)
	if l == nil {
		return rrSchedule{plain: true}
	}
	if l.total*int64(len(pool)) > int64(s.maxWork) {
		return rrSchedule{live: l}
	}
	order := make([]uint32, l.total)
	for k := range order {
		order[k] = uint32(l.step())
	}
	return rrSchedule{order: order}
}

// newRRLive returns the initial state for pool, with weights divided by
// their greatest common divisor (which leaves the sequence unchanged and
// shortens its period), or nil when all weights are equal.
func newRRLive(pool []*Backend) *rrLive {
	g := int64(0)
	for _, b := range pool {
		g = gcd(g, weightOf(b))
	}
	l := &rrLive{current: make([]int64, len(pool)), weights: make([]int64, len(pool))}
	for i, b := range pool {
		l.weights[i] = weightOf(b) / g
		l.total += l.weights[i]
	}
	if l.total == int64(len(pool)) {
		return nil
	}
	return l
}

// step is one round of the algorithm: it returns the index picked.
func (l *rrLive) step() int {
	l.mu.Lock()
	best := 0
	for i, w := range l.weights {
		l.current[i] += w
		if l.current[i] > l.current[best] {
			best = i
		}
	}
	l.current[best] -= l.total
	l.mu.Unlock()
	return best
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
