package health

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RegistryConfig configures a Registry. The zero value of each optional
// field selects the default its comment gives.
type RegistryConfig struct {
	// Pool is the pool the registry drives. Required.
	Pool Pool
	// Token is the shared secret heartbeats carry as "Authorization:
	// Bearer <token>". Required; compared in constant time.
	Token string
	// LeaseIntervals is how many of a member's own intervals may pass
	// without a heartbeat before it is set down. If zero, 3 is used.
	LeaseIntervals int
	// Grace is how long after its last heartbeat a silent member is
	// removed from the pool altogether. If zero, the larger of 30s and 10
	// of the member's intervals is used. It is never shorter than the lease.
	Grace time.Duration
	// MinInterval and MaxInterval bound the interval_ms a heartbeat may
	// declare. If zero, 50ms and 1m are used.
	MinInterval time.Duration
	MaxInterval time.Duration
	// MaxBodyBytes bounds a heartbeat body; larger ones get 413. If zero,
	// 64 KiB is used.
	MaxBodyBytes int64
	// Logger receives membership changes. If nil, logs are discarded.
	Logger *slog.Logger
}

func (c *RegistryConfig) setDefaults() error {
	if c.Pool == nil {
		return fmt.Errorf("%w: registry needs a Pool", ErrConfig)
	}
	if c.Token == "" {
		return fmt.Errorf("%w: registry needs a Token", ErrConfig)
	}
	if c.LeaseIntervals == 0 {
		c.LeaseIntervals = 3
	}
	if c.MinInterval == 0 {
		c.MinInterval = defaultMinInterval
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = defaultMaxInterval
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.LeaseIntervals < 1 || c.LeaseIntervals > 100:
		return fmt.Errorf("%w: lease intervals %d: want 1 to 100", ErrConfig, c.LeaseIntervals)
	case c.Grace < 0:
		return fmt.Errorf("%w: grace %v is negative", ErrConfig, c.Grace)
	case c.MinInterval < time.Millisecond || c.MaxInterval < c.MinInterval:
		return fmt.Errorf("%w: interval bounds %v to %v: want 1ms <= min <= max", ErrConfig, c.MinInterval, c.MaxInterval)
	case c.MaxBodyBytes < 512 || c.MaxBodyBytes > 1<<20:
		return fmt.Errorf("%w: max body bytes %d: want 512 to 1MiB", ErrConfig, c.MaxBodyBytes)
	}
	return nil
}

// Registry receives heartbeats and keeps a lease per member, driving a Pool:
// a heartbeat from an unknown id registers it at once; "draining" and
// "leaving" are applied at once; a member silent for LeaseIntervals of its
// intervals is set down, and removed after Grace; a heartbeat brings a down
// member back. Its Handler takes the heartbeats and Run expires leases; the
// owner starts Run. All methods are safe for concurrent use.
type Registry struct {
	cfg       RegistryConfig
	tokenHash [sha256.Size]byte
	kick      chan struct{} // wakes Run when a lease ends before its timer

	// mu guards the fields below, and serializes the calls made to Pool so
	// that the pool sees each member's changes in the order decided here.
	mu     sync.Mutex
	leases map[string]*lease
	tombs  map[string]tomb // members that left, so a late heartbeat cannot revive them
	wakeAt time.Time       // when Run's timer fires next; zero if not set

	counters registryCounters
}

// lease is what the registry knows of one member.
type lease struct {
	member    Member
	reported  MemberState // ready or draining, as the member last said
	poolState MemberState // what the registry last told the pool; "" before the first call
	interval  time.Duration
	last      time.Time
	seq       uint64
	expireAt  time.Time // set down at
	removeAt  time.Time // removed at
}

type tomb struct {
	seq   uint64
	until time.Time
}

type registryCounters struct {
	heartbeats, registrations, leaves, expiries, removals, recoveries, stale atomic.Uint64
	rejected                                                                 [numReasons]atomic.Uint64
}

// Reasons a heartbeat is refused, as RegistryStats.Rejected names them.
const (
	reasonMethod = iota
	reasonAuth
	reasonContentType
	reasonTooLarge
	reasonMalformedN
	reasonInvalidN
	reasonPool
	numReasons
)

const (
	reasonMalformed = "malformed"
	reasonInvalid   = "invalid"
)

var reasonNames = [numReasons]string{"method", "auth", "content_type", "too_large", reasonMalformed, reasonInvalid, "pool"}

