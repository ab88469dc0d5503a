package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// FenceTable is the table on every physical database that fences writes:
// one row per logical shard the database holds or held, with the map epoch
// at which it got (or lost) the shard and whether it owns it now.
const FenceTable = "scaleout_shard_fence"

// checkFence runs in a write transaction before the write: it reads the
// shard's fence row, on PostgreSQL with FOR SHARE so that a cutover (which
// updates the row) waits for writes in flight and every later write sees
// the cutover. The write may go ahead only if the database owns the shard
// and got it at or before the router's epoch.
func checkFence(ctx context.Context, tx txn, t target) error {
	q := "SELECT epoch, owned FROM " + FenceTable + " WHERE shard = $1"
	if t.phys.Engine == Postgres {
		q += " FOR SHARE"
	}
	var epoch int64
	var owned bool
	err := tx.QueryRowContext(ctx, q, t.shard).Scan(&epoch, &owned)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: shard %d: %s does not hold it (router at epoch %d)", ErrStaleEpoch, t.shard, t.phys.Name, t.m.Epoch())
	case err != nil:
		return fmt.Errorf("shard %d on %s: check fence: %w", t.shard, t.phys.Name, err)
	case !owned:
		return fmt.Errorf("%w: shard %d moved away from %s at epoch %d (router at epoch %d)", ErrStaleEpoch, t.shard, t.phys.Name, epoch, t.m.Epoch())
	case uint64(epoch) > t.m.Epoch():
		return fmt.Errorf("%w: shard %d is on %s since epoch %d (router at epoch %d)", ErrStaleEpoch, t.shard, t.phys.Name, epoch, t.m.Epoch())
	}
	return nil
}

// fenceDDL creates the fence table.
func fenceDDL(e Engine) string {
	b := "BOOLEAN"
	if e == SQLite {
		b = "INTEGER"
	}
	return "CREATE TABLE IF NOT EXISTS " + FenceTable + " (shard INTEGER PRIMARY KEY, epoch BIGINT NOT NULL, owned " + b + " NOT NULL)"
}

// Provision makes the current map real: on every physical database it
// creates the fence table, and for every logical shard it creates the
// shard's schema on the database that holds it, runs ddl there ({shard}
// expanded: the co-located tables of the shard), and records the fence row
// (owned, at the map's epoch) unless one exists. It is idempotent when ddl
// is (CREATE TABLE IF NOT EXISTS).
func (r *Router) Provision(ctx context.Context, ddl ...string) error {
	for _, name := range r.physicalNames() {
		p := r.phys[name]
		if _, err := p.exec(ctx, fenceDDL(p.Engine)); err != nil {
			return fmt.Errorf("provision %s: fence table: %w", name, err)
		}
	}
	m := r.m.Load()
	for s := range m.Shards() {
		t := r.target(m, s)
		if err := provisionShard(ctx, t.phys.exec, t.phys.Engine, s, m.Epoch(), true, ddl); err != nil {
			return fmt.Errorf("provision shard %d on %s: %w", s, t.phys.Name, err)
		}
	}
	return nil
}

// provisionShard creates shard s's schema and tables with exec and records
// its fence row (epoch, owned) if there is none.
func provisionShard(ctx context.Context, exec func(context.Context, string, ...any) (sql.Result, error), e Engine, s int, epoch uint64, owned bool, ddl []string) error {
	schema := "main"
	if e == Postgres {
		schema = SchemaName(s)
		if _, err := exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
			return err
		}
	}
	for _, d := range ddl {
		if _, err := exec(ctx, expand(d, schema)); err != nil {
			return fmt.Errorf("%s: %w", firstLine(d), err)
		}
	}
	own := any(owned)
	if e == SQLite {
		own = map[bool]int{false: 0, true: 1}[owned]
	}
	_, err := exec(ctx, "INSERT INTO "+FenceTable+" (shard, epoch, owned) VALUES ($1, $2, $3) ON CONFLICT (shard) DO NOTHING", s, int64(epoch), own)
	return err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}
