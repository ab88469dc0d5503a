package dbrouter

import (
	"sync"
	"time"
)

// budget is a token bucket that caps how many reads per second may fall back
// to the primary when no replica qualifies, so a lag spike on every replica
// does not turn all read traffic onto the primary at once. A negative rate
// means no cap.
type budget struct {
	rate  float64 // tokens added per second; negative: unlimited
	burst float64 // bucket size

	// mu guards tokens and last.
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newBudget(rate float64, burst int) *budget {
	b := &budget{rate: rate, burst: float64(burst)}
	b.tokens = b.burst
	return b
}

// allow takes one token if there is one at time now.
func (b *budget) allow(now time.Time) bool {
	if b.rate < 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