// NewRegistry validates cfg and returns a Registry. It starts nothing: the
// owner runs Run and mounts Handler.
func NewRegistry(cfg RegistryConfig) (*Registry, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Registry{
		cfg:       cfg,
		tokenHash: sha256.Sum256([]byte(cfg.Token)),
		kick:      make(chan struct{}, 1),
		leases:    make(map[string]*lease),
		tombs:     make(map[string]tomb),
	}, nil
}

// authorized reports whether header is "Bearer <token>". Both tokens are
// hashed first so the comparison takes the same time whatever the length.
func (r *Registry) authorized(header string) bool {
	const prefix = "Bearer "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(header[len(prefix):])))
	return subtle.ConstantTimeCompare(got[:], r.tokenHash[:]) == 1
}

// grace is how long after its last heartbeat a member is removed.
func (r *Registry) grace(interval time.Duration) time.Duration {
	g := r.cfg.Grace
	if g == 0 {
		g = max(30*time.Second, 10*interval)
	}
	return max(g, time.Duration(r.cfg.LeaseIntervals)*interval)
}

// result is what applying a heartbeat came to.
type result struct {
	lease time.Duration // the lease granted; zero for leaving
	stale bool          // ignored: an older seq than one already seen
}

// Apply applies one validated heartbeat received at now, as Handler does
// after checking the token and decoding the body. It returns an error only
// when the pool refuses the member.
func (r *Registry) Apply(h Heartbeat, now time.Time) error {
	_, err := r.apply(&h, now)
	return err
}

func (r *Registry) apply(h *Heartbeat, now time.Time) (result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.leases[h.ID]
	if h.Seq != 0 {
		t, left := r.tombs[h.ID]
		// A late "leaving" for a member already gone is let through: it
		// changes nothing, and the two balancer URLs of one registry may
		// see a sender's leavings in either order.
		if l != nil && h.Seq <= l.seq || l == nil && left && h.Seq <= t.seq && h.State != StateLeaving {
			r.counters.stale.Add(1)
			return result{stale: true}, nil
		}
	}
	if h.State == StateLeaving {
		return result{}, r.leaveLocked(h, l, now)
	}
	m := Member{ID: h.ID, URL: h.URL, Weight: int(h.Weight), Capacity: int(h.Capacity), InFlight: int(h.InFlight)}
	if err := r.cfg.Pool.Upsert(m); err != nil {
		r.counters.rejected[reasonPool].Add(1)
		return result{}, fmt.Errorf("pool refused member %s: %w", h.ID, err)
	}
	if l == nil {
		l = &lease{}
		r.leases[h.ID] = l
		delete(r.tombs, h.ID)
		r.counters.registrations.Add(1)
		r.cfg.Logger.Info("member registered by heartbeat", "id", h.ID, "url", h.URL, "interval", h.Interval())
	}
	l.member, l.reported, l.interval, l.last = m, h.State, h.Interval(), now
	if h.Seq != 0 {
		l.seq = h.Seq
	}
	leaseLen := time.Duration(r.cfg.LeaseIntervals) * l.interval
	l.expireAt, l.removeAt = now.Add(leaseLen), now.Add(r.grace(l.interval))
	if l.poolState != h.State {
		if l.poolState == StateDown {
			r.counters.recoveries.Add(1)
			r.cfg.Logger.Info("member back by heartbeat", "id", h.ID, "state", h.State)
		}
		if err := r.cfg.Pool.SetState(h.ID, h.State); err != nil {
			r.cfg.Logger.Warn("pool refused state", "id", h.ID, "state", h.State, "err", err)
		} else {
			l.poolState = h.State
		}
	}
	r.counters.heartbeats.Add(1)
	if r.wakeAt.IsZero() || l.expireAt.Before(r.wakeAt) {
		r.wakeAt = l.expireAt
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return result{lease: leaseLen}, nil
}

// leaveLocked removes a member that said it is leaving. An id the registry
// never saw is removed from the pool too (it may have registered with a
// balancer that restarted since), and the pool's error is then ignored.
func (r *Registry) leaveLocked(h *Heartbeat, l *lease, now time.Time) error {
	err := r.cfg.Pool.Remove(h.ID)
	if l != nil {
		delete(r.leases, h.ID)
		if err != nil {
			r.cfg.Logger.Warn("pool refused removal", "id", h.ID, "err", err)
		}
	}
	if h.Seq != 0 {
		r.tombs[h.ID] = tomb{seq: max(h.Seq, r.tombs[h.ID].seq), until: now.Add(r.grace(h.Interval()))}
	}
	r.counters.heartbeats.Add(1)
	r.counters.leaves.Add(1)
	r.cfg.Logger.Info("member left", "id", h.ID)
	return nil
}

// Run expires leases until ctx is done, then returns nil: a member whose
// lease ran out is set down at once, and removed once its grace has passed.
// It sleeps until the earliest deadline, so it costs nothing between
// deadlines. Without Run, leases never expire.
func (r *Registry) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Hour
		if next := r.sweep(time.Now()); !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-r.kick:
		}
	}
}

