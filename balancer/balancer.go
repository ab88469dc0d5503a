// Package balancer is scaleout's load balancer: an HTTP/1.1 reverse proxy in
// front of a pool of app servers, with pluggable selection policies (one
// file each), signed sticky-session cookies, safe retries under a budget,
// passive ejection of failing members, per-member concurrency limits and an
// admin API.
//
// The data path is its own HTTP/1.1 implementation over net.Conn rather than
// net/http's server and httputil.ReverseProxy: measured on this project's
// 2-core machines, ReverseProxy costs about four times HAProxy's CPU per
// request, mostly in per-request allocation (Request, Header maps, the
// Transport's per-connection goroutines and channels). Parsing heads in
// place into reused buffers and writing them straight to pooled member
// connections removes that cost while keeping the parts of HTTP that
// matter for a proxy: strict framing (no smuggling), hop-by-hop rules,
// streaming bodies both ways, and Upgrade tunnels.
package balancer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by the pool's management methods.
var (
	ErrNoBackend      = errors.New("no pool member available")
	ErrUnknownBackend = errors.New("unknown pool member")
	ErrDuplicateID    = errors.New("a pool member with this id exists")
)

// Config configures a Balancer. The zero value of each field selects the
// default its comment gives.
type Config struct {
	// Selector is the load-balancing policy. If nil, p2c is used.
	Selector Selector
	// Logger receives the balancer's logs. If nil, logs are discarded.
	Logger *slog.Logger
	// NewCache, if set, builds the shared HTTP cache that answers GET and
	// HEAD requests, given the transport its misses go to (the pool).
	NewCache func(pool http.RoundTripper) (Cache, error)

	// Sticky turns sticky sessions on: a signed cookie pins a client to the
	// member that served it. Secret is then required (16 bytes or more).
	Sticky bool
	// Secret keys the sticky cookie's HMAC; balancers sharing it read each
	// other's cookies.
	Secret []byte
	// StickyCookie is the cookie's name. If empty, "scaleout_sticky".
	StickyCookie string
	// StickyTTL is how long a pin lasts without traffic; the cookie is
	// refreshed once half of it has passed. If zero, 1h is used.
	StickyTTL time.Duration
	// DrainStickyWindow is how long a draining member keeps serving the
	// sessions pinned to it. If zero, 60s is used.
	DrainStickyWindow time.Duration

	// MaxAttempts bounds the attempts per request, the first included. If
	// zero, 3 is used.
	MaxAttempts int
	// RetryBudget is the share of recent requests that may be retried. If
	// zero, 0.2 is used.
	RetryBudget float64

	// DialTimeout bounds connecting to a member. If zero, 2s is used.
	DialTimeout time.Duration
	// ResponseTimeout bounds the wait for a member's response head once the
	// request is sent, and so the whole attempt chain. If zero, 60s is used.
	ResponseTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request head once its first byte
	// has arrived (slowloris defence). If zero, 10s is used.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// client connection. If zero, 60s is used.
	IdleTimeout time.Duration
	// BodyTimeout bounds the wait for the next bytes of a request or
	// response body: a slow upload keeps going as long as it progresses.
	// If zero, 60s is used.
	BodyTimeout time.Duration
	// MaxHeaderBytes bounds a request head; larger ones get 431. If zero,
	// 16 KiB is used.
	MaxHeaderBytes int

	// MaxConnsPerBackend caps each member's concurrent requests; zero
	// means no cap. Past the cap requests wait in a queue of QueueSize
	// (default 32) for at most QueueTimeout (default 1s), then get 503.
	MaxConnsPerBackend int
	QueueSize          int
	QueueTimeout       time.Duration
	// MaxIdleConnsPerBackend bounds each member's pool of keep-alive
	// connections. If zero, 256 is used.
	MaxIdleConnsPerBackend int
	// IdleConnTimeout is how long a member connection may sit idle before
	// it is closed. If zero, 30s is used.
	IdleConnTimeout time.Duration

	// EjectAfter is the number of consecutive failures (no connection, or
	// 5xx) after which passive health ejects a member. If zero, 3 is used;
	// if negative, passive ejection is off.
	EjectAfter int
	// EjectBase is the first ejection's length; each further one doubles
	// it, up to EjectMax. If zero, 1s and 30s are used.
	EjectBase time.Duration
	EjectMax  time.Duration
	// MaxEjectedShare is the largest share of the members that health
	// signals may take out of rotation; past it the least-bad members are
	// used anyway. If zero, 0.5 is used.
	MaxEjectedShare float64

	// ShutdownGrace bounds how long Serve waits for in-flight requests
	// once its context is done. If zero, 30s is used.
	ShutdownGrace time.Duration
}

