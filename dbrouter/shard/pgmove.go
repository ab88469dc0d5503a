package shard

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Move describes an online move of one logical shard to another
// PostgreSQL database, for Router.MovePostgres.
type Move struct {
	// Shard is the logical shard to move.
	Shard int
	// To names the destination among Config.Physical; it must be a
	// PostgreSQL database other than the shard's current one.
	To string
	// SourceConninfo is the libpq connection string (key=value or URL) with
	// which the destination server reaches the source database, for CREATE
	// SUBSCRIPTION; required. The source must run with wal_level=logical.
	SourceConninfo string
	// DDL creates the shard's tables ({shard} expanded), as given to
	// Provision; logical replication copies rows, not schema.
	DDL []string
	// VerifyRanges is how many key ranges each table is split into for
	// verification. If zero, 8 is used.
	VerifyRanges int
	// CopyTimeout bounds the initial copy and catch-up. If zero, 10m.
	CopyTimeout time.Duration
	// FenceTimeout bounds the fenced window (writes to the shard refused)
	// in which the copy must catch up and verify. If zero, 1m is used;
	// when it passes, the move is rolled back and the source writable again.
	FenceTimeout time.Duration
	// MaxLagBytes is the replication lag below which the source is fenced.
	// If zero, 1 MiB.
	MaxLagBytes int64
	// DropSource drops the shard's schema on the source after cutover. If
	// false, it stays there, fenced (writes refused), for inspection.
	DropSource bool
	// Progress, if set, is called at every step. It must not block long.
	Progress func(Progress)
}

// Progress reports a shard move's state.
type Progress struct {
	Phase         string        // prepare, copy, catch-up, fence, verify, cutover, cleanup, done
	Shard         int           // the logical shard
	Tables        int           // tables in the shard
	TablesCopied  int           // tables whose initial copy is done
	LagBytes      int64         // source WAL not yet confirmed by the destination
	Ranges        int           // key ranges to verify (all tables)
	RangesMatched int           // ranges whose row count and checksum match
	Rows          int64         // rows verified
	Elapsed       time.Duration // since the move began
	Fenced        time.Duration // how long writes have been refused so far
}

// moveTable is one table of the moved shard with its first primary-key
// column, and the verification ranges over it.
type moveTable struct {
	name, key string
	integer   bool
	bounds    [][2]int64 // [lo, hi] inclusive; nil means the whole table
}