// sweep applies the deadlines that passed by now and returns the next one
// (zero if there is none).
func (r *Registry) sweep(now time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for id, l := range r.leases {
		if !now.Before(l.removeAt) {
			if err := r.cfg.Pool.Remove(id); err != nil {
				r.cfg.Logger.Warn("pool refused removal", "id", id, "err", err)
			}
			delete(r.leases, id)
			r.counters.removals.Add(1)
			r.cfg.Logger.Info("member forgotten after grace", "id", id, "silent", now.Sub(l.last))
			continue
		}
		if l.poolState != StateDown && !now.Before(l.expireAt) {
			if err := r.cfg.Pool.SetState(id, StateDown); err != nil {
				r.cfg.Logger.Warn("pool refused state", "id", id, "state", StateDown, "err", err)
			}
			l.poolState = StateDown
			r.counters.expiries.Add(1)
			r.cfg.Logger.Warn("member lease expired: down", "id", id, "silent", now.Sub(l.last))
		}
		if l.poolState == StateDown {
			earlier(l.removeAt)
		} else {
			earlier(l.expireAt)
		}
	}
	for id, t := range r.tombs {
		if !now.Before(t.until) {
			delete(r.tombs, id)
		} else {
			earlier(t.until)
		}
	}
	r.wakeAt = next
	return next
}

// MemberLease is one member as the registry sees it.
type MemberLease struct {
	ID       string        `json:"id"`
	URL      string        `json:"url"`
	State    MemberState   `json:"state"`    // what the registry last set in the pool
	Reported MemberState   `json:"reported"` // what the member last said
	InFlight int           `json:"in_flight"`
	Capacity int           `json:"capacity"`
	Interval time.Duration `json:"interval"`
	LastSeen time.Time     `json:"last_seen"`
}

// RegistryStats is a snapshot of a Registry's figures, for metrics.
type RegistryStats struct {
	// Members counts the members with a lease by the state the registry
	// last set: "ready", "draining", "down".
	Members map[MemberState]int `json:"members"`
	// Heartbeats counts heartbeats accepted, leaving ones included.
	Heartbeats    uint64 `json:"heartbeats"`
	Registrations uint64 `json:"registrations"`
	Leaves        uint64 `json:"leaves"`
	// Expiries counts leases that ran out (member set down); Removals,
	// members forgotten after the grace; Recoveries, down members brought
	// back by a heartbeat.
	Expiries   uint64 `json:"expiries"`
	Removals   uint64 `json:"removals"`
	Recoveries uint64 `json:"recoveries"`
	// Stale counts heartbeats ignored for an old seq.
	Stale uint64 `json:"stale"`
	// Rejected counts refused heartbeats by reason: "method", "auth",
	// "content_type", "too_large", "malformed", "invalid", "pool".
	Rejected map[string]uint64 `json:"rejected"`
}

// Stats returns a snapshot of the registry's counters.
func (r *Registry) Stats() RegistryStats {
	c := &r.counters
	s := RegistryStats{
		Members:    map[MemberState]int{StateReady: 0, StateDraining: 0, StateDown: 0},
		Heartbeats: c.heartbeats.Load(), Registrations: c.registrations.Load(), Leaves: c.leaves.Load(),
		Expiries: c.expiries.Load(), Removals: c.removals.Load(), Recoveries: c.recoveries.Load(),
		Stale: c.stale.Load(), Rejected: make(map[string]uint64, numReasons),
	}
	for i := range c.rejected {
		s.Rejected[reasonNames[i]] = c.rejected[i].Load()
	}
	r.mu.Lock()
	for _, l := range r.leases {
		s.Members[l.poolState]++
	}
	r.mu.Unlock()
	return s
}

// Leases returns the members that hold a lease, sorted by ID. The slice is
// the caller's.
func (r *Registry) Leases() []MemberLease {
	r.mu.Lock()
	out := make([]MemberLease, 0, len(r.leases))
	for id, l := range r.leases {
		out = append(out, MemberLease{
			ID: id, URL: l.member.URL, State: l.poolState, Reported: l.reported,
			InFlight: l.member.InFlight, Capacity: l.member.Capacity, Interval: l.interval, LastSeen: l.last,
		})
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b MemberLease) int { return strings.Compare(a.ID, b.ID) })
	return out
}
