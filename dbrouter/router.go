// Package dbrouter routes database/sql queries over a primary and its
// read-only replicas: writes and transactions go to the primary, reads that
// declare themselves read-only go to a replica chosen by a Policy (P2C on
// in-flight queries by default), and anything unmarked goes to the primary.
// Intent is declared, never guessed from the SQL text: ReadOnly(ctx) for a
// query, sql.TxOptions{ReadOnly: true} for a transaction.
//
// Read-your-writes on asynchronous replicas uses consistency tokens: after a
// write the router reads the primary's WAL position (pg_current_wal_insert_lsn()),
// and a later read carrying that Token is served only by a replica whose
// pg_last_wal_replay_lsn() has reached it; the router waits a short bounded
// time for one and then falls back to the primary. Tokens are scoped to a
// Session (carried in the context, and encoded into the user's session so the
// scope follows the user across app servers) or, with ScopeGlobal, to the
// newest write the router has seen.
//
// Run keeps a heartbeat row on the primary and measures each replica's lag in
// bytes and in time; replicas beyond the bounds are skipped, and a budget caps
// how many reads may fall back to the primary when every replica lags.
// Unreachable replicas are ejected and retried with backoff. Writes survive a
// failover when the primary pool is opened with a multi-host DSN and
// target_session_attrs=read-write: a write refused by a node in recovery
// (SQLSTATE 25006) or not sent because no node accepts writes is retried on a
// fresh connection within Config.FailoverWait.
//
// With the SQLite dialect the same API runs over one database, tokens are
// no-ops, and everything goes to the primary when no replica is configured.
//
// The router is one replication group; a shard layer holds one Router per
// shard and routes to it by key before any of this applies.
package dbrouter

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"
)

// Errors returned by the router, matched with errors.Is.
var (
	// ErrNoReplica: a read-only query found no replica to serve it and the
	// fallback budget did not allow the primary either.
	ErrNoReplica = errors.New("dbrouter: no replica qualifies and the primary fallback budget is spent")
	// ErrNoPrimary: a write found no node accepting writes within
	// Config.FailoverWait.
	ErrNoPrimary = errors.New("dbrouter: no primary accepts writes")
	// ErrBadConfig: New was given an invalid Config.
	ErrBadConfig = errors.New("dbrouter: invalid config")
	// ErrBadToken: a consistency token could not be decoded.
	ErrBadToken = errors.New("dbrouter: bad consistency token")
	// ErrBadLSN: a WAL position could not be parsed.
	ErrBadLSN = errors.New("dbrouter: bad LSN")
)

// Scope says which writes a read must see.
type Scope int

const (
	// ScopeSession (the default): a read sees the writes of the Session in
	// its context. Writes without a Session record no token, which saves the
	// position query.
	ScopeSession Scope = iota
	// ScopeGlobal: a read also sees the newest write this router has made,
	// Session or not. Every write then costs one position query.
	ScopeGlobal
)

