package autoscale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"
)

// Errors returned by this package, matched with errors.Is.
var (
	// ErrConfig wraps every error New returns for a bad Config.
	ErrConfig = errors.New("autoscale: invalid config")
	// ErrRunning is returned by Run when the Scaler is already running.
	ErrRunning = errors.New("autoscale: scaler already running")
	// ErrDrainTimeout is returned by PoolDrainer.Drain when a member still
	// had requests in flight at the deadline.
	ErrDrainTimeout = errors.New("autoscale: drain timed out")
)

// Metric names what the Scaler compares with its Target.
type Metric string

// The metrics a Scaler can follow.
const (
	// MetricInFlight is requests in flight per member, as the balancer
	// counts them. Target default: 10.
	MetricInFlight Metric = "in_flight"
	// MetricLatencyP95 is the pool's recent 95th percentile latency in
	// milliseconds. Target default: 250 (ms).
	MetricLatencyP95 Metric = "p95_latency"
	// MetricQueue is requests waiting at the balancer for a member, per
	// member. Target default: 1.
	MetricQueue Metric = "queue"
)

// ParseMetric turns a flag or config value into a Metric; "" is
// MetricInFlight. The error names the accepted values.
func ParseMetric(s string) (Metric, error) {
	switch m := Metric(s); m {
	case "":
		return MetricInFlight, nil
	case MetricInFlight, MetricLatencyP95, MetricQueue:
		return m, nil
	}
	return "", fmt.Errorf("metric %q: want %s, %s or %s", s, MetricInFlight, MetricLatencyP95, MetricQueue)
}

func (m Metric) defaultTarget() float64 {
	switch m {
	case MetricLatencyP95:
		return 250
	case MetricQueue:
		return 1
	}
	return 10
}

// Victim says which instance scale-in removes.
type Victim string

// The victim choices.
const (
	// VictimNewest removes the most recently started instance (the one with
	// the least warm caches and the fewest pinned sessions).
	VictimNewest Victim = "newest"
	// VictimLeastLoaded removes the instance with the fewest requests in
	// flight at the last observation (so the drain is shortest).
	VictimLeastLoaded Victim = "least_loaded"
)

// Member is one pool member as the balancer sees it.
type Member struct {
	// ID is the member's id, the one its heartbeats carry; the Scaler
	// matches it with Instance.ID.
	ID string
	// InFlight is the requests the balancer has in flight to it now.
	InFlight int64
	// Ready is true while it is in rotation (not draining, down or ejected).
	Ready bool
}

// Observation is what the balancer sees at one moment. The Scaler owns it
// once Observe returns.
type Observation struct {
	// Members is the pool.
	Members []Member
	// P95 is the recent 95th percentile latency of requests through the
	// pool; zero when there were none. Needed only for MetricLatencyP95.
	P95 time.Duration
	// Queue is the requests waiting now at the balancer for a member
	// (for example behind per-member concurrency caps). Needed only for
	// MetricQueue.
	Queue int64
}

