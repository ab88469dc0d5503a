package dbrouter

// Policy chooses the replica that serves a read. The router calls Pick with
// the replicas that qualify for this read (reachable, within the lag bound,
// caught up with the read's token), never with an empty slice; the slice is
// the router's, only valid during the call, and must not be modified.
// Implementations must be
// safe for concurrent use. Each policy lives in a file of its own.
type Policy interface {
	Pick(candidates []*Replica) *Replica
}