// MovePostgres moves a logical shard online between two PostgreSQL
// databases with native logical replication, then switches the router to
// a map one epoch newer and returns it (the caller publishes it to the other
// routers, e.g. through Config.Reload). Steps:
//
//  1. prepare: the shard's schema and tables on the destination, and its
//     fence row there (not owned, at the new epoch); a publication of the
//     schema on the source (CREATE PUBLICATION ... FOR TABLES IN SCHEMA);
//  2. copy: CREATE SUBSCRIPTION on the destination copies every table and
//     then streams changes; writes continue on the source meanwhile;
//  3. catch-up: wait until the destination's lag is under MaxLagBytes;
//  4. fence: the source's fence row says the shard left at the new epoch;
//     the update waits for writes in flight, and every later write there is
//     refused (ErrStaleEpoch);
//  5. verify: repeat until the copy has caught up: per table and key range,
//     row counts and checksums (md5 of the rows in key order) equal on both;
//  6. cutover: the destination's fence row becomes owned; the router adopts
//     the new map; the subscription and publication are dropped.
//
// Any failure before cutover undoes the fence, so the source takes writes
// again, and drops what the move created. Sequences are not replicated by
// logical replication: keys should come from a generator (package keys).
func (r *Router) MovePostgres(ctx context.Context, mv Move) (*Map, error) {
	start := time.Now()
	m := r.m.Load()
	src, dst, err := r.moveEnds(m, mv)
	if err != nil {
		return nil, err
	}
	if mv.VerifyRanges <= 0 {
		mv.VerifyRanges = 8
	}
	if mv.CopyTimeout <= 0 {
		mv.CopyTimeout = 10 * time.Minute
	}
	if mv.FenceTimeout <= 0 {
		mv.FenceTimeout = time.Minute
	}
	if mv.MaxLagBytes <= 0 {
		mv.MaxLagBytes = 1 << 20
	}
	p := Progress{Shard: mv.Shard}
	report := func(phase string) {
		p.Phase, p.Elapsed = phase, time.Since(start)
		if mv.Progress != nil {
			mv.Progress(p)
		}
	}
	next := m.Epoch() + 1
	schema := SchemaName(mv.Shard)
	name := fmt.Sprintf("scaleout_move_%d_e%d", mv.Shard, next)

	report("prepare")
	if err := prepareDest(ctx, dst, mv, next); err != nil {
		return nil, fmt.Errorf("move shard %d: prepare %s: %w", mv.Shard, mv.To, err)
	}
	tables, err := shardTables(ctx, src, schema)
	if err != nil {
		return nil, fmt.Errorf("move shard %d: %w", mv.Shard, err)
	}
	p.Tables = len(tables)
	cleanup := func() {
		// A fresh context: the caller's may be what failed.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		dst.ExecContext(cctx, "DROP SUBSCRIPTION IF EXISTS "+name)
		src.ExecContext(cctx, "DROP PUBLICATION IF EXISTS "+name)
	}
	if _, err := src.ExecContext(ctx, "CREATE PUBLICATION "+name+" FOR TABLES IN SCHEMA "+schema); err != nil {
		return nil, fmt.Errorf("move shard %d: create publication on the source (needs PostgreSQL 15): %w", mv.Shard, err)
	}
	conninfo := "'" + strings.ReplaceAll(mv.SourceConninfo, "'", "''") + "'"
	if _, err := dst.ExecContext(ctx, "CREATE SUBSCRIPTION "+name+" CONNECTION "+conninfo+" PUBLICATION "+name); err != nil {
		cleanup()
		return nil, fmt.Errorf("move shard %d: create subscription on %s (the source needs wal_level=logical): %w", mv.Shard, mv.To, err)
	}
	copyCtx, cancel := context.WithTimeout(ctx, mv.CopyTimeout)
	defer cancel()
	if err := waitCopied(copyCtx, src, dst, name, mv.MaxLagBytes, &p, report); err != nil {
		cleanup()
		return nil, fmt.Errorf("move shard %d: %w", mv.Shard, err)
	}

	report("fence")
	fencedAt := time.Now()
	if err := fenceSource(ctx, src, mv.Shard, m.Epoch(), next); err != nil {
		cleanup()
		return nil, fmt.Errorf("move shard %d: fence the source: %w", mv.Shard, err)
	}
	unfence := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		src.ExecContext(cctx, "UPDATE "+FenceTable+" SET owned = true, epoch = $2 WHERE shard = $1", mv.Shard, int64(m.Epoch()))
		cleanup()
	}
	vctx, vcancel := context.WithTimeout(ctx, mv.FenceTimeout)
	defer vcancel()
	if err := verifyLoop(vctx, src, dst, schema, tables, mv.VerifyRanges, fencedAt, &p, report); err != nil {
		unfence()
		return nil, fmt.Errorf("move shard %d: %w", mv.Shard, err)
	}

	report("cutover")
	nm, err := m.Moved(mv.Shard, mv.To)
	if err == nil {
		_, err = dst.ExecContext(ctx, "UPDATE "+FenceTable+" SET owned = true WHERE shard = $1 AND epoch = $2", mv.Shard, int64(next))
	}
	if err == nil {
		_, err = r.SetMap(nm)
	}
	if err != nil {
		unfence()
		return nil, fmt.Errorf("move shard %d: cutover: %w", mv.Shard, err)
	}
	p.Fenced = time.Since(fencedAt)
	report("cleanup")
	cleanup()
	if mv.DropSource {
		if _, err := src.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			r.log.Warn("drop moved shard's source schema", "shard", mv.Shard, "err", err)
		}
	}
	report("done")
	return nm, nil
}