// Config configures a Router. Zero values of the optional fields select the
// documented defaults.
type Config struct {
	// Primary is the read-write pool; required. For failover open it with a
	// multi-host DSN and target_session_attrs=read-write. The caller owns it.
	Primary *sql.DB
	// Replicas are the read-only nodes. If empty, every query goes to the
	// primary (the embedded, single-database setup).
	Replicas []ReplicaConfig
	// Dialect is the database engine. If nil, Postgres{} is used.
	Dialect Dialect
	// Policy picks among qualifying replicas. If nil, P2C{} is used.
	Policy Policy
	// Scope is the read-your-writes scope. If zero, ScopeSession is used.
	Scope Scope
	// ReplicaWait bounds how long a read carrying a token waits for a
	// replica to replay it before falling back to the primary. If zero, 5ms
	// is used; negative means no wait.
	ReplicaWait time.Duration
	// MaxLagBytes skips replicas more WAL bytes behind than this. If zero,
	// 16 MiB is used; negative means no bound.
	MaxLagBytes int64
	// MaxLagTime skips replicas whose heartbeat is older than this. If zero,
	// 10s is used; negative means no bound.
	MaxLagTime time.Duration
	// HeartbeatInterval is how often Run writes the heartbeat row and polls
	// the replicas. If zero, 1s is used.
	HeartbeatInterval time.Duration
	// FallbackRate caps reads per second that go to the primary because no
	// replica qualifies (token bucket). If zero, 200 is used; negative means
	// no cap. It does not apply when Replicas is empty.
	FallbackRate float64
	// FallbackBurst is the bucket size of FallbackRate. If zero,
	// max(1, FallbackRate) is used.
	FallbackBurst int
	// EjectBackoff is how long an unreachable replica stays out of rotation
	// after its first failure; it doubles per further failure up to
	// MaxEjectBackoff. If zero, 1s and 30s are used.
	EjectBackoff, MaxEjectBackoff time.Duration
	// FailoverWait bounds how long a write keeps retrying while no node
	// accepts writes. If zero, 10s is used; negative means no retry.
	FailoverWait time.Duration
	// PrimaryMaxIdle is the primary pool's idle-connection limit, restored
	// after the router drops idle connections to a demoted primary. If zero,
	// 2 (database/sql's default) is used.
	PrimaryMaxIdle int
	// Logger receives failover and ejection events. If nil, nothing is logged.
	Logger *slog.Logger
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// Router routes queries over a primary and its replicas. Create it with New;
// it is safe for concurrent use. Run is optional: without it there is no lag
// measurement, and ejected replicas are retried lazily once their backoff
// ends.
type Router struct {
	cfg      Config
	primary  *sql.DB
	replicas []*Replica
	dialect  Dialect
	policy   Policy
	budget   *budget
	log      *slog.Logger
	now      func() time.Time

	newest atomic.Uint64 // newest token seen, for ScopeGlobal
	hb     heartbeats
	st     counters
}

// New validates cfg and returns a Router. It starts nothing.
func New(cfg Config) (*Router, error) {
	if cfg.Primary == nil {
		return nil, fmt.Errorf("%w: Primary is nil", ErrBadConfig)
	}
	if cfg.Scope != ScopeSession && cfg.Scope != ScopeGlobal {
		return nil, fmt.Errorf("%w: unknown Scope %d", ErrBadConfig, cfg.Scope)
	}
	if math.IsNaN(cfg.FallbackRate) || math.IsInf(cfg.FallbackRate, 0) || cfg.FallbackBurst < 0 {
		return nil, fmt.Errorf("%w: FallbackRate %v, FallbackBurst %d", ErrBadConfig, cfg.FallbackRate, cfg.FallbackBurst)
	}
	if cfg.HeartbeatInterval < 0 || cfg.EjectBackoff < 0 || cfg.MaxEjectBackoff < 0 || cfg.PrimaryMaxIdle < 0 {
		return nil, fmt.Errorf("%w: negative HeartbeatInterval, EjectBackoff, MaxEjectBackoff or PrimaryMaxIdle", ErrBadConfig)
	}
	if p, ok := cfg.Dialect.(Postgres); ok {
		if _, err := NewPostgres(p.HeartbeatTable); err != nil {
			return nil, err
		}
	}
	setDefaults(&cfg)
	r := &Router{cfg: cfg, primary: cfg.Primary, dialect: cfg.Dialect, policy: cfg.Policy, log: cfg.Logger, now: cfg.Now}
	seen := map[string]bool{}
	for i, rc := range cfg.Replicas {
		if rc.DB == nil {
			return nil, fmt.Errorf("%w: Replicas[%d].DB is nil", ErrBadConfig, i)
		}
		name := rc.Name
		if name == "" {
			name = fmt.Sprintf("replica-%d", i)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: replica name %q used twice", ErrBadConfig, name)
		}
		seen[name] = true
		r.replicas = append(r.replicas, &Replica{name: name, db: rc.DB})
	}
	r.budget = newBudget(cfg.FallbackRate, cfg.FallbackBurst)
	return r, nil
}

func setDefaults(c *Config) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ReplicaWait, 5*time.Millisecond)
	def(&c.MaxLagTime, 10*time.Second)
	def(&c.HeartbeatInterval, time.Second)
	def(&c.EjectBackoff, time.Second)
	def(&c.MaxEjectBackoff, 30*time.Second)
	def(&c.FailoverWait, 10*time.Second)
	if c.MaxLagBytes == 0 {
		c.MaxLagBytes = 16 << 20
	}
	if c.MaxLagBytes < 0 {
		c.MaxLagBytes = math.MaxInt64
	}
	if c.MaxLagTime < 0 {
		c.MaxLagTime = math.MaxInt64
	}
	if c.FallbackRate == 0 {
		c.FallbackRate = 200
	}
	if c.FallbackBurst == 0 {
		c.FallbackBurst = int(max(1, min(c.FallbackRate, 1e6)))
	}
	if c.PrimaryMaxIdle == 0 {
		c.PrimaryMaxIdle = 2
	}
	if c.Dialect == nil {
		c.Dialect = Postgres{}
	}
	if c.Policy == nil {
		c.Policy = P2C{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Replicas returns the router's replicas, in Config order. The slice is the
// caller's; the replicas are shared.
func (r *Router) Replicas() []*Replica { return append([]*Replica(nil), r.replicas...) }

// Primary returns the primary pool given in Config, for what the router
// does not route (schema changes, a shard layer's own statements).
func (r *Router) Primary() *sql.DB { return r.primary }

// Newest returns the newest token the router has recorded (the global scope).
func (r *Router) Newest() Token { return Token{LSN: LSN(r.newest.Load())} }

// Observe advances the global scope to t, e.g. a token seen by another app
// server; an older t is ignored.
func (r *Router) Observe(t Token) { maxStore(&r.newest, uint64(t.LSN)) }

// need returns the position a read under ctx must see.
func (r *Router) need(ctx context.Context) LSN {
	var l uint64
	if s, ok := SessionFrom(ctx); ok {
		l = s.lsn.Load()
	}
	if r.cfg.Scope == ScopeGlobal {
		l = max(l, r.newest.Load())
	}
	return LSN(l)
}

// wantsToken reports whether a write under ctx must record its position.
func (r *Router) wantsToken(ctx context.Context) bool {
	_, ok := SessionFrom(ctx)
	return ok || r.cfg.Scope == ScopeGlobal
}

// record reads the primary's position after a committed write on q and
// advances the session and global scopes. A failure is logged and counted,
// not returned: the write is committed and must not look failed (a caller
// would retry it); the session simply keeps its older token.
func (r *Router) record(ctx context.Context, q Querier) Token {
	t, err := r.dialect.WritePosition(ctx, q)
	if err != nil {
		r.st.tokenErrors.Add(1)
		r.log.Warn("dbrouter: reading write position failed; read-your-writes not guaranteed for this write", "err", err)
		return Token{}
	}
	if s, ok := SessionFrom(ctx); ok {
		s.Observe(t)
	}
	maxStore(&r.newest, uint64(t.LSN))
	return t
}

// ExecContext runs a write on the primary, retrying it within FailoverWait
// only while it provably was not applied (refused by a node in recovery, or
// never sent). After success it records the write's token in the scopes.
func (r *Router) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := r.onPrimary(ctx, func(c *sql.Conn) error {
		var err error
		res, err = c.ExecContext(ctx, query, args...)
		if err == nil && r.wantsToken(ctx) {
			r.record(ctx, c)
		}
		return err
	})
	r.st.writes.Add(1)
	return res, err
}

// QueryContext runs a query. Under a ReadOnly context it goes to a replica
// that qualifies (see the package doc); otherwise to the primary. A query on
// the primary records no token: a write made through QueryContext outside a
// transaction (INSERT ... RETURNING) should use BeginTx or QueryRowContext,
// which do. A replica that fails to connect is ejected and the query tried
// once more elsewhere.
func (r *Router) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if !IsReadOnly(ctx) || len(r.replicas) == 0 {
		r.st.primaryReads.Add(1)
		return r.primary.QueryContext(ctx, query, args...)
	}
	var rows *sql.Rows
	err := r.read(ctx, func(db *sql.DB) error {
		var err error
		rows, err = db.QueryContext(ctx, query, args...)
		return err
	})
	return rows, err
}

