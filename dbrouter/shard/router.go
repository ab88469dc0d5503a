package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"scaleout/dbrouter"
)

// Engine is the SQL dialect of a physical database.
type Engine int

const (
	// Postgres: each logical shard is a schema ("shard_0007") of the
	// database; a database may hold many.
	Postgres Engine = iota
	// SQLite: each physical database is one file holding one logical shard
	// in its "main" schema.
	SQLite
)

// Physical is one physical database for Config.Physical. Exactly one of DB
// and Router is set; the caller owns them and closes them after the
// shard router is no longer used.
type Physical struct {
	// Name is how the Map's placement names it.
	Name string
	// DB is a plain pool: every query goes to it.
	DB *sql.DB
	// Router is a replication group: reads under dbrouter.ReadOnly(ctx) go
	// to its replicas, with its read-your-writes guarantees; writes to its
	// primary.
	Router *dbrouter.Router
	// Engine is the dialect. If zero, Postgres.
	Engine Engine
}

// Config configures a Router.
type Config struct {
	// Map is the initial shard map; required.
	Map *Map
	// Physical lists the physical databases; every name in the Map's
	// placement must be among them (others may be spares for moves).
	Physical []Physical
	// Reload, if set, fetches the current map when a write is refused with
	// ErrStaleEpoch; the router adopts it if it is newer and retries the
	// write once. If nil, the refusal is returned to the caller.
	Reload func(ctx context.Context) (*Map, error)
	// StaleWait bounds how long a write refused for a stale epoch keeps
	// calling Reload until a newer map appears: during a move's fenced
	// window the shard is refused everywhere until the new map is
	// published, and writers wait it out instead of failing. If zero, 10s
	// is used; negative means one Reload only. It needs Reload.
	StaleWait time.Duration
	// MaxConcurrency bounds how many shards one Scatter queries at once. If
	// zero, 8 is used.
	MaxConcurrency int
	// ShardTimeout bounds each shard's part of a Scatter. If zero, 5s is
	// used.
	ShardTimeout time.Duration
	// Logger receives map changes. If nil, nothing is logged.
	Logger *slog.Logger
}

// Router routes queries to shards by key. Create it with New; it is safe for
// concurrent use.
type Router struct {
	cfg  Config
	phys map[string]*physical
	m    atomic.Pointer[Map]
	log  *slog.Logger

	// reloadMu serializes Reload calls.
	reloadMu sync.Mutex

	stats struct {
		reads, writes, stale, reloads, scatters, partial, failedShards atomic.Uint64
	}
}

// Stats is a snapshot of a Router's counters.
type Stats struct {
	Epoch        uint64 // the current map's epoch
	Reads        uint64 // single-shard reads
	Writes       uint64 // fenced write transactions committed
	Stale        uint64 // writes refused for a stale epoch (before any reload)
	Reloads      uint64 // maps adopted through Config.Reload
	Scatters     uint64 // scatter-gather reads
	Partial      uint64 // scatter-gather reads returned marked Partial
	FailedShards uint64 // shard parts of scatter-gather reads that failed
}

// Stats returns the counters. It is safe for concurrent use.
func (r *Router) Stats() Stats {
	return Stats{
		Epoch: r.m.Load().Epoch(), Reads: r.stats.reads.Load(), Writes: r.stats.writes.Load(),
		Stale: r.stats.stale.Load(), Reloads: r.stats.reloads.Load(), Scatters: r.stats.scatters.Load(),
		Partial: r.stats.partial.Load(), FailedShards: r.stats.failedShards.Load(),
	}
}

// physical is one database with the operations the router needs.
type physical struct {
	Physical
}

// New validates cfg and returns a Router. It starts nothing and runs no
// query; Provision creates the shard schemas and fence rows.
func New(cfg Config) (*Router, error) {
	if cfg.Map == nil {
		return nil, fmt.Errorf("%w: no Map", ErrBadConfig)
	}
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = 8
	}
	if cfg.MaxConcurrency < 0 {
		return nil, fmt.Errorf("%w: MaxConcurrency %d", ErrBadConfig, cfg.MaxConcurrency)
	}
	if cfg.ShardTimeout == 0 {
		cfg.ShardTimeout = 5 * time.Second
	}
	if cfg.StaleWait == 0 {
		cfg.StaleWait = 10 * time.Second
	}
	r := &Router{cfg: cfg, phys: map[string]*physical{}, log: cfg.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for i, p := range cfg.Physical {
		if (p.DB == nil) == (p.Router == nil) {
			return nil, fmt.Errorf("%w: physical %d (%q): set exactly one of DB and Router", ErrBadConfig, i, p.Name)
		}
		if _, dup := r.phys[p.Name]; dup {
			return nil, fmt.Errorf("%w: physical name %q used twice", ErrBadConfig, p.Name)
		}
		r.phys[p.Name] = &physical{p}
	}
	if err := r.check(cfg.Map); err != nil {
		return nil, err
	}
	r.m.Store(cfg.Map)
	return r, nil
}