// moveEnds returns the source and destination pools of a move.
func (r *Router) moveEnds(m *Map, mv Move) (src, dst *sql.DB, err error) {
	if mv.Shard < 0 || mv.Shard >= m.Shards() {
		return nil, nil, fmt.Errorf("%w: move shard %d: have 0..%d", ErrBadConfig, mv.Shard, m.Shards()-1)
	}
	from := m.Placement(mv.Shard)
	to, ok := r.phys[mv.To]
	switch {
	case !ok:
		return nil, nil, fmt.Errorf("%w: move shard %d to %q: no such physical database", ErrBadConfig, mv.Shard, mv.To)
	case mv.To == from:
		return nil, nil, fmt.Errorf("%w: shard %d is already on %q", ErrBadConfig, mv.Shard, from)
	case to.Engine != Postgres || r.phys[from].Engine != Postgres:
		return nil, nil, fmt.Errorf("%w: MovePostgres moves between PostgreSQL databases", ErrBadConfig)
	case mv.SourceConninfo == "":
		return nil, nil, fmt.Errorf("%w: move shard %d: no SourceConninfo", ErrBadConfig, mv.Shard)
	}
	return r.phys[from].primary(), to.primary(), nil
}

// primary returns the pool that takes writes and DDL.
func (p *physical) primary() *sql.DB {
	if p.Router != nil {
		return p.Router.Primary()
	}
	return p.DB
}

func prepareDest(ctx context.Context, dst *sql.DB, mv Move, epoch uint64) error {
	if _, err := dst.ExecContext(ctx, fenceDDL(Postgres)); err != nil {
		return err
	}
	if err := provisionShard(ctx, dst.ExecContext, Postgres, mv.Shard, epoch, false, mv.DDL); err != nil {
		return err
	}
	// A destination that held the shard before keeps an old row: reset it.
	if _, err := dst.ExecContext(ctx, "UPDATE "+FenceTable+" SET epoch = $2, owned = false WHERE shard = $1", mv.Shard, int64(epoch)); err != nil {
		return err
	}
	tables, err := shardTables(ctx, dst, SchemaName(mv.Shard))
	if err != nil {
		return err
	}
	for _, t := range tables {
		var any bool
		if err := dst.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+SchemaName(mv.Shard)+"."+t.name+")").Scan(&any); err != nil {
			return err
		}
		if any {
			return fmt.Errorf("%w: destination table %s.%s is not empty", ErrBadConfig, SchemaName(mv.Shard), t.name)
		}
	}
	return nil
}

// shardTables lists the schema's tables with the first column of each
// primary key (logical replication needs a key to replicate updates).
func shardTables(ctx context.Context, db *sql.DB, schema string) ([]moveTable, error) {
	rows, err := db.QueryContext(ctx, `SELECT c.relname, a.attname, a.atttypid IN (20, 21, 23)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
		WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname`, schema)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", schema, err)
	}
	defer rows.Close()
	var out []moveTable
	for rows.Next() {
		var t moveTable
		var key sql.NullString
		var integer sql.NullBool
		if err := rows.Scan(&t.name, &key, &integer); err != nil {
			return nil, err
		}
		if !key.Valid {
			return nil, fmt.Errorf("%w: table %s.%s has no primary key", ErrBadConfig, schema, t.name)
		}
		t.key, t.integer = key.String, integer.Bool
		out = append(out, t)
	}
	return out, rows.Err()
}

