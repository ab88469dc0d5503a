package balancer

// p2c is the power of two choices (Mitzenmacher): two different members
// drawn at random, in proportion to weight, and the one with fewer requests
// in flight relative to its weight wins; a tie goes to the first drawn, so
// an idle pool is shared in proportion to weight. Two random probes get
// nearly all of least-connections' balance (the maximum load drops from
// about log n/log log n to log log n) while costing O(1) instead of a scan,
// and, unlike a full scan, many balancers that see the same counts do not
// all herd onto the same least-loaded member.
//
// A member in slow start (see PolicyConfig.SlowStart) is compared on its
// in-flight relative to weight x its ramp factor.
type p2c struct {
	ramp    ramp
	weights poolCache[weightTable]
}

// Select implements Selector.
func (s *p2c) Select(pool []*Backend, r *Request) (*Backend, bool) {
	a, b, ok := drawPair(&s.weights, pool)
	if !ok || b == nil {
		return a, ok
	}
	al, aw, bl, bw := a.InFlight(), weightOf(a), b.InFlight(), weightOf(b)
	if s.ramp.window > 0 {
		fa, fb := s.ramp.factor(a, requestNow(r)), s.ramp.factor(b, requestNow(r))
		if fa != fb {
			// bl/(bw x fb) < al/(aw x fa)
			if float64(bl*aw)*fa < float64(al*bw)*fb {
				return b, true
			}
			return a, true
		}
	}
	if lessLoaded(bl, bw, al, aw) {
		return b, true
	}
	return a, true
}