func (c *Config) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Selector == nil {
		s, err := NewSelector(PolicyConfig{Name: "p2c"})
		if err != nil {
			return err
		}
		c.Selector = s
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.StickyCookie == "" {
		c.StickyCookie = "scaleout_sticky"
	}
	if !isToken([]byte(c.StickyCookie)) {
		return fmt.Errorf("sticky cookie name %q is not a token", c.StickyCookie)
	}
	def(&c.StickyTTL, time.Hour)
	def(&c.DrainStickyWindow, time.Minute)
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.RetryBudget == 0 {
		c.RetryBudget = 0.2
	}
	def(&c.DialTimeout, 2*time.Second)
	def(&c.ResponseTimeout, 60*time.Second)
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.BodyTimeout, 60*time.Second)
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	if c.QueueSize == 0 {
		c.QueueSize = 32
	}
	def(&c.QueueTimeout, time.Second)
	if c.MaxIdleConnsPerBackend == 0 {
		c.MaxIdleConnsPerBackend = 256
	}
	def(&c.IdleConnTimeout, 30*time.Second)
	if c.EjectAfter == 0 {
		c.EjectAfter = 3
	}
	def(&c.EjectBase, time.Second)
	def(&c.EjectMax, 30*time.Second)
	if c.MaxEjectedShare == 0 {
		c.MaxEjectedShare = 0.5
	}
	def(&c.ShutdownGrace, 30*time.Second)
	switch {
	case c.MaxAttempts < 1 || c.MaxAttempts > 10:
		return fmt.Errorf("max attempts %d: want 1 to 10", c.MaxAttempts)
	case c.RetryBudget < 0 || c.RetryBudget > 1:
		return fmt.Errorf("retry budget %g: want 0 to 1", c.RetryBudget)
	case c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 1<<20:
		return fmt.Errorf("max header bytes %d: want 1KiB to 1MiB", c.MaxHeaderBytes)
	case c.MaxConnsPerBackend < 0 || c.QueueSize < 0:
		return errors.New("max conns per backend and queue size must not be negative")
	case c.MaxEjectedShare < 0 || c.MaxEjectedShare > 1:
		return fmt.Errorf("max ejected share %g: want 0 to 1", c.MaxEjectedShare)
	}
	if c.Sticky && len(c.Secret) < 16 {
		return errors.New("sticky sessions need a secret of at least 16 bytes")
	}
	return nil
}

// Balancer is the reverse proxy and its pool. Create it with New, add
// members with Add, and serve clients with Serve. All methods are safe for
// concurrent use.
type Balancer struct {
	cfg      Config
	log      *slog.Logger
	sticky   *stickyCodec
	dialer   net.Dialer
	cache    Cache
	selector atomic.Pointer[Selector]

	// mu guards members and retired, and serializes snapshot rebuilds.
	mu      sync.Mutex
	members []*Backend
	// retired remembers the sticky tokens of members that left, so a
	// client pinned to one is re-pinned with Scaleout-Repinned-From.
	retired map[[8]byte]string

	snap atomic.Pointer[snapshot]
	// nextRecheck is the monotonic time at which an ejection ends and the
	// snapshot must be rebuilt; 0 when none is pending.
	nextRecheck atomic.Int64

	budget  retryBudget
	counter counters

	// connMu guards conns, the client connections being served.
	connMu  sync.Mutex
	conns   map[*clientConn]struct{}
	closing atomic.Bool

	// clientReaders recycles client read buffers, MaxHeaderBytes each.
	clientReaders sync.Pool

	// h2 serves connections that open with the HTTP/2 preface; built on
	// the first one.
	h2Once sync.Once
	h2     *http.Server
}