// waitCopied waits for the subscription's initial copy of every table and
// then for the lag to drop under maxLag.
func waitCopied(ctx context.Context, src, dst *sql.DB, name string, maxLag int64, p *Progress, report func(string)) error {
	for {
		var total, done int
		err := dst.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE sr.srsubstate IN ('r', 's'))
			FROM pg_subscription_rel sr JOIN pg_subscription s ON s.oid = sr.srsubid WHERE s.subname = $1`, name).Scan(&total, &done)
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		p.TablesCopied = done
		if total >= p.Tables && done == total {
			break
		}
		report("copy")
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("copy: %d of %d tables copied: %w", done, total, err)
		}
	}
	for {
		var lag sql.NullInt64
		err := src.QueryRowContext(ctx, `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint
			FROM pg_replication_slots WHERE slot_name = $1`, name).Scan(&lag)
		if err != nil {
			return fmt.Errorf("catch-up: replication slot %s: %w", name, err)
		}
		p.LagBytes = lag.Int64
		report("catch-up")
		if lag.Valid && lag.Int64 <= maxLag {
			return nil
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("catch-up: lag %d bytes: %w", lag.Int64, err)
		}
	}
}

// fenceSource marks the shard as gone from the source at epoch next. The
// UPDATE takes the row lock that every write's FOR SHARE check holds, so it
// waits for writes in flight, and later writes see owned = false.
func fenceSource(ctx context.Context, src *sql.DB, shard int, cur, next uint64) error {
	res, err := src.ExecContext(ctx, "UPDATE "+FenceTable+" SET owned = false, epoch = $2 WHERE shard = $1 AND owned AND epoch <= $3",
		shard, int64(next), int64(cur))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: the source does not own shard %d at epoch %d (moved by someone else?)", ErrStaleEpoch, shard, cur)
	}
	return nil
}

// verifyLoop compares the two copies until every range matches or ctx
// ends. The source is fenced, so it no longer changes and a match means the
// destination has applied everything.
func verifyLoop(ctx context.Context, src, dst *sql.DB, schema string, tables []moveTable, ranges int, fencedAt time.Time, p *Progress, report func(string)) error {
	for i := range tables {
		if err := setBounds(ctx, src, schema, &tables[i], ranges); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
	}
	p.Ranges = 0
	for _, t := range tables {
		p.Ranges += max(1, len(t.bounds))
	}
	var lastDiff string
	for {
		matched, rows, diff, err := verifyOnce(ctx, src, dst, schema, tables)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		p.RangesMatched, p.Rows, p.Fenced = matched, rows, time.Since(fencedAt)
		report("verify")
		if diff == "" {
			return nil
		}
		lastDiff = diff
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("%w: %s (after %v fenced)", ErrVerify, lastDiff, time.Since(fencedAt).Round(time.Millisecond))
		}
	}
}

// setBounds splits an integer-keyed table into n equal key ranges between
// the source's smallest and largest key.
func setBounds(ctx context.Context, src *sql.DB, schema string, t *moveTable, n int) error {
	t.bounds = nil
	if !t.integer {
		return nil
	}
	var lo, hi sql.NullInt64
	q := fmt.Sprintf("SELECT min(%[1]s), max(%[1]s) FROM %[2]s.%[3]s", quoteIdent(t.key), schema, quoteIdent(t.name))
	if err := src.QueryRowContext(ctx, q).Scan(&lo, &hi); err != nil {
		return err
	}
	if !lo.Valid {
		return nil
	}
	width := (hi.Int64-lo.Int64)/int64(n) + 1
	for a := lo.Int64; ; a += width {
		b := a + width - 1
		if b >= hi.Int64 || b < a { // b < a: overflow near MaxInt64
			t.bounds = append(t.bounds, [2]int64{a, hi.Int64})
			return nil
		}
		t.bounds = append(t.bounds, [2]int64{a, b})
	}
}

// verifyOnce compares every range once; diff describes the first mismatch,
// "" if none.
func verifyOnce(ctx context.Context, src, dst *sql.DB, schema string, tables []moveTable) (matched int, rows int64, diff string, err error) {
	for _, t := range tables {
		ranges := t.bounds
		if ranges == nil {
			ranges = [][2]int64{{0, -1}} // whole table
		}
		for _, b := range ranges {
			var sums [2]rangeSum
			for i, db := range []*sql.DB{src, dst} {
				if sums[i], err = checksum(ctx, db, schema, t, b); err != nil {
					return matched, rows, diff, err
				}
			}
			if sums[0] != sums[1] {
				if diff == "" {
					diff = fmt.Sprintf("%s.%s keys %d..%d: source %d rows %s, destination %d rows %s",
						schema, t.name, b[0], b[1], sums[0].count, sums[0].sum, sums[1].count, sums[1].sum)
				}
				continue
			}
			matched++
			rows += sums[0].count
		}
	}
	return matched, rows, diff, nil
}

type rangeSum struct {
	count int64
	sum   string
}

// checksum is the row count and the md5 of the rows' md5s in key order
// over one key range (b[0] > b[1] means the whole table).
func checksum(ctx context.Context, db *sql.DB, schema string, t moveTable, b [2]int64) (rangeSum, error) {
	key := quoteIdent(t.key)
	q := fmt.Sprintf("SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY t.%[1]s)), '') FROM %[2]s.%[3]s t", key, schema, quoteIdent(t.name))
	args := []any{}
	if b[0] <= b[1] {
		q += " WHERE t." + key + " BETWEEN $1 AND $2"
		args = append(args, b[0], b[1])
	}
	var s rangeSum
	err := db.QueryRowContext(ctx, q, args...).Scan(&s.count, &s.sum)
	return s, err
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
