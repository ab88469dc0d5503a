package shard

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// SQLiteConfig configures OpenSQLite.
type SQLiteConfig struct {
	// Dir holds the shard files "shard-000.db", "shard-001.db", ...;
	// required. It is created if missing.
	Dir string
	// Shards is the number of shards, one file each. If zero, 4 is used.
	Shards int
	// DDL creates each shard's tables ({shard} expands to "main"); it must
	// be idempotent (CREATE TABLE IF NOT EXISTS), as it runs on every open.
	DDL []string
	// Logger is passed to the Router. If nil, nothing is logged.
	Logger *slog.Logger
}

// OpenSQLite opens the embedded default: Shards SQLite files in Dir, one
// logical shard each, placed by jump hash at epoch 1, with the fence table
// and DDL applied. It returns the router and a function that closes the
// files. Every file runs in WAL mode with a busy timeout, and write
// transactions begin IMMEDIATE so concurrent writers queue instead of
// failing to upgrade a read lock.
func OpenSQLite(ctx context.Context, cfg SQLiteConfig) (*Router, func() error, error) {
	if cfg.Dir == "" {
		return nil, nil, fmt.Errorf("%w: SQLite shards need a directory", ErrBadConfig)
	}
	if cfg.Shards == 0 {
		cfg.Shards = 4
	}
	fn, err := NewJump(cfg.Shards)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("shard directory: %w", err)
	}
	var dbs []*sql.DB
	closeAll := func() error {
		var errs []error
		for _, db := range dbs {
			errs = append(errs, db.Close())
		}
		return errors.Join(errs...)
	}
	placement := make([]string, cfg.Shards)
	phys := make([]Physical, cfg.Shards)
	for i := range cfg.Shards {
		name := fmt.Sprintf("shard-%03d", i)
		path := filepath.Join(cfg.Dir, name+".db")
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("open %s: %w", path, err)
		}
		dbs = append(dbs, db)
		placement[i] = name
		phys[i] = Physical{Name: name, DB: db, Engine: SQLite}
	}
	m, err := NewMap(1, fn, placement)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	r, err := New(Config{Map: m, Physical: phys, Logger: cfg.Logger})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	if err := provisionRetrying(ctx, r, cfg.DDL); err != nil {
		closeAll()
		return nil, nil, err
	}
	return r, closeAll, nil
}

// provisionRetrying provisions the shards, retrying while SQLite reports a
// file busy: processes opening new shard files together race to switch
// them to WAL and to create the tables, and SQLite refuses some of those
// races at once rather than waiting on the busy timeout.
func provisionRetrying(ctx context.Context, r *Router, ddl []string) error {
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := r.Provision(ctx, ddl...)
		if err == nil || attempt == 30 || !strings.Contains(err.Error(), "SQLITE_BUSY") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}
