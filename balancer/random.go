package balancer

// random picks a member at random in proportion to its weight: a uniform
// index when weights are equal, else a binary search of the cumulative
// weights (cached per pool) for one uniform draw in their total. It keeps
// no state between requests, which makes it the policy of choice for many
// balancers that share nothing, at the cost of ignoring load.
type random struct {
	weights poolCache[weightTable]
}

// Select implements Selector.
func (s *random) Select(pool []*Backend, _ *Request) (*Backend, bool) {
	switch len(pool) {
	case 0:
		return nil, false
	case 1:
		return pool[0], true
	}
	t := s.weights.get(pool, buildWeightTable)
	return pool[t.draw(len(pool))], true
}
