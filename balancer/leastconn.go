package balancer

import "math/rand/v2"

// leastConn picks the member with the fewest requests in flight relative to
// its weight (a.inflight x b.weight < b.inflight x a.weight), by a full
// scan of the pool. The scan starts at a random member and the first
// member with the least load found wins, so ties are broken at random
// without a random draw per tie; a member that is idle ends the scan at
// once, which makes a lightly loaded pool cheap. The tie break is not
// exactly uniform: a tied member that follows a run of busier ones is found
// first more often. It is exact in load, but every balancer that sees the
// same counts picks the same member (herding), which p2c avoids.
type leastConn struct {
	weights poolCache[weightTable]
}

// Select implements Selector.
func (s *leastConn) Select(pool []*Backend, _ *Request) (*Backend, bool) {
	n := len(pool)
	if n <= 1 {
		if n == 0 {
			return nil, false
		}
		return pool[0], true
	}
	start := rand.IntN(n)
	best := pool[start]
	bl := best.InFlight()
	if bl == 0 {
		return best, true
	}
	// Two passes, start+1..n-1 then 0..start-1, keep the index arithmetic
	// out of the loops. With equal weights the comparison needs no weight.
	if s.weights.get(pool, buildWeightTable).uniform {
		for _, part := range [2][]*Backend{pool[start+1:], pool[:start]} {
			for _, b := range part {
				if l := b.InFlight(); l < bl {
					if l == 0 {
						return b, true
					}
					best, bl = b, l
				}
			}
		}
		return best, true
	}
	bw := weightOf(best)
	for _, part := range [2][]*Backend{pool[start+1:], pool[:start]} {
		for _, b := range part {
			l := b.InFlight()
			if l == 0 {
				return b, true
			}
			if w := weightOf(b); lessLoaded(l, w, bl, bw) {
				best, bl, bw = b, l, w
			}
		}
	}
	return best, true
}