// check verifies that every placement of m names a known database, and that
// a SQLite file holds at most one logical shard.
func (r *Router) check(m *Map) error {
	perPhys := map[string]int{}
	for s := range m.Shards() {
		name := m.Placement(s)
		p, ok := r.phys[name]
		if !ok {
			return fmt.Errorf("%w: logical shard %d placed on %q, which is not in Physical", ErrBadConfig, s, name)
		}
		perPhys[name]++
		if p.Engine == SQLite && perPhys[name] > 1 {
			return fmt.Errorf("%w: SQLite database %q would hold more than one logical shard", ErrBadConfig, name)
		}
	}
	return nil
}

// Map returns the router's current map.
func (r *Router) Map() *Map { return r.m.Load() }

// SetMap adopts m if its epoch is newer than the current map's; an older or
// equal one is ignored (it returns false). m must place shards only on known
// databases.
func (r *Router) SetMap(m *Map) (bool, error) {
	if err := r.check(m); err != nil {
		return false, err
	}
	for {
		cur := r.m.Load()
		if m.Epoch() <= cur.Epoch() {
			return false, nil
		}
		if r.m.CompareAndSwap(cur, m) {
			r.log.Info("shard map adopted", "epoch", m.Epoch(), "previous", cur.Epoch())
			return true, nil
		}
	}
}

// target is where one logical shard lives under one map.
type target struct {
	m      *Map
	shard  int
	phys   *physical
	schema string
}

func (r *Router) target(m *Map, s int) target {
	p := r.phys[m.Placement(s)]
	schema := m.schemas[s]
	if p.Engine == SQLite {
		schema = "main"
	}
	return target{m: m, shard: s, phys: p, schema: schema}
}

// ShardOf returns the logical shard of k under the current map.
func (r *Router) ShardOf(k Key) int { return r.m.Load().Shard(k) }

// expand replaces {shard} in query with the shard's schema. A query without
// it is returned as is, without allocating.
func expand(query, schema string) string {
	if !strings.Contains(query, "{shard}") {
		return query
	}
	return strings.ReplaceAll(query, "{shard}", schema)
}

// Query runs a read on the shard of k; {shard} in query names its schema.
// Under dbrouter.ReadOnly(ctx) a shard that is a replication group serves
// it from a replica. Reads are not fenced: a router with an old map may read
// a moved shard's old copy until it learns the new map (the source is kept,
// fenced, after a move, and only writes are refused).
func (r *Router) Query(ctx context.Context, k Key, query string, args ...any) (*sql.Rows, error) {
	m := r.m.Load()
	t := r.target(m, m.Shard(k))
	r.stats.reads.Add(1)
	return t.phys.query(ctx, expand(query, t.schema), args...)
}

// QueryRow is Query for at most one row; errors surface at Scan.
func (r *Router) QueryRow(ctx context.Context, k Key, query string, args ...any) *Row {
	rows, err := r.Query(ctx, k, query, args...)
	return &Row{rows: rows, err: err}
}

// Row is the result of QueryRow.
type Row struct {
	rows *sql.Rows
	err  error
}

// Scan copies the first row's columns into dest and closes the rows; it
// returns sql.ErrNoRows if there was none.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}

func (p *physical) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if p.Router != nil {
		return p.Router.QueryContext(ctx, q, args...)
	}
	return p.DB.QueryContext(ctx, q, args...)
}

func (p *physical) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if p.Router != nil {
		return p.Router.ExecContext(ctx, q, args...)
	}
	return p.DB.ExecContext(ctx, q, args...)
}

// Tx is a write transaction on one shard, begun by Router.Tx after the
// shard's fence was checked. {shard} in its queries names the shard's
// schema. It is for one goroutine.
type Tx struct {
	tx     txn
	schema string
}

