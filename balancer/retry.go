package balancer

import (
	"bytes"
	"sync/atomic"
)

// retryBudget lets retries be at most a share of recent requests, so
// retries cannot multiply an outage (as Finagle's RetryBudget). Each
// request deposits share x 1000 milli-tokens, each retry withdraws 1000;
// the balance is capped so a long quiet spell does not bank a storm, and
// starts with a small reserve so the first failures can be retried.
type retryBudget struct {
	deposit int64
	tokens  atomic.Int64
}

const (
	budgetReserve = 10 * 1000
	budgetCap     = 100 * 1000
)

func (r *retryBudget) init(share float64) {
	r.deposit = int64(share * 1000)
	r.tokens.Store(budgetReserve)
}

func (r *retryBudget) onRequest() {
	if r.tokens.Load() < budgetCap {
		r.tokens.Add(r.deposit)
	}
}

func (r *retryBudget) withdraw() bool {
	if r.tokens.Add(-1000) >= 0 {
		return true
	}
	r.tokens.Add(1000)
	return false
}

// idempotent reports whether a request may be sent twice: its method is
// idempotent (RFC 9110 section 9.2.2) or it carries an Idempotency-Key.
func idempotent(m *message) bool {
	switch string(m.Method) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return m.Header("idempotency-key") != nil
}

// counters are the balancer-wide figures exported by Stats and /metrics.
type counters struct {
	requests     atomic.Uint64
	retries      atomic.Uint64
	retryDenied  atomic.Uint64
	noBackend    atomic.Uint64
	queueFull    atomic.Uint64
	queueWaitNs  atomic.Uint64
	queued       atomic.Uint64
	badRequests  atomic.Uint64
	upstreamErrs atomic.Uint64
	ejections    atomic.Uint64
	guardActive  atomic.Int32
	activeConns  atomic.Int64
}

var methodHEAD = []byte("HEAD")

func isHEAD(m []byte) bool { return bytes.Equal(m, methodHEAD) }
