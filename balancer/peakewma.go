package balancer

// peakEWMA is p2c on Backend.Cost: two different members drawn at random
// in proportion to weight, and the one with the lower (in-flight + 1) x
// peak-EWMA round-trip estimate / weight wins (Finagle's and Linkerd's
// peak-EWMA balancer). The estimate jumps to a slower observation at once
// and counts a failed exchange as a one-second round trip, so a member that
// turns slow, or answers fast with errors, stops attracting traffic within
// a request or two. An estimate that no request refreshes decays toward
// zero (see Backend.Cost), so a shunned member is eventually tried again:
// that probe either clears it or pushes its estimate back up.
//
// A member in slow start (see PolicyConfig.SlowStart) has its cost divided
// by its ramp factor.
type peakEWMA struct {
	ramp    ramp
	weights poolCache[weightTable]
}

// Select implements Selector.
func (s *peakEWMA) Select(pool []*Backend, r *Request) (*Backend, bool) {
	a, b, ok := drawPair(&s.weights, pool)
	if !ok || b == nil {
		return a, ok
	}
	t0 := requestNow(r)
	ac, bc := a.Cost(t0), b.Cost(t0)
	if s.ramp.window > 0 {
		if fa, fb := s.ramp.factor(a, t0), s.ramp.factor(b, t0); fa != fb {
			ac, bc = ac/fa, bc/fb
		}
	}
	if bc < ac {
		return b, true
	}
	return a, true
}
