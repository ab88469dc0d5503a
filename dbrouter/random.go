package dbrouter

import "math/rand/v2"

// Random picks a candidate uniformly at random. The zero value is ready to
// use and safe for concurrent use.
type Random struct{}

// Pick implements Policy.
func (Random) Pick(c []*Replica) *Replica { return c[rand.IntN(len(c))] }