// snapshot is an immutable view of the pool, rebuilt on every change.
type snapshot struct {
	all      []*Backend
	eligible []*Backend // ready and not ejected: what policies choose from
	byToken  map[[8]byte]*Backend
}

// New returns a Balancer with an empty pool.
func New(cfg Config) (*Balancer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("balancer config: %w", err)
	}
	b := &Balancer{
		cfg:     cfg,
		log:     cfg.Logger,
		retired: make(map[[8]byte]string),
		conns:   make(map[*clientConn]struct{}),
		dialer:  net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
	}
	if cfg.Sticky {
		c, err := newStickyCodec(cfg.Secret)
		if err != nil {
			return nil, err
		}
		b.sticky = c
	}
	b.selector.Store(&cfg.Selector)
	if cfg.NewCache != nil {
		c, err := cfg.NewCache(newPoolTransport(b))
		if err != nil {
			return nil, fmt.Errorf("balancer cache: %w", err)
		}
		b.cache = c
	}
	b.budget.init(cfg.RetryBudget)
	b.snap.Store(&snapshot{byToken: map[[8]byte]*Backend{}})
	return b, nil
}

// Add puts m in the pool, ready at once. Its ID must be unique.
func (b *Balancer) Add(m *Backend) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range b.members {
		if x.ID == m.ID {
			return fmt.Errorf("add %s: %w", m.ID, ErrDuplicateID)
		}
	}
	if b.cfg.MaxConnsPerBackend > 0 {
		m.slots = make(chan struct{}, b.cfg.MaxConnsPerBackend)
	}
	m.readySince.Store(nanotime())
	b.members = append(b.members, m)
	delete(b.retired, m.stickyToken)
	b.rebuildLocked()
	b.log.Info("member added", "id", m.ID, "url", m.URL.String(), "weight", m.Weight)
	return nil
}

// Remove takes the member id out of the pool at once. Requests it is
// serving finish; its idle connections are closed.
func (b *Balancer) Remove(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.IndexFunc(b.members, func(m *Backend) bool { return m.ID == id })
	if i < 0 {
		return fmt.Errorf("remove %s: %w", id, ErrUnknownBackend)
	}
	m := b.members[i]
	b.members = slices.Delete(b.members, i, i+1)
	m.state.Store(int32(Down))
	if len(b.retired) >= 4096 {
		clear(b.retired)
	}
	b.retired[m.stickyToken] = m.ID
	b.rebuildLocked()
	m.conns.closeIdle()
	// Requests in flight finish: a member that leaves gracefully (its
	// "leaving" heartbeat, an operator's removal) is still serving them. A
	// member presumed dead had them cut short when its lease expired or
	// its probes failed.
	b.log.Info("member removed", "id", id)
	return nil
}

// SetState moves member id to state s: Draining stops new work but lets
// pinned sessions and in-flight requests finish; Down takes it out of
// rotation; Ready puts it back (with slow start).
func (b *Balancer) SetState(id string, s State) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.lookupLocked(id)
	if m == nil {
		return fmt.Errorf("member %s: %w", id, ErrUnknownBackend)
	}
	old := State(m.state.Swap(int32(s)))
	if old == s {
		return nil
	}
	if s == Ready {
		m.readySince.Store(nanotime())
	}
	if s == Draining {
		m.drainSince.Store(nanotime())
	}
	b.rebuildLocked()
	if s == Down {
		m.waiting.abortAll()
	}
	b.log.Info("member state", "id", id, "from", old.String(), "to", s.String())
	return nil
}

