package balancer

import (
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds of the latency histogram that
// /metrics exports per member and status class, in seconds.
var latencyBuckets = [...]time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// statusClasses are the response classes counted per member: 1xx..5xx, and
// "error" for exchanges that produced no response.
const numClasses = 6

// histogram is a fixed-bucket latency histogram of atomics, cheap enough
// to update on every request.
type histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64
	sumNs  atomic.Uint64
	n      atomic.Uint64
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(latencyBuckets) && d > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d))
	h.n.Add(1)
}

// memberStats are a member's per-status-class latency histograms.
type memberStats struct {
	byClass [numClasses]histogram
}

// classOf maps a status code to its class index; 0 means no response.
func classOf(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}