// Row is the result of QueryRowContext, like *sql.Row but able to carry a
// routing error (such as ErrNoReplica) to Scan.
type Row struct {
	row  *sql.Row
	err  error
	done func() // records the token of an unmarked query on the primary
}

// Err returns the error of running the query, if any, without scanning.
func (r *Row) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.row.Err()
}

// Scan copies the row's columns into dest, as (*sql.Row).Scan; it returns
// sql.ErrNoRows when there was no row.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	err := r.row.Scan(dest...)
	if r.done != nil && (err == nil || errors.Is(err, sql.ErrNoRows)) {
		r.done()
	}
	return err
}

// QueryRowContext runs a query expected to return at most one row, routed as
// QueryContext. An unmarked query on the primary may be a write (INSERT ...
// RETURNING), so with a Session or ScopeGlobal its Scan records a token.
func (r *Router) QueryRowContext(ctx context.Context, query string, args ...any) *Row {
	if !IsReadOnly(ctx) || len(r.replicas) == 0 {
		r.st.primaryReads.Add(1)
		row := &Row{row: r.primary.QueryRowContext(ctx, query, args...)}
		if !IsReadOnly(ctx) && r.wantsToken(ctx) {
			row.done = func() { r.record(ctx, r.primary) }
		}
		return row
	}
	out := &Row{}
	out.err = r.read(ctx, func(db *sql.DB) error {
		out.row = db.QueryRowContext(ctx, query, args...)
		return out.row.Err()
	})
	if out.row != nil && out.err == out.row.Err() {
		out.err = nil // let Scan report the query's own error, as database/sql does
	}
	return out
}