// txn is what *sql.Tx and *dbrouter.Tx both offer.
type txn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	Commit() error
	Rollback() error
}

// ExecContext runs a statement in the transaction.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, expand(query, t.schema), args...)
}

// QueryContext runs a query in the transaction.
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, expand(query, t.schema), args...)
}

// QueryRowContext runs a one-row query in the transaction.
func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, expand(query, t.schema), args...)
}

func (p *physical) begin(ctx context.Context) (txn, error) {
	if p.Router != nil {
		return p.Router.BeginTx(ctx, nil)
	}
	return p.DB.BeginTx(ctx, nil)
}

// Exec runs a write on the shard of k, in a transaction that first checks
// the shard's fence: if the shard has moved since the router's map, it
// returns an error wrapping ErrStaleEpoch and applies nothing.
func (r *Router) Exec(ctx context.Context, k Key, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := r.Tx(ctx, k, func(tx *Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// Tx runs fn in a write transaction on the shard of k, after checking the
// shard's fence (see Exec), and commits it if fn returns nil; otherwise it
// rolls back and returns fn's error. Co-located tables (same key, same
// schema) can be changed together atomically. With Config.Reload, a
// refusal for a stale epoch reloads the map (for up to StaleWait, while a
// move is in its fenced window) and runs fn once more on the shard's new
// place; fn must therefore be safe to run twice (it was rolled back the
// first time).
func (r *Router) Tx(ctx context.Context, k Key, fn func(*Tx) error) error {
	m := r.m.Load()
	err := r.txOn(ctx, r.target(m, m.Shard(k)), fn)
	if !errors.Is(err, ErrStaleEpoch) {
		return err
	}
	r.stats.stale.Add(1)
	if r.cfg.Reload == nil {
		return err
	}
	deadline := time.Now().Add(r.cfg.StaleWait)
	for pause := 20 * time.Millisecond; ; pause = min(2*pause, 500*time.Millisecond) {
		nm, rerr := r.reload(ctx, m)
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		if nm != nil {
			m = nm
			return r.txOn(ctx, r.target(m, m.Shard(k)), fn)
		}
		if time.Now().Add(pause).After(deadline) {
			return err
		}
		if serr := sleepCtx(ctx, pause); serr != nil {
			return errors.Join(err, serr)
		}
	}
}

// reload fetches a new map after a stale-epoch refusal under old; it
// returns nil if no newer map is available.
func (r *Router) reload(ctx context.Context, old *Map) (*Map, error) {
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if cur := r.m.Load(); cur.Epoch() > old.Epoch() {
		return cur, nil // another writer reloaded meanwhile
	}
	nm, err := r.cfg.Reload(ctx)
	if err != nil {
		return nil, fmt.Errorf("reload shard map: %w", err)
	}
	if nm == nil {
		return nil, nil
	}
	ok, err := r.SetMap(nm)
	if err != nil || !ok {
		return nil, err
	}
	r.stats.reloads.Add(1)
	return nm, nil
}

func (r *Router) txOn(ctx context.Context, t target, fn func(*Tx) error) error {
	tx, err := t.phys.begin(ctx)
	if err != nil {
		return fmt.Errorf("shard %d on %s: begin: %w", t.shard, t.phys.Name, err)
	}
	if err := checkFence(ctx, tx, t); err != nil {
		tx.Rollback()
		return err
	}
	if err := fn(&Tx{tx: tx, schema: t.schema}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("shard %d on %s: commit: %w", t.shard, t.phys.Name, err)
	}
	r.stats.writes.Add(1)
	return nil
}

// ExecReference runs a write on every physical database: how reference
// tables (copied to every shard, so joins with them stay local) are kept.
// It is not atomic across databases: write idempotent statements (upserts)
// and repeat them if an error is returned; the error names every database
// that failed. {shard} is not expanded (reference tables live outside the
// shard schemas).
func (r *Router) ExecReference(ctx context.Context, query string, args ...any) error {
	var errs []error
	for _, name := range r.physicalNames() {
		if _, err := r.phys[name].exec(ctx, query, args...); err != nil {
			errs = append(errs, fmt.Errorf("reference write on %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// physicalNames returns the configured databases in Config order.
func (r *Router) physicalNames() []string {
	out := make([]string, len(r.cfg.Physical))
	for i, p := range r.cfg.Physical {
		out[i] = p.Name
	}
	return out
}
