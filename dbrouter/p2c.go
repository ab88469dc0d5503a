package dbrouter

import "math/rand/v2"

// P2C is the power-of-two-choices policy, the router's default: it samples
// two distinct candidates at random and takes the one with fewer queries in
// flight (Mitzenmacher, "The Power of Two Choices in Randomized Load
// Balancing", 2001). It keeps load close to least-in-flight without every
// reader herding onto the same momentarily idle replica. The zero value is
// ready to use and safe for concurrent use.
type P2C struct{}

// Pick implements Policy.
func (P2C) Pick(c []*Replica) *Replica {
	if len(c) == 1 {
		return c[0]
	}
	i := rand.IntN(len(c))
	j := rand.IntN(len(c) - 1)
	if j >= i {
		j++
	}
	a, b := c[i], c[j]
	if b.InFlight() < a.InFlight() {
		return b
	}
	return a
}