// read runs fn on the replica chosen for ctx, or on the primary when none
// qualifies and the budget allows. A replica whose connection fails is
// ejected and fn tried once more on the next choice.
func (r *Router) read(ctx context.Context, fn func(*sql.DB) error) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var rep *Replica
		rep, err = r.pick(ctx)
		if err != nil {
			return err
		}
		if rep == nil {
			r.st.primaryReads.Add(1)
			return fn(r.primary)
		}
		err = r.onReplica(rep, func() error { return fn(rep.db) })
		if err == nil {
			r.st.replicaReads.Add(1)
		}
		if err == nil || !r.dialect.IsConnError(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// onReplica runs fn with rep's in-flight count raised, ejecting rep if fn
// fails to reach it.
func (r *Router) onReplica(rep *Replica, fn func() error) error {
	rep.inflight.Add(1)
	rep.queries.Add(1)
	err := fn()
	rep.inflight.Add(-1)
	if err == nil {
		rep.markSuccess()
		return nil
	}
	if r.dialect.IsConnError(err) {
		d := rep.markFailure(r.now(), r.cfg.EjectBackoff, r.cfg.MaxEjectBackoff)
		r.log.Warn("dbrouter: replica ejected", "replica", rep.name, "for", d, "err", err)
	}
	return err
}

// pick chooses the replica for a read under ctx; nil means the primary.
func (r *Router) pick(ctx context.Context) (*Replica, error) {
	need := r.need(ctx)
	cands := r.candidates(nil, need)
	if len(cands) > 0 {
		return r.policy.Pick(cands), nil
	}
	now := r.now()
	if need > 0 && r.cfg.ReplicaWait > 0 {
		if rep := r.waitFor(ctx, need, now); rep != nil {
			return rep, nil
		}
		now = r.now()
	}
	if r.budget.allow(now) {
		r.st.fallbacks.Add(1)
		return nil, nil
	}
	r.st.overBudget.Add(1)
	if need == 0 {
		// A read that needs no write of its own is better served stale by
		// the freshest reachable replica than not at all.
		if rep := r.freshest(now.UnixNano()); rep != nil {
			return rep, nil
		}
	}
	return nil, ErrNoReplica
}

// candidates returns the replicas that are up, within the lag bounds and
// known to have replayed need. When all of them qualify (the usual case) it
// returns the router's own slice, so the hot path allocates nothing; else it
// appends to dst.
func (r *Router) candidates(dst []*Replica, need LSN) []*Replica {
	for i, rep := range r.replicas {
		if !r.qualifies(rep, need) {
			dst = append(dst, r.replicas[:i]...)
			for _, rep := range r.replicas[i+1:] {
				if r.qualifies(rep, need) {
					dst = append(dst, rep)
				}
			}
			return dst
		}
	}
	return r.replicas
}

// qualifies reads the clock only for an ejected replica: the clock is the
// costliest step of a pick on some machines, and most picks meet none.
func (r *Router) qualifies(rep *Replica, need LSN) bool {
	up := rep.downUntil.Load() == 0 || rep.available(r.now().UnixNano())
	return up && rep.lagOK(r.cfg.MaxLagBytes, r.cfg.MaxLagTime) && LSN(rep.replayed.Load()) >= need
}

// freshest returns the reachable replica that has replayed the most.
func (r *Router) freshest(now int64) *Replica {
	var best *Replica
	for _, rep := range r.replicas {
		if rep.available(now) && (best == nil || rep.replayed.Load() > best.replayed.Load()) {
			best = rep
		}
	}
	return best
}

// waitFor polls the replicas' replay positions until one reaches need or
// ReplicaWait has passed since start. It asks the policy's choice among the
// reachable, lag-bounded replicas each round, sleeping 50µs, then doubling up
// to 1ms between rounds; every answer refreshes the shared cache, so
// concurrent readers waiting for the same write share the polling.
func (r *Router) waitFor(ctx context.Context, need LSN, start time.Time) *Replica {
	r.st.waits.Add(1)
	defer func() { r.st.waitNanos.Add(int64(r.now().Sub(start))) }()
	deadline := start.Add(r.cfg.ReplicaWait)
	sleep := 50 * time.Microsecond
	for {
		pool := r.candidates(nil, 0)
		if len(pool) == 0 {
			return nil
		}
		rep := r.policy.Pick(pool)
		var pos Token
		err := r.onReplica(rep, func() error {
			var err error
			pos, err = r.dialect.ReplayPosition(ctx, rep.db)
			return err
		})
		if err == nil {
			maxStore(&rep.replayed, uint64(pos.LSN))
			if pos.LSN >= need {
				return rep
			}
		}
		if ctx.Err() != nil || r.now().Add(sleep).After(deadline) {
			return nil
		}
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		sleep = min(2*sleep, time.Millisecond)
	}
}