// Source tells the Scaler what the balancer sees. Observe is called once
// per Interval from Run's goroutine, with a deadline of one Interval.
type Source interface {
	Observe(ctx context.Context) (Observation, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (Observation, error)

// Observe calls f.
func (f SourceFunc) Observe(ctx context.Context) (Observation, error) { return f(ctx) }

// Instance is one app server a Provider started.
type Instance struct {
	// ID is unique among the Provider's instances and is the id the
	// instance's heartbeats carry, so the balancer's Member.ID matches it.
	ID string
	// URL is the instance's base URL, e.g. http://127.0.0.1:41234.
	URL string
	// Exited, if not nil, is closed when the instance ends for any reason.
	// The Scaler treats a close it did not cause with Stop as a crash and
	// replaces the instance. Providers that cannot tell leave it nil.
	Exited <-chan struct{}
}

// Provider starts and stops instances. The Scaler calls Start and Stop from
// several goroutines at once, so implementations must be safe for
// concurrent use.
type Provider interface {
	// Start launches one instance and returns once it is launched (it
	// joins the balancer by heartbeat afterwards). ctx bounds the launch,
	// not the instance's life.
	Start(ctx context.Context) (Instance, error)
	// Stop ends instance id and returns once it has ended or ctx is done.
	// Stopping an instance that already exited returns nil.
	Stop(ctx context.Context, id string) error
}

// Drainer takes a member out of rotation before the Scaler stops it.
type Drainer interface {
	// Drain stops new work for member id and returns once its in-flight
	// requests have finished, or with an error at the Drainer's own
	// deadline or when ctx is done. The Scaler stops the instance either
	// way; the error is logged. PoolDrainer is the usual implementation.
	Drain(ctx context.Context, id string) error
}

// Config configures a Scaler. Source and Provider are required.
type Config struct {
	// Min is the fewest instances kept running, also at start. If zero, 1
	// is used: a pool of none has no in-flight figure to observe.
	Min int
	// Max is the most instances. If zero, 8 is used (or Min, if larger).
	Max int
	// Metric is what is compared with Target. If empty, MetricInFlight.
	Metric Metric
	// Target is the Metric's desired value: in-flight requests per member
	// (default 10), p95 milliseconds (default 250) or queued requests per
	// member (default 1).
	Target float64
	// Tolerance is the band around Target inside which nothing changes, as
	// a fraction. If zero, 0.1 (as HPA); if negative, none.
	Tolerance float64
	// MaxStepUp bounds the instances one decision adds. If zero, none.
	MaxStepUp int
	// Interval is the time between decisions, jittered by +-10% and the
	// first one by up to a whole Interval so several scalers do not act in
	// step. If zero, 5s.
	Interval time.Duration
	// ScaleDownWindow is the stabilization window before scale-down. If
	// zero, 5 min (as HPA); if negative, none.
	ScaleDownWindow time.Duration
	// Victim picks the instance scale-in removes. If empty, VictimNewest.
	Victim Victim
	// Source reports what the balancer sees. Required.
	Source Source
	// Provider starts and stops instances. Required.
	Provider Provider
	// Drainer drains a victim before it is stopped. If nil, victims are
	// stopped without draining, and the balancer's retries must cover the
	// requests they held.
	Drainer Drainer
	// LostAfter is how long an instance that had joined the pool may be
	// out of it (absent from the Observation, or not Ready) before it is
	// taken as lost: stopped through the Provider and replaced. This
	// catches hung processes and servers a hook started that died, whose
	// Instance.Exited cannot tell. If zero, 1 min; if negative, never.
	LostAfter time.Duration
	// StartTimeout bounds one Provider.Start. If zero, 30s.
	StartTimeout time.Duration
	// StopTimeout bounds one Provider.Stop. If zero, 30s.
	StopTimeout time.Duration
	// Logger receives every decision (Info when the size changes, Debug
	// when it holds) and every crash and failed start. If nil, nothing is
	// logged.
	Logger *slog.Logger
	// Events is how many recent size changes Stats keeps. If zero, 32.
	Events int
}

func (c *Config) setDefaults() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.Min < 0 || c.Max < 0 {
		return bad("min %d and max %d must not be negative", c.Min, c.Max)
	}
	if c.Min == 0 {
		c.Min = 1
	}
	if c.Max == 0 {
		c.Max = max(8, c.Min)
	}
	if c.Max < c.Min {
		return bad("max %d is below min %d", c.Max, c.Min)
	}
	m, err := ParseMetric(string(c.Metric))
	if err != nil {
		return bad("%v", err)
	}
	c.Metric = m
	if c.Target == 0 {
		c.Target = m.defaultTarget()
	}
	switch {
	case !(c.Target > 0) || math.IsInf(c.Target, 0):
		return bad("target %g must be a positive number", c.Target)
	case math.IsNaN(c.Tolerance) || c.Tolerance >= 1:
		return bad("tolerance %g must be below 1", c.Tolerance)
	case c.MaxStepUp < 0:
		return bad("max step up %d must not be negative", c.MaxStepUp)
	case c.Interval < 0 || c.StartTimeout < 0 || c.StopTimeout < 0 || c.Events < 0:
		return bad("interval, timeouts and events must not be negative")
	case c.Source == nil:
		return bad("a Source is required")
	case c.Provider == nil:
		return bad("a Provider is required")
	}
	switch c.Victim {
	case "":
		c.Victim = VictimNewest
	case VictimNewest, VictimLeastLoaded:
	default:
		return bad("victim %q: want %s or %s", c.Victim, VictimNewest, VictimLeastLoaded)
	}
	c.fillDefaults()
	return nil
}

// fillDefaults sets the zero durations, Events and Logger.
func (c *Config) fillDefaults() {
	if c.Interval == 0 {
		c.Interval = 5 * time.Second
	}
	if c.ScaleDownWindow == 0 {
		c.ScaleDownWindow = DefaultWindow
	}
	if c.LostAfter == 0 {
		c.LostAfter = time.Minute
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.Events == 0 {
		c.Events = 32
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}
