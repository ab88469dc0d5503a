package balancer

import (
	"crypto/sha256"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// State is a pool member's place in rotation.
type State int32

// The states of a pool member. Only Ready members receive new requests
// through a policy; a Draining member still serves sticky sessions that are
// pinned to it and finishes what it has; Down members receive nothing.
const (
	Ready State = iota
	Draining
	Down
)

func (s State) String() string {
	switch s {
	case Ready:
		return "ready"
	case Draining:
		return "draining"
	case Down:
		return "down"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// Backend is one member of the pool: an app server the balancer forwards to.
// Its identity (ID, URL, Weight) is fixed at creation; its load and health
// figures are atomics updated by the data path, so a *Backend is safe for
// concurrent use. Policies read InFlight, Weight and Cost; they never write.
type Backend struct {
	// ID names the member in the admin API, metrics, logs and the
	// Scaleout-Repinned-From header. Unique within a pool.
	ID string
	// URL is where requests go: scheme http, host and port. A path prefix
	// is not supported.
	URL *url.URL
	// Weight is the member's relative share for the weighted policies; at least 1.
	Weight int

	addr        string  // host:port to dial
	stickyToken [8]byte // opaque name of the member in sticky cookies
	state       atomic.Int32
	inFlight    atomic.Int64
	requests    atomic.Uint64
	failures    atomic.Uint64
	consecFails atomic.Int32

	// ewma is the peak-EWMA round-trip estimate in nanoseconds (as a
	// float64's bits) and ewmaStamp the monotonic time of its last update.
	ewma      atomic.Uint64
	ewmaStamp atomic.Int64
	// ejectedUntil is the monotonic time until which passive health keeps
	// the member out; ejections counts them to grow the backoff.
	ejectedUntil atomic.Int64
	ejections    atomic.Int32
	// readySince is when the member last became ready, for slow start;
	// drainSince when it started draining.
	readySince atomic.Int64
	drainSince atomic.Int64

	// slots caps concurrent requests when MaxConnsPerBackend is set;
	// queued counts requests waiting for a slot.
	slots  chan struct{}
	queued atomic.Int32

	// probeDown is set while active health checks fail, leaseDown while
	// the member's heartbeats have stopped. reported holds
	// what the member's last heartbeat said of its own load.
	probeDown        atomic.Bool
	leaseDown        atomic.Bool
	reportedInFlight atomic.Int64
	capacity         atomic.Int64
	// dynamic is set for members that joined by heartbeat or the admin
	// API rather than from configuration, so a config reload keeps them.
	dynamic atomic.Bool

	conns   connPool
	waiting waitSet
	stats   memberStats
}

// NewBackend returns a member for rawURL (http://host:port). An empty id
// defaults to host:port; a weight below 1 is 1.
func NewBackend(id, rawURL string, weight int) (*Backend, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("backend url %q: %w", rawURL, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("backend url %q: scheme must be http", rawURL)
	}
	if u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("backend url %q: want http://host:port", rawURL)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("backend url %q: only scheme, host and port are allowed", rawURL)
	}
	if h := u.Hostname(); h == "" || strings.ContainsAny(h, " /\\") {
		return nil, fmt.Errorf("backend url %q: bad host", rawURL)
	}
	if id == "" {
		id = u.Host
	}
	if len(id) > 128 {
		return nil, fmt.Errorf("backend id %q: longer than 128 bytes", id)
	}
	if weight < 1 {
		weight = 1
	}
	if weight > 1000 {
		return nil, fmt.Errorf("backend %s: weight %d above 1000", id, weight)
	}
	b := &Backend{ID: id, URL: &url.URL{Scheme: "http", Host: u.Host}, Weight: weight, addr: u.Host}
	sum := sha256.Sum256([]byte("scaleout member\x00" + id))
	copy(b.stickyToken[:], sum[:])
	b.readySince.Store(nanotime())
	return b, nil
}

// State reports whether the member is ready, draining or down.
func (b *Backend) State() State { return State(b.state.Load()) }

// InFlight is the number of requests the member is serving now.
func (b *Backend) InFlight() int64 { return b.inFlight.Load() }

// Requests is the number of requests forwarded to the member so far.
func (b *Backend) Requests() uint64 { return b.requests.Load() }

// Failures is the number of attempts that failed: no connection, a broken
// exchange, or a 5xx answer.
func (b *Backend) Failures() uint64 { return b.failures.Load() }

// EWMA is the member's peak-EWMA round-trip estimate, decayed to now.
func (b *Backend) EWMA() time.Duration {
	return time.Duration(b.decayedEWMA(nanotime()))
}

// Cost is the peak-EWMA load estimate used by the peak-ewma policy: the
// decayed round-trip estimate times (in-flight + 1), divided by weight.
// now is a monotonic time from the request (Request.Now).
func (b *Backend) Cost(now int64) float64 {
	return b.decayedEWMA(now) * float64(b.inFlight.Load()+1) / float64(b.Weight)
}

// The peak-EWMA constants. An observation above the estimate replaces it at
// once (peak sensitivity); below it, it is blended in with weight
// 1-exp(-dt/ewmaTau). ewmaTau is short (Finagle's default is 10s): at
// thousands of requests a second a long window keeps a busy member's
// estimate near its last outlier for seconds, which made a 1ms member look
// 15ms and let a 50ms member keep ~1-3% of the traffic in the quality
// benchmark; at 250ms the estimate follows the typical latency and the slow
// member's share falls to about 0.5%. An estimate that no request has refreshed decays
// toward zero with time constant ewmaDecay, so a member that was slow is
// tried again now and then (a probe) instead of being shunned forever.
const (
	ewmaTau        = float64(250 * time.Millisecond)
	ewmaDecay      = float64(2 * time.Second)
	ewmaInitial    = float64(1 * time.Millisecond)
	failurePenalty = float64(1 * time.Second)
)

func (b *Backend) decayedEWMA(now int64) float64 {
	bits := b.ewma.Load()
	if bits == 0 {
		return ewmaInitial
	}
	v := math.Float64frombits(bits)
	// Within a millisecond of the last update the decay is under 0.05%:
	// skip math.Exp on the hot path.
	if dt := float64(now - b.ewmaStamp.Load()); dt > float64(time.Millisecond) {
		v *= math.Exp(-dt / ewmaDecay)
	}
	return v
}

// observe folds one round trip into the peak EWMA. A failed exchange counts
// as failurePenalty, so a member that fails fast does not look fast.
func (b *Backend) observe(now int64, rtt time.Duration, failed bool) {
	x := float64(rtt)
	if failed && x < failurePenalty {
		x = failurePenalty
	}
	prev := b.decayedEWMA(now)
	if b.ewma.Load() == 0 || x > prev {
		b.ewma.Store(math.Float64bits(x))
	} else {
		dt := float64(now - b.ewmaStamp.Load())
		w := math.Exp(-dt / ewmaTau)
		b.ewma.Store(math.Float64bits(prev*w + x*(1-w)))
	}
	b.ewmaStamp.Store(now)
}

// nanotime is a monotonic clock in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockBase)) }

// clockBase anchors nanotime; it is read-only after package initialization.
var clockBase = time.Now()

// Dynamic reports whether the member joined by heartbeat or through the
// admin API rather than from configuration.
func (b *Backend) Dynamic() bool { return b.dynamic.Load() }