// Backend returns the member named id.
func (b *Balancer) Backend(id string) (*Backend, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.lookupLocked(id)
	return m, m != nil
}

// Backends returns the pool's members, in the order they were added. The
// slice is the caller's; the members are shared.
func (b *Balancer) Backends() []*Backend {
	return slices.Clone(b.snap.Load().all)
}

func (b *Balancer) lookupLocked(id string) *Backend {
	for _, m := range b.members {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// rebuildLocked publishes a new snapshot of the pool. Members ejected by
// passive health are left out, but never so many that more than
// MaxEjectedShare of the ready members are out: past that, the ejected
// members with the fewest consecutive failures are kept in (the guard).
func (b *Balancer) rebuildLocked() {
	now := nanotime()
	s := &snapshot{all: slices.Clone(b.members), byToken: make(map[[8]byte]*Backend, len(b.members))}
	var ready, ejected []*Backend
	var next int64
	for _, m := range b.members {
		s.byToken[m.stickyToken] = m
		if m.State() != Ready {
			continue
		}
		ready = append(ready, m)
		if m.probeDown.Load() || m.leaseDown.Load() {
			ejected = append(ejected, m)
			continue
		}
		if until := m.ejectedUntil.Load(); until > now {
			ejected = append(ejected, m)
			if next == 0 || until < next {
				next = until
			}
			continue
		}
		s.eligible = append(s.eligible, m)
	}
	maxOut := int(float64(len(ready)) * b.cfg.MaxEjectedShare)
	if len(ejected) > maxOut {
		slices.SortStableFunc(ejected, func(x, y *Backend) int { return badness(x) - badness(y) })
		keep := ejected[:len(ejected)-maxOut]
		s.eligible = append(s.eligible, keep...)
		b.counter.guardActive.Store(1)
		b.log.Warn("health guard: keeping ejected members in rotation", "ejected", len(ejected), "ready", len(ready), "kept", len(keep))
	} else {
		b.counter.guardActive.Store(0)
	}
	b.nextRecheck.Store(next)
	b.snap.Store(s)
}

// recheck rebuilds the snapshot when an ejection has ended.
func (b *Balancer) recheck(now int64) {
	if next := b.nextRecheck.Load(); next != 0 && now >= next {
		b.mu.Lock()
		if next := b.nextRecheck.Load(); next != 0 && now >= next {
			b.rebuildLocked()
		}
		b.mu.Unlock()
	}
}

// noteResult feeds one attempt's outcome to passive health: EjectAfter
// consecutive failures eject the member for a backoff that doubles with
// each ejection in a row (as Envoy's outlier detection).
func (b *Balancer) noteResult(m *Backend, failed bool) {
	if !failed {
		if m.consecFails.Load() != 0 {
			m.consecFails.Store(0)
		}
		if m.ejections.Load() != 0 && m.ejectedUntil.Load() < nanotime() {
			m.ejections.Store(0)
		}
		return
	}
	m.failures.Add(1)
	n := m.consecFails.Add(1)
	if b.cfg.EjectAfter < 0 || int(n) < b.cfg.EjectAfter || m.ejectedUntil.Load() > nanotime() {
		return
	}
	k := m.ejections.Add(1)
	d := b.cfg.EjectBase << min(k-1, 16)
	if d > b.cfg.EjectMax || d <= 0 {
		d = b.cfg.EjectMax
	}
	until := nanotime() + int64(d)
	m.ejectedUntil.Store(until)
	m.readySince.Store(until) // back from ejection with slow start
	m.consecFails.Store(0)
	b.counter.ejections.Add(1)
	b.log.Warn("member ejected", "id", m.ID, "for", d, "ejections", k)
	b.mu.Lock()
	b.rebuildLocked()
	b.mu.Unlock()
}

// badness orders out-of-rotation members for the guard: a member that only
// passive health ejected is less bad than one whose probes fail too.
func badness(m *Backend) int {
	n := int(m.consecFails.Load()) + int(m.ejections.Load())
	if m.probeDown.Load() {
		n += 1000
	}
	if m.leaseDown.Load() {
		n += 2000
	}
	return n
}

// SetHealthy records an active health check's verdict on member id: an
// unhealthy member leaves rotation (within the guard's bound) until a
// check passes again, when it comes back with slow start.
func (b *Balancer) SetHealthy(id string, healthy bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.lookupLocked(id)
	if m == nil {
		return fmt.Errorf("member %s: %w", id, ErrUnknownBackend)
	}
	if m.probeDown.Swap(!healthy) == !healthy {
		return nil
	}
	if healthy {
		m.readySince.Store(nanotime())
	}
	b.rebuildLocked()
	if !healthy {
		m.waiting.abortAll()
	}
	b.log.Info("member health", "id", id, "healthy", healthy)
	return nil
}

// SetLeaseExpired records that member id's heartbeats stopped (or came
// back). Like a failing probe, it takes the member out of rotation within
// the guard's bound, so a balancer cut off from its members' heartbeats
// does not empty its pool.
func (b *Balancer) SetLeaseExpired(id string, expired bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.lookupLocked(id)
	if m == nil {
		return fmt.Errorf("member %s: %w", id, ErrUnknownBackend)
	}
	if m.leaseDown.Swap(expired) == expired {
		return nil
	}
	if !expired {
		m.readySince.Store(nanotime())
	}
	b.rebuildLocked()
	if expired {
		m.waiting.abortAll()
	}
	b.log.Info("member lease", "id", id, "expired", expired)
	return nil
}

// Upsert adds a member that announced itself (by heartbeat, say), or
// updates one already known: a new URL replaces the member's address (its
// in-flight requests finish on the old one), and weight, capacity and the
// in-flight count it reports are recorded. weight below 1 keeps the
// current weight (1 for a new member).
func (b *Balancer) Upsert(id, rawURL string, weight, capacity, reportedInFlight int) error {
	b.mu.Lock()
	m := b.lookupLocked(id)
	if m != nil && m.URL.Host == hostOf(rawURL) && (weight < 1 || weight == m.Weight) {
		m.capacity.Store(int64(capacity))
		m.reportedInFlight.Store(int64(reportedInFlight))
		b.mu.Unlock()
		return nil
	}
	if weight < 1 {
		weight = 1
		if m != nil {
			weight = m.Weight
		}
	}
	nm, err := NewBackend(id, rawURL, weight)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	nm.dynamic.Store(m == nil || m.dynamic.Load())
	nm.capacity.Store(int64(capacity))
	nm.reportedInFlight.Store(int64(reportedInFlight))
	if m != nil {
		nm.state.Store(m.state.Load())
		nm.drainSince.Store(m.drainSince.Load())
		i := slices.Index(b.members, m)
		b.members[i] = nm
		m.conns.closeIdle()
	} else {
		b.members = append(b.members, nm)
		delete(b.retired, nm.stickyToken)
	}
	if b.cfg.MaxConnsPerBackend > 0 {
		nm.slots = make(chan struct{}, b.cfg.MaxConnsPerBackend)
	}
	b.rebuildLocked()
	b.mu.Unlock()
	b.log.Info("member registered", "id", id, "url", nm.URL.String(), "weight", weight)
	return nil
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host
}

// SetSelector replaces the load-balancing policy; requests already being
// routed finish with the old one.
func (b *Balancer) SetSelector(s Selector) {
	if s != nil {
		b.selector.Store(&s)
	}
}
