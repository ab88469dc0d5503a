// Package pgstore is a session.Store in PostgreSQL, through pgx: for app
// servers on several machines. Writes are compare-and-set in one statement
// each, so no transaction is held across a request.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"scaleout/session"
)

// Config configures a Store.
type Config struct {
	// Pool is the connection pool; the caller owns and closes it. Required.
	Pool *pgxpool.Pool
	// Table is the sessions table's name; the generations table is named
	// after it with "_gen" appended. If empty, "scaleout_sessions" is used.
	Table string
	// Now returns the current time, used for expiry checks so that they
	// agree with the Manager's clock. If nil, time.Now is used.
	Now func() time.Time
}

// Store is a session.Store, session.Cleaner and session.Generations on
// PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
	q    queries
}

type queries struct {
	load, create, update, del, expire, gen, bump string
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,50}$`)

// New returns a Store on cfg.Pool, creating its tables if they do not exist.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Pool == nil {
		return nil, errors.New("pgstore: config: Pool is nil")
	}
	if cfg.Table == "" {
		cfg.Table = "scaleout_sessions"
	}
	if !identRE.MatchString(cfg.Table) {
		return nil, fmt.Errorf("pgstore: config: Table %q is not a plain SQL identifier", cfg.Table)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t, g := cfg.Table, cfg.Table+"_gen"
	schema := `CREATE TABLE IF NOT EXISTS ` + t + ` (id text PRIMARY KEY, data bytea NOT NULL, expiry timestamptz NOT NULL, version bigint NOT NULL);
		CREATE INDEX IF NOT EXISTS ` + t + `_expiry ON ` + t + ` (expiry);
		CREATE TABLE IF NOT EXISTS ` + g + ` (user_id text PRIMARY KEY, gen bigint NOT NULL)`
	if _, err := cfg.Pool.Exec(ctx, schema); err != nil {
		return nil, fmt.Errorf("pgstore: create schema: %w", err)
	}
	return &Store{pool: cfg.Pool, now: cfg.Now, q: queries{
		load: `SELECT data, expiry, version FROM ` + t + ` WHERE id = $1 AND expiry > $2`,
		// Creating over an expired entry is allowed: it counts as absent.
		create: `INSERT INTO ` + t + ` (id, data, expiry, version) VALUES ($1, $2, $3, 1)
			ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, expiry = EXCLUDED.expiry, version = 1
			WHERE ` + t + `.expiry <= $4`,
		update: `UPDATE ` + t + ` SET data = $1, expiry = $2, version = version + 1 WHERE id = $3 AND version = $4 AND expiry > $5`,
		del:    `DELETE FROM ` + t + ` WHERE id = $1`,
		expire: `DELETE FROM ` + t + ` WHERE expiry <= $1`,
		gen:    `SELECT gen FROM ` + g + ` WHERE user_id = $1`,
		bump:   `INSERT INTO ` + g + ` (user_id, gen) VALUES ($1, 1) ON CONFLICT (user_id) DO UPDATE SET gen = ` + g + `.gen + 1 RETURNING gen`,
	}}, nil
}

// Load returns the live entry under id.
func (s *Store) Load(ctx context.Context, id string) (session.Entry, bool, error) {
	var e session.Entry
	err := s.pool.QueryRow(ctx, s.q.load, id, s.now()).Scan(&e.Data, &e.Expiry, &e.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return session.Entry{}, false, nil
	}
	if err != nil {
		return session.Entry{}, false, fmt.Errorf("pgstore: load: %w", err)
	}
	return e, true, nil
}

// Save stores data under id if the live version is prev.
func (s *Store) Save(ctx context.Context, id string, data []byte, expiry time.Time, prev int64) error {
	var err error
	var n int64
	if prev == 0 {
		tag, e := s.pool.Exec(ctx, s.q.create, id, data, expiry, s.now())
		n, err = tag.RowsAffected(), e
	} else {
		tag, e := s.pool.Exec(ctx, s.q.update, data, expiry, id, prev, s.now())
		n, err = tag.RowsAffected(), e
	}
	if err != nil {
		return fmt.Errorf("pgstore: save: %w", err)
	}
	if n != 1 {
		return session.ErrConflict
	}
	return nil
}

// Delete removes id.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, s.q.del, id); err != nil {
		return fmt.Errorf("pgstore: delete: %w", err)
	}
	return nil
}

// DeleteExpired removes expired entries; run it with session.RunCleanup.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, s.q.expire, s.now())
	if err != nil {
		return 0, fmt.Errorf("pgstore: delete expired: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Generation returns userID's revocation generation.
func (s *Store) Generation(ctx context.Context, userID string) (int64, error) {
	var g int64
	err := s.pool.QueryRow(ctx, s.q.gen, userID).Scan(&g)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pgstore: generation: %w", err)
	}
	return g, nil
}

// Bump increments userID's revocation generation.
func (s *Store) Bump(ctx context.Context, userID string) (int64, error) {
	var g int64
	if err := s.pool.QueryRow(ctx, s.q.bump, userID).Scan(&g); err != nil {
		return 0, fmt.Errorf("pgstore: bump generation: %w", err)
	}
	return g, nil
}
