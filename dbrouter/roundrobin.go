package dbrouter

import "sync/atomic"

// RoundRobin hands reads to the candidates in turn. Because the candidate set
// changes with health and lag, the turn is kept as a counter modulo the
// current set's size. The zero value is ready to use; use it by pointer. It is
// safe for concurrent use.
type RoundRobin struct {
	next atomic.Uint64
}

// Pick implements Policy.
func (p *RoundRobin) Pick(c []*Replica) *Replica {
	n := p.next.Add(1) - 1
	return c[n%uint64(len(c))]
}
